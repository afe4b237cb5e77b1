"""Benchmark: nn_lib's tutorial loop (batch built by expression + eval step with the macros +
echo) and a per-pixel `fill`, nnpipe against G'MIC 3.6.3 (the `gmic` package), each run in its
own process, median of repeats.

    python scripts/bench_tutorial.py [--repeats 3] [--iterations 2000]

The loop rate is measured between two run lengths of the same script, so start-up, Numba's
compile and the final full-image pass cancel out. G'MIC 3.6.3's nn_lib no longer has the 2023
API the tutorial is written in; its peer is scripts/peers/nn_tutorial_gmic363.gmic, the same
network, batch expression and training step in 3.6.3's API (the photo read with `input`).
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "nn_lib_tutorial.gmic"
PEER = REPO / "scripts" / "peers" / "nn_tutorial_gmic363.gmic"
PHOTO = REPO / "examples" / "data" / "astronaut256.png"
FILL = 'fill "sin(x/10)*cos(y/10)+c"'

NNPIPE_LOOP = """
import io, sys, time
from nnpipe.commands import load_all
from nnpipe.lang.interpreter import Interpreter
n = int(sys.argv[1])
interpreter = Interpreter(load_all(), seed=1, quiet=True, out=io.StringIO(), err=io.StringIO())
started = time.perf_counter()
interpreter.run_items([sys.argv[2], "nn_lib_tutorial", f"{n},{sys.argv[3]}"])
print(time.perf_counter() - started)
"""

GMIC_LOOP = """
import sys, time, gmic
n = int(sys.argv[1])
started = time.perf_counter()
gmic.Gmic().run(f"command {sys.argv[2]} nn_tutorial363 {n},{sys.argv[3]},{sys.argv[4]}")
print(time.perf_counter() - started)
"""

NNPIPE_FILL = """
import io, time
from nnpipe.lang.interpreter import Interpreter
interpreter = Interpreter(load_all(), quiet=True, out=io.StringIO())
interpreter.run_items(["1024,1024,1,3"])
times = []
for _ in range(7):
    started = time.perf_counter()
    interpreter.run_items(["fill", "sin(x/10)*cos(y/10)+c"])
    times.append(time.perf_counter() - started)
print(sorted(times)[3])
"""

GMIC_FILL = """
import time, gmic
g = gmic.Gmic()
times = []
for _ in range(7):
    images = gmic.ImageList()
    g.run("1024,1024,1,3", images)
    started = time.perf_counter()
    g.run('fill "sin(x/10)*cos(y/10)+c"', images)
    times.append(time.perf_counter() - started)
print(sorted(times)[3])
"""


def seconds(code, *arguments):
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, arguments)], capture_output=True, text=True, cwd=REPO
    )
    if result.returncode:
        raise SystemExit(f"benchmark process failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def loop_rate(code, script, iterations, repeats, folder, *extra):
    short, long = 100, 100 + iterations
    rates = []
    for repeat in range(repeats):
        out = Path(folder) / f"out{repeat}.png"
        t_short = seconds(code, short, script, out, *extra)
        t_long = seconds(code, long, script, out, *extra)
        rates.append(iterations / max(t_long - t_short, 1e-9))
    return statistics.median(rates), min(rates), max(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for_gmic = Path(folder) / "tutorial_for_gmic.gmic"
        for_gmic.write_text(PEER.read_text().replace("examples/data/astronaut256.png", str(PHOTO)))
        # the example prints every 1000 iterations behind an `if`; issue 13's loop prints
        # every iteration: batch built by expression + eval step + echo
        echoing = Path(folder) / "tutorial_echo.gmic"
        echoing.write_text(
            re.sub(r"^if !\(\$>%1000\).*$", "echo[] LOSS=$loss", EXAMPLE.read_text(), flags=re.M)
        )
        seconds(NNPIPE_LOOP, 20, EXAMPLE, Path(folder) / "warm.png")  # Numba's cache, once
        try:
            import gmic  # noqa: F401

            has_gmic = True
        except ImportError:
            print("G'MIC not installed (pip install gmic): nnpipe alone")
            has_gmic = False
        gmic_rate = None
        for label, script, every in (
            ("loop, echo every iteration", echoing, 1),
            ("loop, if + echo every 1000", EXAMPLE, 1000),
        ):
            nnpipe = loop_rate(NNPIPE_LOOP, script, options.iterations, options.repeats, folder)
            print(f"{label:28s} nnpipe {nnpipe[0]:6.0f} it/s  (min {nnpipe[1]:.0f}, max {nnpipe[2]:.0f})")
            if has_gmic:
                gmic_rate = loop_rate(
                    GMIC_LOOP, for_gmic, max(options.iterations // 10, 200), options.repeats, folder, every
                )
                print(
                    f"{label:28s} G'MIC  {gmic_rate[0]:6.0f} it/s  (min {gmic_rate[1]:.0f},"
                    f" max {gmic_rate[2]:.0f})   nnpipe/G'MIC {nnpipe[0] / gmic_rate[0]:.1f}x"
                )
        fills = [seconds(NNPIPE_FILL) for _ in range(options.repeats)]
        print(f"fill 1024x1024x3 nnpipe {statistics.median(fills) * 1000:7.1f} ms")
        if gmic_rate is not None:
            gmic_fills = [seconds(GMIC_FILL) for _ in range(options.repeats)]
            print(f"fill 1024x1024x3 G'MIC  {statistics.median(gmic_fills) * 1000:7.1f} ms")
            print(
                f"fill 1024x1024x3 ratio  {statistics.median(gmic_fills) / statistics.median(fills):7.1f}x"
                " faster than G'MIC"
            )


if __name__ == "__main__":
    main()

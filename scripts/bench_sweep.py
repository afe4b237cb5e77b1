"""Benchmark: a sweep on a local Dask cluster of 2 workers against the same runs one after
another, each in its own process.

The sweep is examples/xor.nnp over 4 learning rates at a fixed number of iterations. The
sweep's time is the wall time of `nnpipe sweep --workers 2` (cluster start included; each
worker runs Numba on cores / workers threads); the sequential time is the sum of 4 processes
each running one run through the same task code (nnpipe.sweeps.run_script), once with Numba's
default threads (what `nnpipe run` uses) and once with 1 thread, as a sweep worker has here.
Prints the times (median of the repeats) and the ratios sequential / sweep.

    python scripts/bench_sweep.py [--iterations 4000] [--repeats 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
XOR = ROOT / "examples" / "xor.nnp"
RATES = ("0.01", "0.02", "0.03", "0.04")
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def timed(command, cwd, **environment):
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=dict(ENV, **environment), check=True, capture_output=True)
    return time.perf_counter() - start


def sweep_time(iterations, folder):
    return timed(
        [
            sys.executable,
            "-m",
            "nnpipe",
            "--seed",
            "1",
            "sweep",
            str(XOR),
            "rate=" + ",".join(RATES),
            f"1={iterations}",
            "--workers",
            "2",
        ],
        folder,
    )


def sequential_time(iterations, folder, **environment):
    total = 0.0
    for rate in RATES:
        code = (
            f"from nnpipe.sweeps import run_script\n"
            f"outcome = run_script({str(XOR)!r}, {str(XOR)!r}, 'rate={rate}', [{str(iterations)!r}],"
            f" [('rate', {rate!r})], 1, {str(Path(folder) / rate)!r}, ('loss',))\n"
            f"assert not outcome.error, outcome.error\n"
        )
        total += timed([sys.executable, "-c", code], folder, **environment)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sweep_time(50, folder)  # fills the compile cache, so neither side compiles
        sweeps, sequentials, single_threaded = [], [], []
        for _ in range(options.repeats):
            sweeps.append(sweep_time(options.iterations, folder))
            sequentials.append(sequential_time(options.iterations, folder))
            single_threaded.append(sequential_time(options.iterations, folder, NUMBA_NUM_THREADS="1"))
    sweep = statistics.median(sweeps)
    print(
        f"xor.nnp, {len(RATES)} runs of {options.iterations} iterations, {os.cpu_count()} CPUs,"
        f" median of {options.repeats}"
    )
    print(f"sweep, 2 Dask workers (cluster start included):           {sweep:6.2f} s")
    for label, times in (("default Numba threads", sequentials), ("1 Numba thread", single_threaded)):
        sequential = statistics.median(times)
        print(
            f"one after another, own processes, {label + ':':24} {sequential:6.2f} s"
            f"  ratio sequential / sweep {sequential / sweep:.2f}x"
        )


if __name__ == "__main__":
    main()

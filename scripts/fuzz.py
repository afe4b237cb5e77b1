"""Run many generated hostile scripts (tests/fuzz_scripts.py) and list every distinct internal
error: an exception other than the user-error type, or a user error of more than one line.
With --cli the scripts run through the command line (in-process) instead, and any standard
error line that is not nnpipe's own (`nnpipe: error:`, `nnpipe: warning:`, the progress bar, a
notice) counts too: a raw Python warning, a library's log line, an internal error.

    python scripts/fuzz.py [--examples 20000] [--seed N] [--cli] [--blocks]

--blocks mixes the language's keywords (repeat, if, do, while, braces) into the scripts.

Each distinct failure (exception type and the place in nnpipe that raised it) is printed once
with the shortest script that gave it; the exit status is 1 if there was any. Runs in a fresh
temporary folder.
"""

import argparse
import io
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from click.testing import CliRunner  # noqa: E402
from fuzz_scripts import scripts  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from nnpipe.cli import main as nnpipe_main  # noqa: E402
from nnpipe.commands import load_all  # noqa: E402
from nnpipe.errors import UserError  # noqa: E402
from nnpipe.lang.interpreter import Interpreter  # noqa: E402

OWN_LINES = ("nnpipe: error: ", "nnpipe: warning: ", "nn_train ", "nn_step", "wrote ", "loaded ")


def failure(items):
    """None, or (kind, place, text) for an internal error."""
    interpreter = Interpreter(load_all(), seed=0, quiet=True, out=io.StringIO(), err=io.StringIO())
    try:
        interpreter.run_items(items)
    except UserError as error:
        if "\n" in str(error):
            return "multi-line UserError", "", str(error)
    except Exception as error:  # what the fuzz looks for
        frames = [f for f in traceback.extract_tb(error.__traceback__) if "nnpipe" in f.filename]
        place = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        return type(error).__name__, place, str(error).splitlines()[0] if str(error) else ""
    return None


def cli_failure(items):
    """None, or (kind, place, text) for a command-line run with an internal error or a line on
    standard error that is not nnpipe's own."""
    result = CliRunner().invoke(nnpipe_main, ["-q", *items])
    lines = result.stderr.replace("\r", "\n").splitlines()
    if result.exit_code not in (0, 1, 2) or any("internal error" in line for line in lines):
        return "internal error", "", (lines or [repr(result.exception)])[-1]
    strange = [line for line in lines if line.strip() and not line.startswith(OWN_LINES)]
    if strange:
        return "stray output", strange[0][:40], strange[0]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    parser.add_argument("--cli", action="store_true", help="run through the command line")
    parser.add_argument("--blocks", action="store_true", help="mix in repeat/if/do/while blocks")
    options = parser.parse_args()
    check = cli_failure if options.cli else failure
    found = {}

    @settings(
        max_examples=options.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(scripts(blocks=options.blocks))
    def explore(items):
        result = check(items)
        if result is not None:
            key = result[:2]
            if key not in found or len(" ".join(items)) < len(" ".join(found[key][1])):
                found[key] = (result[2], items)

    if options.seed is not None:
        explore = seed(options.seed)(explore)
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        explore()
    for (kind, place), (message, items) in sorted(found.items()):
        print(f"{kind} at {place}: {message}\n    nnpipe {' '.join(repr(i) for i in items)}")
    print(f"{options.examples} scripts, {len(found)} distinct internal error(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""nnpipe.nn.numba_cache, the one user of Numba's private API: it loads a cached function's
machine code without compiling, and says when there is nothing to load. A Numba release that
changes the private names it uses fails here first."""

import subprocess
import sys
import textwrap

from conftest import REPO

KERNEL = """
import numba

@numba.njit(cache=True)
def triple(x):
    return 3 * x

@numba.njit
def uncached(x):
    return x
"""

CHECK = """
import sys
import numba
from numba.core import event
sys.path.insert(0, {folder!r})
import kernel
from nnpipe.nn import numba_cache

compiled = []
class Listener(event.Listener):
    def on_start(self, data):
        compiled.append(data)
    def on_end(self, data):
        pass
signature = (numba.int64,)
with event.install_listener("numba:compile", Listener()):
    loaded = numba_cache.load(kernel.triple, signature)
    print(loaded, numba_cache.load(kernel.uncached, signature), len(compiled))
    if loaded:
        print(kernel.triple(14), len(compiled))
"""


def run(code, folder):
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(folder / "cache"), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_cached_function_loads_without_compiling_and_a_miss_says_so(tmp_path):
    (tmp_path / "kernel.py").write_text(textwrap.dedent(KERNEL))
    check = CHECK.format(folder=str(tmp_path))
    assert run(check, tmp_path) == ["False", "False", "0"]  # nothing cached yet, nothing compiled
    run(f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import kernel; kernel.triple(1)", tmp_path)
    assert run(check, tmp_path) == ["True", "False", "0", "42", "0"]  # loaded, and runs without compiling

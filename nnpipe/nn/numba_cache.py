"""The one place nnpipe uses Numba's private API: loading a function's machine code from
Numba's disk cache without its compiler.

Numba's own loader (what a call of a cached function does) first refreshes all its typing and
lowering registries, which only compiling needs: 0.25 s, a third of a warm run. Loading needs
the runtime's functions alone (memory management, which the compiled code links against).
The private names this relies on are those of the Numba release pinned in pyproject.toml;
tests/test_numba_cache.py fails first if a release changes them."""

from numba.core.compiler_lock import global_compiler_lock
from numba.core.runtime import nrt


def load(function, signature):
    """Load the machine code of `function` (a Numba dispatcher) for `signature` from Numba's
    disk cache, if it is there; say whether it was (or was loaded already)."""
    context = function.targetctx
    with global_compiler_lock:
        if signature in function.overloads:
            return True
        load_overload = getattr(function._cache, "_load_overload", None)  # none where cache=False
        if load_overload is None:
            return False
        nrt.rtsys.initialize(context)
        cres = load_overload(signature, context)
        # two processes saving at once may leave an index entry naming the other's file
        if cres is None or cres.signature.args != tuple(signature):
            return False
        context.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        function.add_overload(cres)
        return True

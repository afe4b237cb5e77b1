"""The compiled engine of a set of layer types: the driver template (nnpipe.nn.steps) plus a
dispatch generated from the layer registry, written once as a module in the cache folder and
imported from there, so Numba compiles only the kernels a network uses and caches them on
disk next to that module (the second run of any network made of the same layer types loads
them in a fraction of a second).

A module's name is a hash of the layer types and of the engine's sources: a changed kernel
gets a new module, never a stale cached one. Files are written under a temporary name and
renamed, and Numba writes its cache the same way, so a run interrupted at any moment leaves
the cache usable.

The engine's entry points are compiled in a child process and loaded from the disk cache
(`run`): the machine code Numba loads from its cache is not always the code it has just
compiled in memory (some vectorized sums come out in another order), so a run that compiled
would differ, in its last bits, from the same run with a warm cache; a training resumed from a
checkpoint would not reach the weights of an uninterrupted one.
"""

import hashlib
import importlib.util
import inspect
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numba

from numba.core import event
from numba.core.compiler_lock import global_compiler_lock
from numba.core.runtime import nrt

from nnpipe.nn import SOURCES_DIGEST
from nnpipe.nn.layers import registry

TEMPLATE = Path(__file__).resolve().parent / "steps.py"

# The dispatch functions: (name, parameters, the rows it loops over (backwards?), hook) and what
# a kernel's parameter names stand for inside them. A kernel asks for what it needs by name.
DISPATCH = (
    ("forward_ops", "ops, reals, acts, params, width, valid, training, seed, stats", False, "forward"),
    ("backward_ops", "ops, reals, acts, grad_acts, params, grads, width, seed", True, "backward"),
    ("loss_ops", "ops, acts, grad_acts, losses, first, width, valid, scale", False, "loss"),
    ("after_step_ops", "ops, params, stats, batch", False, "after_step"),
)
# inlined into the driver by Numba: one function for LLVM to optimize, not one per level
INLINE = '@numba.njit(cache=True, inline="always")'
STANDS_FOR = {"real": "reals[i]", "losses": "losses[i, first:first + valid]"}


def cache_folder():
    """$NNPIPE_CACHE_DIR, else $XDG_CACHE_HOME/nnpipe, else ~/.cache/nnpipe."""
    if os.environ.get("NNPIPE_CACHE_DIR"):
        return Path(os.environ["NNPIPE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnpipe"


def kernels(codes, optimizer, scheduler):
    """The compiled engine (a module: train_serial, train_parallel, infer_serial,
    infer_parallel, forward_ops, ...) of the layer types with opcodes `codes`, training with
    `optimizer` and `scheduler` (names in nnpipe.nn.optimizers and schedulers)."""
    codes = tuple(sorted(set(int(code) for code in codes)))
    name = f"nnpipe_engine_{_fingerprint(codes, optimizer, scheduler)}"
    if name not in sys.modules:
        sys.modules[name] = _load(name, generate(codes, optimizer, scheduler))
    return sys.modules[name]


def _fingerprint(codes, optimizer, scheduler):
    key = repr((codes, optimizer, scheduler, numba.__version__, SOURCES_DIGEST))
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def generate(codes, optimizer, scheduler):
    """The module's text: the driver template, then the dispatch of the layer types `codes`,
    the optimizer's step and the scheduler's."""
    files = {code: registry.kernel_file(code) for code in codes}
    lines = [TEMPLATE.read_text(), "", "# --- generated from nnpipe.nn.layers.registry for: "
             + ", ".join(f"{code} {files[code].__name__.rsplit('.', 1)[1]}" for code in codes), ""]
    lines += [f"import {module.__name__} as kernels_{code}" for code, module in files.items()]
    for function, parameters, backwards, hook in DISPATCH:
        lines += ["", "", INLINE, f"def {function}({parameters}):"]
        order = "range(ops.shape[0] - 1, -1, -1)" if backwards else "range(ops.shape[0])"
        lines += [f"    for i in {order}:", "        op = ops[i]", "        code = op[0]"]
        branches = [(code, getattr(module, hook)) for code, module in files.items()
                    if isinstance(getattr(module, hook, None), numba.core.registry.CPUDispatcher)]
        for n, (code, kernel) in enumerate(branches):
            arguments = ", ".join(_argument(kernel, name, parameters) for name in
                                  inspect.signature(kernel.py_func).parameters)
            lines += [f"        {'el' if n else ''}if code == {code}:",
                      f"            kernels_{code}.{hook}({arguments})"]
        if not branches:
            lines += ["        pass"]
    lines += ["", "", INLINE, "def optimizer_step(params, grads, mask, moments, lr, t):",
              f"    optimizers.{optimizer}(params, grads, mask, moments, lr, t)",
              "", "", INLINE, "def scheduler_step(state, loss):", f"    schedulers.{scheduler}(state, loss)"]
    return "\n".join(lines) + "\n"


def _argument(kernel, name, parameters):
    given = parameters.replace(" ", "").split(",")
    if name in STANDS_FOR and STANDS_FOR[name].split("[")[0] in given:
        return STANDS_FOR[name]
    if name == "op" or (name in given and name != "ops"):
        return name
    raise LookupError(f"kernel {kernel.py_func.__module__}.{kernel.py_func.__name__} asks for"
                      f" '{name}', which the engine does not give there ({', '.join(given)})")


def _load(name, text):
    folder = cache_folder()
    path = folder / f"{name}.py"
    if not path.exists() or path.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(function, *args):
    """Call `function` (an entry point of an engine module) on `args`, with machine code loaded
    from Numba's disk cache: on a cache miss, a child process compiles it first (and should
    that fail, this one, saying why if it fails too)."""
    signature = tuple(numba.typeof(value) for value in args)
    if signature not in function.overloads:
        if not _load_cached(function, signature) and not (
                _compile_in_child(function, signature) and _load_cached(function, signature)):
            function.compile(signature)
    return function(*args)


def _load_cached(function, signature):
    """Load `function`'s machine code for `signature` from Numba's disk cache, if there; say
    whether it was. Numba's own loader first refreshes all its typing and lowering registries,
    which only compiling needs: 0.25 s, a third of a warm run. Loading needs the runtime's
    functions alone (memory management, which the compiled code links against)."""
    context = function.targetctx
    with global_compiler_lock:
        nrt.rtsys.initialize(context)
        cres = function._cache._load_overload(signature, context)
        if cres is None:
            return False
        context.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        function.add_overload(cres)
        return True


def _compile_in_child(function, signature):
    """Compile `function` for `signature` in a child process (`python -m nnpipe.nn.compiled`),
    which saves it in the disk cache; say whether it did. Sent as a compile event, so that a
    long one is announced."""
    module = sys.modules[function.py_func.__module__]
    request = pickle.dumps((module.__name__, module.__file__, function.__name__, signature))
    with event.trigger_event("numba:compile", data={"dispatcher": function, "args": signature}):
        child = subprocess.run([sys.executable, "-m", "nnpipe.nn.compiled"], input=request,
                               capture_output=True, env=_child_environment())
    return child.returncode == 0


def _child_environment():
    """The parent's, with the folder holding this nnpipe first on the module path."""
    package_parent = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_parent + (os.pathsep + path if path else "")}


def _compile_request(request):
    """In the child: load the module the parent generated and compile what it asked."""
    name, path, function_name, signature = pickle.loads(request)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    getattr(module, function_name).compile(signature)


if __name__ == "__main__":
    import nnpipe.nn.blas
    nnpipe.nn.blas.load()
    _compile_request(sys.stdin.buffer.read())

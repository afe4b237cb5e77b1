"""The compiled engine of a set of layer types: the driver template (nnpipe.nn.steps) plus a
dispatch generated from the layer registry, written once as a module in the cache folder and
imported from there, so Numba compiles only the kernels a network uses. Numba caches the
driver's code on disk next to that module, and each kernel's next to its layer file, shared by
every network that uses it (a second run loads them in a fraction of a second).

A module's name is a hash of the layer types and of the engine's sources: a changed kernel
gets a new module, never a stale cached one. Files are written under a temporary name and
renamed, and Numba writes its cache the same way, so a run interrupted at any moment leaves
the cache usable.

The engine's entry points and the kernels they call (by address, see nnpipe.nn.kernel_calls)
are compiled in child processes, side by side, and loaded from the disk cache (`run`,
`addresses`): the machine code Numba loads from its cache is not always the code it has just
compiled in memory (some vectorized sums come out in another order), so a run that compiled
would differ, in its last bits, from the same run with a warm cache; a training resumed from a
checkpoint would not reach the weights of an uninterrupted one.
"""

import hashlib
import importlib.util
import inspect
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numba
import numpy as np
from numba.core import event

from nnpipe import interrupt
from nnpipe.errors import UserError
from nnpipe.nn import SOURCES_DIGEST, kernel_calls, numba_cache
from nnpipe.nn.layers import registry

TEMPLATE = Path(__file__).resolve().parent / "steps.py"

# The dispatch functions: (name, parameters, the rows it loops over (backwards?), hook) and what
# a kernel's parameter names stand for inside them. A kernel asks for what it needs by name.
DISPATCH = (
    (
        "forward_ops",
        "ops, reals, acts, params, width, valid, training, seed, stats, addresses",
        False,
        "forward",
    ),
    ("backward_ops", "ops, reals, acts, grad_acts, params, grads, width, seed, addresses", True, "backward"),
    ("loss_ops", "ops, reals, acts, grad_acts, losses, first, width, valid, scale, addresses", False, "loss"),
    ("after_step_ops", "ops, params, stats, batch, addresses", False, "after_step"),
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
    """The compiled engine of the layer types with opcodes `codes`, training with `optimizer`
    and `scheduler` (names in nnpipe.nn.optimizers and schedulers): an Engine."""
    name = f"nnpipe_engine_{_fingerprint(optimizer, scheduler)}"
    if name not in sys.modules:
        sys.modules[name] = _load(name, generate(optimizer, scheduler))
    return Engine(sys.modules[name], codes)


class Engine:
    """An engine module (one per optimizer and scheduler: its dispatch has a branch for every
    layer type of the registry) and the layer types one plan uses: only their kernels are
    compiled and given addresses in its table, so a network compiles only its own kernels,
    while every network of that trainer shares the entry points."""

    def __init__(self, module, codes):
        codes = {int(code) for code in codes}
        self.module = module
        self.slots = tuple(slot for slot, (code, _) in enumerate(module.HOOKS) if code in codes)

    @property
    def kernels(self):
        return [self.module.KERNELS[slot] for slot in self.slots]

    def table(self, dtype=np.float32, also=()):
        """The address table of the plan's kernels compiled for real numbers of `dtype` (see
        `addresses`)."""
        return addresses(self.module, self.slots, dtype, also)

    def run(self, name, *args):
        """Call the module's compiled function `name` (an entry point, a dispatch) on `args`
        and the address table of the plan's kernels, its machine code loaded as theirs is."""
        function = getattr(self.module, name)
        signature = tuple(numba.typeof(value) for value in args) + (kernel_calls.TABLE,)
        return function(*args, self.table(np.float32, also=[(function, signature)]))


def _fingerprint(optimizer, scheduler):
    key = repr((optimizer, scheduler, numba.__version__, SOURCES_DIGEST))
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def generate(optimizer, scheduler):
    """The module's text: the driver template, then the dispatch of every layer type of the
    registry (HOOKS: each kernel's (opcode, hook), in the order of the address table the
    dispatch reads, and KERNELS: the kernels themselves; a caller of each), the optimizer's
    step and the scheduler's."""
    files = {code: module for code, module in enumerate(registry.KERNEL_FILES)}
    hooks = [
        (code, hook)
        for code, module in files.items()
        for _, _, _, hook in DISPATCH
        if isinstance(getattr(module, hook, None), numba.core.registry.CPUDispatcher)
    ]
    codes = sorted({code for code, _ in hooks})
    lines = [TEMPLATE.read_text(), "", "# --- generated from nnpipe.nn.layers.registry", ""]
    lines += ["from nnpipe.nn import kernel_calls"]
    lines += [f"import {files[code].__name__} as kernels_{code}" for code in codes]
    lines += ["", f"HOOKS = {tuple(hooks)!r}"]
    lines += ["KERNELS = (" + "".join(f"kernels_{code}.{hook}, " for code, hook in hooks) + ")"]
    lines += [
        f"{hook}_{code} = kernel_calls.caller(kernels_{code}.{hook}, {slot})"
        for slot, (code, hook) in enumerate(hooks)
    ]
    for function, parameters, backwards, hook in DISPATCH:
        lines += ["", "", INLINE, f"def {function}({parameters}):"]
        order = "range(ops.shape[0] - 1, -1, -1)" if backwards else "range(ops.shape[0])"
        lines += [f"    for i in {order}:", "        op = ops[i]", "        code = op[0]"]
        branches = [code for code, kernel_hook in hooks if kernel_hook == hook]
        for n, code in enumerate(branches):
            kernel = getattr(files[code], hook)
            arguments = ", ".join(
                _argument(kernel, name, parameters) for name in inspect.signature(kernel.py_func).parameters
            )
            lines += [
                f"        {'el' if n else ''}if code == {code}:",
                f"            {hook}_{code}(addresses, {arguments})",
            ]
        if not branches:
            lines += ["        pass"]
    lines += [
        "",
        "",
        INLINE,
        "def optimizer_step(params, grads, mask, moments, lr, t):",
        f"    optimizers.{optimizer}(params, grads, mask, moments, lr, t)",
        "",
        "",
        INLINE,
        "def scheduler_step(state, loss):",
        f"    schedulers.{scheduler}(state, loss)",
    ]
    return "\n".join(lines) + "\n"


def _argument(kernel, name, parameters):
    given = parameters.replace(" ", "").split(",")
    if name in STANDS_FOR and STANDS_FOR[name].split("[")[0] in given:
        return STANDS_FOR[name]
    if name == "op" or (name in given and name not in ("ops", "addresses")):
        return name
    raise LookupError(
        f"kernel {kernel.py_func.__module__}.{kernel.py_func.__name__} asks for"
        f" '{name}', which the engine does not give there ({', '.join(given)})"
    )


def _load(name, text):
    folder = cache_folder()
    path = folder / f"{name}.py"
    if not path.exists() or path.read_text() != text:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(handle, "w") as file:
                file.write(text)
            os.replace(temporary, path)
        except OSError as error:
            raise UserError(
                f"cannot write the compile cache '{folder}' ({error.strerror or error}):"
                " set NNPIPE_CACHE_DIR to a writable folder"
            ) from None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TABLES = {}  # (engine module name, slots, dtype): their address table


def addresses(module, slots, dtype, also=()):
    """The address table of the kernels `slots` of the engine `module` (the other slots 0:
    their layer types are not the plan's), compiled for real numbers of `dtype` (and the
    (dispatcher, signature) pairs `also`), all machine code loaded from Numba's disk cache:
    what is not there, child processes compile first, side by side (and what they fail to,
    this process, saying why if it fails too)."""
    key = (module.__name__, slots, np.dtype(dtype))
    wanted = list(also)
    if key not in _TABLES:
        real = numba.from_dtype(dtype)
        wanted += [
            (module.KERNELS[slot], kernel_calls.kernel_signature(module.KERNELS[slot], real))
            for slot in slots
        ]
    missing = [
        (function, signature)
        for function, signature in wanted
        if signature not in function.overloads and not numba_cache.load(function, signature)
    ]
    if missing:
        _compile_in_children(missing)
        for function, signature in missing:
            if not numba_cache.load(function, signature):
                function.compile(signature)
    if key not in _TABLES:
        _TABLES[key] = kernel_calls.address_table(module.KERNELS, dtype, slots)
    return _TABLES[key]


def _compile_in_children(pairs):
    """Compile each (dispatcher, signature) of `pairs` in child processes (`python -m
    nnpipe.nn.compiled`), as many at once as Numba's threads (one in a Dask worker), each
    taking the next file's when it is done; they save what they compile in the disk cache.
    The functions of one file go to one child (they share helpers, which it compiles once),
    the largest file first (so that no long compile starts last). Sent as one compile event,
    so that a long one is announced, with PROGRESS events counting the functions compiled."""
    by_file = {}
    for function, signature in pairs:
        module = sys.modules[function.py_func.__module__]
        by_file.setdefault(module.__file__, []).append(
            (module.__name__, module.__file__, function.__name__, signature)
        )
    requests = queue.SimpleQueue()
    for file in sorted(by_file, key=lambda file: -os.path.getsize(file)):
        requests.put((len(by_file[file]), pickle.dumps(by_file[file]).hex() + "\n"))
    compiled_count, counting = [0], threading.Lock()

    def compiled_more(functions):
        with counting:
            compiled_count[0] += functions
            event.broadcast(event.Event(PROGRESS, event.EventStatus.END, (compiled_count[0], len(pairs))))

    def child_at_work():
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "nnpipe.nn.compiled"],
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                **_child_setting(),
            )
        except OSError:  # no child: the parent compiles what is left
            return
        _CHILDREN.add(child)
        try:
            with child.stdin, child.stdout:
                while True:
                    try:
                        functions, request = requests.get_nowait()
                    except queue.Empty:
                        break
                    child.stdin.write(request)
                    child.stdin.flush()
                    if child.stdout.readline() != DONE:  # it died: the parent compiles the rest
                        break
                    compiled_more(functions)
        except OSError:
            pass
        finally:
            child.kill()
            child.wait()
            _CHILDREN.discard(child)

    count = min(len(by_file), numba.config.NUMBA_NUM_THREADS)  # by default, the processors
    workers = [threading.Thread(target=child_at_work, daemon=True) for _ in range(count)]
    with event.trigger_event("numba:compile", data={"dispatcher": pairs[0][0], "args": pairs[0][1]}):
        compiled_more(0)
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


DONE = "done\n"
PROGRESS = "nnpipe:compiled"  # an event's data: (functions compiled, functions to compile)
_CHILDREN = set()  # the compile children at work, ended with the run if Ctrl-C stops it


def _end_children():
    for child in list(_CHILDREN):
        child.kill()


interrupt.at_stop(_end_children)


def _child_setting():
    """The child's working folder and environment: the folder holding this nnpipe, first on
    the module path too (not the user's folder, where a file named like a module would be
    imported instead)."""
    package_parent = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {
        "cwd": package_parent,
        "env": {**os.environ, "PYTHONPATH": package_parent + (os.pathsep + path if path else "")},
    }


def _serve_requests(lines, answers):
    """In a child: compile what each line of `lines` asks (functions of a layer file, or an
    entry point of a module the parent generated), answering a line on `answers` when done."""
    for line in lines:
        for name, path, function_name, signature in pickle.loads(bytes.fromhex(line)):
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError:  # a generated module, not on the module path
                    spec = importlib.util.spec_from_file_location(name, path)
                    sys.modules[name] = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(sys.modules[name])
            try:
                getattr(sys.modules[name], function_name).compile(signature)
            except Exception:  # noqa: BLE001 (the parent compiles it again, and reports why)
                pass
        answers.write(DONE)
        answers.flush()


if __name__ == "__main__":
    import nnpipe.nn.blas

    nnpipe.nn.blas.load()
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what Numba may print is not an answer
    _serve_requests(sys.stdin, answers)

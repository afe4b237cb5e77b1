"""The layer registry and the engine generated from it: a network compiles the kernels of its
own layer types only; a kernel names what it needs; a compile cut by Ctrl-C leaves the cache
usable; nn_scale, the layer the README's "adding a layer" shows, works end to end."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, run_script
from nn_helpers import build

from nnpipe.nn import compiled, optimizers, schedulers
from nnpipe.nn.layers import OPCODE, Layer, registry
from nnpipe.nn.layers.fc import FullyConnected

TUTORIAL = (
    "nn_input IN,2 nn_fcnnl L1,IN,8 nn_resfcnl L2 nn_fc OUT,.,3 nn_loss_mse LOSS,OUT,GT"
    " nn_trainer T,LOSS,1e-3,adam"
)


def environment_with_caches_in(folder):
    """A child's environment: this nnpipe, Numba's and nnpipe's compile caches in `folder`."""
    return {
        **os.environ,
        "NUMBA_CACHE_DIR": str(folder),
        "NNPIPE_CACHE_DIR": str(folder),
        "PYTHONPATH": str(REPO),
    }


def kernel_files_of(plan):
    codes = list(plan.ops[:, OPCODE]) + list(plan.loss_rows[:, OPCODE])
    return {registry.kernel_file(code).__name__.rsplit(".", 1)[1] for code in codes}


def test_the_tutorial_net_compiles_only_its_own_layer_types():
    plan = build(TUTORIAL).workspace.network().training_plan()
    assert kernel_files_of(plan) == {"fc", "normalize", "rectifier", "elementwise", "loss"}
    engine = plan.kernels(optimizers.NAMES.index("adam"), schedulers.NAMES.index("constant"))
    assert {kernel.py_func.__module__.rsplit(".", 1)[1] for kernel in engine.kernels} == {
        "fc",
        "normalize",
        "rectifier",
        "elementwise",
        "loss",
    }


def test_every_layer_file_whose_layers_compute_has_its_kernels():
    for module in registry.KERNEL_FILES:
        computing = [
            layer
            for layer in vars(module).values()
            if isinstance(layer, type)
            and issubclass(layer, Layer)
            and layer.__module__ == module.__name__
            and layer.inputs > 0
            and not layer.alias
        ]
        if computing:
            assert callable(getattr(module, "forward", None)) or callable(getattr(module, "loss", None)), (
                module.__name__
            )


def test_a_layer_whose_file_is_not_registered_is_refused():
    class Unlisted(Layer):
        kind = "unlisted"

    with pytest.raises(LookupError, match="not listed"):
        registry.opcode(Unlisted())


def test_a_kernel_asking_for_what_the_engine_does_not_give_is_named(monkeypatch):
    import numba

    from nnpipe.nn.layers import fc

    @numba.njit
    def forward(op, acts, weights, width):
        pass

    monkeypatch.setattr(fc, "forward", forward)
    with pytest.raises(LookupError, match="asks for 'weights'"):
        compiled.generate("sgd", "constant")


def test_arguments_must_match_the_names_the_class_declares():
    from nnpipe.nn.engine import _named_arguments

    class Wrong(FullyConnected):
        kernel_arguments = ("channels",)

    with pytest.raises(LookupError, match="declares"):
        _named_arguments(Wrong(channels=2, learning_mode=3), [(1, 1, 1, 2)])


def test_nn_scale_scales_and_shifts_each_channel():
    run = run_script("nn_init nn_input IN,2,1,1,2 nn_scale S,IN (1,2^3,4) name. x", quiet=True)
    assert run.interpreter.workspace.images.get("S_scale").ravel().tolist() == [
        1,
        0,
        1,
        0,
    ]  # the identity, as created
    run.interpreter.workspace.images.set(
        "S_scale", np.array([0.5, 1.5, 3, -2], np.float32).reshape(1, 1, 2, 2)
    )
    run.interpreter.run_items(["nn_eval[x]", "S"])
    np.testing.assert_allclose(run.interpreter.workspace.images[-1].ravel(), [2, 2.5, 7, 10])


def test_nn_scale_is_listed_by_nn_print_with_its_parameters():
    run = run_script("nn_init nn_input IN,2,1,1,3 nn_scale S,IN,1 nn_print")
    assert "scale" in run.out and "learning_mode=1" in run.out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.slow
def test_ctrl_c_during_a_first_compile_leaves_the_cache_usable(tmp_path):
    """A cold compile is cut once it has announced itself (so the signal surely falls inside
    it): the run ends with one line and status 130, and the next run, from what was left,
    trains without an error."""
    env = environment_with_caches_in(tmp_path)
    script = [
        sys.executable,
        "-m",
        "nnpipe",
        "(0,0,1,1^0,1,0,1^1,0,1,0)",
        "nn_init",
        "nn_input",
        "IN,2",
        "nn_fcnl",
        "H,IN,8,tanh",
        "nn_fc",
        "OUT,H,1",
        "nn_loss_mse",
        "LOSS,OUT,GT",
        "nn_trainer",
        "T,LOSS,1e-2,adamax",
        "nn_train",
        "20,3",
        "echo",
        "trained",
    ]
    child = subprocess.Popen(script, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = child.stderr.readline()
    assert first.startswith("compiling kernels"), first
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, first + err
    assert err.strip().splitlines()[-1] == "nnpipe: interrupted"
    assert "Traceback" not in err and "trained" not in out
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr and done.stdout.strip().endswith("trained")


@pytest.mark.parametrize(
    "hidden", [["nn_resfcnl", "R"], ["nn_run", 'R,H,"mul 0.5"']], ids=["compiled", "calling-back"]
)
@pytest.mark.slow
def test_a_run_that_compiles_gives_the_numbers_of_a_run_that_loads(tmp_path, hidden):
    """The same training, first from an empty compile cache, then from the cache it left: the
    same loss to the last bit (the engine runs code loaded from the cache in both, also
    between the commands of an nn_run layer)."""
    env = environment_with_caches_in(tmp_path)
    script = [
        "-m",
        "nnpipe",
        "--seed",
        "3",
        "-q",
        "i",
        "8,8,1,3,'u(-1,1)'",
        "nn_init",
        "nn_input",
        "IN,2",
        "nn_fcnnl",
        "H,IN,16",
        *hidden,
        "nn_fc",
        "OUT,.,1",
        "nn_loss_mse",
        "LOSS,OUT,GT",
        "nn_trainer",
        "T,LOSS,1e-2,adam",
        "nn_train",
        "100,16",
        "echo",
        "${loss}",
    ]
    runs = [
        subprocess.run([sys.executable, *script], env=env, capture_output=True, text=True, timeout=180)
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()


def python_in_a_child(program, cache=None):
    """`program` run by a fresh Python that imports this nnpipe (its modules not yet loaded),
    with its compile caches in the folder `cache` if given."""
    env = environment_with_caches_in(cache) if cache else {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, env=env
    )


TRAIN_A_LINE = (
    "import sys; sys.argv = ['nnpipe', '-q', '(0,1^1,0)', 'nn_init', 'nn_input', 'IN,1',"
    " 'nn_fc', 'OUT,IN,1', 'nn_loss_mse', 'L,OUT,GT', 'nn_trainer', 'T,L', 'nn_train', '3,2',"
    " 'echo', '${loss}']; from nnpipe.cli import main\n"
    "try: main()\nexcept SystemExit as end: assert not end.code, end.code\n"
)


@pytest.mark.slow
def test_runs_compile_in_children_and_load_without_numbas_compiler_registries(tmp_path):
    """A first run's kernels and entry point compile in child processes; a run loads them
    without refreshing Numba's typing and lowering registries, a third of a warm run
    (numba.np.polynomial: a module only that refresh loads)."""
    program = TRAIN_A_LINE + "print('numba.np.polynomial' in sys.modules)"
    runs = [python_in_a_child(program, tmp_path) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert [run.stdout.split()[-1] for run in runs] == ["False", "False"]


@pytest.mark.slow
def test_what_the_children_cannot_compile_the_run_compiles_itself(tmp_path):
    program = (
        "from nnpipe.nn import compiled\n"
        "compiled._child_setting = lambda: {'cwd': '/no/such/folder'}\n" + TRAIN_A_LINE
    )
    run = python_in_a_child(program, tmp_path)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert float(run.stdout) > 0


def test_a_run_finds_blas_without_importing_scipy_linalg():
    """scipy.linalg's __init__ would add a fifth of a second to every run; the engine needs
    only its BLAS table, and trains with it."""
    program = TRAIN_A_LINE + "print(sorted(name for name in sys.modules if name.startswith('scipy.linalg')))"
    run = python_in_a_child(program)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[1] == "['scipy.linalg.cython_blas']"


@pytest.mark.slow
def test_an_engine_of_other_sources_clears_numbas_cache_under_numba_cache_dir(tmp_path, monkeypatch):
    """Numba keys a cached kernel by its own file only; a kernel reading a constant of another
    file (a plan-row column) would run stale after an upgrade. The stamp of the package's
    sources clears them, under $NUMBA_CACHE_DIR too."""
    import nnpipe.nn as nn

    cache = tmp_path / "numba"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnpipe",
            "-q",
            "(0,1^1,0)",
            "nn_init",
            "nn_input",
            "IN,1",
            "nn_fc",
            "OUT,IN,1",
            "nn_loss_mse",
            "L,OUT,GT",
            "nn_trainer",
            "T,L",
            "nn_train",
            "2,2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "NUMBA_CACHE_DIR": str(cache),
            "NNPIPE_CACHE_DIR": str(tmp_path / "nnpipe"),
            "PYTHONPATH": str(REPO),
        },
    )
    assert run.returncode == 0, run.stderr
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    folders, stamp = nn.numba_cache_folders(nn.SOURCES)
    kernels = [path for path in cache.rglob("*.nbi") if path.parent in folders]
    assert {path.parent.name.split("_")[0] for path in kernels} == {"nn", "layers"}
    assert stamp.read_text() == nn.SOURCES_DIGEST
    stamp.write_text("the stamp of an older nnpipe")
    nn._refresh_compile_cache(nn.SOURCES, nn.SOURCES_DIGEST)
    assert not any(path.exists() for path in kernels)
    assert stamp.read_text() == nn.SOURCES_DIGEST


def test_blas_is_imported_the_usual_way_where_its_file_is_not_found():
    program = (
        "import importlib.util, sys\n"
        "from nnpipe.nn import blas\n"
        "find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *rest: None if name == 'scipy' else find(name, *rest)\n"
        "blas.load()\n"
        "print(sys.modules['scipy.linalg'].cython_blas is sys.modules['scipy.linalg.cython_blas'])"
    )
    run = python_in_a_child(program)
    assert (run.returncode, run.stdout.strip()) == (0, "True"), run.stderr

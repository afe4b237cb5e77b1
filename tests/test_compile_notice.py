"""While Numba compiles for more than a second, stderr says so, unless --quiet, with the count
of kernels compiled as the compile children finish them.

Compiling for real takes tens of seconds from an empty cache, so these tests make the engine
send Numba's own compile event around a fake compile that lasts until the notice is due, and
the compile children's count events as nnpipe.nn.compiled sends them."""

import io
import re
import time

import pytest
from conftest import run_script
from numba.core import event

from nnpipe.commands import load_all
from nnpipe.lang.interpreter import Interpreter
from nnpipe.nn import compiled, engine
from nnpipe.progress import Progress

NET = (
    "(0,0,1,1^0,1,0,1^0,1,1,0) nn_init nn_input IN,2 nn_fcnl H,IN,8,tanh nn_fc OUT,H,1"
    " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
)


@pytest.fixture
def compiles(monkeypatch):
    """The first engine.train and engine.infer call 'compiles': a Numba compile event lasting
    until the notice was given (at most 30 s), or none at all with `compiles.slow = False`."""

    class Compiles:
        slow = True
        count = 0
        kernels = 0  # how many kernels the fake compile children compile (0: no count said)
        done = set()

    def compiling(function):
        def wrapped(*args, **kwargs):
            if function in Compiles.done:  # compiled kernels load from then on
                return function(*args, **kwargs)
            Compiles.done.add(function)
            Compiles.count += 1
            announced = engine._CompileNotice.announcements
            with event.trigger_event("numba:compile", data={}):
                if Compiles.kernels:
                    said(0, Compiles.kernels)
                deadline = time.monotonic() + 30
                while (
                    Compiles.slow
                    and engine._CompileNotice.announcements == announced
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.02)
                for done in range(1, Compiles.kernels + 1):
                    said(done, Compiles.kernels)
            return function(*args, **kwargs)

        return wrapped

    # the network's real kernels compile (or load) first, out of the tests' sight
    run_script(f"{NET} nn_train 5,4 (0,0,1,1^0,1,0,1) nn_eval[-1] OUT", quiet=True)
    monkeypatch.setattr(engine, "train", compiling(engine.train))
    monkeypatch.setattr(engine, "infer", compiling(engine.infer))
    return Compiles


def said(done, total):
    event.broadcast(event.Event(compiled.PROGRESS, event.EventStatus.END, (done, total)))


def notices(run):
    """The compile's status lines: when first shown, and when ended."""
    return [line for line in run.err.splitlines() if line.startswith(engine.COMPILING)]


@pytest.mark.slow
def test_each_long_compile_is_announced_on_stderr_training_then_inference(compiles):
    """A first run waits for training's kernels, then (nn_eval) for inference's: both said."""
    run = run_script(f"{NET} nn_train 5,4 (0,0,1,1^0,1,0,1) nn_eval[-1] OUT")
    assert compiles.count == 2
    assert notices(run)[::2] == ["compiling kernels for this network (first run only)…"] * 2
    for end in notices(run)[1::2]:
        assert re.fullmatch(r"compiling kernels for this network \(first run only\) in \d+\.\ds", end)
    assert len(notices(run)) == 4
    assert run.out == ""


def test_a_long_compile_counts_the_kernels_compiled_at_start_and_end_in_a_log(compiles):
    compiles.kernels = 9
    run = run_script(f"{NET} nn_train 5,4")
    assert notices(run)[0] == "compiling kernels for this network (first run only): 0/9…"
    assert notices(run)[1].startswith("compiling kernels for this network (first run only): 9/9 in ")
    assert len(notices(run)) == 2  # a log gets the first state and the last, not every count


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_count_is_redrawn_as_each_kernel_is_compiled(compiles):
    compiles.kernels = 3
    terminal = Terminal()
    Interpreter(load_all(), seed=0, out=io.StringIO(), err=terminal).run_items(f"{NET} nn_train 5,4".split())
    states = [state for state in terminal.getvalue().split("\r") if state.startswith(engine.COMPILING)]
    assert [state.split(": ")[1][:3] for state in states] == ["0/3", "1/3", "2/3", "3/3", "3/3"]
    assert states[-1].endswith("s\x1b[K\n")  # the last state ends the line


def test_the_progress_bar_says_how_much_of_its_time_was_compiling(compiles):
    """The speed leaves the compile out (it is the steady speed), the time keeps it in: the
    last line says so."""
    run = run_script(f"{NET} nn_train 5,4")
    last = [line for line in run.err.splitlines() if line.startswith("nn_train")][-1]
    assert re.search(r" 5/5 loss \S+( \d+ it/s)? (\d+\.\d)s \((\d+\.\d)s compiling\)$", last), last


def test_a_progress_bar_without_a_compile_says_nothing_of_it():
    class Context:
        err, quiet = io.StringIO(), False

    bar = Progress(Context(), "nn_train", 10, clock=lambda: 2.0)
    assert bar.line(10, 0.5, 2.0).endswith(" 0.0s")
    bar.compiling = 1.25
    assert bar.line(10, 0.5, 2.0).endswith(" 0.0s (1.2s compiling)")


def test_quiet_hides_the_compile_notice(compiles):
    announced = engine._CompileNotice.announcements
    run = run_script(f"{NET} nn_train 5,4", quiet=True)
    assert compiles.count >= 1 and engine._CompileNotice.announcements > announced
    assert notices(run) == []


def test_a_short_compile_says_nothing(compiles):
    compiles.slow = False
    announced = engine._CompileNotice.announcements
    run = run_script(f"{NET} nn_train 5,4 (0,0,1,1^0,1,0,1) nn_eval[-1] OUT")
    time.sleep(engine.NOTICE_DELAY + 0.5)  # a timer left running would have spoken by now
    assert compiles.count >= 2
    assert notices(run) == [] and engine._CompileNotice.announcements == announced


def test_the_network_in_an_expression_announces_a_long_compile(compiles):
    run = run_script(f'{NET} i 6,5,1,1 f "IN = [x/w,y/h];"$_nn_forward"OUT"')
    assert compiles.count >= 1
    assert len(notices(run)) == 2

"""While Numba compiles for more than a second, stderr says so once a process, unless --quiet.

Compiling for real takes tens of seconds from an empty cache, so these tests make the engine
send Numba's own compile event around a fake compile that lasts until the notice is due."""

import time

import pytest
from conftest import run_script
from numba.core import event

from nnpipe.nn import engine

NET = (
    "(0,0,1,1^0,1,0,1^0,1,1,0) nn_init nn_input IN,2 nn_fcnl H,IN,8,tanh nn_fc OUT,H,1"
    " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
)


@pytest.fixture
def compiles(monkeypatch):
    """Every engine.train and engine.infer call first 'compiles': a Numba compile event lasting
    until the notice was given (at most 30 s), or none at all with `compiles.slow = False`."""
    monkeypatch.setattr(engine._CompileNotice, "announced", False)

    class Compiles:
        slow = True
        count = 0

    def compiling(function):
        def wrapped(*args, **kwargs):
            Compiles.count += 1
            with event.trigger_event("numba:compile", data={}):
                deadline = time.monotonic() + 30
                while Compiles.slow and not engine._CompileNotice.announced and time.monotonic() < deadline:
                    time.sleep(0.02)
            return function(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(engine, "train", compiling(engine.train))
    monkeypatch.setattr(engine, "infer", compiling(engine.infer))
    return Compiles


def notices(run):
    return run.err.count(engine.COMPILING)


@pytest.mark.slow
def test_a_long_compile_is_announced_once_on_stderr(compiles):
    run = run_script(f"{NET} nn_train 5,4 (0,0,1,1^0,1,0,1) nn_eval[-1] OUT")
    assert compiles.count >= 2
    assert notices(run) == 1
    assert engine.COMPILING == "compiling kernels for this network (first run only)…"
    assert run.out == ""


def test_quiet_hides_the_compile_notice(compiles):
    run = run_script(f"{NET} nn_train 5,4", quiet=True)
    assert compiles.count >= 1 and engine._CompileNotice.announced
    assert notices(run) == 0


def test_a_short_compile_says_nothing(compiles):
    compiles.slow = False
    run = run_script(f"{NET} nn_train 5,4 (0,0,1,1^0,1,0,1) nn_eval[-1] OUT")
    time.sleep(engine.NOTICE_DELAY + 0.5)  # a timer left running would have spoken by now
    assert compiles.count >= 2
    assert notices(run) == 0 and not engine._CompileNotice.announced


def test_the_network_in_an_expression_announces_a_long_compile(compiles):
    run = run_script(f'{NET} i 6,5,1,1 f "IN = [x/w,y/h];"$_nn_forward"OUT"')
    assert compiles.count >= 1
    assert notices(run) == 1

"""Hostile and careless input (issue 14): every mistake is one clean line, Ctrl-C stops at once
with one line, warnings never reach the user raw, a failed command changes nothing."""

import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import REPO, cli, items_error, run_script, script_error

from nnpipe import interrupt, progress
from nnpipe.errors import UserError
from nnpipe.images import atomic
from nnpipe.nn.engine import COMPILING


def one_error_line(result):
    assert result.exception is None, f"internal error: {result.exception!r}"
    assert result.code == 1 and len(result.error_lines) == 1, result.stderr
    assert result.error_lines[0].startswith("nnpipe: error: <command line>:1: ")
    return result.error_lines[0]


# --- overflow, files that are not what they claim, empty data -----------------------------------


@pytest.mark.parametrize(
    "items, expected",
    [
        (("input", "2,2", "resize", "1e308%"), "resize: 1e+308% of 2 pixels is too large"),
        (("input", "2,2", "resize", "50%,1e300%"), "resize: 1e+300% of 2 pixels is too large"),
        (
            ("nn_init", "nn_input", "IN,2,2", "nn_resize", "R,IN,1e308%"),
            "nn_resize: 1e+308% of 2 is too large",
        ),
    ],
)
def test_huge_percentages_are_one_user_error(items, expected):
    assert expected in one_error_line(cli(*items))


def test_nn_load_npy_of_a_file_that_is_not_npy(work):
    (work / "photo.png").write_bytes((REPO / "examples" / "data" / "astronaut256.png").read_bytes())
    (work / "text.npy").write_text("not an array")
    assert "cannot read 'photo.png': damaged or not a NPY file" in one_error_line(
        cli("nn_load_npy", "photo.png")
    )
    assert "cannot read 'text.npy': damaged or not a NPY file" in one_error_line(
        cli("nn_load_npy", "text.npy")
    )


@pytest.mark.parametrize("shape", [(0, 4), (0,), (3, 0)])
def test_nn_load_npy_of_no_samples(work, shape):
    np.save(work / "empty.npy", np.zeros(shape, np.float32))
    assert (
        f"'empty.npy' holds no samples (its array has shape {shape})"
        in script_error("nn_load_npy empty.npy").message
    )


@pytest.mark.parametrize("bad, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_nn_load_npy_refuses_non_finite_values_naming_the_sample(work, bad, shown):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    data[2, 1] = bad
    np.save(work / "d.npy", data)
    message = script_error("nn_load_npy d.npy").message
    assert f"'d.npy': sample 2 holds {shown} (at index (2, 1)), not a finite number" in message


def test_npy_beyond_float32_is_refused_by_input_and_nn_load_npy(work):
    np.save(work / "big.npy", np.array([1.0, 1e300]))
    for script in ("input big.npy", "nn_load_npy big.npy"):
        assert "value 1e+300 at index (1,) is beyond float32's range" in script_error(script).message


@pytest.mark.parametrize(
    "text, where",
    [
        ("a,b\n1,2\n3,nan\n", "line 3, value 2: 'nan'"),
        ("a,b\n1,inf\n3,4\n", "line 2, value 2: 'inf'"),
        ("1,2\n3,-1e39\n", "line 2, value 2: '-1e39'"),
        ("x,label,y\n1,cat,2\n3,dog,NaN\n", "line 3, value 3: 'NaN'"),
    ],
)
def test_nn_load_csv_refuses_non_finite_values_naming_line_and_value(work, text, where):
    (work / "d.csv").write_text(text)
    label = ",label" if "label" in text else ""
    message = script_error(f"nn_load_csv d.csv{label}").message
    assert f"'d.csv' {where} is not a finite number within float32's range" in message


def test_a_truncated_tiff_is_one_line_without_library_logs(work):
    tifffile.imwrite(work / "t.tif", np.random.default_rng(0).random((64, 64), np.float32))
    data = (work / "t.tif").read_bytes()
    (work / "half.tif").write_bytes(data[: len(data) // 2])
    (work / "eight.tif").write_bytes(data[:8])
    for name, expected in (
        ("half.tif", "cannot read 'half.tif': "),
        ("eight.tif", "cannot read 'eight.tif': it holds no image"),
    ):
        result = subprocess_in(work, "input", name)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [result.stderr.splitlines()[0]], result.stderr
        assert expected in result.stderr


def test_a_complex_tiff_is_refused(work):
    tifffile.imwrite(work / "c.tif", np.full((4, 4), 1 + 2j, np.complex64))
    assert "values of type complex64 are not numbers" in script_error("input c.tif").message


def subprocess_in(folder, *items, env=None):
    environment = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "nnpipe", *items],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- Python warnings: an error where a value cannot be held, else one nnpipe line ----------------


@pytest.mark.parametrize(
    "items, expected",
    [
        (("input", "2,2,1,1,1", "mul", "1e308"), "mul: value is beyond float32's range (got '1e308'"),
        (("input", "1,1,1,1,1e39"), "input: the blank image's value: 1e+39 is beyond float32's range"),
        (("(1,-1e39)",), "inline image '(1,-1e39)': -1e+39 is beyond float32's range"),
        (
            (
                "nn_init",
                "nn_input",
                "IN,2",
                "nn_fc",
                "OUT,IN,1",
                "nn_loss_mse",
                "L,OUT,GT",
                "nn_trainer",
                "T,L,1e39",
            ),
            "nn_trainer: learning_rate is beyond float32's range (got '1e39'",
        ),
    ],
)
def test_values_beyond_float32_are_errors(items, expected):
    assert expected in one_error_line(cli(*items))


def test_an_overflow_while_computing_is_one_warning_line(tmp_path):
    result = subprocess_in(tmp_path, "input", "2,2,1,1,1", "mul", "1e30", "mul", "1e30", "print")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "nnpipe: warning: <command line>:1: overflow encountered in multiply"
    ]
    assert "min=inf" in result.stdout


# --- a failed command leaves the image list as it was ---------------------------------------------


def interpreter():
    from conftest import _interpreter

    return _interpreter(0, True, False)[0]


def test_input_of_a_glob_with_a_damaged_file_appends_nothing(work):
    (work / "photos").mkdir()
    run_script("input 2,2,1,1,1 output photos/a.png output photos/b.png output photos/d.png")
    (work / "photos" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    kept = interpreter()
    with pytest.raises(UserError) as info:
        kept.run_source("input 1,1 name kept input photos/*.png", "test.nnp")
    assert "cannot read 'photos/c.png'" in str(info.value)
    assert list(kept.workspace.images.names) == ["kept"]


def test_nn_eval_of_several_images_appends_nothing_when_one_fails():
    kept = interpreter()
    with pytest.raises(UserError) as info:
        kept.run_source(
            "(0.1,0.2^0.3,0.4) name. good (1,2) name. bad nn_init nn_input IN,2"
            " nn_fc OUT,IN,1 nn_eval[good,bad]",
            "test.nnp",
        )
    assert "has 1 channel but the network takes 2 values" in str(info.value)
    assert list(kept.workspace.images.names) == ["good", "bad", "OUT_fc"]


# --- messages a new user meets -------------------------------------------------------------------


def test_help_suggests_the_closest_command():
    result = cli("help", "nn_trian")
    assert result.code == 2
    assert result.error_lines == [
        "nnpipe: error: help: unknown command or form 'nn_trian' (did you mean 'nn_train'?)"
    ]
    assert cli("help", "swep").error_lines[0].endswith("(did you mean 'sweep'?)")


def test_print_with_only_network_images_says_why_it_prints_nothing(work):
    run_script("nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse L,OUT,GT nn_trainer T,L nn_save net.gmz")
    run = run_script("nn_load net.gmz print")
    assert run.out == ""  # stdout holds what G'MIC's print shows: no image
    assert run.err.splitlines()[-1] == (
        "print: no image selected (the 3 network images are shown with print[...] or nn_print)"
    )
    assert run_script("nn_load net.gmz print[OUT_fc]").out.startswith("[0] OUT_fc: 3,3,1,1 ")
    assert run_script("nn_load net.gmz print", quiet=True).err == ""


def test_commands_shows_whole_first_paragraphs():
    from nnpipe.registry import COMMANDS

    listing = " ".join(cli("commands").stdout.split())
    for entry in COMMANDS.commands().values():
        assert entry.summary() in listing, entry.name
    # a summary that spans several lines of its docstring is whole, not cut at the first
    assert COMMANDS.lookup("nn_avgpool2d").summary().endswith(".")


@pytest.mark.parametrize(
    "command", ["nn_train 10", "nn_step", "nn_eval", "nn_plot loss.png", "nn_save net.tif", "nn_classify"]
)
def test_training_commands_without_a_network_say_so(command):
    message = items_error("input", "4,4", "input", "4,4", *command.split()).message
    assert message == "no network: build one with nn_* commands or load one with nn_load"


def test_nn_eval_warns_once_about_0_255_inputs_for_a_net_trained_on_0_1():
    script = (
        "input 8,8,1,3,0.5 nn_samples 1 nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse L,OUT,GT"
        " nn_trainer T,L nn_train 2 input 4,4,1,2,200 nn_eval[-1] input 4,4,1,2,150 nn_eval[-1]"
        " input 4,4,1,2,0.5 nn_eval[-1]"
    )
    run = run_script(script)
    warnings = [line for line in run.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, run.err
    assert "the input holds values up to 200, but network 'nn' was trained on inputs within ±1" in warnings[0]


@pytest.mark.parametrize("file", ["net.tif", "net.png", "nn_store"])
def test_the_trained_input_range_travels_with_the_network_file(work, file):
    """nn_save writes the range each input was trained on; after nn_load, in another run,
    nn_eval warns about 0..255 inputs as it does right after training."""
    save, load = (
        ("nn_store kept", "nn_load kept") if file == "nn_store" else (f"nn_save {file}", f"nn_load {file}")
    )
    trained = run_script(
        "input 8,8,1,3,0.5 nn_samples 1 nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse L,OUT,GT"
        f" nn_trainer T,L nn_train 2 {save}"
    )
    if file == "nn_store":  # a network kept in a variable goes on in the same run
        trained.interpreter.run_items(
            ["nn_init", "other", *load.split(), "input", "4,4,1,2,200", "nn_eval[-1]"]
        )
        err = trained.interpreter.workspace.err.getvalue()
    else:
        err = run_script(f"{load} input 4,4,1,2,200 nn_eval[-1]").err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "was trained on inputs within ±1: divide by" in warnings[0], err


def test_a_gmz_network_holds_no_input_range_and_loads_without_one(work):
    """G'MIC's .gmz has no place for it (documented): no warning, and no error."""
    run_script(
        "input 8,8,1,3,0.5 nn_samples 1 nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse L,OUT,GT"
        " nn_trainer T,L nn_train 2 nn_save net.gmz"
    )
    assert "warning" not in run_script("nn_load net.gmz input 4,4,1,2,200 nn_eval[-1]").err


def test_nn_eval_on_inputs_of_the_trained_range_does_not_warn():
    run = run_script(
        "input 1,16,1,5,100 nn_init nn_input IN,2 nn_fc OUT,IN,3"
        " nn_loss_mse L,OUT,GT nn_trainer T,L nn_train 2 input 4,4,1,2,200 nn_eval[-1]"
    )
    assert "warning" not in run.err


# --- progress bar --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


class Context:
    def __init__(self, err):
        self.err, self.quiet = err, False


def test_progress_eta_waits_for_steady_steps_then_follows_the_recent_speed():
    clock, terminal = FakeClock(), Terminal()
    bar = progress.Progress(Context(terminal), "nn_train", 60000, clock=clock)
    clock.now = 30.0  # the first chunk: 1 step, compiling for 30 s
    bar.update(1, 0.5)
    assert "eta" not in bar.line(1, 0.5, clock.now) and "it/s" not in bar.line(1, 0.5, clock.now)
    for step in range(1, 21):  # then 1000 it/s
        clock.now = 30.0 + 0.25 * step
        bar.update(1 + 250 * step, 0.5)
    line = bar.line(5001, 0.5, clock.now)
    assert " 1000 it/s eta 55s" in line  # (60000 - 5001) / 1000, not skewed by the compile
    progress.end_open_line()


def test_progress_shows_tiny_losses_with_significant_digits():
    bar = progress.Progress(Context(Terminal()), "nn_train", 10, clock=FakeClock())
    assert "loss 1.234e-07" in bar.line(5, 1.23412e-7, 0.0)
    assert "loss 0.5" in bar.line(5, 0.5, 0.0)


# --- Ctrl-C --------------------------------------------------------------------------------------


def start(folder, items, stderr=subprocess.PIPE, env=None):
    environment = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "nnpipe", *items],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def interrupt_after_start(process, wait=0.0):
    """Wait for the run to print 'started' on standard output, then press Ctrl-C."""
    assert process.stdout.readline().strip() == "started"
    time.sleep(wait)
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=120)


def test_ctrl_c_stops_a_long_loop_with_one_line(tmp_path):
    process = start(tmp_path, ["echo", "started", "repeat", "1000000000", "{", "x=1", "}"])
    assert interrupt_after_start(process, 0.5) == 130
    lines = process.stderr.read().splitlines()  # the compile notice may come first
    assert lines[-1] == "nnpipe: interrupted"
    assert all(line == "compiling kernels for this network (first run only)…" for line in lines[:-1])


def compile_children_using(cache):
    """The compile children (nnpipe.nn.compiled) running with Numba's cache in `cache`."""
    children = []
    for process in Path("/proc").iterdir():
        try:
            command = (process / "cmdline").read_bytes()
            environment = (process / "environ").read_bytes().split(b"\0")
        except OSError:  # not a process, or ended meanwhile
            continue
        if b"nnpipe.nn.compiled" in command and f"NUMBA_CACHE_DIR={cache}".encode() in environment:
            children.append(process.name)
    return children


def test_ctrl_c_while_numba_compiles_is_one_line(tmp_path):
    """An empty compile cache makes the first nn_train compile for a few seconds (said once a
    second has passed, which may or may not be before the interruption); its compile children
    end with it."""
    cache = tmp_path / "numba-cache"
    process = start(
        tmp_path,
        [
            "echo",
            "started",
            "(1^2)",
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
            "5,1",
        ],
        env={"NUMBA_CACHE_DIR": str(cache)},
    )
    assert interrupt_after_start(process, 1.0) == 130
    assert process.stderr.read().removeprefix(COMPILING + "\n") == "nnpipe: interrupted\n"
    if Path("/proc").is_dir():
        assert compile_children_using(cache) == []


def test_ctrl_c_after_the_command_line_ran_leaves_its_exit_status(tmp_path):
    """Ctrl-C while the process shuts down (here held open by an exit hook), its work done:
    not a traceback, nor death by SIGINT (Python's default handler is back by then), but the
    command line's own status."""
    program = (
        "import atexit, sys, time; atexit.register(time.sleep, 2); "
        "sys.argv = ['nnpipe', 'echo', 'started']; "
        "from nnpipe.__main__ import run_as_program; run_as_program()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert interrupt_after_start(process, 0.5) == 0
    assert process.stderr.read() == ""


def test_ctrl_c_during_training_on_a_terminal_ends_the_progress_line_first(tmp_path):
    leader, follower = pty.openpty()
    script = tmp_path / "train.nnp"
    script.write_text(
        textwrap.dedent("""\
        input 64,64,1,3,0.5 nn_samples 1
        nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse L,OUT,GT nn_trainer T,L
        nn_train 1 echo started
        nn_train 1000000000
    """)
    )
    process = start(tmp_path, ["run", "train.nnp"], stderr=follower)
    os.close(follower)
    shown = b""
    assert process.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 120
    while b"it/s" not in shown.split(b"1/1000000000")[-1] and time.monotonic() < deadline:
        if select.select([leader], [], [], 1)[0]:
            shown += os.read(leader, 4096)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    while select.select([leader], [], [], 0.5)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    text = shown.decode().replace("\r\n", "\n")
    assert text.endswith("\nnnpipe: interrupted\n"), text[-300:]
    assert "\x1b[K\nnnpipe: interrupted" in text  # the bar's line ended, then the message


def test_interrupt_report_removes_the_temporaries_of_writes_under_way(work, capsys):
    def write(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half a file")
        interrupt.report()  # what Ctrl-C does before the process exits
        assert not os.path.exists(temporary)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_file(str(work / "result.png"), write)
    assert os.listdir(work) == []
    assert capsys.readouterr().err == "nnpipe: interrupted\n"


def test_ctrl_c_waits_for_a_critical_step_to_finish():
    order = []
    with atomic.critical():
        atomic.after_critical_step(lambda: order.append("stop"))
        order.append("inside")
    assert order == ["inside", "stop"]


# --- a diverging training -----------------------------------------------------


def test_training_stopped_by_a_non_finite_loss_warns_sets_loss_nan_and_exits_0():
    result = cli(
        "-q",
        "(1,2,3,4,5^2,4,6,8,10)",
        "nn_init",
        "nn_input",
        "IN,1",
        "nn_fc",
        "OUT,IN,1",
        "nn_loss_mse",
        "LOSS,OUT,GT",
        "nn_trainer",
        "T,LOSS,1e3,sgd",
        "nn_train",
        "50,5",
        "echo",
        "$loss",
    )
    assert result.code == 0 and result.exception is None
    warnings = [line for line in result.error_lines if line.startswith("nnpipe: warning:")]
    assert len(warnings) == 1 and "loss is not finite at iteration" in warnings[0]
    assert result.stdout.splitlines()[-1] == "nan"


@pytest.mark.parametrize(
    "items",
    [
        ["input", "2,2", "output", "a\x00.png"],
        ["nn_init", "nn_input", "IN,2", "nn_fc", "O,IN,1", "nn_save", "a\x00.tif"],
        ["nn_init", "nn_input", "IN,2", "nn_fc", "O,IN,1", "nn_save", "a\x00.png"],
        ["nn_init", "nn_input", "IN,2", "nn_fc", "O,IN,1", "nn_view", "a\x00"],
    ],
)
def test_a_file_name_with_a_nul_character_is_one_user_error(work, items):
    message = str(items_error(*items))
    assert "a file name cannot hold a NUL character" in message and "\x00" not in message

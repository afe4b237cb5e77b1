"""Safety under hostile input (issue 26 items 1-5, issue 25 item 11): what a local Dask run
listens on and leaves behind, writes onto special files, .gmz inflation, memory from tiny
scripts, empty and odd arrays, names with line breaks. Every mistake is one line."""

import ipaddress
import os
import re
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from conftest import REPO, cli, run_items, script_error

from nnpipe import limits
from nnpipe.images import gmz


def nnpipe_process(folder, *args, tmpdir=None, **options):
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    if tmpdir is not None:
        environment["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [sys.executable, "-m", "nnpipe", *map(str, args)],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


# --- 1. a local Dask run listens on this machine only, and leaves no scratch folders ----------


def listening(process, workers, timeout=180):
    """{(pid, ip, port)} of the sockets listening in `process` and its children, once its
    `workers` worker processes listen."""
    psutil = pytest.importorskip("psutil")
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = set()
        try:
            for member in [parent] + parent.children(recursive=True):
                for connection in member.net_connections(kind="inet"):
                    if connection.status == psutil.CONN_LISTEN:
                        found.add((member.pid, connection.laddr.ip, connection.laddr.port))
        except psutil.Error:  # a process came or went while looking
            continue
        if len({pid for pid, _, _ in found} - {process.pid}) >= workers:
            time.sleep(1)  # the workers' second server
            return found | listening_now(parent, psutil)
        time.sleep(0.5)
    pytest.fail("the local cluster did not start")


def listening_now(parent, psutil):
    found = set()
    for member in [parent] + parent.children(recursive=True):
        for connection in member.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN:
                found.add((member.pid, connection.laddr.ip, connection.laddr.port))
    return found


def assert_loopback_only(sockets):
    outside = [s for s in sockets if not ipaddress.ip_address(s[1]).is_loopback]
    assert not outside, f"listening beyond this machine: {outside}"


def assert_left_nothing(tmpdir, timeout=10):
    deadline = time.monotonic() + timeout
    while os.listdir(tmpdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [os.path.join(root, name) for root, folders, files in os.walk(tmpdir) for name in folders + files]
    assert not left, f"left in the temporary folder: {left}"


@pytest.fixture
def endless(work):
    (work / "endless.nnp").write_text("repeat inf { x+=1 }\n")
    (work / "tmp").mkdir()
    return work


@pytest.mark.slow
@pytest.mark.parametrize("runs", [["map", "endless.nnp", "a", "b"], ["sweep", "endless.nnp", "_k=1,2"]])
def test_a_local_run_listens_on_loopback_only_without_a_dashboard_and_ctrl_c_leaves_nothing(endless, runs):
    """Ctrl-C ends the run with one line: no scratch folder left, no semaphore of the
    workers' queues left for multiprocessing's resource tracker to report (issue 25 item 4)."""
    process = nnpipe_process(
        endless, *runs[:1], "--workers", 2, *runs[1:], tmpdir=endless / "tmp", start_new_session=True
    )
    try:
        sockets = listening(process, workers=2)
        assert_loopback_only(sockets)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole group
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert err.splitlines()[-1:] == ["nnpipe: interrupted"], err
    assert "dashboard" not in err
    assert_left_nothing(endless / "tmp")


def test_dashboard_on_request_listens_on_loopback_and_is_printed(endless):
    process = nnpipe_process(
        endless,
        "map",
        "--workers",
        1,
        "--dashboard",
        "endless.nnp",
        "a",
        tmpdir=endless / "tmp",
        start_new_session=True,
    )
    try:
        sockets = listening(process, workers=1)
        assert_loopback_only(sockets)
        os.kill(process.pid, signal.SIGINT)  # to nnpipe alone: it ends its workers itself
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    shown = re.search(r"^dashboard: http://127\.0\.0\.1:(\d+)/status", err, re.M)
    assert shown, err
    assert ("127.0.0.1", int(shown.group(1))) in {(ip, port) for _, ip, port in sockets}
    assert_left_nothing(endless / "tmp")


@pytest.mark.slow
def test_a_finished_map_leaves_no_scratch_folders(work):
    (work / "quick.nnp").write_text("echo $1\n")
    (work / "tmp").mkdir()
    process = nnpipe_process(work, "map", "--workers", 1, "quick.nnp", "a", tmpdir=work / "tmp")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert out.strip().endswith("a")
    assert_left_nothing(work / "tmp", timeout=0)


# --- 2. a write never replaces what is not a regular file -------------------------------------

NET = "nn_init nn_input IN,2 nn_fc OUT,IN,1 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
TRAINED = f"(0,0,1,1^0,1,0,1^0,1,1,0) {NET} nn_train 2,4"
WRITERS = {
    "output .png": ("input 4,4 output {}", ".png"),
    "output .tif": ("input 4,4 output {}", ".tif"),
    "output .gmz": ("input 4,4 output {}", ".gmz"),
    "output .npy": ("input 4,4 output {}", ".npy"),
    "output, numbered": ("input 4,4 input 4,4 output {}", ".png"),
    "nn_save .tif": (f"{NET} nn_save {{}}", ".tif"),
    "nn_save .gmz": (f"{NET} nn_save {{}}", ".gmz"),
    "nn_save .png stack": (f"{NET} nn_save {{}}", ".png"),
    "nn_plot": (f"{TRAINED} nn_plot {{}}", ".png"),
    "nn_export": (f"{NET} nn_export {{}}", ".onnx"),
}


def special_file(folder, kind, name):
    """A FIFO, a character device (as /dev/null) or a folder at folder/name, or skip."""
    path = folder / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except (PermissionError, OSError) as error:
            pytest.skip(f"cannot make a device here: {error}")
    else:
        path.mkdir()
        (path / "inside").write_text("kept")
    return path


def identity(path):
    status = os.lstat(path)
    return status.st_ino, status.st_mode, status.st_rdev


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_write_onto_a_special_file_is_refused_and_leaves_it(work, writer, kind):
    script, extension = WRITERS[writer]
    if writer == "nn_export":
        pytest.importorskip("onnx")
    if writer == "nn_save .png stack" and kind == "folder":
        pytest.skip("a .png network is a folder: tested by test_files")
    name = "target_000" + extension if writer == "output, numbered" else "target" + extension
    path = special_file(work, kind, name)
    before = identity(path)
    target = "target" + extension
    message = script_error(script.format(target)).message
    assert message.startswith("cannot write '") and "target" in message, message
    assert "\n" not in message
    wanted = "a folder" if writer == "nn_save .png stack" else "a regular file"
    assert {"fifo": "FIFO", "device": "character device", "folder": "a folder"}[
        kind
    ] in message or "in the way" in message, message
    if writer != "nn_save .png stack":
        assert f"not {wanted}" in message
    assert identity(path) == before
    assert [p.name for p in work.iterdir()] == [name]  # no temporary left beside it


def test_nn_plot_onto_a_device_as_the_command_line_runs_it(work):
    path = special_file(work, "device", "null")
    result = subprocess.run(
        [sys.executable, "-m", "nnpipe", "-q", *TRAINED.split(), "nn_plot", "null"],
        cwd=work,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "nnpipe: error: <command line>:1: nn_plot: cannot write 'null': it is a character device,"
        " not a regular file; nnpipe does not replace it (remove it or choose another name)"
    ]
    assert stat.S_ISCHR(os.lstat(path).st_mode)


# --- 3. .gmz inflation stops at the declared size -------------------------------------------


def zeros_deflated(megabytes):
    """A zlib stream of `megabytes` MiB of zeros, built without compressing them all: each
    full-flushed MiB compresses to the same bytes."""
    compressor = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    total = megabytes << 20
    adler = ((total % 65521) << 16) | 1  # of `total` zeros
    return first + middle * (megabytes - 1) + b"\x03\x00" + adler.to_bytes(4, "big")


def gmz_file(path, size, data, type_name="float32"):
    w, h, d, s = size
    path.write_bytes(f"1 {type_name} little_endian\n{w} {h} {d} {s} #{len(data)}\n".encode() + data)
    return path


def test_the_zeros_stream_is_what_it_claims():
    assert zlib.decompress(zeros_deflated(3)) == bytes(3 << 20)


def peak_memory(action):
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(
    "megabytes, size, type_name, expected",
    [
        (
            64,
            (1, 1, 1, 1),
            "float32",
            "image 0 of 1 inflates to more than the 4 bytes its size 1,1,1,1 needs",
        ),
        (
            2048,
            (1000, 1000, 1, 1),
            "uint8",
            "image 0 of 1 inflates to more than the 1,000,000 bytes its size 1000,1000,1,1 needs",
        ),
    ],
)
def test_a_gmz_that_inflates_beyond_its_declared_size_is_refused_in_bounded_memory(
    work, megabytes, size, type_name, expected
):
    data = zeros_deflated(megabytes)  # 64 KB for 64 MiB; 2 MB for 2 GiB
    path = gmz_file(work / "bomb.gmz", size, data, type_name)
    refusals = []

    def decode():
        with pytest.raises(gmz.GmzError) as info:
            gmz.decode(path.read_bytes())
        refusals.append(str(info.value))

    peak = peak_memory(decode)
    assert expected in refusals[0]
    assert peak < len(data) + (8 << 20), f"{peak:,} bytes at the peak"
    for script, what in (
        ("input bomb.gmz", "cannot read 'bomb.gmz'"),
        ("nn_load bomb.gmz", "cannot load 'bomb.gmz'"),
    ):
        message = script_error(script).message
        assert message.startswith(what) and expected in message and "\n" not in message


def test_a_gmz_declaring_more_values_than_the_cap_is_refused_before_inflating(work):
    gmz_file(work / "huge.gmz", (100000, 100000, 1, 1), zeros_deflated(2), "uint8")
    message = script_error("input huge.gmz").message
    assert (
        "image 0 of 1 is declared of size 100000,100000,1,1: too large (1e+10 values; at most 2^31)"
        in message
    )


def test_a_gmz_declaring_more_than_deflate_can_hold_is_refused_before_inflating(work):
    gmz_file(work / "short.gmz", (4096, 4096, 1, 1), zlib.compress(bytes(1000)), "float32")
    message = script_error("input short.gmz").message
    assert "declared of size 4096,4096,1,1 (67,108,864 bytes) but the file holds only" in message


def test_a_gmz_that_inflates_to_its_declared_size_still_loads(work):
    gmz_file(work / "fine.gmz", (1024, 1024, 1, 1), zeros_deflated(1), "uint8")
    image = run_items("input", "fine.gmz").image()
    assert image.shape == (1, 1, 1024, 1024) and not image.any()


@pytest.mark.parametrize("special", ["/dev/zero"])
def test_reading_a_device_as_an_image_or_a_network_is_refused(work, special):
    if not os.path.exists(special):
        pytest.skip(f"no {special}")
    for name in ("z.gmz", "z.tif", "z.npy"):
        os.symlink(special, work / name)
        assert script_error(f"input {name}").message == f"cannot read '{name}': it is not a regular file"
    for name in ("z.gmz", "z.tif"):
        assert script_error(f"nn_load {name}").message == f"cannot load '{name}': it is not a regular file"


# --- 4. memory from tiny scripts: text limits, and out of memory is a user error -------------


@pytest.fixture
def small_text_limit(monkeypatch):
    monkeypatch.setattr(limits, "_max_text", 1024)
    return (
        "1 Ki characters, nnpipe's limit on text (set NNPIPE_MAX_TEXT, e.g. NNPIPE_MAX_TEXT=1G, to raise it)"
    )


@pytest.mark.parametrize(
    "doubling, what", [("x.=$x", "variable 'x'"), ("x=$x$x", "the item after substitution")]
)
def test_a_doubling_variable_stops_at_the_text_limit(small_text_limit, doubling, what):
    error = script_error(f"x=ab\nrepeat 40 {{ {doubling} }}\necho done")
    assert error.where == "test.nnp:2"
    assert error.message == f"{what} is longer than {small_text_limit}"


def test_an_item_of_many_substitutions_stops_as_it_grows(small_text_limit, monkeypatch):
    pieces = []
    real = limits.too_long
    monkeypatch.setattr("nnpipe.lang.substitute.too_long", lambda what: pieces.append(what) or real(what))
    error = script_error("x=" + "a" * 500 + "\necho " + "$x" * 100000)
    assert error.message.startswith("the item after substitution is longer than 1 Ki characters")
    assert error.command == "echo" and pieces == ["the item after substitution"]


def test_values_up_to_the_limit_are_fine(small_text_limit):
    assert run_items("x=" + "a" * 1000, "x.=" + "b" * 24, "echo", "${x}").lines == ["a" * 1000 + "b" * 24]


def test_run_of_a_device_or_a_long_script_stops_at_the_limit(work, small_text_limit):
    if os.path.exists("/dev/zero"):
        result = cli("run", "/dev/zero")
        assert result.code == 1 and result.error_lines == [
            f"nnpipe: error: /dev/zero: the script is longer than {small_text_limit}"
        ]
    (work / "long.nnp").write_text("echo hi\n" * 200)
    assert cli("run", "long.nnp").error_lines == [
        f"nnpipe: error: long.nnp: the script is longer than {small_text_limit}"
    ]
    assert cli("run", "-", input="echo hi\n" * 200).error_lines == [
        f"nnpipe: error: <stdin>: the script is longer than {small_text_limit}"
    ]
    (work / "long.gmic").write_text("long :\n" + "  echo hi\n" * 200)
    assert cli("long.gmic").error_lines == [
        f"nnpipe: error: <command line>:1: command file 'long.gmic' is longer than {small_text_limit}"
    ]


def test_the_text_limit_comes_from_the_environment(work):
    environment = dict(os.environ, PYTHONPATH=str(REPO))

    def run(limit, *items):
        return subprocess.run(
            [sys.executable, "-m", "nnpipe", *items],
            cwd=work,
            capture_output=True,
            text=True,
            env=dict(environment, NNPIPE_MAX_TEXT=limit),
            timeout=120,
        )

    assert run("2k", "x=" + "a" * 1500, "echo", "$x").returncode == 0
    refused = run("1k", "x=" + "a" * 1500, "echo", "$x")
    assert refused.returncode == 1 and refused.stderr.startswith(
        "nnpipe: error: <command line>:1: echo: the item after substitution is longer than 1 Ki characters"
    )
    wrong = run("lots", "echo", "hi")
    assert wrong.returncode == 2 and wrong.stderr.splitlines() == [
        "nnpipe: error: NNPIPE_MAX_TEXT must be a size such as 256M (got 'lots')"
    ]


def test_the_default_limit_stops_the_issues_script_in_one_line(work):
    result = subprocess.run(
        [sys.executable, "-m", "nnpipe", "x=ab", "repeat", "40", "{", "x.=$x", "}", "echo", "done"],
        cwd=work,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "nnpipe: error: <command line>:1: variable 'x' is longer than 64 Mi characters, nnpipe's limit on"
        " text (set NNPIPE_MAX_TEXT, e.g. NNPIPE_MAX_TEXT=1G, to raise it)"
    ]


@pytest.mark.slow
def test_running_out_of_memory_is_one_error_line_not_internal(work):
    """With the text limit raised and the process's memory capped, the doubling loop meets a
    real MemoryError."""
    resource = pytest.importorskip("resource")

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    result = subprocess.run(
        [sys.executable, "-m", "nnpipe", "x=ab", "repeat", "40", "{", "x.=$x", "}", "echo", "done"],
        cwd=work,
        env=dict(os.environ, PYTHONPATH=str(REPO), NNPIPE_MAX_TEXT="64G"),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "nnpipe: error: <command line>:1: out of memory (smaller images, batches, layers or texts need less)"
    ]


def test_a_memory_error_anywhere_is_out_of_memory(monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr("nnpipe.lang.interpreter.lex_items", exhausted)
    result = cli("echo", "hi")
    assert result.code == 1 and result.exception is None
    assert result.error_lines == [
        "nnpipe: error: out of memory (smaller images, batches, layers or texts need less)"
    ]


# --- 5 (and issue 25 item 11). empty and odd arrays, non-finite values ------------------------


@pytest.mark.parametrize("shape", [(0,), (0, 4), (4, 0), (2, 0, 3)])
def test_input_of_an_npy_without_values_is_refused(work, shape):
    np.save(work / "e.npy", np.zeros(shape, np.float32))
    result = cli("input", "e.npy", "print")
    assert result.code == 1 and result.stdout == ""
    assert result.error_lines == [
        "nnpipe: error: <command line>:1: input: cannot read 'e.npy': it holds no values"
        f" (an array of shape {shape})"
    ]


def test_input_of_a_0d_npy_is_a_1x1x1x1_image_of_its_value(work):
    np.save(work / "s.npy", np.float32(3.5))
    assert run_items("input", "s.npy").image().tolist() == [[[[3.5]]]]


def test_input_keeps_non_finite_values_in_every_float_type_as_g_mic_and_nn_load_npy_refuses_them(work):
    for dtype in (np.float16, np.float32, np.float64):
        np.save(work / "h.npy", np.array([1, np.inf, -np.inf, np.nan], dtype))
        values = run_items("input", "h.npy").image().ravel()
        assert values[:3].tolist() == [1, np.inf, -np.inf] and np.isnan(values[3])
        assert (
            "'h.npy': sample 1 holds inf (at index (1,)), not a finite number"
            in script_error("nn_load_npy h.npy").message
        )


def test_nn_load_csv_of_the_label_column_alone_is_refused(work):
    (work / "labels.csv").write_text("1\n2\n3\n")
    assert (
        script_error("nn_load_csv labels.csv,0").message
        == "'labels.csv' holds no values beside its label column"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "1,2,nan\n3,4,1\n",
            "'d.csv' line 1, value 3: label 'nan' is not a finite number"
            " (class labels are words or finite numbers)",
        ),
        ("x,y,c\n1,2,cat\n3,4,-inf\n", "'d.csv' line 3, value 3: label '-inf' is not a finite number"),
        ("x,y,c\n1,2,cat\n3,4,\n", "'d.csv' line 3, value 3: the label is empty"),
    ],
)
def test_nn_load_csv_refuses_nan_infinite_and_empty_labels(work, text, expected):
    (work / "d.csv").write_text(text)
    assert expected in script_error("nn_load_csv d.csv,2").message


def test_a_tiff_of_more_than_4_dimensions_is_refused_and_size_1_axes_do_not_count(work):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(
        work / "t5.tif", np.zeros((2, 2, 3, 5, 6), np.float32), imagej=True, metadata={"axes": "TZCYX"}
    )
    assert script_error("input t5.tif").message == (
        "cannot read 't5.tif': a 5-D TIFF image (axes TZCYX, shape 2,2,3,5,6):"
        " nnpipe reads at most 4 dimensions"
    )
    tifffile.imwrite(work / "t4.tif", np.zeros((2, 2, 1, 5, 6), np.float32))
    assert [image.shape for image in run_items("input", "t4.tif").images] == [(1, 1, 5, 6)] * 4


# --- issue 25 item 11: names with line breaks stay on one line ------------------------------------


def network_file_with_names(work, extension, change):
    from nnpipe.nn import files

    run_items("nn_init", "nn_input", "IN,2", "nn_fc", "OUT,IN,3", "nn_save", "net.tif", quiet=True)
    saved = files.read("net.tif")
    change(saved)
    files.write(f"bad{extension}", saved)
    return f"bad{extension}"


def rename_layer(saved):
    saved.commands = [text.replace("OUT", "OUT\nX") for text in saved.commands]
    for entry in saved.entries:
        entry.name = entry.name.replace("OUT", "OUT\nX")


@pytest.mark.parametrize("extension", [".tif", ".gmz", ".png"])
def test_a_network_file_naming_a_layer_with_a_line_break_is_one_line(work, extension):
    path = network_file_with_names(work, extension, rename_layer)
    result = cli("nn_load", path)
    assert result.code == 1 and len(result.error_lines) == 1, result.stderr
    assert "OUT\\nX" in result.error_lines[0]


def test_notices_and_warnings_naming_a_name_from_a_file_are_one_line(work):
    (work / "d.csv").write_text('x,c\n1,"a\nb"\n2,c\n')
    result = cli("nn_load_csv", "d.csv,1")
    assert result.code == 0 and result.error_lines == ["d: 2 samples of 2 classes (a\\nb, c)"]
    from conftest import _interpreter

    interpreter, _, err = _interpreter(0, False, False)
    interpreter.workspace.warn("image 'a\nb' is odd")
    assert err.getvalue() == "nnpipe: warning: <command line>: image 'a\\nb' is odd\n"


def test_a_progress_line_naming_an_image_with_a_line_break_is_one_line(work):
    run = run_items("(0,0,1,1^0,1,0,1^0,1,1,0)", "name", "a\nb", *NET.split(), "nn_train", "3,4")
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert lines and all(line.startswith("nn_train a\\nb [") for line in lines), run.err

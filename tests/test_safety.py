"""Safety under hostile input (issue 26 items 1-5, issue 25 item 11): what a local Dask run
listens on and leaves behind, writes onto special files, .gmz inflation, memory from tiny
scripts, empty and odd arrays, names with line breaks. Every mistake is one line."""

import ipaddress
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO


def nnpipe_process(folder, *args, tmpdir=None, **options):
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    if tmpdir is not None:
        environment["TMPDIR"] = str(tmpdir)
    return subprocess.Popen([sys.executable, "-m", "nnpipe", *map(str, args)], cwd=folder,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **options)


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


def test_a_local_map_listens_on_loopback_only_without_a_dashboard_and_ctrl_c_leaves_no_scratch(endless):
    process = nnpipe_process(endless, "map", "--workers", 2, "endless.nnp", "a", "b",
                             tmpdir=endless / "tmp", start_new_session=True)
    try:
        sockets = listening(process, workers=2)
        assert_loopback_only(sockets)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole group
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "dashboard" not in err
    assert_left_nothing(endless / "tmp")


def test_dashboard_on_request_listens_on_loopback_and_is_printed(endless):
    process = nnpipe_process(endless, "map", "--workers", 1, "--dashboard", "endless.nnp", "a",
                             tmpdir=endless / "tmp", start_new_session=True)
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


def test_a_finished_map_leaves_no_scratch_folders(work):
    (work / "quick.nnp").write_text("echo $1\n")
    (work / "tmp").mkdir()
    process = nnpipe_process(work, "map", "--workers", 1, "quick.nnp", "a", tmpdir=work / "tmp")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert out.strip().endswith("a")
    assert_left_nothing(work / "tmp", timeout=0)

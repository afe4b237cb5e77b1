"""nnpipe sweep and nnpipe map on a real Dask cluster: a scheduler on 127.0.0.1 with two worker
processes, started here. A sweep of examples/xor.nnp ranks its runs by loss and keeps a
failing run's error in its row; a map over 20 images writes each one's result and reports a
bad file without stopping; a worker killed mid-sweep loses no run."""

import csv
import os
import signal
import subprocess
import sys
import time

import distributed
import numpy as np
import pytest
from conftest import REPO, cli, run_script
from PIL import Image

XOR = REPO / "examples" / "xor.nnp"


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local.scheduler_address, client


def table_rows(stdout):
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    return lines[0], lines[1:]


def test_sweep_runs_every_combination_ranked_by_loss_with_errors_in_their_rows(cluster, work):
    address, _ = cluster
    (work / "xor.nnp").write_text(XOR.read_text())  # errors name the script as it was given
    result = cli("--seed", 7, "sweep", "xor.nnp", "rate=0.01,0.03", "1=5,400", "--scheduler", address)
    assert result.code == 0, result.stderr
    header, rows = table_rows(result.stdout)
    assert header[:5] == ["rate", "$1", "seed", "loss", "error"]
    assert sorted((row[0], row[1]) for row in rows) == [
        ("0.01", "400"),
        ("0.01", "5"),
        ("0.03", "400"),
        ("0.03", "5"),
    ]
    learnt, failed = rows[:2], rows[2:]  # 400 iterations learn XOR, 5 do not
    assert [row[1] for row in learnt] == ["400", "400"] and [row[1] for row in failed] == ["5", "5"]
    assert float(learnt[0][3]) <= float(learnt[1][3]) < 0.01
    for row in failed:  # the script's own `error`, as one line, with its loss collected
        assert " ".join(row[4:]) == f"xor.nnp:22: error: XOR not learnt: loss {row[3]} >= 0.01"
    assert len({row[2] for row in rows}) == 4  # a seed per run
    for rate, iterations, *_ in rows:
        log = (work / "runs" / f"rate={rate},1={iterations}" / "output.txt").read_text()
        assert log.startswith(f"loss after {iterations} iterations: ")
    with open(work / "runs" / "sweep.csv", newline="") as file:
        written = list(csv.reader(file))
    assert written[0][:5] == header[:5] and [r[:4] for r in written[1:]] == [r[:4] for r in rows]
    # the same --seed gives a run the same seed, whatever else is swept
    again = cli(
        "--seed", 7, "sweep", "xor.nnp", "rate=0.03", "1=5", "--scheduler", address, "--csv", "again.csv"
    )
    assert table_rows(again.stdout)[1][0][2] == next(r[2] for r in rows if r[:2] == ["0.03", "5"])


def test_sweep_names_a_malformed_setting(work):
    result = cli("sweep", XOR, "rate")
    assert result.code == 2
    assert result.error_lines == [
        "nnpipe: error: 'rate' is not NAME=v1,v2,... (NAME a variable, or N for $N)"
    ]


def test_sweep_warns_once_per_name_the_script_never_reads(cluster, work):
    """`rat` (a typo), `$2` read only as a defined command's own argument: each value changes
    nothing but the seed. Names read in the main program, quoted `$1` (arguments are read in
    quotes too) and globals read in a command file the script names are not warned about."""
    address, _ = cluster
    (work / "defs.gmic").write_text("shown :\n  echo $_g\n")
    script = f'command {work / "defs.gmic"}\nrate=${{rate=0.01}}\necho "$1"\nf :\n  echo $2\n'
    (work / "s.nnp").write_text(script)
    settings = ["rate=1,2", "rat=3", "1=4", "2=5", "_g=6", "_h=7"]
    result = cli("sweep", "s.nnp", *settings, "--scheduler", address)
    assert result.code == 0, result.stderr
    warnings = [line for line in result.error_lines if line.startswith("nnpipe: warning: ")]
    assert [line.split("'")[1] for line in warnings] == ["rat", "2", "_h"]


MAP_SCRIPT = """
nn_load $script_dir/net.tif
input $1 div 255
nn_eval
mul[-1] 255 cut[-1] 0,255
output[-1] ${1}_out.png
"""


@pytest.mark.slow
def test_map_writes_each_result_next_to_its_file_and_reports_a_bad_one(work):
    run_script("nn_init nn_input IN,3 nn_fc OUT,IN,3 nn_save net.tif", seed=3, quiet=True)
    (work / "map.nnp").write_text(MAP_SCRIPT)
    rng = np.random.default_rng(0)
    files = []
    for i in range(20):
        files.append(work / f"img{i:02d}.png")
        Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(files[-1])
    (work / "broken.png").write_text("not a picture")
    result = cli("map", "map.nnp", *files[:10], "broken.png", *files[10:], "--workers", "2")
    assert result.code == 1
    progress = [line for line in result.error_lines if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{k}/21" for k in range(1, 22)]
    assert result.error_lines[-2] == "map: 20 of 21 files done, 1 failed:"
    assert result.error_lines[-1].startswith("  broken.png: ") and "broken.png" in result.error_lines[-1][14:]
    # each result is the network applied to its file, as a run of the script on that file gives it
    for file in (files[0], files[19]):
        expected = run_script(MAP_SCRIPT.replace("$script_dir", str(work)), [str(file)], quiet=True).image(-1)
        written = np.asarray(Image.open(f"{file}_out.png"))
        assert written.shape == (6, 5, 3)
        assert np.array_equal(written, np.round(expected[:, 0].transpose(1, 2, 0)))


def test_a_worker_killed_mid_sweep_loses_no_run(cluster, work):
    address, client = cluster
    pids = client.run(os.getpid)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nnpipe",
            "--seed",
            "1",
            "sweep",
            str(XOR),
            "rate=0.01,0.02,0.03,0.04",
            "1=30000",
            "--scheduler",
            address,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        busy = []
        while not busy and sweep.poll() is None:
            busy = [worker for worker, keys in client.processing().items() if keys]
            time.sleep(0.05)
        assert busy, "the sweep ended before any run was seen running"
        os.kill(pids[busy[0]], signal.SIGKILL)
        out, err = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, err
    header, rows = table_rows(out)
    assert len(rows) == 4
    assert all(float(row[3]) < 0.01 and len(row) == 4 for row in rows), out  # a loss, no error
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_loading_a_network_again_reads_the_file_again_once_it_changed(work):
    # nn_load keeps the last file read in memory (a map worker loads its network once): a
    # rewritten file must still load its new weights
    network = "nn_init nn_input IN,2 nn_fc OUT,IN,1"
    session = run_script(f"{network} nn_save net.tif", seed=1, quiet=True).interpreter
    session.run_items(["nn_load", "net.tif"])
    first = session.workspace.images.get("OUT_fc")
    run_script(f"{network} nn_save net.tif", seed=2, quiet=True)
    session.run_items(["nn_load", "net.tif"])
    rewritten = session.workspace.images.get("OUT_fc")
    assert not np.array_equal(rewritten, first)
    assert np.array_equal(
        rewritten, run_script("nn_load net.tif", quiet=True).interpreter.workspace.images.get("OUT_fc")
    )

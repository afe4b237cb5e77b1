"""The example scripts run as they are (at short lengths) and learn."""

import io
import re

import numpy as np
from conftest import REPO

from nnpipe.commands import load_all
from nnpipe.lang.interpreter import Interpreter


def run_example(name, *arguments):
    out, err = io.StringIO(), io.StringIO()
    ctx = Interpreter(load_all(), seed=1, quiet=True, out=out, err=err)
    path = REPO / "examples" / name
    ctx.run_source(path.read_text(), str(path), [str(a) for a in arguments])
    return ctx, out.getvalue()


def test_color_mapping_learns_and_writes_its_outputs(tmp_path):
    ctx, out = run_example("color_mapping.nnp", 400, tmp_path)
    history = np.array(ctx.workspace.network().trainers["T"].history)
    assert len(history) == 400
    assert history[-50:].mean() < 0.5 * history[:50].mean()
    assert (tmp_path / "color_mapping.png").is_file()
    assert (tmp_path / "color_mapping_loss.png").is_file()
    psnr = float(re.search(r"PSNR: ([\d.]+) dB", out).group(1))
    assert psnr > 10
    assert ctx.workspace.images[ctx.workspace.images.find("OUT")].shape == (3, 1, 256, 256)


def test_xor_reaches_its_target_and_prints_the_truth_table():
    ctx, out = run_example("xor.nnp", 1500)
    assert float(ctx.lookup("loss")) < 0.01
    table = [line for line in out.splitlines() if " xor " in line]
    assert table == ["0 xor 0 = 0", "0 xor 1 = 1", "1 xor 0 = 1", "1 xor 1 = 0"]

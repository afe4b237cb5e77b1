"""The conv examples (shapes classification, denoising) run as they are, at short lengths, and learn."""

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_script
from PIL import Image


def run_example(name, *arguments):
    path = REPO / "examples" / name
    return run_script(path.read_text(), [str(a) for a in arguments], file=str(path), seed=1, quiet=True)


def psnr(reference, image):
    mse = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


@pytest.mark.slow
def test_shapes_example_learns_to_classify(tmp_path):
    folder = tmp_path / "shapes"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_shapes.py"),
            str(folder),
            "--count",
            "300",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    run = run_example("shapes.nnp", folder, 500)
    short = r"(-?\d+(?:\.\d{1,2})?)"  # printed short by {_…}: 98.33, not 98.329999999999998
    accuracy = float(re.search(rf"^held-out accuracy: {short}% \(target: 95%\)$", run.out, re.M).group(1))
    assert accuracy > 85  # 3 classes: chance is 33%; 500 steps reach 95%
    assert accuracy == round(100 * float(run.interpreter.lookup("accuracy")), 2)
    assert run.image(run.images.find("labels_test")).shape == (
        3,
        180,
        1,
        1,
    )  # a fifth of 900 pictures held out
    validation = float(
        re.search(rf"^validation accuracy: {short}% \(validation loss [\d.e+-]+\)$", run.out, re.M).group(1)
    )
    assert validation > 85 and validation == round(100 * float(run.interpreter.lookup("val_accuracy")), 2)
    trainer = run.interpreter.workspace.network().trainers["T"]
    assert [step for step, _ in trainer.validation][:2] == [250, 500]  # nn_train's validations
    history = np.array(trainer.history)
    assert len(history) == 500
    assert history[-50:].mean() < 0.5 * history[:50].mean()


@pytest.mark.slow
def test_denoise_example_improves_psnr_and_writes_before_and_after(tmp_path):
    run = run_example("denoise.nnp", 300, tmp_path)
    short = r"(-?\d+(?:\.\d{1,2})?)"  # printed short by {_…}: 8.34, not 8.3399999999999999
    noisy, denoised, gain = (
        float(v)
        for v in re.search(
            rf"^PSNR noisy: {short} dB, denoised: {short} dB \(gain {short} dB\)$", run.out, re.M
        ).groups()
    )
    assert 20 < noisy < 22  # sigma 25 on 0..255 (clipped as in the PNG)
    assert denoised > noisy + 3  # untrained, the net makes the photo worse; 1000 iterations gain ~8 dB
    assert gain == round(denoised - noisy, 2)
    # what a user sees: the written PNGs, against the clean photo
    clean = np.asarray(Image.open(REPO / "examples" / "data" / "astronaut256.png").convert("RGB"))
    before, after = (
        np.asarray(Image.open(tmp_path / f"denoise_{name}.png")) for name in ("noisy", "denoised")
    )
    assert before.shape == after.shape == clean.shape == (256, 256, 3)
    assert abs(psnr(clean, before) - noisy) < 0.1
    assert psnr(clean, after) > psnr(clean, before) + 3


def test_shapes_example_without_its_pictures_says_how_to_make_them(tmp_path):
    from conftest import script_error

    script = (REPO / "examples" / "shapes.nnp").read_text()
    error = script_error(script, args=[str(tmp_path / "nowhere")], file="shapes.nnp")
    assert error.message == (
        f"no pictures in {tmp_path}/nowhere: make them with python scripts/make_shapes.py {tmp_path}/nowhere"
    )

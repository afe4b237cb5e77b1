"""nn_train with a validation set (images or a held-out fraction), keep_best, early stopping,
and checkpoints a killed training resumes from."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, run_script
from nn_helpers import build
from PIL import Image

from nnpipe.errors import UserError
from nnpipe.nn import files, schedulers


def write_points(folder, name, count, seed):
    """A stack of 2D points (1,1,M,2) and one-hot labels (1,1,M,3): the class is the sector of
    the point's angle."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, size=(count, 2)).astype(np.float32)
    classes = (np.floor((np.arctan2(points[:, 1], points[:, 0]) + np.pi) / (2 * np.pi / 3)) % 3).astype(int)
    labels = np.eye(3, dtype=np.float32)[classes]
    np.save(folder / f"{name}.npy", points.T.reshape(2, count, 1, 1))
    np.save(folder / f"{name}_labels.npy", labels.T.reshape(3, count, 1, 1))


CLASSIFIER = (
    "nn_init nn_input IN,2 nn_fcnl H,IN,16,tanh nn_fc OUT,H,3"
    " nn_loss_softmax_crossentropy LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
)


@pytest.fixture
def points(work):
    write_points(work, "train", 300, 1)
    write_points(work, "valid", 120, 2)
    return work


def loads(*names):
    return " ".join(f"input {name}.npy" for name in names)


def softmax_crossentropy(scores, labels):
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(labels * log_softmax).sum(axis=1).mean())


def test_validation_numbers_are_nn_classify_and_nn_eval_on_the_held_out_set(points):
    interp = build(
        f"{loads('train', 'train_labels', 'valid', 'valid_labels')} {CLASSIFIER}"
        " nn_train[train,train_labels] 60,16,.,[valid,valid_labels],20"
        " nn_classify[valid,valid_labels] nn_eval[valid]"
    )
    val_loss, val_accuracy = float(interp.lookup("val_loss")), float(interp.lookup("val_accuracy"))
    assert val_accuracy == float(interp.lookup("accuracy"))  # nn_classify's
    scores = interp.workspace.images[-1].reshape(3, -1).T  # nn_eval's outputs
    labels = interp.workspace.images.get("valid_labels").reshape(3, -1).T
    assert val_loss == pytest.approx(softmax_crossentropy(scores, labels), rel=1e-5)
    trainer = interp.workspace.network().trainers["T"]
    assert [step for step, _ in trainer.validation] == [20, 40, 60]
    assert trainer.validation[-1][1] == pytest.approx(val_loss, rel=1e-5)


def test_a_held_out_fraction_is_nn_split_samples_split(points):
    """validation 0.25 holds out what nn_split_samples 0.25 would, drawn at the same point."""
    held_out = build(
        f"{loads('train', 'train_labels')} {CLASSIFIER} nn_train[train,train_labels] 40,16,.,0.25,20"
    )
    split = build(
        f"{loads('train', 'train_labels')} {CLASSIFIER}"
        " nn_split_samples[train,train_labels] 0.25"
        " nn_train[train,train_labels] 40,16,.,[train_test,train_labels_test],20"
    )
    assert held_out.lookup("val_loss") == split.lookup("val_loss")
    assert held_out.lookup("val_accuracy") == split.lookup("val_accuracy")
    assert np.array_equal(held_out.workspace.images.get("OUT_fc"), split.workspace.images.get("OUT_fc"))


def test_progress_bar_shows_the_validation(points):
    run = run_script(
        f"{loads('train', 'train_labels', 'valid', 'valid_labels')} {CLASSIFIER}"
        " nn_train[train,train_labels] 20,16,.,[valid,valid_labels],10"
    )
    last = run.err.strip().splitlines()[-1]
    assert f"val_loss {run.interpreter.lookup('val_loss')}" in last and "val_accuracy" in last


def test_early_stop_after_patience_validations_without_improvement(points):
    # a learning rate too small to change anything: the first validation stays the best
    interp = build(
        f"{loads('train', 'train_labels', 'valid', 'valid_labels')}"
        " nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_softmax_crossentropy LOSS,OUT,GT"
        " nn_trainer T,LOSS,1e-30,sgd nn_train[train,train_labels] 1000,16,.,[valid,valid_labels],10,3"
    )
    trainer = interp.workspace.network().trainers["T"]
    assert len(trainer.history) == 40  # best at 10, then 20, 30, 40 no better
    assert interp.workspace.images.get("T").reshape(-1)[schedulers.ITERATION] == 40


def test_early_stopping_ends_the_progress_bar_with_what_was_done(points):
    run = run_script(
        f"{loads('train', 'train_labels', 'valid', 'valid_labels')}"
        " nn_init nn_input IN,2 nn_fc OUT,IN,3 nn_loss_softmax_crossentropy LOSS,OUT,GT"
        " nn_trainer T,LOSS,1e-30,sgd nn_train[train,train_labels] 1000,16,.,[valid,valid_labels],10,3"
    )
    last = [line for line in run.err.splitlines() if line.startswith("nn_train")][-1]
    assert re.search(r"\] 40/1000 stopped early loss .* \d+\.\ds( \(\S+ compiling\))?$", last), last
    assert "eta" not in last  # its time taken, not a time left


def test_resuming_the_checkpoint_of_a_finished_run_says_it_is_already_trained(points):
    training = "nn_train[train,train_labels] 30,16,.,0,100,0,0,ck.gmz,10"  # checkpoint every 10
    script = f"{loads('train', 'train_labels')} {CLASSIFIER} {training}"
    run_script(script, quiet=True)
    again = run_script(script)
    assert again.err.splitlines() == [
        "resuming from checkpoint ck.gmz",
        "nn_train train: already trained: checkpoint ck.gmz holds the run's end (iteration 30);"
        " delete it to train again",
    ]


def test_keep_best_ends_with_the_weights_of_the_lowest_validation_loss(points):
    # the validation labels contradict the training labels: the validation loss only rises
    np.save(points / "contrary.npy", np.roll(np.load(points / "valid_labels.npy"), 1, axis=0))
    script = f"{loads('train', 'train_labels', 'valid', 'contrary')} {CLASSIFIER}"
    run = run_script(f"{script} nn_train[train,train_labels] 50,16,.,[valid,contrary],10,0,1")
    best = run.interpreter
    trainer = best.workspace.network().trainers["T"]
    losses = [value for _, value in trainer.validation]
    assert losses == sorted(losses) and losses[0] < losses[-1]  # rising throughout
    first = build(f"{script} nn_train[train,train_labels] 10,16")  # the weights at iteration 10
    for name in ("H_fc", "OUT_fc"):
        assert np.array_equal(best.workspace.images.get(name), first.workspace.images.get(name))
    assert float(best.lookup("val_loss")) == pytest.approx(losses[0], rel=1e-5)
    assert best.workspace.images.get("T").reshape(-1)[schedulers.ITERATION] == 50  # the trainer went on
    assert "kept the weights of iteration 10" in run.err
    assert f"val_loss {best.lookup('val_loss')}" in run.err.strip().splitlines()[-1]  # the kept one


def test_bad_validation_arguments_are_one_line_errors(points):
    script = f"{loads('train', 'train_labels')} {CLASSIFIER} nn_train[train,train_labels] 10,16,.,"
    for argument, expected in [
        ("1.5", "validation must be 0, a fraction"),
        ("[nothere]", "no image named 'nothere'"),
        ("[train]", "validation set: image .* has 2 channels but the network takes 5"),
        ("0.001", "leaves none"),
    ]:
        with pytest.raises(UserError, match=expected) as info:
            build(script + argument)
        assert "\n" not in str(info.value)


# --- checkpoints --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_checkpoint(points):
    """Kill a real training after its first checkpoints; running the same command again
    finishes it, with the weights an uninterrupted run reaches (each run a process of its
    own, as a user runs them)."""
    training = (
        f"{loads('train', 'train_labels', 'valid', 'valid_labels')} {CLASSIFIER}"
        " nn_train[train,train_labels] 6000,16,.,[valid,valid_labels],500,0,0,{},100"
        " echo $val_loss nn_save {}.tif"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def command(checkpoint, result):
        return [
            sys.executable,
            "-m",
            "nnpipe",
            "--seed",
            "4",
            "-q",
            *training.format(checkpoint, result).split(),
        ]

    process = subprocess.Popen(command("ck.gmz", "killed"), cwd=points, env=env)
    try:
        while process.poll() is None and not (points / "ck.gmz").exists():
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.skip("the training ended before it could be killed")
    reached = dict((e.name, e.image) for e in files.read(str(points / "ck.gmz")).entries)["T"]
    assert 0 < reached.reshape(-1)[schedulers.ITERATION] < 6000  # really interrupted

    def finished(checkpoint, result):
        done = subprocess.run(
            command(checkpoint, result), cwd=points, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip(), {
            e.name: e.image for e in files.read(str(points / f"{result}.tif")).entries
        }

    resumed_loss, resumed = finished("ck.gmz", "resumed")
    whole_loss, whole = finished("other.gmz", "whole")
    for name in ("H_fc", "OUT_fc", "OUT_fc_v", "T"):
        np.testing.assert_allclose(resumed[name], whole[name], rtol=1e-6, atol=1e-7)
    assert resumed_loss == whole_loss
    # run once more: the checkpoint says the training is over, nothing more is trained
    again = build(training.format("ck.gmz", "again"), seed=4)
    assert np.array_equal(again.workspace.images.get("OUT_fc"), whole["OUT_fc"])
    assert again.workspace.network().trainers["T"].history == []
    assert again.lookup("val_loss") == whole_loss  # the script can go on using it


def test_a_checkpoint_of_another_network_is_refused(points):
    build(
        f"{loads('train', 'train_labels')} {CLASSIFIER} nn_train[train,train_labels] 5,16,.,0,10,0,0,ck.gmz"
    )
    other = CLASSIFIER.replace("H,IN,16", "H,IN,8")
    with pytest.raises(UserError, match="checkpoint 'ck.gmz' holds another network") as info:
        build(f"{loads('train', 'train_labels')} {other} nn_train[train,train_labels] 5,16,.,0,10,0,0,ck.gmz")
    assert "\n" not in str(info.value)


def test_nn_plot_draws_the_validation_loss_beside_the_training_loss(points):
    script = f"{loads('train', 'train_labels', 'valid', 'valid_labels')} {CLASSIFIER}"
    build(f"{script} nn_train[train,train_labels] 200,16 nn_plot plain.png")
    build(f"{script} nn_train[train,train_labels] 200,16,.,[valid,valid_labels],20 nn_plot validated.png")

    def green(file):  # matplotlib's third colour, after the batch loss and its running mean
        pixels = np.asarray(Image.open(points / file).convert("RGB")).astype(int)
        return int((np.abs(pixels - (44, 160, 44)).sum(axis=2) < 40).sum())

    assert green("plain.png") == 0 and green("validated.png") > 100

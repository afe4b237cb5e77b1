"""Training and inference commands: nn_train, nn_step, nn_eval, nn_coords, nn_samples, nn_plot."""

import re

import nn_helpers
import numpy as np
import pytest
from conftest import REPO, cli, run_script, script_error
from nn_helpers import parameters, run_batch

from nnpipe.errors import UserError
from nnpipe.nn import engine, files

XOR_SAMPLES = "(0,0,1,1^0,1,0,1^0,1,1,0)"  # 4 pixels; channels x1, x2, x1 xor x2
XOR_INPUTS = "(0,0,1,1^0,1,0,1)"
XOR_NET = (
    "nn_init nn_input IN,2 nn_fcnl H,IN,8,tanh nn_fc OUT,H,1 nn_loss_mse LOSS,OUT,GT"
    " nn_trainer T,LOSS,1e-2,adam"
)


def network_images(run):
    owned = run.interpreter.workspace.network_images()
    return {name: run.images.get(name).copy() for name in run.names if name in owned}


def test_xor_trains_to_a_small_loss():
    run = run_script(f"{XOR_SAMPLES} {XOR_NET} nn_train 1500,4 {XOR_INPUTS} nn_eval", seed=3)
    prediction = run.image(-1)
    assert run.names[-1] == "OUT" and prediction.shape == (1, 1, 1, 4)
    assert np.mean((prediction.ravel() - [0, 1, 1, 0]) ** 2) < 0.01
    history = run.interpreter.workspace.network().trainers["T"].history
    assert len(history) == 1500
    assert float(run.interpreter.lookup("loss")) < 0.01
    assert run.images.get("T")[0, 0, 0, 0] == 1500  # the iteration counter


def test_loss_variable_is_the_last_batch_loss():
    run = run_script(f"{XOR_SAMPLES} {XOR_NET} nn_train 20,4 e got:$loss", seed=3)
    history = run.interpreter.workspace.network().trainers["T"].history
    assert run.lines[-1].startswith("got:")
    assert float(run.lines[-1][4:]) == pytest.approx(history[-1], rel=1e-6)
    state = run.images.get("T")[0, 0]
    assert state[0, 3] == pytest.approx(history[-1], rel=1e-6)  # previous loss
    assert state[0, 4] == pytest.approx(min(history), rel=1e-6)  # best loss


def test_a_batch_larger_than_the_samples_takes_each_sample_once():
    whole = run_script(f"{XOR_SAMPLES} {XOR_NET} nn_train 3,1000000000", seed=3)
    steps = run_script(f"{XOR_SAMPLES} {XOR_NET} nn_step nn_step nn_step", seed=3)
    assert network_images(whole).keys() == network_images(steps).keys()
    for name, image in network_images(whole).items():
        assert np.array_equal(image, network_images(steps)[name]), name


def test_coordinate_network_on_an_image_crop_learns():
    path = REPO / "examples" / "data" / "astronaut256.png"  # in the repository: never skipped
    run = run_script(
        f"input {path} crop 100,60,115,75 nn_samples"
        " nn_init nn_input IN,2 nn_fcnnl L1,IN,32 nn_resfcnl L2,L1 nn_resfcnl L3,L2"
        " nn_fc OUT,L3,3 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,2e-3,adam nn_train 300,32",
        seed=5,
    )
    assert run.images[0].shape == (5, 1, 256, 1)
    history = np.array(run.interpreter.workspace.network().trainers["T"].history)
    assert len(history) == 300 and np.all(np.isfinite(history))
    assert history[-30:].mean() < 0.5 * history[:10].mean()
    # the running statistics of the normalize layer moved away from (0, 1)
    assert run.images.get("L1_normalize")[0, 0, 0, 2:].tolist() != [0, 1]


def test_same_seed_same_weights_other_seed_other_weights():
    script = f"{XOR_SAMPLES} {XOR_NET} nn_train 50,3"
    first, second, other = (network_images(run_script(script, seed=s)) for s in (11, 11, 12))
    assert first.keys() == second.keys() and "H_fc_m" in first and "T" in first
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert not np.array_equal(first["H_fc"], other["H_fc"])


def test_training_in_two_runs_equals_training_in_one():
    """The iteration counter, the moments and the batch draws carry over between nn_train calls."""
    once = network_images(run_script(f"{XOR_SAMPLES} {XOR_NET} nn_train 40,3", seed=2))
    twice = network_images(run_script(f"{XOR_SAMPLES} {XOR_NET} nn_train 15,3 nn_train 25,3", seed=2))
    for name in once:
        np.testing.assert_allclose(twice[name], once[name], rtol=1e-6, atol=1e-7, err_msg=name)


STEP_NET = (
    "(0.1,-0.4,0.7,0.2,-0.9,0.5^0.3,0.8,-0.2,-0.6,0.1,0.4^1,0,0.5,0.2,0.9,0.3)"
    " nn_init nn_input IN,2 nn_fcnl H,IN,4,tanh nn_fc OUT,H,1 nn_loss_mse LOSS,OUT,GT"
    " nn_trainer T,LOSS,0.1,sgd"
)


def test_nn_step_trains_one_step_on_every_pixel_of_the_last_image():
    run = run_script(STEP_NET)
    interp = run.interpreter
    plan = interp.workspace.network().plan("LOSS")
    before = parameters(interp, plan)
    samples = run.images[0].reshape(3, -1).T
    loss, grads, _ = run_batch(plan, before, samples)
    interp.run_items(["nn_step"])
    after = parameters(interp, plan)
    assert interp.workspace.images.get("T")[0, 0, 0, 0] == 1
    assert float(interp.lookup("loss")) == pytest.approx(loss, rel=1e-5)
    # sgd: one step along the gradient of the loss over the whole image
    np.testing.assert_allclose(after, before - 0.1 * grads, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_training_step_over_many_chunks_and_threads_is_one_batch_gradient(monkeypatch):
    """101 samples: chunks shared among the machine's threads (the parallel path, here forced
    for a small network); with normalize and dropout, the step still follows the gradient of
    the batch-mean loss."""
    monkeypatch.setattr(engine, "PARALLEL_WORK", 0)
    run = run_script(
        "input 101,1,1,5 noise 0.7 nn_init nn_input IN,2 nn_fcnnl H,IN,6,sigmoid"
        " nn_dropout D,H,0.3 nn_nlfc G,D,3,tanh nn_fc OUT,G,3 nn_loss_mse LOSS,OUT,GT"
        " nn_trainer T,LOSS,0.1,sgd",
        seed=8,
    )
    interp = run.interpreter
    plan = interp.workspace.network().plan("LOSS")
    before = parameters(interp, plan)
    samples = run.images[0].reshape(5, -1).T
    seed = int(run.images.get("T")[0, 0, 1, 0])  # the trainer's seed (iteration 0)
    loss, grads, _ = run_batch(plan, before, samples, training=True, seed=seed)
    interp.run_items(["nn_step"])
    after = parameters(interp, plan)
    assert float(interp.lookup("loss")) == pytest.approx(loss, rel=1e-5)
    trained = plan.mask == 1  # running statistics move otherwise
    assert trained.sum() == plan.parameter_size - 2
    np.testing.assert_allclose(after[trained], (before - 0.1 * grads)[trained], rtol=1e-5, atol=1e-6)


def test_nn_step_moves_the_normalize_running_statistics():
    run = run_script(
        "(0.1,-0.4,0.7,0.2,-0.9^0.3,0.8,-0.2,-0.6,0.1^1,0,0.5,0.2,0.9)"
        " nn_init nn_input IN,2 nn_fc A,IN,4 nn_normalize N,A nn_fc OUT,N,1"
        " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,0.01,sgd"
    )
    interp = run.interpreter
    plan = interp.workspace.network().plan("LOSS")
    params = parameters(interp, plan)
    samples = run.images[0].reshape(3, -1).T
    acts = nn_helpers.activations(plan, params, samples)
    a = acts[:, plan.offsets["A"] : plan.offsets["A"] + 4].astype(np.float64)
    interp.run_items(["nn_step"])
    alpha, beta, mean, var = interp.workspace.images.get("N_normalize").ravel()
    assert mean == pytest.approx(0.01 * a.mean(axis=1).mean(), rel=1e-4)
    assert var == pytest.approx(0.99 + 0.01 * a.var(axis=1, ddof=1).mean(), rel=1e-5)
    assert (alpha, beta) != (1, 0)


@pytest.mark.parametrize("mode, moving", [(0, "none"), (1, "weights"), (2, "biases"), (3, "all")])
def test_learning_mode_chooses_what_trains(mode, moving):
    run = run_script(
        f"{XOR_SAMPLES} nn_init nn_input IN,2 nn_fc OUT,IN,1,{mode}"
        " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
    )
    before = run.images.get("OUT_fc").copy()
    if not mode & 2:
        assert before[0, 0, 0, -1] == 0  # biases that do not learn start at 0
    run.interpreter.run_items(["nn_train", "5,4"])
    after = run.images.get("OUT_fc")
    weights_moved = not np.array_equal(after[..., :-1], before[..., :-1])
    biases_moved = not np.array_equal(after[..., -1], before[..., -1])
    assert (weights_moved, biases_moved) == {
        "none": (False, False),
        "weights": (True, False),
        "biases": (False, True),
        "all": (True, True),
    }[moving]


# --- inference and data layouts --------------------------------------------------------------


def test_nn_eval_keeps_width_and_height_with_one_channel_per_output():
    run = run_script(
        "input 5,4,1,2 noise 1 nn_init nn_input IN,2 nn_fcnl H,IN,6,tanh nn_fc OUT,H,3 nn_eval nn_eval[0] H"
    )
    out, hidden = run.images[-2], run.images[-1]
    assert run.names[-2:] == ["OUT", "H"]
    assert out.shape == (3, 1, 4, 5) and hidden.shape == (6, 1, 4, 5)
    # pixel (x=3, y=2) of the output is the network applied to pixel (3, 2) of the input
    x = run.images[0][:, 0, 2, 3].astype(np.float64)
    w1, w2 = (run.images.get(n)[0, 0].astype(np.float64) for n in ("H_fc", "OUT_fc"))
    h = np.tanh(w1[:, :-1] @ x + w1[:, -1])
    np.testing.assert_allclose(hidden[:, 0, 2, 3], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 0, 2, 3], w2[:, :-1] @ h + w2[:, -1], rtol=1e-5, atol=1e-6)


def test_nn_eval_is_the_same_in_one_chunk_or_many():
    """Inference over many pixels (several chunks, several threads) equals pixel-by-pixel."""
    run = run_script(
        "input 37,29,1,2 noise 1 nn_init nn_input IN,2 nn_fcnnl H,IN,5,sigmoid"
        " nn_dropout D,H,0.5 nn_fc OUT,D,2 nn_eval"
    )
    x = run.images[0].reshape(2, -1).T
    result = run.image(-1).reshape(2, -1).T
    single = run_script("nn_init nn_input IN,2 nn_fcnnl H,IN,5,sigmoid nn_dropout D,H,0.5 nn_fc OUT,D,2")
    for name in ("H_fc", "H_normalize", "OUT_fc"):
        single.workspace.images.set(name, run.images.get(name))
    for row in (0, 1, 500, len(x) - 1):
        single.interpreter.workspace.images.append(x[row].reshape(2, 1, 1, 1))
        single.interpreter.run_items(["nn_eval"])
        np.testing.assert_allclose(single.image(-1).ravel(), result[row], rtol=1e-5, atol=1e-6)


RGB = "(0,10,20,30;40,50,60,70;80,90,100,110^1,2,3,4;5,6,7,8;9,10,11,12^255,0,255,0;0,255,0,255;5,5,5,5)"


def test_nn_samples_layout():
    run = run_script(f"{RGB} nn_samples")
    samples = run.image(0)
    assert samples.shape == (5, 1, 12, 1)  # size 1,M,1,5 as in the seed
    image = run_script(RGB).image(0)  # (3, 1, 3, 4)
    ys, xs = np.divmod(np.arange(12), 4)
    np.testing.assert_allclose(samples[0, 0, :, 0], np.linspace(-1, 1, 4)[xs], atol=1e-7)
    np.testing.assert_allclose(samples[1, 0, :, 0], np.linspace(-1, 1, 3)[ys], atol=1e-7)
    for c in range(3):
        np.testing.assert_allclose(samples[2 + c, 0, :, 0], image[c, 0, ys, xs] / 255, rtol=1e-6)
    scaled = run_script(f"{RGB} nn_samples 10").image(0)
    np.testing.assert_allclose(scaled[2:], samples[2:] * 25.5, rtol=1e-5)


def test_nn_coords_layout():
    run = run_script(f"{RGB} nn_coords")
    coords = run.image(0)
    assert coords.shape == (2, 1, 3, 4)
    np.testing.assert_allclose(coords[0, 0], np.tile(np.linspace(-1, 1, 4), (3, 1)), atol=1e-7)
    np.testing.assert_allclose(coords[1, 0], np.tile(np.linspace(-1, 1, 3)[:, None], (1, 4)), atol=1e-7)


def test_coordinate_network_predicts_an_image_from_nn_coords():
    """The seed's workflow: train on nn_samples, then nn_eval on nn_coords gives an RGB image."""
    run = run_script(
        f"{RGB} nn_samples nn_init nn_input IN,2 nn_fcnl H,IN,8,tanh nn_fc OUT,H,3"
        f" nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam nn_train 5,4"
        f" input 4,3 nn_coords nn_eval"
    )
    predicted = run.image(-1)
    assert predicted.shape == (3, 1, 3, 4)
    # each pixel is the trained network at that pixel's (x, y): tanh(W1 [x y 1]) then W2 [h 1]
    hidden, output = (run.images.get(name)[0, 0].astype(np.float64) for name in ("H_fc", "OUT_fc"))
    x, y = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 3))
    inputs = np.stack([x.ravel(), y.ravel(), np.ones(12)])
    activations = np.vstack([np.tanh(hidden @ inputs), np.ones(12)])
    expected = (output @ activations).reshape(3, 3, 4)
    np.testing.assert_allclose(predicted[:, 0], expected, rtol=1e-4, atol=1e-5)


# --- non-finite losses -----------------------------------------------------------------------

DIVERGING = (
    "(1,2,3,4,5^2,4,6,8,10) nn_init nn_input IN,1 nn_fc OUT,IN,1 nn_loss_mse LOSS,OUT,GT"
    " nn_trainer T,LOSS,1e3,sgd"
)


def failing_iteration(err):
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == 1, err
    match = re.search(r"loss is not finite at iteration (\d+)", lines[0])
    assert match, lines[0]
    return int(match[1])


def test_diverging_training_stops_keeping_the_weights_from_before_the_failing_step():
    stopped = run_script(DIVERGING + " nn_train 200,5", seed=4)
    k = failing_iteration(stopped.err) - 1  # the steps before the failing one
    assert 0 < k < 200
    assert stopped.interpreter.lookup("loss") == "nan"
    assert len(stopped.interpreter.workspace.network().trainers["T"].history) == k
    exact = run_script(DIVERGING + f" nn_train {k},5", seed=4)
    assert "not finite" not in exact.err  # it only warns that the loss grows
    for name in ("OUT_fc", "T"):
        np.testing.assert_array_equal(
            stopped.workspace.images.get(name), exact.workspace.images.get(name), err_msg=name
        )
    assert np.all(np.isfinite(stopped.workspace.images.get("OUT_fc")))
    assert stopped.workspace.images.get("T")[0, 0, 0, 0] == k


def test_nan_samples_stop_at_the_first_iteration_with_the_weights_untouched():
    before = run_script(
        "(1,2,nan^1,2,3) nn_init nn_input IN,1 nn_fc OUT,IN,1"
        " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam",
        seed=1,
    )
    after = run_script(
        "(1,2,nan^1,2,3) nn_init nn_input IN,1 nn_fc OUT,IN,1"
        " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam nn_step e after",
        seed=1,
    )
    assert failing_iteration(after.err) == 1
    assert after.lines[-1] == "after"  # the script went on
    for name in ("OUT_fc", "OUT_fc_m", "OUT_fc_v", "T"):
        np.testing.assert_array_equal(
            after.workspace.images.get(name), before.workspace.images.get(name), err_msg=name
        )


def test_non_finite_loss_keeps_exit_status_0_on_the_command_line():
    result = cli("--seed", "4", *DIVERGING.split(), "nn_train", "200,5", "e", "finished")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "finished"
    failing_iteration(result.stderr)


# --- loss curve ------------------------------------------------------------------------------


def test_nn_plot_writes_a_png(work):
    run_script(f"{XOR_SAMPLES} {XOR_NET} nn_train 30,4 nn_plot curve.png", seed=1)
    data = (work / "curve.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in work.iterdir()] == ["curve.png"]  # no temporary left behind
    loaded = run_script("input curve.png").image(0)
    assert loaded.shape[2] > 100 and loaded.shape[3] > 100 and loaded.std() > 0


def test_nn_plot_draws_a_long_history_as_the_band_its_losses_cover():
    """150,000 losses drawn one by one took seconds for a picture 700 pixels wide: each column
    is drawn as the band from its lowest loss to its highest, which is what the line showed."""
    from nnpipe.commands.plot import WIDTH, envelope

    losses = np.random.default_rng(0).random(150_000)
    iterations = np.arange(1, len(losses) + 1)
    middles, lowest, highest = envelope(iterations, losses, WIDTH)
    assert len(middles) == len(lowest) == len(highest) == WIDTH
    assert np.all(np.diff(middles) > 0) and middles[0] < 200 and middles[-1] > 149_800
    assert lowest.min() == losses.min() and highest.max() == losses.max()
    column = losses[: len(losses) // WIDTH]  # the first column's losses
    assert lowest[0] == column.min() and highest[0] == column.max()


def test_nn_plot_before_training_is_an_error(work):
    error = script_error(f"{XOR_NET} nn_plot curve.png")
    assert error.command == "nn_plot" and "train first" in error.message
    assert not (work / "curve.png").exists()


# --- diverging training (issue 26) -------------------------------------------------------------

XOR = (
    "(0,0,1,1^0,1,0,1^0,1,1,0) name. samples nn_init nn_input IN,2 nn_fcnl H,IN,8,tanh nn_fc OUT,.,1"
    " nn_loss_mse LOSS,OUT,GT"
)


def test_weights_an_update_would_make_infinite_stop_training_and_the_saved_network_is_finite(work):
    stopped = run_script(
        f"{XOR} nn_trainer T,LOSS,1e38,sgd nn_train[samples] 2000,4 nn_save x.tif"
        " input (0,0,1,1^0,1,0,1) nn_eval[-1] echo {i(#-1,0)}",
        seed=1,
    )
    warnings = [line for line in stopped.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "the weights would not be finite after iteration" in warnings[0]
    assert np.isfinite(float(stopped.lines[-1]))  # not the -nan of a network holding inf
    k = int(re.search(r"after iteration (\d+)", warnings[0])[1]) - 1
    exact = run_script(f"{XOR} nn_trainer T,LOSS,1e38,sgd nn_train[samples] {k},4", seed=1) if k else None
    for name in ("H_fc", "OUT_fc", "T"):  # the weights from before the failing step, exactly
        kept = stopped.workspace.images.get(name)
        assert name == "T" or np.all(np.isfinite(kept))
        if exact is not None:
            np.testing.assert_array_equal(kept, exact.workspace.images.get(name), err_msg=name)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam", "adamax", "adagrad"])
def test_a_loss_growing_by_orders_of_magnitude_is_reported_once(optimizer):
    run = run_script(f"{XOR} nn_trainer T,LOSS,1e10,{optimizer} nn_train[samples] 300,4", seed=1)
    warnings = [line for line in run.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "the training diverges" in warnings[0], run.err
    assert re.search(r"the loss grew from \S+ to \S+ by iteration \d+", warnings[0])


def test_a_converging_training_reports_nothing():
    run = run_script(f"{XOR} nn_trainer T,LOSS,1e-2,adam nn_train[samples] 300,4", seed=1)
    assert "warning" not in run.err


def test_nn_save_refuses_and_nn_load_names_weights_that_are_not_finite(work):
    run = run_script(f"{XOR} nn_save good.tif", seed=1)
    run.workspace.images.get("OUT_fc")[0, 0, 0, 1] = np.inf
    with pytest.raises(UserError, match="the weights 'OUT_fc' of network 'nn' are not all finite"):
        run.interpreter.run_items(["nn_save", "bad.tif"])
    assert not (work / "bad.tif").exists()
    saved = files.read("good.tif")
    for entry in saved.entries:
        if entry.name == "H_fc":
            entry.image[0, 0, 0, 0] = np.nan
    files.tiff_format.write(str(work / "nan.tif"), saved)
    error = script_error("nn_load nan.tif")
    assert "cannot load 'nan.tif': the weights of layer 'H_fc' are not all finite" in error.message

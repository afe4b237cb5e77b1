"""Finite-difference checks of every layer's and loss's gradients.

Each network is built through the real interpreter; its plan is then run by calling the
engine's kernels directly on a small batch, so the analytic gradients (of the batch-mean loss)
can be compared with central differences of that same loss, for the parameters and the inputs.

The kernels are compiled for the type of their arguments, so the checks run them in float64:
a central difference of step h then errs by ~h^2 (truncation) + 1e-16/h (rounding), below
1e-8 at h = 1e-5, and a wrong derivative cannot hide under float32 rounding as it could with
the 2e-2 tolerance float32 differences needed."""

import math

import numpy as np
import pytest
from nn_helpers import activations, build, parameters, run_batch

from nnpipe.nn import activations as act_module

BATCH = 3
CHECKED = np.float64
# small enough that a step never crosses a kink the samples are kept away from (0.02 and more)
STEP = 1e-5
# relative agreement demanded of analytic and numeric gradients (measured: ~1e-8 in float64)
TOLERANCE = 1e-5


def prepare(script, seed=0, positive=False, training=False, dropout_seed=7, tweak=None, api="2023"):
    """Build `script` (a network of nn_lib's `api` whose loss is LOSS with ground truth GT) and
    a batch of samples: inputs of magnitude 0.3..1.2 (away from the kinks at 0), ground truths
    0.5..1.5 away from the predictions (away from the kink of |d|)."""
    interp = build(script, seed, api)
    if tweak:
        tweak(interp)
    plan = interp.workspace.network().plan("LOSS")
    params = parameters(interp, plan)
    rng = np.random.default_rng(seed + 1)
    columns = {name: (start, length) for name, start, length in _feed_columns(plan)}
    samples = np.zeros((BATCH, plan.feed_width), dtype=CHECKED)
    for name, (start, length) in columns.items():
        if name != "GT":
            magnitude = rng.uniform(0.3, 1.2, (BATCH, length))
            sign = 1 if positive else rng.choice([-1, 1], (BATCH, length))
            samples[:, start : start + length] = sign * magnitude
    acts = activations(plan, params, samples, training, dropout_seed, CHECKED)
    offset, length = plan.output
    start, gt_length = columns["GT"]
    assert gt_length == length
    away = rng.choice([-1, 1], (BATCH, length)) * rng.uniform(0.5, 1.5, (BATCH, length))
    samples[:, start : start + length] = acts[:, offset : offset + length] + away
    return interp, plan, params, samples, columns


def _feed_columns(plan):
    column = 0
    for name, _, length in plan.feeds:
        yield name, column, length
        column += length


def checked_parameters(interp, plan):
    """Indices of the parameter vector whose gradient is defined: everything but the running
    statistics of normalize layers."""
    network = interp.workspace.network()
    indices = []
    for name, offset, shape in plan.parameters:
        count = int(np.prod(shape))
        local = np.arange(count)
        if network.modules[name].layer.kind == "normalize":
            local = local[local % 4 < 2]
        indices.extend(offset + local)
    return np.array(indices, dtype=np.int64)


def numeric_gradient(function, vector, indices, step=STEP):
    result = np.empty(len(indices))
    for j, i in enumerate(indices):
        h = step * max(1.0, abs(float(vector.flat[i])))
        plus, minus = vector.astype(CHECKED), vector.astype(CHECKED)
        plus.flat[i] += h
        minus.flat[i] -= h
        result[j] = (function(plus) - function(minus)) / (2 * h)
    return result


def assert_close(analytic, numeric, what):
    scale = max(1.0, float(np.abs(numeric).max()))
    np.testing.assert_allclose(
        analytic,
        numeric,
        rtol=TOLERANCE,
        atol=TOLERANCE * scale,
        err_msg=f"{what}: analytic vs finite differences",
    )


def check(
    script, positive=False, training=False, dropout_seed=7, tweak=None, inputs=True, seed=0, api="2023"
):
    interp, plan, params, samples, columns = prepare(
        script, seed, positive, training, dropout_seed, tweak, api
    )
    params = params.astype(CHECKED)
    value, grads, sample_grads = run_batch(plan, params, samples, training, dropout_seed, CHECKED)
    assert math.isfinite(value)
    # training skips the gradients no parameter needs: the parameters' own stay the same
    as_trained = run_batch(plan, params, samples, training, dropout_seed, CHECKED, as_trained=True)
    np.testing.assert_array_equal(as_trained[1], grads)

    def loss_of_params(p):
        return run_batch(plan, p, samples, training, dropout_seed, CHECKED)[0]

    indices = checked_parameters(interp, plan)
    if len(indices):
        numeric = numeric_gradient(loss_of_params, params, indices)
        assert np.abs(numeric).max() > 1e-3, "degenerate check: the loss does not move"
        assert_close(grads[indices], numeric, "parameter gradients")
    if inputs:
        start, length = columns["IN"]
        flat_indices = [b * samples.shape[1] + start + k for b in range(BATCH) for k in range(length)]

        def loss_of_samples(s):
            return run_batch(plan, params, s, training, dropout_seed, CHECKED)[0]

        numeric = numeric_gradient(loss_of_samples, samples, flat_indices)
        assert np.abs(numeric).max() > 1e-3, "degenerate check: the inputs do not move the loss"
        analytic = sample_grads[:, start : start + length].ravel()
        assert_close(analytic, numeric, "input gradients")
    return interp, plan, params, samples


def set_image(interp, name, values):
    """Set the parameters of layer `name` (the image of that name, or NET_name in a G'MIC 3.6
    network NET)."""
    name = interp.workspace.network().image_name(name)
    image = interp.workspace.images.get(name)
    interp.workspace.images.set(name, np.asarray(values, dtype=np.float32).reshape(image.shape))


def random_normalize(name, seed=3):
    """Give normalize layer `name` non-trivial alpha, beta, running mean and variance."""

    def tweak(interp):
        image = interp.workspace.images.get(interp.workspace.network().image_name(name))
        groups = image.size // 4
        rng = np.random.default_rng(seed)
        rows = np.column_stack(
            [
                rng.uniform(0.5, 1.5, groups),
                rng.uniform(-0.5, 0.5, groups),
                rng.uniform(-0.3, 0.3, groups),
                rng.uniform(0.5, 2.0, groups),
            ]
        )
        set_image(interp, name, rows)

    return tweak


# --- layers ----------------------------------------------------------------------------------


def test_fc():
    check("nn_input IN,3 nn_fc OUT,IN,2 nn_loss_mse LOSS,OUT,GT")


def test_fc_on_an_image_shaped_input():
    check("nn_input IN,2,2,1,2 nn_fc OUT,IN,3 nn_loss_mse LOSS,OUT,GT")


def test_scale():
    def tweak(interp):
        set_image(interp, "S_scale", np.random.default_rng(4).uniform(-1.5, 1.5, 6))

    check("nn_input IN,2,2,1,3 nn_scale S,IN nn_fc OUT,S,2 nn_loss_mse LOSS,OUT,GT", tweak=tweak)


def test_fc_then_nonlinearity():
    check("nn_input IN,3 nn_fcnl H,IN,4,tanh nn_fc OUT,H,2 nn_loss_mse LOSS,OUT,GT")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "gelu", "sin"])
def test_nlfc(activation):
    check(f"nn_input IN,3 nn_nlfc OUT,IN,2,{activation} nn_loss_mse LOSS,OUT,GT")


@pytest.mark.parametrize("mode", [0, 1], ids=["global", "channelwise"])
def test_normalize(mode):
    # input of 2 values in each of 3 channels: channelwise mode has 3 groups of 2 values
    check(
        f"nn_input IN,2,1,1,3 nn_normalize N,IN,{mode} nn_fc OUT,N,2 nn_loss_mse LOSS,OUT,GT",
        tweak=random_normalize("N_normalize"),
    )


def test_normalize_leaves_running_statistics_out_of_the_gradient():
    interp, plan, params, samples, _ = prepare(
        "nn_input IN,2,1,1,3 nn_normalize N,IN,1 nn_fc OUT,N,2 nn_loss_mse LOSS,OUT,GT",
        tweak=random_normalize("N_normalize"),
    )
    _, grads, _ = run_batch(plan, params, samples)
    _, offset, shape = next(p for p in plan.parameters if p[0] == "N_normalize")
    rows = grads[offset : offset + int(np.prod(shape))].reshape(-1, 4)
    assert np.all(rows[:, 2:] == 0)
    assert np.all(np.abs(rows[:, :2]).sum(axis=1) > 0)


def test_fc_normalize_nonlinearity_block():
    check(
        "nn_input IN,3 nn_fcnnl H,IN,4,tanh nn_fc OUT,H,2 nn_loss_mse LOSS,OUT,GT",
        tweak=random_normalize("H_normalize"),
    )


# steps' slope jumps from 2 to 0.5 at a sixth from each integer: finite differences across
# those points mean nothing, so it is checked apart, at inputs away from them
SMOOTH_ACTIVATIONS = [name for name in act_module.NAMES_2023 if name != "steps"]


@pytest.mark.parametrize("activation", SMOOTH_ACTIVATIONS)
def test_every_activation(activation):
    # inputs are 0.3..1.2 away from 0 (the kink of relu, leakyrelu, elu, sqrt(|z|))
    check(f"nn_input IN,4 nn_nl A,IN,{activation} nn_fc OUT,A,2 nn_loss_mse LOSS,OUT,GT")


def test_steps_gradient_between_its_kinks():
    interp = build("nn_input IN,6 nn_nl A,IN,steps nn_fc OUT,A,1 nn_loss_mse LOSS,OUT,GT")
    plan = interp.workspace.network().plan("LOSS")
    params = parameters(interp, plan)
    # each 0.04 or more from the kinks at n +- 1/6 (where the slope changes)
    samples = np.array(
        [[-1.3, -0.05, 0.1, 0.3, 0.62, 1.9, 0.0], [2.08, -0.4, 0.7, -0.9, 1.4, 0.45, 1.0]], dtype=CHECKED
    )
    _, _, sample_grads = run_batch(plan, params, samples, dtype=CHECKED)
    columns = [b * samples.shape[1] + k for b in range(2) for k in range(6)]
    numeric = numeric_gradient(lambda s: run_batch(plan, params, s, dtype=CHECKED)[0], samples, columns)
    assert_close(sample_grads[:, :6].ravel(), numeric, "steps input gradients")


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


ACTIVATION_VALUES = {
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "gelu": gelu,
    "leakyrelu": lambda x: np.where(x > 0, x, 0.05 * x),
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "sin": np.sin,
    "sinc": lambda x: np.sin(x) / x,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True),
    "sqr": np.square,
    "sqrt": lambda x: np.sqrt(np.abs(x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "steps": lambda x: steps(x),
    **{f"waves{k}": (lambda k: lambda x: waves(x, *WAVES[k]))(k) for k in range(5)},  # noqa: B023
    "zpsinz": lambda x: x + 0.5 * np.sin(2 * np.pi * x),
}


def round_half_away(x):
    """G'MIC's round: halves go away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def steps(x):
    """nn_lib's steps with its default slopes S0 = 2 near integers, S1 = 0.5 between."""
    s0, s1 = 2.0, 0.5
    b = (1 - s1) / 2
    eps = b / (s0 - s1)
    r = round_half_away(x)
    f = x - r
    return r + np.where(f < -eps, s1 * f - b, np.where(f < eps, s0 * f, s1 * f + b))


def waves(x, a, b, c):
    r = round_half_away(x)
    f = x - r
    return r + a * f**3 + b * np.sign(f) * f**2 + c * f


# nn_lib's (a, b, c) for waves1..4; waves0's from its slopes S0 = 2, S1 = -1
S0, S1 = 2, -1
WAVES = [(4 * S0 + 4 * S1 - 8, -4 * S0 - 2 * S1 + 6, S0), (-6, 3, 1), (-4, 0, 2), (-2, -3, 3), (0, -6, 4)]


def test_activation_table_covers_every_name():
    assert set(ACTIVATION_VALUES) == set(act_module.NAMES_2023)


@pytest.mark.parametrize("activation", act_module.NAMES_2023)
def test_activation_values(activation):
    interp = build(f"nn_input IN,6 nn_nl A,IN,{activation}")
    plan = interp.workspace.network().plan("A")
    x = np.array(
        [
            [-2.5, -1.0, -0.3, 0.4, 1.1, 3.0],
            [0.2, -0.7, 1.9, -3.1, 0.05, 2.2],
            [0.1, 0.9, 1.5, -0.5, -1.25, 0.83],
        ]
    )
    acts = activations(plan, parameters(interp, plan), x)
    offset, length = plan.output
    np.testing.assert_allclose(
        acts[:, offset : offset + length], ACTIVATION_VALUES[activation](x), rtol=1e-5, atol=1e-6
    )


def test_add():
    check(
        "nn_input IN,1,1,1,3 nn_fc A,IN,3 nn_add S,A,IN nn_nl T,S,tanh nn_fc OUT,T,2 nn_loss_mse LOSS,OUT,GT"
    )


def test_mul():
    check("nn_input IN,1,1,1,3 nn_fc A,IN,3 nn_mul M,A,IN nn_fc OUT,M,2 nn_loss_mse LOSS,OUT,GT")


def test_mul_of_a_layer_with_itself():
    check("nn_input IN,3 nn_fc A,IN,3 nn_mul M,A,A nn_fc OUT,M,2 nn_loss_mse LOSS,OUT,GT")


def test_clone_and_rename_share_their_gradients():
    check(
        "nn_input IN,3 nn_fc A,IN,3 nn_clone C0,C1,A nn_nl S,C1,sin nn_rename R,S"
        " nn_mul M,C0,R nn_add P,M,C1 nn_fc OUT,P,2 nn_loss_mse LOSS,OUT,GT"
    )


def test_residual_blocks():
    check(
        "nn_input IN,1,1,1,3 nn_resfcnl R1,IN,tanh nn_resfc R2,R1 nn_resfcnl R3,R2,sigmoid"
        " nn_fc OUT,R3,2 nn_loss_mse LOSS,OUT,GT"
    )


def test_residual_block_with_normalize():
    check(
        "nn_input IN,1,1,1,3 nn_resfcnnl R,IN,tanh nn_fc OUT,R,2 nn_loss_mse LOSS,OUT,GT",
        tweak=random_normalize("R_normalize"),
    )


def test_dropout_in_training_mode():
    script = "nn_input IN,1,1,1,6 nn_fc A,IN,6 nn_dropout D,A,0.5 nn_fc OUT,D,2 nn_loss_mse LOSS,OUT,GT"
    interp, plan, params, samples = check(script, training=True, dropout_seed=11)
    # the check above is only meaningful if some channels were dropped and the rest scaled
    acts = activations(plan, params, samples, True, 11)
    a = acts[:, plan.offsets["A"] : plan.offsets["A"] + 6]
    d = acts[:, plan.offsets["D"] : plan.offsets["D"] + 6]
    ratios = d / a
    assert np.any(ratios == 0)
    kept = ratios[ratios != 0]
    assert np.all(kept > 1)
    for row in ratios:
        assert np.allclose(row[row != 0], 6 / np.count_nonzero(row))
    # one mask for the whole batch, as nn_lib draws it
    np.testing.assert_allclose(ratios, np.broadcast_to(ratios[0], ratios.shape), rtol=1e-6)
    # same seed, same mask; another seed, another mask; no dropout at inference
    again = activations(plan, params, samples, True, 11)
    np.testing.assert_array_equal(acts, again)
    other = activations(plan, params, samples, True, 12)
    assert not np.array_equal(
        acts[:, plan.offsets["D"] : plan.offsets["D"] + 6],
        other[:, plan.offsets["D"] : plan.offsets["D"] + 6],
    )
    inference = activations(plan, params, samples, False, 11)
    np.testing.assert_array_equal(
        inference[:, plan.offsets["D"] : plan.offsets["D"] + 6],
        inference[:, plan.offsets["A"] : plan.offsets["A"] + 6],
    )


def test_two_dropout_layers_draw_their_own_masks():
    interp = build("nn_input IN,1,1,1,64 nn_dropout D1,IN,0.5 nn_dropout D2,IN,0.5 nn_add S,D1,D2")
    plan = interp.workspace.network().plan("S")
    acts = activations(plan, parameters(interp, plan), np.ones((2, 64), dtype=np.float32), True, 3)
    first, second = (acts[:, plan.offsets[name] : plan.offsets[name] + 64] for name in ("D1", "D2"))
    assert not np.array_equal(first == 0, second == 0)


# --- losses ----------------------------------------------------------------------------------

LOSSES = {
    "mse": ("nn_loss_mse LOSS,OUT,GT", lambda d: np.mean(d**2, axis=1)),
    "normp0": ("nn_loss_normp LOSS,OUT,GT,0", lambda d: np.mean(d**2, axis=1)),
    "normp1": ("nn_loss_normp LOSS,OUT,GT,1", lambda d: np.abs(d).sum(axis=1) / d.shape[1]),
    "normp2": ("nn_loss_normp LOSS,OUT,GT,2", lambda d: np.sqrt((d**2).sum(axis=1)) / d.shape[1]),
    "normp3": (
        "nn_loss_normp LOSS,OUT,GT,3",
        lambda d: ((np.abs(d) ** 3).sum(axis=1)) ** (1 / 3) / d.shape[1],
    ),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss(name):
    declaration, formula = LOSSES[name]
    interp, plan, params, samples = check(f"nn_input IN,3 nn_fc OUT,IN,4 {declaration}")
    # the value is the batch mean of the per-sample loss
    acts = activations(plan, params, samples)
    offset, length = plan.output
    d = acts[:, offset : offset + length].astype(np.float64) - samples[:, 3:]
    value = run_batch(plan, params, samples)[0]
    assert value == pytest.approx(formula(d).mean(), rel=1e-5)

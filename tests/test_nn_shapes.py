"""Layers that move values around (reshape, split, append, crop, resize, patchdown/up),
distance, and the cross-entropy losses: output sizes by nn_lib's rules, values against numpy
references written from the CImg/nn_lib definitions, finite-difference gradients, and the
one-line errors for sizes that do not fit."""

import math

import numpy as np
import pytest
from conftest import script_error
from nn_helpers import activations, build, parameters, run_batch
from test_nn_gradients import check

BOUNDARY_CONDITIONS = ("dirichlet", "neumann", "periodic", "mirror")


def sizes(script, *names):
    network = build(script).workspace.network()
    return [network.modules[name].size for name in names]


def forward(script, target, image):
    """The value of layer `target` for one sample, the input IN being `image` (s,d,h,w)."""
    interp = build(script)
    network = interp.workspace.network()
    plan = network.plan(target)
    acts = activations(plan, parameters(interp, plan), image.reshape(1, -1))
    w, h, d, s = network.modules[target].size
    return acts[0, plan.offsets[target] : plan.offsets[target] + w * h * d * s].reshape(s, d, h, w)


def picture(w, h, d, s, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (s, d, h, w)).astype(np.float32)


# --- output sizes, by nn_lib's rules -------------------------------------------------------------


def test_crop_size_is_the_box_between_the_corners_in_any_order():
    assert sizes(
        "nn_input IN,5,4,3,2 nn_crop A,IN,1,0,0,0,3,3,0,1 nn_crop B,IN,3,3,2,1,-1,0,0,0", "A", "B"
    ) == [(3, 4, 1, 2), (5, 4, 3, 2)]


def test_resize_sizes_in_values_and_percents_of_each_axis():
    # nn_lib takes a width in % of the input's height: here the width follows the width
    assert sizes("nn_input IN,8,4,2,3 nn_resize A,IN,50%,150% nn_resize B,IN,5,1,10%,200%", "A", "B") == [
        (4, 6, 2, 3),
        (5, 1, 1, 6),
    ]


def test_patch_sizes():
    script = (
        "nn_input IN,7,5,5,2 nn_patchdown2d D2,IN nn_patchdown3d D3,IN,2"
        " nn_patchdown2d T,IN,3 nn_patchup2d U2,D2 nn_patchup3d U3,D3"
    )
    assert sizes(script, "D2", "D3", "T", "U2", "U3") == [
        (3, 2, 5, 8),
        (3, 2, 2, 16),
        (2, 1, 5, 18),
        (6, 4, 5, 2),
        (6, 4, 4, 2),
    ]


def test_split_append_reshape_distance_sizes():
    script = (
        "nn_input IN,3,2,1,5 nn_split A,B,IN,2 nn_append C,B,A nn_reshape R,C,5,1,6,1 nn_distance D,A,A,1"
    )
    assert sizes(script, "A", "B", "C", "R", "D") == [
        (3, 2, 1, 2),
        (3, 2, 1, 3),
        (3, 2, 1, 5),
        (5, 1, 6, 1),
        (1, 1, 1, 1),
    ]


@pytest.mark.parametrize("loss", ["crossentropy", "binary_crossentropy", "softmax_crossentropy"])
def test_losses_are_one_value_with_a_ground_truth_of_the_input_size(loss):
    network = build(f"nn_input IN,3,2,1,4 nn_loss_{loss} L,IN,GT").workspace.network()
    assert network.modules["L"].size == (1, 1, 1, 1)
    assert network.modules["GT"].size == (3, 2, 1, 4)
    assert network.modules["L"].layer.kind == f"loss_{loss}"
    assert network.modules["L"].layer.properties() == "ground_truth=GT"


def test_split_parts_and_reshape_share_their_input_buffer():
    network = build(
        "nn_input IN,2,2,1,3 nn_split A,B,IN,1 nn_reshape R,B,2,2,1,2 nn_append C,A,R"
    ).workspace.network()
    plan = network.plan("C")
    assert plan.offsets["A"] == plan.offsets["IN"]
    assert plan.offsets["B"] == plan.offsets["R"] == plan.offsets["IN"] + 4
    assert network.latest == "C"


# --- values --------------------------------------------------------------------------------------

NUMPY_PAD = {"dirichlet": "constant", "neumann": "edge", "periodic": "wrap", "mirror": "symmetric"}


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
def test_crop_values_follow_the_boundary_conditions(condition):
    image = picture(4, 3, 2, 2)
    got = forward(f"nn_input IN,4,3,2,2 nn_crop C,IN,-3,-1,1,-1,5,3,2,2,{condition}", "C", image)
    padded = np.pad(image, 5, mode=NUMPY_PAD[condition])
    np.testing.assert_array_equal(got, padded[5 - 1 : 5 + 3, 5 + 1 : 5 + 3, 5 - 1 : 5 + 4, 5 - 3 : 5 + 6])


def test_crop_boundary_conditions_by_number():
    image = picture(4, 3, 1, 1)
    script = "nn_input IN,4,3 nn_crop C,IN,-2,0,0,0,5,2,0,0,{}"
    for number, name in enumerate(BOUNDARY_CONDITIONS):
        np.testing.assert_array_equal(
            forward(script.format(number), "C", image), forward(script.format(name), "C", image)
        )


def cimg_axis_matrix(n_in, n_out, mode):
    """The (n_out, n_in) matrix of CImg's resize along one axis (boundary conditions 0,
    centering 0), transcribed from CImg::get_resize: 0 none, 1 nearest, 2 moving average,
    3 linear."""
    matrix = np.zeros((n_out, n_in))
    if n_in == n_out:
        return np.eye(n_in)
    if mode == 0:
        for o in range(min(n_in, n_out)):
            matrix[o, o] = 1
        return matrix
    if mode == 1 or (mode == 2 and n_out > n_in) or (mode == 3 and n_in == 1):
        for o in range(n_out):
            matrix[o, o * n_in // n_out] = 1
        return matrix
    if n_out < n_in:  # moving average (mode 2, and mode 3 when shrinking)
        a, b, c, s, t = n_in * n_out, n_in, n_out, 0, 0
        while a:
            step = min(b, c)
            a, b, c = a - step, b - step, c - step
            matrix[t, s] += step / n_in
            if not b:
                t, b = t + 1, n_in
            if not c:
                s, c = s + 1, n_out
        return matrix
    step, current = (n_in - 1) / (n_out - 1), 0.0
    for o in range(n_out):
        alpha, base = current - int(current), int(current)
        matrix[o, base] += 1 - alpha
        if alpha:
            matrix[o, base + 1] += alpha
        current = min(n_in - 1.0, current + step)
    return matrix


def cimg_resize(image, size, mode):
    """image (s,d,h,w) resized to size (w,h,d,s), one axis after the other."""
    result = image.astype(np.float64)
    for axis, n_out in zip((3, 2, 1, 0), size):
        result = np.moveaxis(
            np.tensordot(
                cimg_axis_matrix(result.shape[axis], n_out, mode), np.moveaxis(result, axis, 0), axes=1
            ),
            0,
            axis,
        )
    return result


RESIZES = {"up": (9, 7, 2, 3), "down": (2, 3, 1, 1), "mixed": (5, 2, 3, 1)}


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("resize", RESIZES)
def test_resize_values_match_cimg(resize, mode):
    image = picture(4, 5, 2, 2)
    size = RESIZES[resize]
    got = forward(f"nn_input IN,4,5,2,2 nn_resize R,IN,{','.join(map(str, size))},{mode}", "R", image)
    np.testing.assert_allclose(got, cimg_resize(image, size, mode), rtol=1e-5, atol=1e-6)


def test_resize_default_is_linear_with_aligned_corners():
    got = forward("nn_input IN,3 nn_resize R,IN,5", "R", np.array([0, 4, 2], dtype=np.float32))
    np.testing.assert_allclose(got.ravel(), [0, 2, 4, 3, 2])


def patchdown_reference(image, p, dimensions):
    s, d, h, w = image.shape
    pz = p if dimensions == 3 else 1
    blocks = image[:, : d // pz * pz, : h // p * p, : w // p * p].reshape(
        s, d // pz, pz, h // p, p, w // p, p
    )
    # channel c * P + px + p py + p^2 pz: axes (s, pz, py, px) outermost, in that order
    return blocks.transpose(0, 2, 4, 6, 1, 3, 5).reshape(s * pz * p * p, d // pz, h // p, w // p)


@pytest.mark.parametrize(
    "dimensions,p,size", [(2, 2, (4, 6, 1, 2)), (2, 3, (7, 6, 2, 1)), (3, 2, (4, 2, 5, 2))]
)
def test_patchdown_values(dimensions, p, size):
    image = picture(*size)
    got = forward(f"nn_input IN,{','.join(map(str, size))} nn_patchdown{dimensions}d P,IN,{p}", "P", image)
    np.testing.assert_array_equal(got, patchdown_reference(image, p, dimensions))


@pytest.mark.parametrize(
    "dimensions,p,size", [(2, 2, (4, 6, 1, 2)), (2, 3, (6, 3, 2, 1)), (3, 2, (4, 2, 4, 2))]
)
def test_patchup_undoes_patchdown(dimensions, p, size):
    image = picture(*size)
    script = (
        f"nn_input IN,{','.join(map(str, size))} nn_patchdown{dimensions}d P,IN,{p}"
        f" nn_patchup{dimensions}d U,P,{p}"
    )
    np.testing.assert_array_equal(forward(script, "U", image), image)
    # and patchdown undoes patchup
    down = patchdown_reference(image, p, dimensions)
    w, h, d, s = down.shape[::-1]
    script = f"nn_input IN,{w},{h},{d},{s} nn_patchup{dimensions}d U,IN,{p} nn_patchdown{dimensions}d P,U,{p}"
    np.testing.assert_array_equal(forward(script, "U", down), image)
    np.testing.assert_array_equal(forward(script, "P", down), down)


def test_split_append_values():
    image = picture(2, 2, 1, 3)
    script = "nn_input IN,2,2,1,3 nn_split A,B,IN,1 nn_append C,B,A"
    np.testing.assert_array_equal(forward(script, "A", image), image[:1])
    np.testing.assert_array_equal(forward(script, "B", image), image[1:])
    np.testing.assert_array_equal(forward(script, "C", image), np.concatenate([image[1:], image[:1]]))


@pytest.mark.parametrize("metric", [0, 1, 2, 3, 0.5])
def test_distance_values(metric):
    image = picture(3, 2, 1, 2)
    d = (image[0] - image[1]).astype(np.float64)
    expected = (d**2).sum() if metric == 0 else (np.abs(d) ** metric).sum() ** (1 / metric)
    got = forward(f"nn_input IN,3,2,1,2 nn_split A,B,IN,1 nn_distance D,A,B,{metric}", "D", image)
    assert got.item() == pytest.approx(expected, rel=1e-5)


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
def test_crop_gradient(condition):
    # the box reaches past the input on every axis, so border values are read several times
    check(f"nn_input IN,3,2,2,2 nn_crop C,IN,-3,-1,-1,-1,4,2,2,2,{condition} nn_loss_mse LOSS,C,GT")


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("size", ["5,2,1,3", "2,5,2,1"], ids=["wider", "taller"])
def test_resize_gradient(size, mode):
    check(f"nn_input IN,3,4,1,2 nn_resize R,IN,{size},{mode} nn_loss_mse LOSS,R,GT")


@pytest.mark.parametrize(
    "command,size",
    [
        ("patchdown2d", "5,4,1,2"),
        ("patchdown3d", "4,4,3,1"),
        ("patchup2d", "2,3,1,8"),
        ("patchup3d", "2,1,2,8"),
    ],
)
def test_patch_gradient(command, size):
    check(f"nn_input IN,{size} nn_{command} P,IN,2 nn_loss_mse LOSS,P,GT")


def test_split_reshape_append_gradient():
    check(
        "nn_input IN,2,2,1,3 nn_split A,B,IN,1 nn_nl S,B,sin nn_reshape R,S,4,1,1,2"
        " nn_reshape Q,A,4,1,1,1 nn_append C,R,Q nn_append J,C,C nn_fc OUT,J,3 nn_loss_mse LOSS,OUT,GT"
    )


@pytest.mark.parametrize("metric", [0, 1, 2, 3, 1.5])
def test_distance_gradient(metric):
    check(
        f"nn_input IN,3,2,1,2 nn_split A,B,IN,1 nn_distance D,A,B,{metric} nn_nl OUT,D,sin"
        " nn_loss_mse LOSS,OUT,GT"
    )


# --- cross-entropy losses --------------------------------------------------------------------------


def crossentropy(y, t):
    return -(t * np.log(y + 1e-8)).sum(axis=1)


def binary_crossentropy(y, t):
    return -(t * np.log(y + 1e-5) + (1 - t) * np.log(1 - y + 1e-5)).sum(axis=1)


def softmax_crossentropy(y, t):
    shifted = y - y.max(axis=1, keepdims=True)
    return -(t * (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))).sum(axis=1)


CE_LOSSES = {
    # predictions in (0, 1) where the formula takes logs of them
    "crossentropy": ("nn_nl OUT,A,softmax", crossentropy),
    "binary_crossentropy": ("nn_nl OUT,A,sigmoid", binary_crossentropy),
    "softmax_crossentropy": ("nn_rename OUT,A", softmax_crossentropy),
}


@pytest.mark.parametrize("loss", CE_LOSSES)
def test_crossentropy_gradient_and_value(loss):
    head, formula = CE_LOSSES[loss]
    interp, plan, params, samples = check(f"nn_input IN,3 nn_fc A,IN,4 {head} nn_loss_{loss} LOSS,OUT,GT")
    acts = activations(plan, params, samples)
    offset, length = plan.output
    y = acts[:, offset : offset + length].astype(np.float64)
    # a sum over the sample's values, not a mean; the batch mean of that
    assert run_batch(plan, params, samples)[0] == pytest.approx(formula(y, samples[:, 3:]).mean(), rel=1e-5)


def test_softmax_crossentropy_gradient_is_softmax_minus_one_hot_and_stable():
    interp = build("nn_input IN,4 nn_loss_softmax_crossentropy LOSS,IN,GT")
    plan = interp.workspace.network().plan("LOSS")
    scores = np.array([[1000.0, 0, -1000, 5], [0.5, -0.2, 0.1, 0.3]])
    truth = np.array([[0, 1, 0, 0], [0, 0, 0, 1]])
    value, _, grads = run_batch(plan, np.zeros(0, np.float32), np.hstack([scores, truth]))
    assert value == pytest.approx(softmax_crossentropy(scores, truth).mean(), rel=1e-5)
    assert math.isfinite(value) and value > 400
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    softmax = shifted / shifted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grads[:, :4], (softmax - truth) / 2, atol=1e-6)


# --- errors ----------------------------------------------------------------------------------------

ERRORS = {
    "reshape to another count": (
        "nn_input IN,2,3 nn_reshape R,IN,5,1,1,1",
        "nn_reshape",
        "cannot reshape input (2,3,1,1) to output (5,1,1,1)",
    ),
    "append of other widths": (
        "nn_input A,2,2 nn_input B,3,2 nn_append C,A,B",
        "nn_append",
        "same width, height and depth (got 2,2,1,1 and 3,2,1,1)",
    ),
    "split of all channels": (
        "nn_input IN,2,2,1,3 nn_split A,B,IN,3",
        "nn_split",
        "less than the input's 3 channels (got 3)",
    ),
    "split of no channel": ("nn_input IN,2,2,1,3 nn_split A,B,IN,0", "nn_split", "nb_channels0"),
    "patch larger than the input": (
        "nn_input IN,3,5 nn_patchdown2d P,IN,4",
        "nn_patchdown2d",
        "patch size 4x4 is larger than the input (3,5,1,1)",
    ),
    "3d patch deeper than the input": (
        "nn_input IN,4,4,1 nn_patchdown3d P,IN",
        "nn_patchdown3d",
        "patch size 2x2x2 is larger than the input (4,4,1,1)",
    ),
    "patchup of too few channels": (
        "nn_input IN,4,4,1,6 nn_patchup2d P,IN",
        "nn_patchup2d",
        "divisible by 4 (got 6)",
    ),
    "patch size 1": ("nn_input IN,4,4 nn_patchdown2d P,IN,1", "nn_patchdown2d", "patch_size"),
    "distance of other sizes": ("nn_input A,2 nn_input B,3 nn_distance D,A,B", "nn_distance", "same size"),
    "negative metric": ("nn_input A,2 nn_distance D,A,A,-1", "nn_distance", "metric"),
    "unknown boundary": ("nn_input IN,2 nn_crop C,IN,0,0,0,0,1,0,0,0,wrap", "nn_crop", "boundary_conditions"),
    "unsupported interpolation": ("nn_input IN,2 nn_resize R,IN,4,1,1,1,5", "nn_resize", "interpolation"),
    "ground truth of another size": (
        "nn_input IN,2 nn_input GT,3 nn_loss_crossentropy L,IN,GT",
        "nn_loss_crossentropy",
        "another size",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_size_errors_are_one_line_user_errors(case):
    script, command, words = ERRORS[case]
    error = script_error(script, file="net.nnp")
    assert "\n" not in str(error)
    assert error.command == command
    assert words in error.message, str(error)

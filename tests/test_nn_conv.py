"""Convolution and pooling layers (nn_conv2d/3d and their nl/nnl/res variants, nn_tconv2d,
nn_maxpool2d/3d, nn_avgpool2d/3d): output sizes and module names by nn_lib's rules, values
against straightforward numpy references written from the documented formula, the adjoint
relation between tconv2d and conv2d, finite-difference gradients, one-line user errors, and a
tiny conv classifier trained end to end through nn_train and nn_classify."""

import io

import numpy as np
import pytest
from conftest import cli, run_script, script_error
from nn_helpers import activations, build, parameters, run_batch
from test_nn_gradients import BATCH, CHECKED, check, prepare, random_normalize
from test_nn_shapes import BOUNDARY_CONDITIONS, NUMPY_PAD, cimg_resize, picture, sizes

from nnpipe.commands import load_all
from nnpipe.lang.interpreter import Interpreter
from nnpipe.nn import engine
from nnpipe.nn.layers import INPUT_GRADIENTS, OUT, conv

SAMPLES = 3  # forward passes run several samples at once (the engine's chunk width)


def pictures(w, h, d, s, count=SAMPLES, seed=0):
    return np.stack([picture(w, h, d, s, seed + j) for j in range(count)])


def random_weights(interp, name, seed=1, biases=True):
    """Give weights image `name` uniform values in (-1, 1) (biases 0 unless `biases`)."""
    image = interp.workspace.images.get(name)
    values = np.random.default_rng(seed).uniform(-1, 1, image.shape).astype(np.float32)
    if not biases:
        values[..., -1] = 0
    interp.workspace.images.set(name, values)
    return values[0, 0].astype(np.float64)


def evaluate(interp, target, images):
    """Layer `target` for each of `images` (B, s, d, h, w): (B, s', d', h', w')."""
    network = interp.workspace.network()
    plan = network.plan(target)
    acts = activations(plan, parameters(interp, plan), images.reshape(len(images), -1))
    w, h, d, s = network.modules[target].size
    start = plan.offsets[target]
    return acts[:, start : start + w * h * d * s].reshape(-1, s, d, h, w).astype(np.float64)


def size_args(size):
    return ",".join(map(str, size))


# --- numpy references, from the module docstrings -----------------------------------------------


def conv_reference(image, weights, k, stride=1, dilation=1, shrink=0, condition="neumann", dimensions=2):
    """OUT[o](x,y,z) = b[o] + sum_i sum_{p,q,r} W[o][i](p,q,r) IN_bc[i](X(x,p), Y(y,q), Z(z,r)),
    X(x,p) = shrink + stride x - dilation (p - centre), centre = k - 1 - floor(k/2).
    image (s, d, h, w); weights (C_out, C_in k^dims + 1), kernel index p + k q + k^2 r."""
    s, d, h, w = image.shape
    margin = dilation * k + 1
    pad = [(0, 0), (margin, margin) if dimensions == 3 else (0, 0), (margin, margin), (margin, margin)]
    padded = np.pad(image.astype(np.float64), pad, mode=NUMPY_PAD[condition])
    volume = k**dimensions
    centre = k - 1 - k // 2
    ow, oh = w // stride - 2 * shrink, h // stride - 2 * shrink
    od = d // stride - 2 * shrink if dimensions == 3 else d
    kz = k if dimensions == 3 else 1
    zmargin = margin if dimensions == 3 else 0
    out = np.zeros((weights.shape[0], od, oh, ow))
    for o in range(weights.shape[0]):
        for z in range(od):
            for y in range(oh):
                for x in range(ow):
                    total = weights[o, -1]
                    for i in range(s):
                        for r in range(kz):
                            zz = shrink + stride * z - dilation * (r - centre) if dimensions == 3 else z
                            for q in range(k):
                                yy = shrink + stride * y - dilation * (q - centre)
                                for p in range(k):
                                    xx = shrink + stride * x - dilation * (p - centre)
                                    total += (
                                        weights[o, i * volume + p + k * q + k * k * r]
                                        * padded[i, zz + zmargin, yy + margin, xx + margin]
                                    )
                    out[o, z, y, x] = total
    return out


def transpose_kernels(conv, c_in):
    """The tconv weights whose transposed convolution is the adjoint of conv weights `conv`
    (C_out, C_in K + 1): tconv row i (an output channel of the tconv, an input channel of the
    conv) holds, for each tconv input channel o, the kernel W[o][i] at offset o K; biases 0."""
    c_out = conv.shape[0]
    volume = (conv.shape[1] - 1) // c_in
    kernels = conv[:, :-1].reshape(c_out, c_in, volume)  # [o, i, tap]
    transposed = kernels.transpose(1, 0, 2).reshape(c_in, c_out * volume)  # [i, o, tap]
    return np.hstack([transposed, np.zeros((c_in, 1))])


def maxpool_reference(image, p, dimensions):
    s, d, h, w = image.shape
    pz = p if dimensions == 3 else 1
    blocks = image[:, : d // pz * pz, : h // p * p, : w // p * p].reshape(
        s, d // pz, pz, h // p, p, w // p, p
    )
    return blocks.max(axis=(2, 4, 6))


# --- output sizes, module names, weights images, nn_print ---------------------------------------


def test_conv_output_sizes_follow_stride_and_border_shrink():
    script = (
        "nn_input IN,9,7,2,3 nn_conv2d A,IN,4 nn_conv2d B,IN,4,3,2,1,1"
        " nn_conv2d C,IN,5,5,3,2 nn_conv2d D,IN,2,2,1,3,2 nn_conv2d E,IN,1,1,1,1,0"
    )
    # w/stride - 2 shrink, h/stride - 2 shrink; depth kept; dilation and kernel do not count
    assert sizes(script, "A", "B", "C", "D", "E") == [
        (9, 7, 2, 4),
        (2, 1, 2, 4),
        (3, 2, 2, 5),
        (5, 3, 2, 2),
        (9, 7, 2, 1),
    ]


def test_conv3d_output_sizes_shrink_and_stride_the_depth_too():
    script = "nn_input IN,9,7,6,3 nn_conv3d A,IN,4 nn_conv3d B,IN,2,3,2,1,1 nn_conv3d C,IN,1,3,3"
    assert sizes(script, "A", "B", "C") == [(9, 7, 6, 4), (2, 1, 1, 2), (3, 2, 2, 1)]


def test_tconv2d_output_sizes_multiply_by_the_stride():
    script = (
        "nn_input IN,3,2,4,5 nn_tconv2d A,IN,6 nn_tconv2d B,IN,2,3,3 nn_tconv2d C,IN,1,2,1"
        " nn_tconv2d D,IN,2,5,2,2"
    )
    assert sizes(script, "A", "B", "C", "D") == [(6, 4, 4, 6), (9, 6, 4, 2), (3, 2, 4, 1), (6, 4, 4, 2)]


def test_tconv2d_undoes_the_geometry_of_a_strided_conv2d():
    script = "nn_input IN,8,6,1,2 nn_conv2d C,IN,3,3,2 nn_tconv2d T,C,2,3,2"
    assert sizes(script, "C", "T") == [(4, 3, 1, 3), (8, 6, 1, 2)]


def test_pool_output_sizes_drop_what_does_not_fit():
    script = (
        "nn_input IN,7,5,3,2 nn_maxpool2d A,IN nn_maxpool3d B,IN nn_maxpool2d C,IN,3"
        " nn_avgpool2d D,IN nn_avgpool3d E,IN nn_avgpool2d F,IN,3 nn_maxpool3d G,IN,3"
    )
    assert sizes(script, "A", "B", "C", "D", "E", "F", "G") == [
        (3, 2, 3, 2),
        (3, 2, 1, 2),
        (2, 1, 3, 2),
        (3, 2, 3, 2),
        (3, 2, 1, 2),
        (2, 1, 3, 2),
        (2, 1, 1, 2),
    ]


def test_pool_commands_take_the_previous_module_by_default():
    script = "nn_input IN,8,8,1,2 nn_conv2d C,IN,3 nn_maxpool2d P nn_avgpool2d Q"
    network = build(script).workspace.network()
    assert tuple(network.modules["P"].inputs) == ("C",) and tuple(network.modules["Q"].inputs) == ("P",)
    assert sizes(script, "P", "Q") == [(4, 4, 1, 3), (2, 2, 1, 3)]


MODULES = {
    "nn_conv2d C,IN,3": ["C_conv2d", "C"],
    "nn_conv2dnl C,IN,3": ["C_conv2d", "C"],
    "nn_conv2dnnl C,IN,3": ["C_conv2d", "C_normalize", "C"],
    "nn_conv3d C,IN,3": ["C_conv3d", "C"],
    "nn_conv3dnl C,IN,3": ["C_conv3d", "C"],
    "nn_conv3dnnl C,IN,3": ["C_conv3d", "C_normalize", "C"],
    "nn_resconv2d R,IN": ["R_clone0", "R_clone1", "R_conv2d", "R"],
    "nn_resconv2dnl R,IN": ["R_clone0", "R_clone1", "R_conv2d", "R_add", "R"],
    "nn_resconv2dnnl R,IN": ["R_clone0", "R_clone1", "R_conv2d", "R_normalize", "R_add", "R"],
    "nn_resconv3d R,IN": ["R_clone0", "R_clone1", "R_conv3d", "R"],
    "nn_resconv3dnl R,IN": ["R_clone0", "R_clone1", "R_conv3d", "R_add", "R"],
    "nn_resconv3dnnl R,IN": ["R_clone0", "R_clone1", "R_conv3d", "R_normalize", "R_add", "R"],
    "nn_tconv2d T,IN,3": ["T_tconv2d", "T"],
    "nn_maxpool2d P,IN": ["P"],
    "nn_maxpool3d P,IN": ["P"],
    "nn_avgpool2d P,IN": ["P"],
    "nn_avgpool3d P,IN": ["P"],
}


@pytest.mark.parametrize("command", MODULES)
def test_module_names_each_command_creates(command):
    network = build(f"nn_input IN,4,4,4,2 {command}").workspace.network()
    assert list(network.modules) == ["IN"] + MODULES[command]
    last = MODULES[command][-1]
    assert network.latest == last
    expected = {
        "T": (8, 8, 4, 3),
        "C": (4, 4, 4, 3),
        "R": (4, 4, 4, 2),
        "P": (2, 2, 2 if "3d" in command else 4, 2),
    }[last]
    assert network.modules[last].size == expected
    for name in MODULES[command][:-1]:
        assert network.modules[name].size == (expected if last != "R" else (4, 4, 4, 2))


def test_module_kinds_and_normalize_is_channelwise():
    network = build(
        "nn_input IN,4,4,4,2 nn_conv2dnnl C,IN,3,3,1,1,0,neumann,tanh"
        " nn_resconv3dnnl R,C nn_tconv2d T,R,2 nn_maxpool3d M,T nn_avgpool2d A,M"
    ).workspace.network()
    kinds = {name: module.layer.kind for name, module in network.modules.items()}
    assert kinds["C_conv2d"] == "conv2d" and kinds["R_conv3d"] == "conv3d"
    assert kinds["T_tconv2d"] == "tconv2d"
    assert kinds["M"] == "maxpool3d" and kinds["A"] == "avgpool2d"
    for name in ("C_normalize", "R_normalize"):
        assert network.modules[name].layer.properties().startswith("normalization=channel-by-channel")
    assert network.modules["C"].layer.properties() == "activation=tanh"


def test_weights_image_sizes():
    run = run_script(
        "nn_input IN,6,6,4,3 nn_conv2d A,IN,5 nn_conv2d B,IN,2,2 nn_conv3d C,IN,4,3"
        " nn_resconv2d R,IN nn_resconv3d Q,IN,2 nn_tconv2d T,IN,7,3"
    )
    images = run.images
    # width C_in k^2 + 1 (k^3 in 3D), height C_out; stored as (s, d, h, w)
    assert images.get("A_conv2d").shape == (1, 1, 5, 3 * 9 + 1)
    assert images.get("B_conv2d").shape == (1, 1, 2, 3 * 4 + 1)
    assert images.get("C_conv3d").shape == (1, 1, 4, 3 * 27 + 1)
    assert images.get("R_conv2d").shape == (1, 1, 3, 3 * 9 + 1)
    assert images.get("Q_conv3d").shape == (1, 1, 3, 3 * 8 + 1)
    assert images.get("T_tconv2d").shape == (1, 1, 7, 3 * 9 + 1)


def test_learning_mode_without_biases_starts_biases_at_zero():
    run = run_script(
        "nn_input IN,4,4,1,2 nn_conv2d A,IN,3,3,1,1,0,neumann,1 nn_conv2d B,IN,3,3,1,1,0,neumann,3"
    )
    assert np.all(run.images.get("A_conv2d")[..., -1] == 0)
    assert np.all(run.images.get("B_conv2d")[..., -1] != 0)


def test_nn_print_properties():
    run = run_script(
        "nn_input IN,6,5,2,2 nn_conv2dnl C,IN,3,3,2,1,0,periodic nn_conv3d D,IN,2,2,1,2,0,mirror,1"
        " nn_tconv2d T,C,2,3 nn_maxpool2d M,T nn_avgpool3d A,IN,2 nn_print"
    )
    text = run.out
    assert (
        "- Module: C_conv2d (type: conv2d)\n        * Input: IN\n        * Output size: 3,2,2,3\n"
        "        * Properties: kernel=3x3, stride=2, dilation=1, border_shrink=0,"
        " boundary_conditions=periodic, learning_mode=3\n        * Parameters: 57\n"
    ) in text
    assert (
        "* Properties: kernel=2x2x2, stride=1, dilation=2, border_shrink=0,"
        " boundary_conditions=mirror, learning_mode=1\n        * Parameters: 34\n"
    ) in text
    assert (
        "- Module: T_tconv2d (type: tconv2d)\n        * Input: C\n        * Output size: 6,4,2,2\n"
        "        * Properties: kernel=3x3, stride=2, dilation=1, learning_mode=3\n"
        "        * Parameters: 56\n"
    ) in text
    assert (
        "- Module: M (type: maxpool2d)\n        * Input: T\n        * Output size: 3,2,2,2\n"
        "        * Property: patch_size=2x2\n" in text
    )
    assert "* Output size: 3,2,1,2\n        * Property: patch_size=2x2x2\n" in text
    assert "* Total: 9 modules, 147 parameters." in text


# --- values --------------------------------------------------------------------------------------

CONV2D_CASES = [
    # k, stride, dilation, shrink, boundary
    (3, 1, 1, 0, "dirichlet"),
    (3, 1, 1, 0, "neumann"),
    (3, 1, 1, 0, "periodic"),
    (3, 1, 1, 0, "mirror"),
    (2, 1, 1, 0, "dirichlet"),
    (2, 2, 1, 0, "neumann"),
    (2, 1, 2, 1, "mirror"),
    (5, 1, 1, 0, "periodic"),
    (5, 2, 2, 1, "mirror"),
    (5, 1, 3, 0, "neumann"),
    (3, 2, 1, 0, "periodic"),
    (3, 3, 2, 0, "dirichlet"),
    (3, 1, 2, 1, "dirichlet"),
    (3, 2, 2, 1, "neumann"),
    (1, 2, 1, 1, "periodic"),
    (4, 1, 1, 0, "dirichlet"),
]


def assert_conv_is_the_reference(
    size, channels, k, stride, dilation, shrink, condition, dimensions=2, count=SAMPLES
):
    """nn_conv{dimensions}d with random weights on random pictures of `size` gives
    conv_reference's values."""
    images = pictures(*size, count=count)
    interp = build(
        f"nn_input IN,{size_args(size)} nn_conv{dimensions}d"
        f" C,IN,{channels},{k},{stride},{dilation},{shrink},{condition}"
    )
    weights = random_weights(interp, f"C_conv{dimensions}d")
    for image, value in zip(images, evaluate(interp, "C", images)):
        np.testing.assert_allclose(
            value,
            conv_reference(image, weights, k, stride, dilation, shrink, condition, dimensions),
            rtol=1e-5,
            atol=1e-5,
        )


@pytest.mark.parametrize("k,stride,dilation,shrink,condition", CONV2D_CASES)
def test_conv2d_values(k, stride, dilation, shrink, condition):
    assert_conv_is_the_reference((11, 9, 2, 2), 3, k, stride, dilation, shrink, condition)


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
@pytest.mark.slow
def test_conv2d_reaching_further_than_the_input_size(condition):
    """Kernel taps 4 pixels away on an input 3 wide, 2 high: periodic and mirror wrap more
    than once."""
    assert_conv_is_the_reference((3, 2, 1, 2), 2, 5, 1, 2, 0, condition)
    check(f"nn_input IN,3,2,1,2 nn_conv2d C,IN,2,5,1,2,0,{condition} nn_loss_mse LOSS,C,GT")


def test_conv2d_by_hand():
    """A 1-channel 3x1 kernel (a, b, c) at index p = 0, 1, 2 is applied flipped: the output at x
    is a IN(x+1) + b IN(x) + c IN(x-1) + bias."""
    interp = build("nn_input IN,4,1 nn_conv2d C,IN,1,3,1,1,0,dirichlet")
    kernel = np.zeros((1, 1, 1, 10), np.float32)
    kernel[0, 0, 0, 3:6] = [1, 10, 100]  # the middle row q = 1 of the 3x3 kernel
    kernel[0, 0, 0, -1] = 0.5
    interp.workspace.images.set("C_conv2d", kernel)
    got = evaluate(interp, "C", np.array([[[[[1, 2, 3, 4]]]]], np.float32))
    assert got.ravel().tolist() == [
        1 * 2 + 10 * 1 + 0.5,
        3 + 20 + 100 + 0.5,
        4 + 30 + 200 + 0.5,
        0 + 40 + 300 + 0.5,
    ]


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
def test_conv_boundary_conditions_by_number(condition):
    number = BOUNDARY_CONDITIONS.index(condition)
    images = pictures(5, 4, 1, 1)
    results = []
    for spelling in (condition, number):
        interp = build(f"nn_input IN,5,4 nn_conv2d C,IN,2,3,1,1,0,{spelling}")
        random_weights(interp, "C_conv2d")
        results.append(evaluate(interp, "C", images))
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize(
    "k,stride,dilation,shrink,condition",
    [(3, 1, 1, 0, "neumann"), (3, 2, 1, 1, "periodic"), (2, 1, 2, 0, "mirror"), (3, 1, 1, 0, "dirichlet")],
)
def test_conv3d_values(k, stride, dilation, shrink, condition):
    assert_conv_is_the_reference(
        (7, 6, 7, 2), 2, k, stride, dilation, shrink, condition, dimensions=3, count=2
    )


def test_resconv2d_adds_the_convolution_to_its_input():
    size = (6, 5, 1, 2)
    images = pictures(*size)
    interp = build(f"nn_input IN,{size_args(size)} nn_resconv2d R,IN,3,2,mirror")
    weights = random_weights(interp, "R_conv2d")
    got = evaluate(interp, "R", images)
    for image, value in zip(images, got):
        np.testing.assert_allclose(
            value, image + conv_reference(image, weights, 3, 1, 2, 0, "mirror"), rtol=1e-5, atol=1e-5
        )


def test_conv2dnl_applies_the_activation():
    size = (5, 5, 1, 2)
    images = pictures(*size)
    interp = build(f"nn_input IN,{size_args(size)} nn_conv2dnl C,IN,2,3,1,1,0,neumann,tanh")
    weights = random_weights(interp, "C_conv2d")
    got = evaluate(interp, "C", images)
    for image, value in zip(images, got):
        np.testing.assert_allclose(value, np.tanh(conv_reference(image, weights, 3)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "k,stride,dilation,channels",
    [
        (3, 1, 1, (2, 3)),
        (3, 2, 1, (2, 3)),
        (2, 2, 2, (3, 2)),
        (3, 1, 2, (1, 2)),
        (5, 2, 2, (2, 2)),
        (4, 3, 1, (2, 1)),
    ],
)
def test_tconv2d_is_the_adjoint_of_conv2d(k, stride, dilation, channels):
    """<conv(x), y> == <x, tconv(y)> for a dirichlet conv without shrink and a tconv of the same
    stride whose weights are the conv's, transposed between channels, biases zero."""
    c_in, c_out = channels
    w, h = 4 * stride, 3 * stride
    interp = build(
        f"nn_input X,{w},{h},1,{c_in} nn_conv2d C,X,{c_out},{k},{stride},{dilation},0,dirichlet"
        f" nn_input Y,4,3,1,{c_out} nn_tconv2d T,Y,{c_in},{k},{stride},{dilation}"
    )
    weights = random_weights(interp, "C_conv2d", biases=False)
    interp.workspace.images.set("T_tconv2d", transpose_kernels(weights, c_in)[None, None].astype(np.float32))
    x = pictures(w, h, 1, c_in, seed=10)
    y = pictures(4, 3, 1, c_out, seed=20)
    conv_x = evaluate(interp, "C", x)
    tconv_y = evaluate(interp, "T", y)
    assert conv_x.shape == y.shape and tconv_y.shape == x.shape
    # the conv is the reference one (so the relation pins the tconv to the documented formula)
    np.testing.assert_allclose(
        conv_x[0], conv_reference(x[0], weights, k, stride, dilation, 0, "dirichlet"), rtol=1e-5, atol=1e-5
    )
    for j in range(SAMPLES):
        left, right = (conv_x[j] * y[j]).sum(), (x[j] * tconv_y[j]).sum()
        assert abs(left) > 1e-2
        assert left == pytest.approx(right, rel=1e-4, abs=1e-5)


def test_tconv2d_adds_its_biases_and_spreads_each_input_value():
    """Stride 2, one channel, a 1x1 'kernel' weight 3 (k = 1) and bias 0.5: every input value
    lands on the even pixels, the others are the bias alone."""
    interp = build("nn_input Y,2,2 nn_tconv2d T,Y,1,1,2")
    interp.workspace.images.set("T_tconv2d", np.array([[[[3, 0.5]]]], np.float32))
    got = evaluate(interp, "T", np.array([[[[[1, 2], [3, 4]]]]], np.float32))
    assert got[0, 0, 0].tolist() == [
        [3.5, 0.5, 6.5, 0.5],
        [0.5, 0.5, 0.5, 0.5],
        [9.5, 0.5, 12.5, 0.5],
        [0.5, 0.5, 0.5, 0.5],
    ]


@pytest.mark.parametrize(
    "dimensions,p,size",
    [
        (2, 2, (4, 6, 1, 2)),
        (2, 2, (7, 5, 3, 2)),
        (2, 3, (7, 8, 2, 1)),
        (3, 2, (5, 4, 5, 2)),
        (3, 3, (6, 7, 3, 1)),
    ],
)
def test_maxpool_values(dimensions, p, size):
    images = pictures(*size)
    got = evaluate(build(f"nn_input IN,{size_args(size)} nn_maxpool{dimensions}d P,IN,{p}"), "P", images)
    for image, value in zip(images, got):
        np.testing.assert_array_equal(value, maxpool_reference(image, p, dimensions))


@pytest.mark.parametrize(
    "values,winner", [([1, 1, 1, 1], 0), ([0, 2, 0, 2], 1), ([0, 0, 5, 5], 2), ([-1, -3, -2, -1], 0)]
)
def test_maxpool_gradient_goes_to_the_first_maximum(values, winner):
    interp = build("nn_input IN,2,2 nn_maxpool2d P,IN nn_loss_mse LOSS,P,GT")
    plan = interp.workspace.network().plan("LOSS")
    sample = np.array([values + [max(values) + 1]], np.float32)
    _, _, grads = run_batch(plan, parameters(interp, plan), sample)
    expected = np.zeros(4)
    expected[winner] = -2.0  # d/dP (P - GT)^2 with GT = P + 1
    np.testing.assert_allclose(grads[0, :4], expected, atol=1e-6)


@pytest.mark.parametrize(
    "dimensions,p,size", [(2, 2, (4, 6, 2, 2)), (2, 3, (6, 3, 1, 1)), (3, 2, (4, 4, 6, 2))]
)
def test_avgpool_of_divisible_sizes_is_the_block_mean(dimensions, p, size):
    images = pictures(*size)
    s, d, h, w = size[::-1]
    pz = p if dimensions == 3 else 1
    got = evaluate(build(f"nn_input IN,{size_args(size)} nn_avgpool{dimensions}d P,IN,{p}"), "P", images)
    for image, value in zip(images, got):
        blocks = image.astype(np.float64).reshape(s, d // pz, pz, h // p, p, w // p, p)
        np.testing.assert_allclose(value, blocks.mean(axis=(2, 4, 6)), rtol=1e-5, atol=1e-6)


def test_avgpool_of_a_non_divisible_size_averages_fractional_boxes():
    """5 columns to 2: each output averages 2.5 columns, the middle one shared by half:
    out0 = 0.4 x0 + 0.4 x1 + 0.2 x2, out1 = 0.2 x2 + 0.4 x3 + 0.4 x4; 2 rows to 1: the mean."""
    image = np.array([[[[[1, 2, 3, 4, 5], [10, 20, 30, 40, 50]]]]], np.float32)
    got = evaluate(build("nn_input IN,5,2 nn_avgpool2d P,IN"), "P", image)
    np.testing.assert_allclose(got.ravel(), [(1.8 + 18) / 2, (4.2 + 42) / 2], rtol=1e-6)


def test_avgpool3d_of_non_divisible_sizes_is_cimg_moving_average():
    size = (7, 5, 5, 2)
    images = pictures(*size)
    got = evaluate(build(f"nn_input IN,{size_args(size)} nn_avgpool3d P,IN,2"), "P", images)
    for image, value in zip(images, got):
        np.testing.assert_allclose(value, cimg_resize(image, (3, 2, 2, 2), 2), rtol=1e-5, atol=1e-6)
        # nothing is dropped: the mean over everything is kept
        assert value.mean() == pytest.approx(image.mean(), abs=1e-5)


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
@pytest.mark.parametrize("shrink", [0, 1])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_gradient(stride, dilation, shrink, condition):
    size = "6,6,1,2" if stride == 2 and shrink else "5,4,1,2"
    check(
        f"nn_input IN,{size} nn_conv2d C,IN,2,3,{stride},{dilation},{shrink},{condition}"
        " nn_loss_mse LOSS,C,GT"
    )


@pytest.mark.parametrize("k,stride,condition", [(2, 1, "mirror"), (2, 2, "periodic"), (5, 1, "neumann")])
def test_conv2d_gradient_other_kernel_sizes(k, stride, condition):
    check(f"nn_input IN,5,4,1,2 nn_conv2d C,IN,2,{k},{stride},1,0,{condition} nn_loss_mse LOSS,C,GT")


@pytest.mark.parametrize("geometry", ["3,1,1,0,mirror", "3,2,1,0,neumann", "2,2,1,0,dirichlet"])
def test_conv3d_gradient(geometry):
    check(f"nn_input IN,4,4,4,2 nn_conv3d C,IN,2,{geometry} nn_loss_mse LOSS,C,GT")


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (3, 1), (2, 2), (1, 2)])
def test_tconv2d_gradient(stride, dilation):
    check(f"nn_input IN,3,2,1,2 nn_tconv2d T,IN,2,3,{stride},{dilation} nn_loss_mse LOSS,T,GT")


def test_conv2dnnl_gradient():
    check(
        "nn_input IN,5,4,1,2 nn_conv2dnnl C,IN,2,3,1,1,0,neumann,tanh nn_loss_mse LOSS,C,GT",
        tweak=random_normalize("C_normalize"),
    )


def test_resconv2dnl_gradient():
    check("nn_input IN,5,4,1,2 nn_resconv2dnl R,IN,3,2,periodic,tanh nn_loss_mse LOSS,R,GT")


def test_resconv3dnnl_gradient():
    check(
        "nn_input IN,4,3,3,2 nn_resconv3dnnl R,IN,3,1,mirror,sigmoid nn_loss_mse LOSS,R,GT",
        tweak=random_normalize("R_normalize"),
    )


def untied_seed(script, before, p, dimensions, gap=0.08, tweak=None):
    """A seed for `check` whose samples leave every maxpool patch of module `before` with its
    largest value at least `gap` above the others, so that finite differences (steps of about
    0.01) never change which value wins."""
    for seed in range(40):
        interp, plan, params, samples, _ = prepare(script, seed, tweak=tweak)
        acts = activations(plan, params, samples)
        w, h, d, s = interp.workspace.network().modules[before].size
        values = acts[:, plan.offsets[before] : plan.offsets[before] + w * h * d * s]
        pz = p if dimensions == 3 else 1
        blocks = values.reshape(-1, s, d, h, w)[:, :, : d // pz * pz, : h // p * p, : w // p * p]
        blocks = blocks.reshape(-1, s, d // pz, pz, h // p, p, w // p, p).transpose(0, 1, 2, 4, 6, 3, 5, 7)
        top = np.sort(blocks.reshape(*blocks.shape[:5], -1), axis=-1)
        if np.all(top[..., -1] - top[..., -2] > gap):
            return seed
    pytest.fail("no seed without near ties")


@pytest.mark.parametrize("dimensions,size", [(2, "5,4,1,2"), (3, "4,5,3,1")])
def test_maxpool_gradient(dimensions, size):
    script = f"nn_input IN,{size} nn_maxpool{dimensions}d P,IN nn_loss_mse LOSS,P,GT"
    check(script, seed=untied_seed(script, "IN", 2, dimensions))


@pytest.mark.parametrize(
    "dimensions,size,p", [(2, "4,4,1,2", 2), (2, "5,4,1,2", 2), (2, "5,7,1,1", 3), (3, "4,4,3,1", 2)]
)
def test_avgpool_gradient(dimensions, size, p):
    check(f"nn_input IN,{size} nn_avgpool{dimensions}d P,IN,{p} nn_loss_mse LOSS,P,GT")


def near_identity_kernels(interp):
    """Kernels close to +-identity, so that the conv outputs are as spread as the inputs and
    a seed without near ties in the max pooling that follows is easy to find."""
    image = interp.workspace.images.get("C_conv2d")
    values = np.random.default_rng(5).uniform(-0.15, 0.15, image.shape)
    for o in range(image.shape[2]):
        values[0, 0, o, 4] += (-1) ** o  # the centre tap p = q = 1
    interp.workspace.images.set("C_conv2d", values.astype(np.float32))


@pytest.mark.slow
def test_small_conv_classifier_gradient():
    script = (
        "nn_input IN,6,6,1,1 nn_conv2dnl C,IN,2,3,1,1,0,neumann,tanh nn_maxpool2d P,C"
        " nn_fc OUT,P,3 nn_loss_softmax_crossentropy LOSS,OUT,GT"
    )
    tweak = near_identity_kernels
    check(script, tweak=tweak, seed=untied_seed(script, "C", 2, 2, gap=0.02, tweak=tweak))


# --- errors --------------------------------------------------------------------------------------

ERRORS = {
    "shrink leaves nothing": (
        "nn_input IN,5,5 nn_conv2d C,IN,2,3,1,1,3",
        "nn_conv2d",
        "conv2d of stride 1 and border shrink 3 leaves nothing of an input of size 5,5,1,1",
    ),
    "stride leaves nothing": (
        "nn_input IN,5,5,4 nn_conv3d C,IN,2,3,2,1,1",
        "nn_conv3d",
        "leaves nothing of an input of size 5,5,4,1",
    ),
    "maxpool patch larger than the input": (
        "nn_input IN,3,5 nn_maxpool2d P,IN,4",
        "nn_maxpool2d",
        "maxpool2d patches of size 4 do not fit in an input of size 3,5,1,1",
    ),
    "3d pool of a flat input": (
        "nn_input IN,4,4 nn_avgpool3d P,IN",
        "nn_avgpool3d",
        "avgpool3d patches of size 2 do not fit",
    ),
    "bad boundary name": (
        "nn_input IN,5,5 nn_conv2d C,IN,2,3,1,1,0,wrap",
        "nn_conv2d",
        "boundary_conditions",
    ),
    "bad boundary number": ("nn_input IN,5,5 nn_conv2d C,IN,2,3,1,1,0,4", "nn_conv2d", "boundary_conditions"),
    "no channels": ("nn_input IN,5,5 nn_tconv2d T,IN,0", "nn_tconv2d", "nb_channels"),
    "stride 0": ("nn_input IN,5,5 nn_conv2d C,IN,2,3,0", "nn_conv2d", "stride"),
    "pool patch 1": ("nn_input IN,5,5 nn_maxpool2d P,IN,1", "nn_maxpool2d", "patch_size"),
    # huge sizes are refused when the layer is declared, not as an allocation failure later
    "dilation beyond int32": (
        "nn_input IN,8,8,1,3 nn_conv2d C,IN,4,3,1,99999999999999999999",
        "nn_conv2d",
        "dilation is too large in magnitude",
    ),
    "huge kernel": (
        "nn_input IN,8,8,1,3 nn_conv2d C,IN,4,100000",
        "nn_conv2d",
        "the layer's weights image of size 30000000001,4,1,1 is too large",
    ),
    "huge channel count": (
        "nn_input IN,8,8,1,3 nn_conv2d C,IN,100000000,3",
        "nn_conv2d",
        "the layer's output of size 8,8,1,100000000 is too large",
    ),
    "huge 3d kernel": ("nn_input IN,8,8,2,3 nn_conv3d C,IN,2,2000", "nn_conv3d", "weights image"),
    "huge transposed stride": (
        "nn_input IN,8,8,1,3 nn_tconv2d T,IN,2,3,100000",
        "nn_tconv2d",
        "output of size 800000,800000,1,2 is too large",
    ),
    "huge crop": ("nn_input IN,8,8 nn_crop C,IN,-1e20,0,0,1e20", "nn_crop", "x0 is too large"),
    "huge resize": ("nn_input IN,8,8 nn_resize R,IN,100000,100000", "nn_resize", "too large"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_one_line_user_errors(case):
    script, command, words = ERRORS[case]
    error = script_error(script, file="net.nnp")
    assert "\n" not in str(error)
    assert error.command == command
    assert words in error.message, str(error)


def test_error_on_the_command_line_is_one_line_without_traceback():
    result = cli("nn_input", "IN,5,5", "nn_conv2d", "C,IN,2,3,1,1,3")
    assert result.code != 0 and result.exception is None
    assert result.error_lines == [
        "nnpipe: error: <command line>:1: nn_conv2d: conv2d of stride 1 and border shrink 3 leaves"
        " nothing of an input of size 5,5,1,1"
    ]
    assert "Traceback" not in result.stderr


# --- training ------------------------------------------------------------------------------------


def bars(count, seed=0):
    """6x6 noisy pictures of one bright bar: class 0 vertical, class 1 horizontal; the stack
    (1, M, 6, 6) and the one-hot labels (2, M, 1, 1)."""
    rng = np.random.default_rng(seed)
    pictures_ = rng.normal(0, 0.3, (count, 6, 6)).astype(np.float32)
    classes = rng.integers(0, 2, count)
    for j, (c, at) in enumerate(zip(classes, rng.integers(0, 6, count))):
        if c == 0:
            pictures_[j, :, at] += 1
        else:
            pictures_[j, at, :] += 1
    labels = np.zeros((2, count, 1, 1), np.float32)
    labels[classes, np.arange(count)] = 1
    return pictures_[None], labels


@pytest.mark.slow
def test_a_small_conv_net_learns_to_classify_bars():
    ctx = Interpreter(load_all(), seed=2, quiet=True, out=io.StringIO(), err=io.StringIO())
    for name, image in zip(("X", "Y"), bars(200, seed=1)):
        ctx.workspace.images.append(image, name)
    for name, image in zip(("XT", "YT"), bars(100, seed=2)):
        ctx.workspace.images.append(image, name)
    ctx.run_source(
        "nn_init nn_input IN,6,6 nn_conv2dnl C,IN,4,3,1,1,0,dirichlet,tanh nn_maxpool2d P,C"
        " nn_fc OUT,P,2 nn_loss_softmax_crossentropy LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
        " nn_train[X,Y] 300,16 nn_classify[XT,YT] .,vertical,horizontal",
        "test.nnp",
    )
    history = np.array(ctx.workspace.network().trainers["T"].history)
    assert len(history) == 300 and np.all(np.isfinite(history))
    assert history[-30:].mean() < 0.3 * history[:10].mean()
    assert float(ctx.lookup("accuracy")) > 0.9, ctx.workspace.out.getvalue()
    assert ctx.workspace.images.names[-2:] == ["predicted", "confusion"]
    assert ctx.workspace.images[-1].sum() == 100


# --- the matrix-product paths --------------------------------------------------------------------
# The convolution kernels compute by im2col (gathered columns) or by tap products (kn2row),
# whichever moves fewer values (nnpipe.nn.layers.conv.shifting), forward and backward apart,
# in blocks of BLOCK_VALUES values. These tests pin which path a shape takes, then check each
# path in every geometry, and images of several blocks (split inside a row), against the
# numpy reference and by gradients.


def conv_row(script, name):
    """The plan row of conv module `name` of `script`."""
    interp = build(script)
    plan = interp.workspace.network().plan(name)
    return next(row for row in plan.ops if row[OUT] == plan.offsets[name])


def paths(script, name, width=BATCH):
    """(forward, backward) path of the conv module `name` at a chunk of `width` samples."""
    row = conv_row(script, name)
    return tuple(
        "shifted" if conv.shifting(row, width, backward) else "columns" for backward in (False, True)
    )


# (input channels, output channels) -> (forward path, backward path) at 3 samples
CHANNELS = {(2, 2): ("columns", "shifted"), (1, 3): ("columns", "columns"), (4, 1): ("shifted", "shifted")}


@pytest.mark.parametrize("channels", CHANNELS)
def test_channel_counts_choose_the_paths(channels):
    c_in, c_out = channels
    assert paths(f"nn_input IN,5,4,1,{c_in} nn_conv2d C,IN,{c_out},3", "C_conv2d") == CHANNELS[channels]


def test_strides_choose_the_paths():
    # a strided conv reads a quarter of the pixels' products: im2col both ways
    assert paths("nn_input IN,6,6,1,2 nn_conv2d C,IN,2,3,2", "C_conv2d") == ("columns", "columns")
    # a strided transposed conv's columns are mostly zeros: tap products both ways
    assert paths("nn_input IN,3,2,1,2 nn_tconv2d T,IN,2,3,2", "T_tconv2d") == ("shifted", "shifted")
    assert paths("nn_input IN,3,2,1,1 nn_tconv2d T,IN,3,3,1", "T_tconv2d") == ("columns", "columns")


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
@pytest.mark.parametrize("shrink", [0, 1])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("channels", [(1, 3), (4, 1)])
def test_conv2d_gradient_on_each_path(channels, dilation, shrink, condition):
    """test_conv2d_gradient's geometries (2 -> 2 channels: im2col forward, tap products
    backward) on the other paths: im2col both ways, tap products both ways."""
    c_in, c_out = channels
    check(
        f"nn_input IN,5,4,1,{c_in} nn_conv2d C,IN,{c_out},3,1,{dilation},{shrink},{condition}"
        " nn_loss_mse LOSS,C,GT"
    )


@pytest.mark.parametrize("condition", BOUNDARY_CONDITIONS)
@pytest.mark.parametrize("channels", [(1, 3), (4, 1)])
def test_conv2d_values_on_each_path(channels, condition):
    c_in, c_out = channels
    assert_conv_is_the_reference((7, 6, 2, c_in), c_out, 3, 1, 2, 1, condition)


@pytest.mark.parametrize("geometry", ["3,1,1,0,mirror", "2,1,2,0,periodic", "3,1,1,0,dirichlet"])
def test_conv3d_gradient_with_tap_products_forward(geometry):
    assert paths(f"nn_input IN,4,4,4,4 nn_conv3d C,IN,1,{geometry}", "C_conv3d") == ("shifted", "shifted")
    check(f"nn_input IN,4,4,4,4 nn_conv3d C,IN,1,{geometry} nn_loss_mse LOSS,C,GT")


def test_tconv2d_gradient_with_im2col_backward():
    script = "nn_input IN,3,2,1,1 nn_tconv2d T,IN,3,3,1,2"
    assert paths(script, "T_tconv2d") == ("columns", "columns")
    check(f"{script} nn_loss_mse LOSS,T,GT")


def fast_conv_reference(image, weights, k, dilation, shrink, condition):
    """conv_reference at stride 1 in 2D, a numpy product per tap instead of loops per pixel."""
    s, d, h, w = image.shape
    margin = dilation * k + 1
    padded = np.pad(
        image.astype(np.float64),
        [(0, 0), (0, 0), (margin, margin), (margin, margin)],
        mode=NUMPY_PAD[condition],
    )
    centre = k - 1 - k // 2
    ow, oh = w - 2 * shrink, h - 2 * shrink
    kernels = weights[:, :-1].reshape(weights.shape[0], s, k, k)  # [o, i, q, p]
    out = np.broadcast_to(weights[:, -1, None, None, None], (weights.shape[0], d, oh, ow)).copy()
    for q in range(k):
        y0 = margin + shrink - dilation * (q - centre)
        for p in range(k):
            x0 = margin + shrink - dilation * (p - centre)
            window = padded[:, :, y0 : y0 + oh, x0 : x0 + ow]  # [i, z, y, x]
            out += np.einsum("oi,izyx->ozyx", kernels[:, :, q, p], window)
    return out


def test_fast_conv_reference_is_the_reference():
    image = picture(7, 6, 2, 3, 4)
    weights = np.random.default_rng(5).uniform(-1, 1, (2, 3 * 9 + 1))
    for condition in BOUNDARY_CONDITIONS:
        np.testing.assert_allclose(
            fast_conv_reference(image, weights, 3, 2, 1, condition),
            conv_reference(image, weights, 3, 1, 2, 1, condition),
            atol=1e-12,
        )


def directional_check(script, directions=2, seed=0):
    """The gradients of a network too large for test_nn_gradients.check (a finite difference
    per value) against central differences along random directions, of the parameters and
    of the inputs apart: the MSE of a convolution is quadratic in either, so its central
    differences are exact but for rounding (float64)."""
    interp, plan, params, samples, columns = prepare(script, seed)
    params = params.astype(CHECKED)
    _, grads, sample_grads = run_batch(plan, params, samples, dtype=CHECKED)
    start, length = columns["IN"]
    rng = np.random.default_rng(seed + 5)
    for _ in range(directions):
        along = rng.standard_normal(params.shape)
        plus = run_batch(plan, params + along, samples, dtype=CHECKED)[0]
        minus = run_batch(plan, params - along, samples, dtype=CHECKED)[0]
        assert grads @ along == pytest.approx((plus - minus) / 2, rel=1e-8)
        along = np.zeros_like(samples)
        along[:, start : start + length] = rng.standard_normal((samples.shape[0], length))
        plus = run_batch(plan, params, samples + along, dtype=CHECKED)[0]
        minus = run_batch(plan, params, samples - along, dtype=CHECKED)[0]
        assert (sample_grads * along).sum() == pytest.approx((plus - minus) / 2, rel=1e-8)


# (input channels, output channels, kernel, shrink, width, height): several blocks each way, the
# first block ending inside a row (at 3 samples; the test checks it from BLOCK_VALUES, 2^17
# when written)
SEVERAL_BLOCKS = {
    # im2col forward and backward: 800 taps, 54 output pixels a block, 14 x 10 of them
    "columns": (32, 40, 5, 1, 16, 12),
    # im2col forward, tap products backward: 800 products a pixel, 3 input rows a block, 13 rows
    "columns, shifted": (32, 32, 5, 0, 17, 13),
    # tap products forward and backward: 100 products a pixel, 13 input rows a block, 40 rows
    "shifted": (24, 4, 5, 1, 32, 40),
}


@pytest.mark.parametrize("condition", ["dirichlet", "mirror"])
@pytest.mark.parametrize("case", SEVERAL_BLOCKS)
def test_images_of_several_blocks(case, condition):
    c_in, c_out, k, shrink, w, h = SEVERAL_BLOCKS[case]
    script = f"nn_input IN,{w},{h},1,{c_in} nn_conv2d C,IN,{c_out},{k},1,1,{shrink},{condition}"
    assert ", ".join(dict.fromkeys(paths(script, "C_conv2d"))) == case
    if case == "columns":
        block, ow = conv.BLOCK_VALUES // (c_in * k * k * BATCH), w - 2 * shrink
        assert block < ow * (h - 2 * shrink) and block % ow
    else:
        assert conv.BLOCK_VALUES // (c_out * k * k * w * BATCH) < h
    images = pictures(w, h, 1, c_in, count=BATCH)
    interp = build(script)
    weights = random_weights(interp, "C_conv2d")
    got = evaluate(interp, "C", images)
    for image, value in zip(images, got):
        np.testing.assert_allclose(
            value, fast_conv_reference(image, weights, k, 1, shrink, condition), rtol=1e-4, atol=1e-4
        )
    directional_check(f"{script} nn_loss_mse LOSS,C,GT")


def test_a_network_worth_two_threads_runs_a_single_sample_batch_on_one(monkeypatch):
    """A parallel region for one chunk leaves a thread idle and costs its launch."""
    plan = (
        build(
            "nn_input IN,64,64,1 nn_conv2d C,IN,16 nn_conv2d D,C,16 nn_conv2d E,D,16 "
            "nn_conv2d OUT,E,1 nn_loss_mse LOSS,OUT,GT"
        )
        .workspace.network()
        .plan("LOSS")
    )
    assert plan.work >= engine.PARALLEL_WORK  # one sample is worth two threads' work...
    monkeypatch.setattr(engine.numba, "get_num_threads", lambda: 2)
    assert engine.threads_for(plan, 2) == 2
    assert engine.threads_for(plan, 1) == 1  # ...but cannot be shared


def test_the_first_layer_skips_the_samples_gradients_and_the_parameter_gradients_stay():
    """No parameter lies upstream of a layer reading the samples: the backward pass need not
    give their gradients (a fifth of a LeNet step), and the parameter gradients are the same."""
    _, plan, params, samples, _ = prepare(
        "nn_input IN,9,8,1,2 nn_conv2d C,IN,3,4 nn_reshape R,C,1,1,1,216 nn_fc OUT,R,3 "
        "nn_loss_mse LOSS,OUT,GT"
    )
    assert {row[OUT]: row[INPUT_GRADIENTS] for row in plan.ops} == {
        plan.offsets["C"]: 0,
        plan.offsets["OUT"]: 1,
    }
    loss, gradients, sample_gradients = run_batch(plan, params, samples)
    trained_loss, trained_gradients, skipped = run_batch(plan, params, samples, as_trained=True)
    assert trained_loss == loss
    np.testing.assert_array_equal(trained_gradients, gradients)
    assert np.abs(sample_gradients).max() > 0 and not skipped.any()

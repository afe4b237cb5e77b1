"""nn_export: the ONNX model onnxruntime runs gives nn_eval's outputs (within 1e-4) for the
example networks and for every exportable layer type, in the documented NCHW layout;
onnx.checker accepts every model; a layer that cannot be exported is a one-line error."""

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import REPO, cli, run_script

SAMPLES = 3


def network_lines(example):
    """The lines of an example script that build its network: nn_init ... nn_trainer."""
    lines = (REPO / "examples" / example).read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("nn_init"))
    last = next(i for i, line in enumerate(lines) if line.startswith("nn_trainer"))
    return "\n".join(lines[first : last + 1])


def to_nchw(stack, size, count):
    """A stack image (s, d*M, h, w) of M samples of size w,h,d,s as the model's tensor."""
    w, h, d, s = size
    tensor = stack.reshape(s, count, d, h, w).transpose(1, 0, 2, 3, 4)
    return np.ascontiguousarray(tensor[:, :, 0] if d == 1 else tensor)


def exported(tmp_path, interpreter, output=""):
    path = tmp_path / "model.onnx"
    interpreter.run_items(["nn_export", f"{path}{',' + output if output else ''}"])
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def randomize_parameters(interpreter, seed=5):
    """Non-trivial weights everywhere, and normalize layers with running statistics away from
    (0, 1), so the export of each value is exercised."""
    rng = np.random.default_rng(seed)
    network = interpreter.workspace.network()
    for module in network.parameter_modules():
        image = interpreter.workspace.images.get(module.name)
        values = rng.uniform(-1, 1, image.shape).astype(np.float32)
        if module.layer.kind == "normalize":
            rows = values.reshape(-1, 4)
            rows[:, 0] += 1.5  # alpha
            rows[:, 3] = np.abs(rows[:, 3]) + 0.5  # running variance
        interpreter.workspace.images.set(module.name, values)


def compare(tmp_path, network, size, output="", seed=0):
    """nn_eval against onnxruntime for `network` (script lines) fed M random samples."""
    w, h, d, s = size
    run = run_script(
        f"nn_init nn_input IN,{w},{h},{d},{s}\n{network}\n"
        f"input {w},{h},{d * SAMPLES},{s} noise[-1] 1 name. x",
        seed=seed,
        quiet=True,
    )
    randomize_parameters(run.interpreter)
    run.interpreter.run_items(["nn_eval[x]", output or "."])
    expected = run.image(-1)
    session = exported(tmp_path, run.interpreter, output)
    result = session.run(None, {"IN": to_nchw(run.image(run.images.find("x")), size, SAMPLES)})[0]
    target = run.interpreter.workspace.network().modules[run.names[-1]].size
    np.testing.assert_allclose(result, to_nchw(expected, target, SAMPLES), atol=1e-4, rtol=1e-4)
    return session


LAYERS = [
    ("nn_fc F,IN,5 nn_fcnl G,F,4,tanh nn_fcnnl H,G,3", (3, 2, 1, 2)),
    ("nn_nlfc A,IN,4,swish", (3, 2, 1, 2)),
    ("nn_nlfc A,IN,4,softmax", (3, 2, 1, 2)),  # the engine's nlfc: softmax value by value, the identity
    ("nn_normalize N,IN,1 nn_normalize M,N,0", (3, 2, 1, 2)),
    ("nn_scale A,IN nn_scale B,A,1", (3, 2, 1, 2)),
    ("nn_clone A,B,IN nn_mul M,A,B nn_add S,M,A nn_dropout D,S,0.5 nn_rename R,D", (3, 2, 1, 2)),
    ("nn_split A,B,IN,1 nn_append C,B,A nn_reshape R,C,2,3,2,1", (3, 2, 1, 2)),
    ("nn_crop C,IN,-2,1,0,0,6,9,0,2,mirror", (5, 5, 1, 2)),
    ("nn_crop C,IN,-2,1,0,0,6,9,0,2,dirichlet", (5, 5, 1, 2)),
    ("nn_conv2d C,IN,4,3,1,1,0,dirichlet", (7, 6, 1, 2)),
    ("nn_conv2d C,IN,4,4,2,2,1,neumann", (11, 9, 1, 2)),
    ("nn_conv2d C,IN,3,3,1,3,0,periodic", (4, 5, 1, 2)),  # dilation reaching past the input
    ("nn_conv2d C,IN,3,5,1,2,0,mirror", (4, 5, 2, 2)),  # 2D kernels on each slice
    ("nn_conv3d C,IN,3,3,2,1,0,mirror", (6, 6, 5, 2)),
    ("nn_conv3d C,IN,2,3,1,1,1,periodic", (6, 6, 5, 1)),
    ("nn_conv2dnnl C,IN,4,3 nn_resconv2dnl R,C", (6, 6, 1, 3)),
    ("nn_tconv2d T,IN,3,3,2", (5, 4, 1, 2)),
    ("nn_tconv2d T,IN,3,4,3,2", (5, 4, 1, 2)),
    ("nn_maxpool2d P,IN,2", (7, 6, 1, 2)),
    ("nn_maxpool3d P,IN,2", (8, 7, 5, 2)),
    ("nn_avgpool2d P,IN,3", (8, 7, 1, 2)),
    ("nn_avgpool3d P,IN,2", (8, 7, 5, 2)),
    ("nn_resize R,IN,13,5,1,3,3", (8, 7, 1, 2)),
    ("nn_resize R,IN,5,11,2,2,0", (8, 7, 1, 2)),
    ("nn_resize R,IN,5,11,1,1,1", (8, 7, 1, 2)),
    ("nn_resize R,IN,5,11,1,4,2", (8, 7, 1, 2)),
    ("nn_patchdown2d P,IN,2 nn_patchup2d U,P,2", (8, 7, 1, 2)),
    ("nn_patchdown3d P,IN,2 nn_patchup3d U,P,2", (4, 4, 4, 1)),
    ("nn_clone A,B,IN nn_nl C,B,sqr nn_distance D,A,C,0", (3, 2, 1, 2)),
    ("nn_clone A,B,IN nn_nl C,B,sqr nn_distance D,A,C,1.5", (3, 2, 1, 2)),
]


@pytest.mark.parametrize("network,size", LAYERS, ids=[n for n, _ in LAYERS])
def test_each_layer_type_exports_to_the_same_values(tmp_path, network, size):
    compare(tmp_path, network, size)


@pytest.mark.parametrize(
    "activation", "elu gelu leakyrelu linear relu sigmoid sin sinc softmax sqr sqrt swish tanh".split()
)
def test_each_activation_exports_to_the_same_values(tmp_path, activation):
    compare(tmp_path, f"nn_nl A,IN,{activation}", (3, 2, 1, 2))


def test_an_inner_layer_can_be_exported(tmp_path):
    session = compare(tmp_path, "nn_conv2d C,IN,4,3 nn_maxpool2d P,C nn_fc OUT,P,3", (8, 8, 1, 1), output="P")
    assert [o.name for o in session.get_outputs()] == ["P"]


def trained(example, data, iterations=5):
    """The example's network after a few training steps on `data` (images named x, y)."""
    return run_script(f"{data}\n{network_lines(example)}\nnn_train[x,y] {iterations},8", seed=2, quiet=True)


def test_tutorial_network_exports_with_vector_input_and_output(tmp_path):
    run = run_script(
        f"{network_lines('color_mapping.nnp')}\n"
        "input 40,1,1,5 noise[-1] 1 name. samples nn_train[samples] 20,8\n"
        "input 16,16,1,2 noise[-1] 1 name. coords nn_eval[coords]",
        seed=2,
        quiet=True,
    )
    session = exported(tmp_path, run.interpreter)
    (feed,), (output,) = session.get_inputs(), session.get_outputs()
    assert (feed.name, feed.shape, output.name, output.shape) == ("IN", ["N", 1, 1, 2], "OUT", ["N", 3, 1, 1])
    coords = run.image(run.images.find("coords"))  # (2, 1, 16, 16): a sample per pixel
    result = session.run(None, {"IN": coords.reshape(2, -1).T.reshape(-1, 1, 1, 2).copy()})[0]
    np.testing.assert_allclose(result.reshape(-1, 3).T, run.image(-1).reshape(3, -1), atol=1e-4, rtol=1e-4)


def test_shapes_classifier_exports_to_the_same_scores(tmp_path):
    run = trained("shapes.nnp", "input 32,32,16,1 noise[-1] 1 name. x input 1,1,16,3 noise[-1] 1 name. y")
    run.interpreter.run_items(["input", "32,32,5,1", "noise[-1]", "1", "name.", "test", "nn_eval[test]"])
    session = exported(tmp_path, run.interpreter)
    assert session.get_inputs()[0].shape == ["N", 1, 32, 32]
    result = session.run(None, {"IN": to_nchw(run.image(-2), (32, 32, 1, 1), 5)})[0]
    np.testing.assert_allclose(result, to_nchw(run.image(-1), (1, 1, 1, 3), 5), atol=1e-4, rtol=1e-4)


def test_denoiser_exports_to_the_same_images(tmp_path):
    run = trained("denoise.nnp", "input 32,32,8,3 noise[-1] 1 name. x +noise[x] 0.1 name. y")
    run.interpreter.run_items(["input", "32,32,2,3", "noise[-1]", "1", "name.", "test", "nn_eval[test]"])
    session = exported(tmp_path, run.interpreter)
    result = session.run(None, {"IN": to_nchw(run.image(-2), (32, 32, 1, 3), 2)})[0]
    assert result.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(result, to_nchw(run.image(-1), (32, 32, 1, 3), 2), atol=1e-4, rtol=1e-4)


def test_a_loss_cannot_be_exported_and_says_so_in_one_line(tmp_path):
    model = tmp_path / "model.onnx"
    result = cli(
        "nn_init",
        "nn_input",
        "IN,2",
        "nn_fc",
        "OUT,IN,1",
        "nn_loss_mse",
        "LOSS,OUT,GT",
        "nn_export",
        f"{model},LOSS",
    )
    assert result.code == 1
    assert result.error_lines == [
        "nnpipe: error: <command line>:1: nn_export: layer 'LOSS' (loss_mse)"
        " cannot be exported to ONNX (losses are for training: export what"
        " they compare)"
    ]
    assert not model.exists()


def test_the_onnx_extra_installs_what_runs_an_export():
    """`pip install 'nnpipe[onnx]'` brings onnxruntime too, which the README's snippet imports."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {requirement.split(">")[0] for requirement in extras["onnx"]} == {"onnx", "onnxruntime"}

"""G'MIC 3.6's nn_lib API (`--nnlib 3.6`) against the real G'MIC 3.6.3 (the gmic package):
networks built from the same weights compute the same forward values (within 1e-5 of the
values' magnitude), G'MIC's own trained networks load, print and compute as in G'MIC, network
files go both ways; and the new layers' gradients, initialisations and ONNX export."""

import os
import tempfile

import gmic
import numpy as np
import pytest
from conftest import cli, run_script, script_error
from gmic36 import NETWORK, built, from_gmic, gmic_forward, nnpipe_forward, random_weights, to_gmic
from nn_helpers import build, parameters
from test_nn_gradients import check, numeric_gradient, random_normalize, run_batch
from test_onnx import exported, to_nchw

from nnpipe.images import gmz
from nnpipe.nn import files
from nnpipe.nn.files import init_text

# G'MIC's trained networks (the files G'MIC 3.6.3 keeps in ~/.cache/gmic/), not in the repository
NETWORKS = os.environ.get("NNPIPE_GMIC_NETWORKS", "/work/shared/data/gmic")
DENOISER = os.path.join(NETWORKS, "gmic_denoise_cnn.gmz")
UPSCALER = os.path.join(NETWORKS, "gmic_scale2x_cnn.gmz")
needs_networks = pytest.mark.skipif(
    not (os.path.isfile(DENOISER) and os.path.isfile(UPSCALER)),
    reason=f"G'MIC's network files are not in {NETWORKS} (set NNPIPE_GMIC_NETWORKS)",
)
# forward values agree within this share of the largest magnitude (G'MIC computes in double,
# nnpipe in float32)
TOLERANCE = 1e-5

ACTIVATIONS = (
    "elu gelu leakyrelu linear relu sigmoid sin sinc softmax sqr sqrt swish tanh"
    " norm2 waves0 waves1 waves2 waves3 waves4 zpsinz".split()
)
FORWARD = (
    [f"nn_input IN,3 nn_fc H,IN,4 nn_nl A,H,{name} nn_fc OUT,A,2" for name in ACTIVATIONS]
    + [
        "nn_input IN,2,2,1,2 nn_fc O,IN,3,3,0,1",  # identity initialisation, given weights
        "nn_input IN,2,2,1,3 nn_conv2d C,IN,4,3",
        "nn_input IN,6,5,1,2 nn_conv2d C,IN,3,2",  # even kernels: CImg's shifted sampling
        "nn_input IN,6,5,1,2 nn_conv2d C,IN,3,4",
        "nn_input IN,6,5,1,2 nn_conv2d C,IN,3,4,1,1,0,0",
        "nn_input IN,6,6,1,2 nn_conv2d C,IN,3,3,2,1,1,2",  # stride, shrink, periodic
        "nn_input IN,6,6,1,2 nn_conv2d C,IN,3,2,2,1,0,3",
        "nn_input IN,7,6,1,2 nn_conv2d C,IN,2,5,1,2,1,1",  # dilation 2
        "nn_input IN,7,6,1,2 nn_conv2d C,IN,2,3,1,0,0,1",  # dilation 0
        "nn_input IN,7,6,1,2 nn_conv2d C,IN,2,3,1,-1,0,2",  # dilation -1
        "nn_input IN,5,4,3,2 nn_conv3d C,IN,2,3",
        "nn_input IN,4,4,4,1 nn_conv3d C,IN,2,2",
        "nn_input IN,4,4,2,2 nn_conv3d C,IN,2,3,2,1,0,3",
        "nn_input IN,3,2,1,2 nn_normalize N,IN,0",
        "nn_input IN,3,2,1,2 nn_normalize N,IN,1",
        "nn_input IN,4,3,1,2 nn_split A,B,IN,x,1 nn_append O,B,A,x",
        "nn_input IN,4,3,1,2 nn_split A,B,IN,y,2 nn_append O,B,A,y",
        "nn_input IN,4,3,2,2 nn_split A,B,IN,z,1 nn_append O,B,A,z",
        "nn_input IN,4,3,1,3 nn_split A,B,IN,c,1 nn_append O,B,A,c",
        "nn_input IN,3,2,1,2 nn_input J,3,2,1,2 nn_sub A,IN,J nn_mul C,A,IN nn_add D,C,J nn_div O,D,J",
        "nn_input IN,3,2,1,2 nn_sub A,2,IN nn_mul C,A,-0.5 nn_add D,0.25,C nn_sub E,D,3 nn_div O,E,4",
        "nn_input IN,3,2,1,2 nn_div O,1.5,IN",
        "nn_input IN,10,4,1,1 nn_resize O,IN,50%",  # a width percentage of the height, as 3.6.3
        "nn_input IN,6,6,1,2 nn_maxpool2d O,IN",
        "nn_input IN,6,6,1,2 nn_maxpool2d O,IN,3,1",
        "nn_input IN,4,4,4,1 nn_maxpool3d O,IN,2,1",
        "nn_input IN,5,5,1,2 nn_avgpool2d O,IN,2",
        "nn_input IN,4,4,4,2 nn_avgpool3d O,IN",
        "nn_input IN,4,4,1,2 nn_patchdown2d P,IN nn_patchup2d O,P",
        "nn_input IN,4,4,1,8 nn_patchup2d O,IN",
        "nn_input IN,4,4,4,1 nn_patchdown3d O,IN",
        "nn_input IN,3,2,1,2 nn_crop O,IN,-1,0,0,0,3,1,0,1",
        "nn_input IN,3,2,1,2 nn_crop O,IN,1,0,0,0,4,2,0,1,2",
        "nn_input IN,3,2,1,2 nn_crop O,IN,-2,-1,0,0,4,2,0,1,3",
        "nn_input IN,2,2,1,2 nn_reshape O,IN,8",
        "nn_input IN,2,2,1,2 nn_clone A,B,IN nn_rename R,B nn_dropout D,R,0.5 nn_mul O,A,D",
        "nn_input IN,3 nn_input J,3 nn_distance O,IN,J",
        "nn_input IN,3 nn_input J,3 nn_distance O,IN,J,0",
        "nn_input IN,3 nn_input J,3 nn_distance O,IN,J,1",
        "nn_input IN,3 nn_input J,3 nn_distance O,IN,J,3",
        'nn_input IN,4,4,1,1 nn_run O,IN,"mul 2"',
        'nn_input IN,4,3,1,1 nn_run O,IN,"add 1",3,3',
    ]
    + [
        layers
        for interpolation in range(7)
        for layers in (
            f"nn_input IN,4,3,1,2 nn_resize O,IN,7,5,1,3,{interpolation}",
            f"nn_input IN,7,5,1,3 nn_resize O,IN,3,2,1,2,{interpolation}",
        )
    ]
)
# normalize layers without statistics yet: each sample by its own
PER_SAMPLE = ["nn_input IN,3,2,1,2 nn_normalize N,IN,0", "nn_input IN,3,2,1,2 nn_normalize N,IN,1"]


def inputs_of(layers, weights, seed=3):
    network = built(layers, weights).workspace.network()
    rng = np.random.default_rng(seed)
    return network, {
        m.name: rng.uniform(-1, 1, m.size[::-1]).astype(np.float32)
        for m in network.modules.values()
        if m.layer.inputs == 0
    }


def assert_agree(expected, got, what):
    for name in expected:
        scale = max(1.0, float(np.abs(expected[name]).max()))
        difference = float(np.abs(expected[name] - got[name]).max())
        assert difference <= TOLERANCE * scale, f"{what}: layer {name} differs by {difference:.3g}"


@pytest.mark.parametrize("layers", FORWARD + PER_SAMPLE, ids=lambda layers: layers[9:])
def test_forward_as_gmic(layers):
    weights = random_weights(layers, statistics=layers not in PER_SAMPLE)
    network, inputs = inputs_of(layers, weights)
    output = [network.latest]
    assert_agree(
        gmic_forward(layers, weights, inputs, output), nnpipe_forward(layers, weights, inputs, output), layers
    )


@needs_networks
def test_the_trained_denoiser_computes_as_in_gmic():
    """G'MIC's denoiser on a 64x64 RGB patch in [0, 1] with the noise level given: its output
    and the modulated feature maps."""
    rng = np.random.default_rng(0)
    inputs = {
        "NL": np.full((1, 1, 1, 1), 20, np.float32),
        "IN": rng.uniform(0, 1, (3, 1, 64, 64)).astype(np.float32),
    }
    setup = f"nn_load {DENOISER}"
    outputs = ["OUT", "FM3"]
    expected = gmic_forward(None, {}, inputs, outputs, network="denoise", setup=setup)
    assert_agree(expected, nnpipe_forward(None, {}, inputs, outputs, setup=setup), "denoiser")


@needs_networks
def test_the_trained_upscaler_computes_as_in_gmic():
    """G'MIC's 2x upscaler on a 32x32 patch of luminance values (16..235): the residual
    scale2x_cnn uses, and the network's own bicubic output."""
    inputs = {"IN": np.random.default_rng(1).uniform(16, 235, (1, 1, 32, 32)).astype(np.float32)}
    setup = f"nn_load {UPSCALER}"
    outputs = ["RESIDUAL", "OUT"]
    expected = gmic_forward(None, {}, inputs, outputs, network="s2x", setup=setup)
    assert_agree(expected, nnpipe_forward(None, {}, inputs, outputs, setup=setup), "upscaler")


# --- nn_print ------------------------------------------------------------------------------------


def gmic_lines(script):
    """What G'MIC prints (its log stream) for `script`, line by line."""
    saved, capture = os.dup(2), tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    try:
        gmic.Gmic().run(f"_vt100=0 {script}")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    capture.seek(0)
    return capture.read().decode().split("\n")


EVERY_LAYER = (
    "nn_init CNN nn_input IMG,8,8,1,3 nn_conv2d C1,IMG,4,3,1,1,0,1,3,0.001,2 nn_normalize N1,C1"
    " nn_nl A1,N1,relu nn_maxpool2d P1,A1 nn_conv2d C2,P1,4,3,2,1,0,0 nn_avgpool2d P2,."
    " nn_patchup2d U,C2 nn_patchdown2d D,U nn_add S,D,C2 nn_sub B,S,D nn_div V,B,C2 nn_clone K1,K2,V"
    " nn_append J,K1,K2,c nn_split J1,J2,J,c,3 nn_crop CR,J1,0,0,0,0,1,1,0,2 nn_resize RS,CR,4,4,1,3,1"
    " nn_reshape RH,RS,48 nn_dropout DR,RH,0.25 nn_rename RN,DR nn_fc F,RN,10,3,0,2 nn_distance DI,F,F"
    " nn_input VOL,4,4,4,1 nn_conv3d C3,VOL,2,3,1,1,0,1 nn_maxpool3d M3,C3 nn_avgpool3d A3,C3"
    " nn_patchdown3d PD3,C3 nn_patchup3d PU3,PD3 nn_loss_softmax_crossentropy L1,F,GT,0.5"
    " nn_loss_mse L2,J2,GT2 nn_loss_binary_crossentropy L3,F,GT3 nn_loss_crossentropy L4,F,GT4,2"
    " nn_loss_normp L5,F,GT5,2,0.5 nn_print"
)


@pytest.mark.parametrize(
    "script",
    [
        EVERY_LAYER,
        pytest.param(f"nn_load {DENOISER} nn_print", marks=needs_networks),
        pytest.param(f"nn_load {UPSCALER} nn_print", marks=needs_networks),
    ],
    ids=["layers", "denoiser", "upscaler"],
)
def test_nn_print_lists_a_network_as_gmic(script):
    expected = [line for line in gmic_lines(script) if line.strip()]
    got = [line for line in run_script(script, api="3.6").lines if line.strip()]
    assert got == expected


def test_nn_size_and_nn_check_layer():
    run = run_script(
        "nn_init N nn_input IN,2,2,1,3 nn_conv2d C,IN,4,3 nn_normalize B,C nn_fc F,B,5"
        " nn_check_layer B echo ${-nn_size}",
        api="3.6",
    )
    assert run.lines[-1] == str((3 * 9 + 1) * 4 + 4 * 4 + (16 + 1) * 5)
    assert "no layer named 'X'" in str(script_error("nn_init N nn_input IN,2 nn_check_layer X", api="3.6"))


# --- files ---------------------------------------------------------------------------------------

SMALL = "nn_input IN,4,4,1,2 nn_conv2d C,IN,3,2 nn_nl A,C nn_normalize B,A,0 nn_fc OUT,B,3"


def test_the_commands_a_network_keeps_are_gmics():
    """What nn_save writes in NET__init__: every command with its defaults filled in, '.'
    kept, a quoted nn_run command quoted."""
    layers = EVERY_LAYER.replace(" nn_print", "") + ' nn_run RR,RN,"mirror x" nn_resize RZ,RR,50%'
    expected = gmic_lines(f"{layers} echo ${{_CNN_init}}")[-1].strip()
    network = run_script(layers, api="3.6").workspace.network()
    assert init_text.init_text_36(files.NetworkFile("CNN", network.commands, [])) == expected


def test_gmic_loads_and_computes_a_network_nnpipe_saved(work):
    weights = random_weights(SMALL)
    network, inputs = inputs_of(SMALL, weights)
    interp = built(SMALL, weights)
    interp.run_items(["nn_save", "net.gmz"])
    expected = nnpipe_forward(SMALL, weights, inputs, ["OUT"])
    assert_agree(
        expected, gmic_forward(None, {}, inputs, ["OUT"], setup="nn_load net.gmz"), "saved by nnpipe"
    )


def test_nnpipe_writes_the_file_gmic_writes(work):
    """nn_save of the same network from the same weights: the same images, names, order and
    commands text."""
    weights = random_weights(SMALL)
    built(SMALL, weights).run_items(["nn_save", "nnpipe.gmz"])
    names = gmic.StringList(list(weights))
    gmic.Gmic().run(
        f"nn_init {NETWORK} {SMALL} nn_save gmic.gmz",
        gmic.ImageList([to_gmic(w) for w in weights.values()]),
        names,
    )
    mine, theirs = gmic.StringList(), gmic.StringList()
    ours = gmic.Gmic().run("input nnpipe.gmz", None, mine)
    want = gmic.Gmic().run("input gmic.gmz", None, theirs)
    assert list(mine) == list(theirs)
    for a, b in zip(ours, want):
        np.testing.assert_array_equal(from_gmic(a), from_gmic(b))


def test_a_network_gmic_saved_loads_as_a_36_network_whatever_the_option(work):
    """The issue's case: fc, leakyrelu, fc saved by G'MIC computes with 3.6's slope 0.01, here
    in nnpipe's default (2023) mode."""
    gmic.Gmic().run(
        "(0.5,-0.3,0.1;0.2,0.8,-0.2;-0.7,0.4,0.05;0.3,-0.9,0) => net_H (0.6,-0.4,0.9,0.1,0.2) => net_OUT"
        " nn_init net nn_input IN,2 nn_fc H,IN,4 nn_nl A,H,leakyrelu nn_fc OUT,A,1 nn_save net.gmz"
    )
    run = run_script("nn_load net.gmz (0.25^-1) nn_eval.")
    assert run.workspace.network().api == "3.6"
    expected = gmic_forward(
        None,
        {},
        {"IN": np.array([0.25, -1], np.float32).reshape(1, 1, 1, 2)},
        ["OUT"],
        network="net",
        setup="nn_load net.gmz",
    )
    assert run.image(-1).ravel() == pytest.approx(expected["OUT"], abs=1e-6)


@needs_networks
@pytest.mark.parametrize("path", [DENOISER, UPSCALER], ids=["denoiser", "upscaler"])
def test_a_loaded_gmic_network_saves_as_the_file_it_came_from(work, path):
    """The same names, order, values and commands text: G'MIC's denoise_cnn and scale2x_cnn
    take the file nnpipe writes."""
    run_script(f"nn_load {path} nn_save copy.gmz")
    original, copy = gmz.decode(open(path, "rb").read()), gmz.decode((work / "copy.gmz").read_bytes())
    assert [name for name, _ in copy] == [name for name, _ in original]
    for (_, mine), (_, theirs) in zip(copy, original):
        np.testing.assert_array_equal(mine, theirs)


def test_input_of_a_36_file_gives_its_named_images(work):
    """As in G'MIC: the weights NET_LAYER and the text image NET__init__ (a column)."""
    built(SMALL, random_weights(SMALL)).run_items(["nn_save", "net.gmz"])
    run = run_script("input net.gmz")
    assert run.names == ["N_C", "N_B", "N_OUT", "N__init__"]
    assert run.image(-1).shape[:2] == (1, 1) and run.image(-1).shape[3] == 1
    text = bytes(run.image(-1).ravel().astype(np.uint8)).decode()
    assert text == (
        "nn_init N nn_input IN,4,4,1,2 nn_conv2d C,IN,3,2,1,1,0,1,3,0,3 nn_nl A,C,leakyrelu"
        " nn_normalize B,A,0,3 nn_fc OUT,B,3,3,0,3"
    )


def test_nn_store_moves_the_images_and_nn_load_brings_them_back():
    run = run_script(f"nn_init N {SMALL} nn_store _net echo $! nn_load _net echo $!", api="3.6")
    assert run.lines == ["0", "3"]
    assert run.names == ["N_C", "N_B", "N_OUT"]


def test_init_text_items_are_separated_by_blanks_or_line_breaks_and_quotes_group():
    text = 'nn_init R nn_input IN,4,4\nnn_run O,IN,"add 1",100%  nn_nl A,O'
    assert init_text.parse_init_text_36(text, "R__init__") == (
        "R",
        ["nn_input IN,4,4", 'nn_run O,IN,"add 1",100%', "nn_nl A,O"],
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "nn_init R nn_input IN,2 nn_fcnl A,IN,3",
            "uses 'nn_fcnl', which nnpipe does not read in a G'MIC 3.6",
        ),
        ("nn_init R nn_input IN,2 nn_wavelet A,IN", "uses 'nn_wavelet', which is no layer command"),
        ("nn_init R nn_input IN,2 nn_nl", "ends with 'nn_nl', without arguments"),
        ("nn_input IN,2", "does not start with nn_init NAME"),
    ],
)
def test_a_36_file_nnpipe_cannot_read_is_one_line(work, text, message):
    codes = np.frombuffer(text.encode(), np.uint8).astype(np.float32).reshape(-1, 1, 1, 1)
    gmic.Gmic().run(
        "output R.gmz",
        gmic.ImageList([to_gmic(np.ones((1, 1, 1, 1))), to_gmic(codes.reshape(1, 1, -1, 1))]),
        gmic.StringList(["R_X", "R__init__"]),
    )
    error = script_error("nn_load R.gmz")
    assert message in str(error) and "\n" not in str(error)


@needs_networks
def test_the_denoiser_loads_from_the_command_line_without_the_option():
    result = cli("nn_load", DENOISER, "nn_size")
    assert result.code == 0, result.stderr


# --- the API is chosen explicitly ------------------------------------------------------------------


def test_a_36_network_needs_a_name():
    assert "nn_init NAME" in str(script_error("nn_input IN,2", api="3.6"))
    assert "missing argument 'network_name'" in str(script_error("nn_init", api="3.6"))


def test_2023_networks_keep_their_slope_and_36_networks_have_theirs():
    both = {}
    for api, init in (("2023", "nn_init"), ("3.6", "nn_init N")):
        run = run_script(f"{init} nn_input IN,1 nn_nl A,IN,leakyrelu (-2) nn_eval. A", api=api)
        both[api] = float(run.image(-1).ravel()[0])
    assert both == {"2023": pytest.approx(-0.1), "3.6": pytest.approx(-0.02)}


# --- initialisations -------------------------------------------------------------------------------


def gmic_image(script, name):
    names = gmic.StringList()
    images = gmic.Gmic().run(script, None, names)
    return from_gmic(images[list(names).index(name)])


@pytest.mark.parametrize(
    "layers, name",
    [
        ("nn_input IN,3,2 nn_fc F,IN,4,3,0,1", "N_F"),
        ("nn_input IN,4 nn_fc F,IN,9,3,0,1", "N_F"),
        ("nn_input IN,5,5,1,3 nn_conv2d C,IN,4,3,1,1,0,1,3,0,1", "N_C"),
        ("nn_input IN,4,4,4,2 nn_conv3d C,IN,3,3,1,1,0,1,3,0,1", "N_C"),
        ("nn_input IN,4 nn_fc F,IN,3,3,0,0", "N_F"),
    ],
)
def test_zero_and_identity_initialisations_are_gmics(layers, name):
    expected = gmic_image(f"nn_init N {layers}", name)
    np.testing.assert_array_equal(built(layers).workspace.images.get(name), expected)


@pytest.mark.parametrize("initialization, gain", [(2, 1), (3, 2)], ids=["lecun", "he"])
def test_random_initialisations_follow_gmics_law(initialization, gain):
    """N(0, gain / fan_in) weights and zero biases, as G'MIC draws them (compared in law: the
    random streams differ)."""
    layers = f"nn_input IN,50 nn_fc F,IN,400,3,0,{initialization}"
    for weights in (
        built(layers).workspace.images.get("N_F"),
        gmic_image(f"srand 5 nn_init N {layers}", "N_F"),
    ):
        rows = weights.reshape(400, 51)
        assert np.all(rows[:, -1] == 0)
        assert rows[:, :-1].std() == pytest.approx(np.sqrt(gain / 50), rel=0.02)
        assert abs(rows[:, :-1].mean()) < 0.01


# --- gradients -------------------------------------------------------------------------------------
# A 3.6 network ends on one value: G'MIC 3.6's mse then back-propagates the exact gradient of
# the loss it reports (with n values, n times that, checked apart).


def check36(layers, **options):
    return check(f"nn_init N nn_input IN,{layers} nn_loss_mse LOSS,OUT,GT", api="3.6", **options)


GRADIENTS = {
    "fc": "3 nn_fc OUT,IN,1",
    "conv2d": "4,3,1,2 nn_conv2d C,IN,2,3 nn_fc OUT,C,1",
    "conv2d even kernel": "5,4,1,2 nn_conv2d C,IN,2,2 nn_fc OUT,C,1",
    "conv2d stride shrink": "6,6,1,2 nn_conv2d C,IN,2,3,2,1,1,3 nn_fc OUT,C,1",
    "conv3d": "4,4,2,1 nn_conv3d C,IN,2,2,1,1,0,2 nn_fc OUT,C,1",
    "leakyrelu": "4 nn_nl A,IN,leakyrelu nn_fc OUT,A,1",
    "norm2": "4 nn_nl A,IN,norm2 nn_fc OUT,A,1",
    "sub div": "1,1,1,3 nn_fc A,IN,3 nn_sub S,A,IN nn_div D,S,IN nn_div E,IN,S nn_add F,D,E nn_fc OUT,F,1",
    "constants": "3 nn_sub A,2,IN nn_div B,1.5,A nn_mul C,B,-0.5 nn_div D,C,4 nn_sub E,D,3 nn_fc OUT,E,1",
    "append split x": "3,2,1,2 nn_split A,B,IN,x,1 nn_nl S,B,sin nn_append P,S,A,x nn_fc OUT,P,1",
    "append split y": "3,2,1,2 nn_split A,B,IN,y,1 nn_nl S,B,sin nn_append P,S,A,y nn_fc OUT,P,1",
    "append split z": "2,2,2,2 nn_split A,B,IN,z,1 nn_nl S,B,sin nn_append P,S,A,z nn_fc OUT,P,1",
    "append c": "2,2,1,2 nn_nl S,IN,sin nn_append P,S,IN,c nn_fc OUT,P,1",
    "maxabs": "4,4,1,2 nn_maxpool2d P,IN,2,1 nn_fc OUT,P,1",
    "resize cubic": "3,3,1,2 nn_resize R,IN,5,4,1,2,5 nn_fc OUT,R,1",
    "resize lanczos": "3,3,1,2 nn_resize R,IN,7,4,1,2,6 nn_fc OUT,R,1",
    "resize grid": "3,3,1,2 nn_resize R,IN,7,5,1,2,4 nn_fc OUT,R,1",
    "normalize global": "3,2,1,2 nn_normalize N,IN,0 nn_fc OUT,N,1",
    "normalize channels": "3,2,1,2 nn_normalize N,IN,1 nn_fc OUT,N,1",
    "distance": "1,1,1,3 nn_fc A,IN,3 nn_distance OUT,A,IN",
}


@pytest.mark.parametrize("layers", GRADIENTS.values(), ids=GRADIENTS.keys())
def test_gradient(layers):
    tweak = random_normalize("N") if "normalize" in layers else None
    check36(layers, tweak=tweak)


@pytest.mark.parametrize(
    "loss",
    ["mse LOSS,OUT,GT,1.5", "normp LOSS,OUT,GT,1,0.5", "normp LOSS,OUT,GT,3,2"],
    ids=["mse", "normp1", "normp3"],
)
def test_mse_and_normp_gradients_are_those_of_the_norm_as_in_gmic(loss):
    """G'MIC 3.6.3's mse and normp report the mean over a sample's n values but back-propagate
    the gradient of the whole norm: n times that of the loss reported."""
    interp = build(f"nn_init N nn_input IN,3 nn_fc OUT,IN,4 nn_loss_{loss}", api="3.6")
    plan = interp.workspace.network().plan("LOSS")
    params = parameters(interp, plan).astype(np.float64)
    samples = np.random.default_rng(2).uniform(-1, 1, (3, 7))
    _, grads, _ = run_batch(plan, params, samples, dtype=np.float64)
    numeric = numeric_gradient(
        lambda p: run_batch(plan, p, samples, dtype=np.float64)[0], params, range(params.size)
    )
    np.testing.assert_allclose(grads, 4 * numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "loss, positive",
    [
        ("crossentropy LOSS,OUT,GT,2", True),
        ("binary_crossentropy LOSS,OUT,GT,0.5", True),
        ("softmax_crossentropy LOSS,OUT,GT,3", False),
    ],
    ids=["crossentropy", "binary", "softmax"],
)
def test_cross_entropy_gradients(loss, positive):
    """One probability (crossentropy of a sigmoid, binary of a sigmoid), or softmax scores."""
    head = "nn_nl OUT,F,sigmoid" if positive else "nn_rename OUT,F"
    check(f"nn_init N nn_input IN,3 nn_fc F,IN,{1 if positive else 3} {head} nn_loss_{loss}", api="3.6")


def test_normalize_without_statistics_holds_the_samples_statistics_constant_as_gmic():
    """Its backward pass is G'MIC 3.6.3's (normalize.gmic in the notes: dX of the last sample
    of the first step, mode 0, X = (4,1,-2,0), alpha 1 beta 0)."""
    interp = build("nn_init N nn_input X,2,1,1,2 nn_normalize NRM,X,0 nn_loss_mse L,NRM,GT", api="3.6")
    plan = interp.workspace.network().plan("L")
    samples = np.array([[4, 1, -2, 0, 0.1, 0.2, 0.3, 0.4]], dtype=np.float64)
    _, _, sample_grads = run_batch(
        plan, parameters(interp, plan).astype(np.float64), samples, dtype=np.float64
    )
    np.testing.assert_allclose(
        sample_grads[0, :4],
        [0.95999999199999997, -0.08, -1.1199999920000001, -0.55999999680000012],
        rtol=1e-6,
    )


# --- ONNX ------------------------------------------------------------------------------------------

EXPORTED = [
    ("nn_fc F,IN,5 nn_nl A,F,leakyrelu nn_nl B,A,norm2", (3, 2, 1, 2)),
    ("nn_conv2d C,IN,3,2 nn_conv2d D,C,2,4,1,2,1,3", (8, 7, 1, 2)),
    ("nn_conv2d C,IN,3,3,2,1,1,2", (8, 6, 1, 2)),
    ("nn_conv3d C,IN,2,2", (4, 4, 3, 2)),
    ("nn_sub A,IN,1 nn_div B,A,IN nn_div C,2,B nn_mul D,C,IN nn_sub E,0.5,D", (3, 2, 1, 2)),
    ("nn_split A,B,IN,x,1 nn_append C,B,A,x nn_split D,E,C,y,1 nn_append F,E,D,y", (3, 2, 1, 2)),
    ("nn_split A,B,IN,c,1 nn_append C,B,A,c", (3, 2, 1, 3)),
    ("nn_resize A,IN,7,5,1,2,5 nn_resize B,A,9,9,1,2,6 nn_resize C,B,12,10,1,2,4", (4, 3, 1, 2)),
    ("nn_maxpool2d P,IN,2,1", (6, 4, 1, 2)),
    ("nn_normalize N,IN nn_normalize M,N,0", (3, 2, 1, 2)),
]


def compare_36(tmp_path, layers, size, statistics=True):
    w, h, d, s = size
    network = f"nn_input IN,{w},{h},{d},{s} {layers}"
    weights = random_weights(network, statistics=statistics)
    interp = built(network, weights)
    stack = np.random.default_rng(4).uniform(-1, 1, (s, d * 3, h, w)).astype(np.float32)
    interp.workspace.images.append(stack, "x")
    interp.run_items(["nn_eval[x]", "."])
    expected = interp.workspace.images[-1]
    session = exported(tmp_path, interp)
    result = session.run(None, {"IN": to_nchw(stack, size, 3)})[0]
    target = interp.workspace.network().modules[interp.workspace.images.names[-1]].size
    np.testing.assert_allclose(result, to_nchw(expected, target, 3), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layers, size", EXPORTED, ids=[layers for layers, _ in EXPORTED])
def test_36_layers_export_to_the_same_values(tmp_path, layers, size):
    compare_36(tmp_path, layers, size)


def test_normalize_without_statistics_exports_each_sample_by_its_own(tmp_path):
    compare_36(tmp_path, "nn_normalize N,IN nn_normalize M,N,0", (3, 2, 1, 2), statistics=False)


@needs_networks
def test_the_trained_denoiser_exports_to_the_same_values(tmp_path):
    patch = np.random.default_rng(6).uniform(0, 1, (3, 1, 64, 64)).astype(np.float32)
    interp = built("nn_input X,1")
    interp.run_items(["nn_load", DENOISER])
    interp.workspace.images.append(np.full((1, 1, 1, 1), 12, np.float32), "noise")
    interp.workspace.images.append(patch, "patch")
    interp.run_items(["nn_eval[noise,patch]", "OUT"])
    session = exported(tmp_path, interp, "OUT")
    assert [i.name for i in session.get_inputs()] == ["NL", "IN"]
    result = session.run(
        None, {"NL": np.full((1, 1, 1, 1), 12, np.float32), "IN": patch.transpose(1, 0, 2, 3)}
    )[0]
    np.testing.assert_allclose(result[0], interp.workspace.images[-1][:, 0], atol=1e-4)

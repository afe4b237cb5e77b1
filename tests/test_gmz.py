"""G'MIC's .gmz files against G'MIC itself (the gmic package): nnpipe writes the very bytes G'MIC
writes, G'MIC opens the networks nnpipe saves, and a network written by G'MIC in nn_lib's
layout loads in nnpipe and computes what G'MIC computes with the same weights."""

import gmic
import numpy as np
import pytest
from conftest import run_items
from nn_helpers import build

from nnpipe.errors import UserError
from nnpipe.images import gmz
from nnpipe.nn import files
from nnpipe.nn.files import init_text


def gmic_images(commands):
    """[(name, (s, d, h, w) array)] of the list G'MIC is left with after `commands`."""
    names = gmic.StringList()
    images = gmic.Gmic().run(commands, None, names)
    return [
        (str(name), np.transpose(image.as_numpy(), (3, 2, 1, 0)).astype(np.float32))
        for name, image in zip(names, images)
    ]


LISTS = {
    "bytes": "(1,2,3) name a (4;5) name b",
    "signed": "(-200,3;7,8) name weights (0) name zero",
    "floats": "(1.5,-2,3) name a (1e-3;inf) name b",
    "volume": "srand 1 16,12,5,3 rand -1,1 name random",
}


@pytest.mark.parametrize("case", LISTS)
def test_output_writes_the_bytes_gmic_writes(work, case):
    gmic.Gmic().run(f"{LISTS[case]} output gmic.gmz")
    decoded, want = gmz.decode((work / "gmic.gmz").read_bytes()), gmic_images(LISTS[case])
    assert [name for name, _ in decoded] == [name for name, _ in want]
    for (_, image), (_, expected) in zip(decoded, want):
        assert np.array_equal(image, expected)
    run_items("input", "gmic.gmz", "output", "nnpipe.gmz")  # read by nnpipe, written back
    assert (work / "nnpipe.gmz").read_bytes() == (work / "gmic.gmz").read_bytes()


def test_input_reads_the_names_and_values_gmic_wrote(work):
    gmic.Gmic().run(f"{LISTS['volume']} {LISTS['signed']} output list.gmz")
    loaded = run_items("input", "list.gmz")
    want = gmic_images(f"{LISTS['volume']} {LISTS['signed']}")
    assert loaded.names == [name for name, _ in want]
    for image, (_, expected) in zip(loaded.workspace.images.images, want):
        assert np.array_equal(image, expected)


NETWORK = (
    "nn_init nn_input IN,2 nn_fcnnl L1,IN,6 nn_resfcnl L2,L1 nn_fc OUT,L2,3"
    " nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam"
)


def test_gmic_opens_a_network_saved_by_nnpipe(work):
    interp = build(
        f"input (0,1,0.5^1,0,0.5^0.1,0.2,0.3^0.4,0.5,0.6^0.7,0.8,0.9) {NETWORK} nn_train 5,3 nn_save net.gmz"
    )
    listed = gmic_images("input net.gmz")
    names = [name for name, _ in listed]
    assert names[-1] == "_nn_init"
    # nn_lib's order (the order it creates them in): weights, trainer state, moments, _nn_init
    assert names[:-1] == [
        "L1_fc",
        "L1_normalize",
        "L2_fc",
        "OUT_fc",
        "T",
        "L1_fc_m",
        "L1_fc_v",
        "L1_normalize_m",
        "L1_normalize_v",
        "L2_fc_m",
        "L2_fc_v",
        "OUT_fc_m",
        "OUT_fc_v",
    ]
    for name, image in listed[:-1]:
        assert np.array_equal(image, interp.workspace.images.get(name)), name
    init = listed[-1][1]
    assert init.shape[:3] == (1, 1, 1)  # a line of characters, as ('text') makes it
    assert bytes(init.ravel().astype(np.uint8)).decode() == NETWORK
    # G'MIC reads the text back with {t}, as nn_lib's nn_load does before running it
    _, text = gmic_images("input net.gmz ('{t}')")[-1]
    assert bytes(text.ravel().astype(np.uint8)).decode() == NETWORK


# nn_lib 2023's nn_save in G'MIC, step by step: the weights, the trainer state and the moments
# (in the order nn_lib creates them), then ('$_nn_init') autocrop. {'" "'} => _nn_init, output.
NN_LIB_FILE = (
    "srand 5 3,4 rand -1,1 name H_fc 5,2 rand -1,1 name OUT_fc"
    " (7,1e-3,1e-3,0.5,0.25;1,0,0,0,0;0,0,0,0,0) name T"
    " +f[H_fc] 0.01 name H_fc_m +f[H_fc] 0.02 name H_fc_v +f[OUT_fc] 0.03 name OUT_fc_m"
    " +f[OUT_fc] 0.04 name OUT_fc_v"
    ' _nn_init="nn_init nn_input IN,2 nn_fcnl H,IN,4,tanh nn_fc OUT,H,2 "'
    " ('$_nn_init') autocrop. {'\" \"'} name _nn_init"
)

POINTS = [(0.5, -0.25), (1, 1), (-0.3, 0.8)]


def gmic_forward(x, y):
    """OUT = W2 (tanh(W1 (x,y,1)), 1) computed by G'MIC's own matrix product."""
    result = gmic_images(
        f"{NN_LIB_FILE} ({x};{y};1) +mmul[H_fc,-1] tanh. (1) append[-2,-1] y +mmul[OUT_fc,-1]"
    )
    return result[-1][1].ravel()


def test_a_network_written_by_gmic_in_nn_libs_layout_computes_the_same(work):
    gmic.Gmic().run(f"{NN_LIB_FILE} output nn_lib.gmz")
    xs = ",".join(str(x) for x, _ in POINTS)
    ys = ",".join(str(y) for _, y in POINTS)
    interp = build(f"nn_load nn_lib.gmz input ({xs}^{ys}) nn_eval")
    net = interp.workspace.networks["nn"]
    assert net.commands == ["nn_input IN,2", "nn_fcnl H,IN,4,tanh", "nn_fc OUT,H,2"]
    outputs = interp.workspace.images[-1].reshape(2, -1).T
    for point, output in zip(POINTS, outputs):
        np.testing.assert_allclose(output, gmic_forward(*point), rtol=1e-5, atol=1e-6)


def test_nn_libs_trainer_data_waits_for_the_trainer_declared_after_loading(work):
    """nn_lib's pattern: nn_load, then the loss and trainer again; they take the file's state."""
    gmic.Gmic().run(f"{NN_LIB_FILE} output nn_lib.gmz")
    interp = build("nn_load nn_lib.gmz nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam")
    assert interp.workspace.images.get("T").reshape(-1)[0] == 7  # its iteration counter
    assert np.all(interp.workspace.images.get("OUT_fc_v") == np.float32(0.04))
    without = build("nn_load nn_lib.gmz,0")  # weights only, as nn_lib's
    assert sorted(without.workspace.images.names) == ["H_fc", "OUT_fc"]


LATER = [
    "srand 2 nn_init net nn_input IN,2 nn_fc H,IN,4 nn_nl A,H,tanh nn_fc OUT,A,2 nn_save later.gmz",
    "srand 3 input later.gmz rand[net_H,net_OUT] -1,1 output later.gmz",
]  # biases too


def test_a_network_saved_by_gmics_own_nn_lib_computes_the_same(work):
    """G'MIC 3.6's nn_lib (the later API): its file gives a network of that API, whatever the
    option, its commands as written and its weights the images NET_LAYER."""
    for commands in LATER:
        gmic.Gmic().run(commands)
    xs = ",".join(str(x) for x, _ in POINTS)
    ys = ",".join(str(y) for _, y in POINTS)
    interp = build(f"nn_load later.gmz input ({xs}^{ys}) nn_eval")
    assert interp.workspace.current_network == "net"
    assert interp.workspace.network().api == "3.6"
    assert interp.workspace.network().commands == [
        "nn_input IN,2,1,1,1",
        "nn_fc H,IN,4,3,0,3",
        "nn_nl A,H,tanh",
        "nn_fc OUT,A,2,3,0,3",
    ]
    outputs = interp.workspace.images[-1].reshape(2, -1).T
    for (x, y), output in zip(POINTS, outputs):
        want = gmic_images(
            f"input later.gmz ({x};{y};1) +mmul[net_H,-1] tanh. (1) append[-2,-1] y +mmul[net_OUT,-1]"
        )[-1][1].ravel()
        np.testing.assert_allclose(output, want, rtol=1e-5, atol=1e-6)


def test_later_nn_lib_layers_nnpipe_does_not_read_are_refused_in_one_line(work):
    """nn_resize's interpolation -1 (G'MIC 3.6 takes it) is one nnpipe refuses."""
    gmic.Gmic().run("nn_init net nn_input IN,2 nn_fc F,IN,3 nn_resize R,F,4,1,1,1,-1 nn_save later.gmz")
    interp = build("input (1,2) name data")
    with pytest.raises(UserError) as info:
        interp.run_source("nn_load later.gmz", "demo.nnp")
    assert "'nn_resize R,F,4,1,1,1,-1': interpolation -1" in str(info.value)
    assert "\n" not in str(info.value)
    assert interp.workspace.images.names == ["data"] and not interp.workspace.networks


def test_init_text_round_trips_names_and_spaced_arguments():
    saved = files.NetworkFile("encoder", ["nn_input IN,2", "nn_fcnl H,IN,4,tanh", "nn_fc OUT,H,2"], [])
    assert init_text.init_text(saved) == "nn_init encoder nn_input IN,2 nn_fcnl H,IN,4,tanh nn_fc OUT,H,2"
    assert init_text.parse_init_text(init_text.init_text(saved)) == ("encoder", saved.commands)
    spaced = files.NetworkFile("nn", ["nn_input IN,2", "nn_fc OUT,IN,3,3 "], [])
    assert init_text.init_text(spaced) == 'nn_init nn_input IN,2 nn_fc "OUT,IN,3,3 "'
    assert init_text.parse_init_text(init_text.init_text(spaced)) == ("nn", spaced.commands)

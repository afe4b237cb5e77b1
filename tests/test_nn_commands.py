"""Network-building commands: nn_print, nn_size, parameter and moment images, errors."""

import re

import nn_helpers
import numpy as np
import pytest
from conftest import cli, run_script, script_error

from nnpipe.errors import UserError

SEED_NET = (
    "nn_init nn_input IN,2 nn_fcnnl L1,IN,64 "
    + " ".join(f"nn_resfcnl L{k},L{k - 1}" for k in range(2, 8))
    + " nn_fc OUT,L7,3 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam"
)

SEED_ORDER = (
    ["IN", "L1_fc", "L1_normalize", "L1"]
    + [f"L{k}{suffix}" for k in range(2, 8) for suffix in ("_clone0", "_clone1", "_fc", "_add", "")]
    + ["OUT_fc", "OUT", "LOSS", "T"]
)  # as nn_lib: the ground truth is no module
SEED_PARAMETERS = 192 + 4 + 6 * 4160 + 195


def parse_print(text):
    """nn_print's text as a list of module dicts, and the totals line."""
    modules, total = [], None
    for line in text.splitlines():
        if match := re.fullmatch(r" {4}- Module: (\w+) \(type: (\w+)\)", line):
            modules.append({"name": match[1], "type": match[2]})
        elif match := re.fullmatch(r" {8}\* Inputs?: ([\w,]+)", line):
            modules[-1]["inputs"] = match[1].split(",")
        elif match := re.fullmatch(r" {8}\* Output size: (\d+,\d+,\d+,\d+)", line):
            modules[-1]["size"] = match[1]
        elif match := re.fullmatch(r" {8}\* Propert(?:y|ies): (.*)", line):
            modules[-1]["properties"] = match[1]
        elif match := re.fullmatch(r" {8}\* Parameters: (\d+)", line):
            modules[-1]["parameters"] = int(match[1])
        elif match := re.fullmatch(r" \* Total: (\d+) modules, (\d+) parameters\.", line):
            total = (int(match[1]), int(match[2]))
    return modules, total


@pytest.fixture(scope="module")
def seed_net():
    return run_script(SEED_NET + " nn_print nn_size")


def test_nn_print_lists_the_seed_modules_in_order(seed_net):
    modules, total = parse_print(seed_net.out)
    assert [m["name"] for m in modules] == SEED_ORDER
    assert total == (len(SEED_ORDER), SEED_PARAMETERS)


def test_nn_print_types_sizes_and_inputs(seed_net):
    modules = {m["name"]: m for m in parse_print(seed_net.out)[0]}
    assert modules["IN"]["type"] == "input" and modules["IN"]["size"] == "2,1,1,1"
    assert "inputs" not in modules["IN"]
    assert modules["L1_fc"] == {
        "name": "L1_fc",
        "type": "fc",
        "inputs": ["IN"],
        "size": "1,1,1,64",
        "properties": "learning_mode=3",
        "parameters": 192,
    }
    assert modules["L1_normalize"]["type"] == "normalize"
    assert modules["L1_normalize"]["parameters"] == 4
    assert modules["L1_normalize"]["properties"] == "normalization=global, learning_mode=3"
    assert modules["L1"]["type"] == "nl" and modules["L1"]["properties"] == "activation=leakyrelu"
    for k in range(2, 8):
        previous = f"L{k - 1}"
        assert modules[f"L{k}_clone0"]["type"] == "clone"
        assert modules[f"L{k}_clone0"]["inputs"] == [previous]
        assert modules[f"L{k}_clone1"]["inputs"] == [previous]
        assert modules[f"L{k}_fc"]["inputs"] == [f"L{k}_clone1"]
        assert modules[f"L{k}_fc"]["parameters"] == 4160
        assert modules[f"L{k}_add"]["type"] == "add"
        assert sorted(modules[f"L{k}_add"]["inputs"]) == sorted([f"L{k}_fc", f"L{k}_clone0"])
        assert modules[f"L{k}"]["type"] == "nl"
        for suffix in ("_clone0", "_clone1", "_fc", "_add", ""):
            assert modules[f"L{k}{suffix}"]["size"] == "1,1,1,64"
    assert modules["OUT_fc"]["parameters"] == 195 and modules["OUT_fc"]["size"] == "1,1,1,3"
    assert modules["OUT"]["type"] == "rename" and modules["OUT"]["size"] == "1,1,1,3"
    assert modules["LOSS"]["type"] == "loss_mse" and modules["LOSS"]["size"] == "1,1,1,1"
    assert modules["LOSS"]["inputs"] == ["OUT"] and modules["LOSS"]["properties"] == "ground_truth=GT"
    assert modules["T"]["type"] == "trainer" and modules["T"]["size"] == "0,0,0,0"
    # numbers as typed, as nn_lib keeps its arguments as text
    assert modules["T"]["properties"] == ("loss=LOSS, learning_rate=1e-3, optimizer=adam, scheduler=constant")
    assert modules["T"]["parameters"] == 15  # the values of its 5x3 state image
    with_parameters = {name for name, m in modules.items() if "parameters" in m}
    assert with_parameters == ({"L1_fc", "L1_normalize", "OUT_fc", "T"} | {f"L{k}_fc" for k in range(2, 8)})


def test_nn_print_header_and_blank_lines_are_nn_libs(seed_net):
    lines = seed_net.lines
    assert lines[0] == " * List of modules:"
    assert lines[-2:] == ["", f" * Total: {len(SEED_ORDER)} modules, {SEED_PARAMETERS} parameters."]


def test_a_default_learning_rate_prints_as_nn_lib_writes_it():
    run = run_script("nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse LOSS,OUT,GT nn_trainer T nn_print")
    assert (
        "        * Properties: loss=LOSS, learning_rate=2e-4, optimizer=rmsprop,"
        " scheduler=constant" in run.lines
    )


def test_nn_size_sets_its_status_and_size_and_prints_nothing(seed_net):
    assert seed_net.interpreter.workspace.status == str(SEED_PARAMETERS)
    run = run_script(SEED_NET + " nn_size echo got:$size")
    assert run.lines == [f"got:{SEED_PARAMETERS}"]


def test_weight_images_are_named_after_their_modules(seed_net):
    images = seed_net.workspace.images
    shapes = {name: images.get(name).shape for name in images.names}
    assert shapes["L1_fc"] == (1, 1, 64, 3)  # 3x64: 2 weights and a bias per neuron
    assert shapes["L1_normalize"] == (1, 1, 1, 4)
    for k in range(2, 8):
        assert shapes[f"L{k}_fc"] == (1, 1, 64, 65)
    assert shapes["OUT_fc"] == (1, 1, 3, 65)
    assert shapes["T"] == (1, 1, 3, 5)  # trainer state: 5x3
    parameter_images = ["L1_fc", "L1_normalize"] + [f"L{k}_fc" for k in range(2, 8)] + ["OUT_fc"]
    assert sum(images.get(n).size for n in parameter_images) == SEED_PARAMETERS
    # parameter images come in module order, before the trainer
    positions = [images.names.index(n) for n in parameter_images + ["T"]]
    assert positions == sorted(positions)


def test_fc_weights_start_random_normalize_starts_as_identity(seed_net):
    images = seed_net.workspace.images
    weights = images.get("L2_fc")  # nn_lib's rule: N(0, 1) * 4 / fan_in
    assert weights.std() == pytest.approx(4 / 64, rel=0.1)
    assert abs(weights.mean()) < 0.01
    assert images.get("L1_fc").std() == pytest.approx(4 / 2, rel=0.3)
    assert images.get("L1_normalize").ravel().tolist() == [1, 0, 0, 1]


def test_adam_moments_are_zero_images_beside_each_parameter_image(seed_net):
    images = seed_net.workspace.images
    for name in ["L1_fc", "L1_normalize", "L4_fc", "OUT_fc"]:
        for suffix in ("_m", "_v"):
            moment = images.get(name + suffix)
            assert moment is not None, name + suffix
            assert moment.shape == images.get(name).shape
            assert not moment.any()
    assert images.get("L1_fc_g2") is None


def test_trainer_state_image(seed_net):
    state = seed_net.workspace.images.get("T")[0, 0]
    assert state[0, 0] == 0  # iteration
    assert state[0, 1] == state[0, 2] == np.float32(1e-3)  # rate, initial rate
    assert np.isinf(state[0, 3]) and np.isinf(state[0, 4])  # previous and best loss


@pytest.mark.parametrize(
    "optimizer, suffixes", [("rmsprop", ["_g2"]), ("sgd", []), ("adamax", ["_m", "_v"]), ("momentum", ["_m"])]
)
def test_moment_images_follow_the_optimizer(optimizer, suffixes):
    run = run_script(
        f"nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,{optimizer}"
    )
    moments = sorted(n for n in run.names if n.startswith("OUT_fc_"))
    assert moments == sorted(f"OUT_fc{s}" for s in suffixes)
    for name in moments:
        assert run.images.get(name).shape == (1, 1, 3, 3)


def test_default_optimizer_is_rmsprop():
    run = run_script("nn_input IN,2 nn_fc OUT,IN,3 nn_loss_mse LOSS,OUT,GT nn_trainer T")
    assert "OUT_fc_g2" in run.names
    assert run.images.get("T")[0, 0, 0, 1] == np.float32(2e-4)


EVAL_NET = "(0.1,0.5^0.2,-0.3) nn_input IN,2 nn_fcnl L1,IN,8,tanh nn_fc OUT,L1,3 "


def test_editing_a_weight_image_changes_nn_eval():
    run = run_script(EVAL_NET + "nn_eval[0] fill[L1_fc] 0 nn_eval[0]")
    first, second = [run.images[i] for i, n in enumerate(run.names) if n == "OUT"]
    assert first.shape == second.shape == (3, 1, 1, 2)
    assert not np.allclose(first, second)
    # with L1's weights and biases at 0, OUT is OUT_fc's bias column for every pixel
    biases = run.images.get("OUT_fc")[0, 0, :, -1]
    np.testing.assert_allclose(second[:, 0, 0, 0], biases, rtol=1e-6)
    np.testing.assert_allclose(second[:, 0, 0, 1], biases, rtol=1e-6)


def test_nn_eval_matches_a_numpy_forward_pass():
    run = run_script(EVAL_NET + "nn_eval[0]")
    x = run.images[0].reshape(2, -1).T.astype(np.float64)
    w1 = run.images.get("L1_fc")[0, 0].astype(np.float64)
    w2 = run.images.get("OUT_fc")[0, 0].astype(np.float64)
    hidden = np.tanh(x @ w1[:, :-1].T + w1[:, -1])
    expected = hidden @ w2[:, :-1].T + w2[:, -1]
    np.testing.assert_allclose(run.images[-1].reshape(3, -1).T, expected, rtol=1e-5, atol=1e-6)


# --- '.' and defaults -------------------------------------------------------------------------


def test_dot_names_the_previous_layer():
    run = run_script("nn_input IN,2 nn_fc A,.,4 nn_nl B nn_fc C,.,3 nn_mul D,C nn_clone E0,E1 nn_rename F")
    modules = run.interpreter.workspace.network().modules
    assert modules["A_fc"].inputs == ("IN",)
    assert modules["B"].inputs == ("A",)
    assert modules["C_fc"].inputs == ("B",)
    assert modules["D"].inputs == ("C", "C")
    assert modules["E0"].inputs == modules["E1"].inputs == ("D",)
    assert modules["F"].inputs == ("E0",)  # nn_clone leaves the first copy as the latest


def test_dot_on_an_empty_network_is_an_error():
    error = script_error("nn_init nn_nl A")
    assert "previous layer" in error.message


# --- errors: one line, naming the command ------------------------------------------------------

ERRORS = {
    "add of different sizes": ("nn_input A,2 nn_input B,3 nn_add C,A,B", "nn_add", "same size"),
    "unknown layer": ("nn_input IN,2 nn_fc OUT,NOPE,3", "nn_fc", "no layer named 'NOPE'"),
    "duplicate layer": (
        "nn_input IN,2 nn_fc IN_fc,IN,2 nn_fc IN,IN,2",
        "nn_fc",
        "already has a layer named 'IN_fc'",
    ),
    "duplicate input": ("nn_input IN,2 nn_input IN,3", "nn_input", "already has a layer named 'IN'"),
    "train without trainer": (
        "nn_input IN,2 nn_fc OUT,IN,1 nn_loss_mse L,OUT,GT (1,2,3) nn_train 10",
        "nn_train",
        "no trainer",
    ),
    "samples with wrong channels": (
        "nn_input IN,2 nn_fc OUT,IN,1 nn_loss_mse L,OUT,GT nn_trainer T,L (1,2^3,4) nn_train 10",
        "nn_train",
        "2 channels but the network takes 3 values",
    ),
    "step with wrong channels": (
        "nn_input IN,2 nn_fc OUT,IN,1 nn_loss_mse L,OUT,GT nn_trainer T,L (1,2^3,4^5,6^7,8) nn_step",
        "nn_step",
        "4 channels but the network takes 3 values",
    ),
    "eval with wrong channels": (
        "nn_input IN,2 nn_fc OUT,IN,1 (1,2,3) nn_eval",
        "nn_eval",
        "1 channel but the network takes 2 values",
    ),
    "bad activation": ("nn_input IN,2 nn_nl A,IN,foo", "nn_nl", "'foo'"),
    "bad activation of fcnnl": ("nn_input IN,2 nn_fcnnl A,IN,4,relux", "nn_fcnnl", "'relux'"),
    "trainer on a non-loss layer": (
        "nn_input IN,2 nn_fc OUT,IN,1 nn_trainer T,OUT,1e-3",
        "nn_trainer",
        "not a loss",
    ),
    "unknown optimizer": (
        "nn_input IN,2 nn_fc OUT,IN,1 nn_loss_mse L,OUT,GT nn_trainer T,L,1e-3,adamw",
        "nn_trainer",
        "'adamw'",
    ),
    "bad channel count": ("nn_input IN,2 nn_fc OUT,IN,0", "nn_fc", "nb_channels"),
    "ground truth of another size": (
        "nn_input IN,2 nn_input GT,3 nn_fc OUT,IN,1 nn_loss_mse L,OUT,GT",
        "nn_loss_mse",
        "another size",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_one_line_user_errors(case):
    script, command, words = ERRORS[case]
    error = script_error(script, file="net.nnp")
    text = str(error)
    assert "\n" not in text
    assert error.where == "net.nnp:1"
    assert error.command == command
    assert words in error.message, text


def test_error_on_the_command_line_is_one_line_with_exit_status_1():
    result = cli("nn_input", "IN,2", "nn_fc", "OUT,NOPE,3")
    assert result.code == 1
    assert result.error_lines == [
        "nnpipe: error: <command line>:1: nn_fc: no layer named 'NOPE' in network 'nn' (layers: IN)"
    ]
    assert result.exception is None


def test_a_failed_layer_leaves_the_network_as_it_was():
    interpreter = nn_helpers.interpreter()
    interpreter.run_items(["nn_input", "A,2", "nn_input", "B,3"])
    with pytest.raises(UserError):
        interpreter.run_items(["nn_add", "C,A,B"])
    assert list(interpreter.workspace.network().modules) == ["A", "B"]
    interpreter.run_items(["nn_add", "C,A,A"])  # the name C is still free
    assert interpreter.workspace.network().modules["C"].size == (2, 1, 1, 1)

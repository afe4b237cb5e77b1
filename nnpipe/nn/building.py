"""What the commands that build networks share: adding a module with its parameter image, the
parameters their signatures have in common, and the record a network
keeps of the commands that built it (so that a saved network can be rebuilt by running them
again). A layer file declares its commands with these (see nnpipe.nn.layers)."""

import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import activations, optimizers
from nnpipe.numbers import size_text
from nnpipe.registry import NETWORK, Choice, Int, LayerName, command

OUT_NAME = LayerName("out", previous=False, help="name of the new layer")
IN_NAME = LayerName("in", help="input layer ('.' = previous layer)")
IN_OR_PREVIOUS = LayerName("in", ".", help="input layer ('.' = previous layer)")
IN0_NAME = LayerName("in0", help="first input ('.' = previous layer)")
IN1_NAME = LayerName("in1", ".", help="second input ('.' = previous layer)")
GROUND_TRUTH = LayerName(
    "ground_truth", previous=False, help="name of the ground-truth input (created with the size of IN)"
)
ACTIVATION = Choice("activation", "leakyrelu", choices=activations.NAMES)


def learning_mode(default):
    return Int(
        "learning_mode",
        default,
        low=0,
        high=3,
        help="0 no learning, 1 weights only, 2 biases only, 3 weights and biases",
    )


LEARNING_MODE = learning_mode(3)


def remember(ctx, name, arguments):
    """A network-building command's after-hook: the current network records the command."""
    ctx.network().commands.append(f"{name} {arguments}" if arguments else name)


def builds_network(entry):
    return entry is not None and entry.after is remember


def network_command(name, *params, help="", api="2023"):
    """Declare a command of nn_lib's `api` that adds modules to the current network."""
    return command(
        name, group=NETWORK, params=list(params), takes_selection=False, after=remember, help=help, api=api
    )


def add(ctx, name, layer, inputs):
    """Add a module and, unless an image of that name exists already (loaded weights), create
    its parameter image; return the module name."""
    network = ctx.network()
    module = network.add(name, layer, [network.resolve(i) for i in inputs])
    shape = module.parameter_shape(network)
    if shape is not None:
        existing = ctx.images.get(name)
        if existing is None and network.weights_from_file:
            raise UserError(f"it holds no weights for layer '{name}'")
        if existing is None:
            ctx.images.append(
                layer.initialize([network.modules[i].size for i in module.inputs], ctx.rng), name
            )
        elif existing.shape != tuple(shape):
            raise UserError(
                f"image '{name}' exists with size {size_text(existing.shape[::-1])}"
                f" but layer '{name}' needs {size_text(shape[::-1])}"
            )
    return name


def add_moments(ctx, network, optimizer):
    """Zero moment images (P_m, P_v, P_g2) for every trained parameter image that has none
    yet; existing ones are kept, as nn_lib keeps them."""
    for name in network.trained_modules():
        shape = network.modules[name].parameter_shape(network)
        for suffix in optimizers.MOMENTS[optimizer] if shape is not None else ():
            if ctx.images.get(name + suffix) is None:
                ctx.images.append(np.zeros(shape, dtype=np.float32), name + suffix)

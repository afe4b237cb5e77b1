"""What the commands that build networks share: adding a module with its parameter image, the
parameters their signatures have in common, and the record a network
keeps of the commands that built it (so that a saved network can be rebuilt by running them
again). A layer file declares its commands with these (see nnpipe.nn.layers)."""

import re

import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import activations, optimizers
from nnpipe.numbers import size_text
from nnpipe.quoting import unprotect
from nnpipe.registry import NETWORK, Choice, Float, Int, LayerName, command, split_arguments

OUT_NAME = LayerName("out", previous=False, help="name of the new layer")
IN_NAME = LayerName("in", help="input layer ('.' = previous layer)")
IN_OR_PREVIOUS = LayerName("in", ".", help="input layer ('.' = previous layer)")
IN0_NAME = LayerName("in0", help="first input ('.' = previous layer)")
IN1_NAME = LayerName("in1", ".", help="second input ('.' = previous layer)")
GROUND_TRUTH = LayerName(
    "ground_truth", previous=False, help="name of the ground-truth input (created with the size of IN)"
)
ACTIVATION = Choice("activation", "leakyrelu", choices=activations.NAMES_2023)


def learning_mode(default):
    return Int(
        "learning_mode",
        default,
        low=0,
        high=3,
        help="0 no learning, 1 weights only, 2 biases only, 3 weights and biases",
    )


LEARNING_MODE = learning_mode(3)
# G'MIC 3.6's fc and conv layers
WEIGHT_DECAY = Float("weight_decay", 0, low=0, help="L2 penalty on the weights, added to their gradient")
INITIALIZATION = Int("initialization", 3, low=0, high=3, help="0 zero, 1 identity, 2 LeCun, 3 He")


def remember(ctx, name, arguments):
    """A network-building command's after-hook: the current network records the command
    (`arguments`: its argument item, what quotes held protected, see nnpipe.quoting)."""
    ctx.network().commands.append(f"{name} {unprotect(arguments)}" if arguments else name)


remember.records_network = True


def remembering_defaults(params):
    """The after-hook of a G'MIC 3.6 layer command: the network records it as 3.6's nn_lib
    does (what its nn_save writes), every argument left out written as its default."""

    def remember_filled(ctx, name, arguments):
        given = split_arguments(arguments) if arguments else []
        given += [""] * (len(params) - len(given))
        filled = [_quoted(text) if text else default_text(p) for text, p in zip(given, params)]
        ctx.network().commands.append(f"{name} {','.join(filled)}")

    remember_filled.records_network = True
    return remember_filled


def _quoted(text):
    """An argument as G'MIC's nn_lib writes it back: in double quotes if it holds a blank, a
    comma or a quote (a command given to nn_run)."""
    return f'"{text}"' if re.search(r'[\s,"]', text) else text


def default_text(param):
    """A parameter's default as G'MIC's nn_lib writes it (`100%`, `1`, `leakyrelu`)."""
    value = param.default
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple):  # a Size: (value, is_percent)
        return f"{value[0]:g}{'%' * value[1]}"
    return str(value)


def builds_network(entry):
    return entry is not None and getattr(entry.after, "records_network", False)


def network_command(name, *params, help="", api="2023", recorded=True):
    """Declare a command of nn_lib's `api` that adds modules to the current network. The
    network records it (`recorded`) for nn_save to write: as given in the 2023 API, with every
    default filled in in G'MIC 3.6's (whose nn_save leaves losses out, and so does nnpipe)."""
    if not recorded:
        after = None
    else:
        after = remember if api == "2023" else remembering_defaults(params)
    return command(
        name, group=NETWORK, params=list(params), takes_selection=False, after=after, help=help, api=api
    )


def add(ctx, name, layer, inputs):
    """Add a module and, unless an image of that name exists already (loaded weights), create
    its parameter image; return the module name."""
    network = ctx.network()
    module = network.add(name, layer, [network.resolve(i) for i in inputs])
    shape = module.parameter_shape(network)
    if shape is not None:
        image = network.image_name(name)
        existing = ctx.images.get(image)
        if existing is None and network.weights_from_file:
            raise UserError(f"it holds no weights for layer '{name}'")
        if existing is None:
            ctx.images.append(
                layer.initialize([network.modules[i].size for i in module.inputs], ctx.rng), image
            )
        elif existing.shape != tuple(shape):
            raise UserError(
                f"image '{image}' exists with size {size_text(existing.shape[::-1])}"
                f" but layer '{name}' needs {size_text(shape[::-1])}"
            )
    return name


def add_moments(ctx, network, optimizer):
    """Zero moment images (P_m, P_v, P_g2) for every trained parameter image that has none
    yet; existing ones are kept, as nn_lib keeps them."""
    for name in network.trained_modules():
        shape = network.modules[name].parameter_shape(network)
        image = network.image_name(name)
        for suffix in optimizers.MOMENTS[optimizer] if shape is not None else ():
            if ctx.images.get(image + suffix) is None:
                ctx.images.append(np.zeros(shape, dtype=np.float32), image + suffix)

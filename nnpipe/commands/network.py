"""Network-building commands, mirroring nn_lib's 2023 API: each adds modules (and their
parameter images) to the current network."""

import numpy as np

from nnpipe.commands.images import SAME
from nnpipe.commands.registry import (NETWORK, Bool, Choice, Float, Int, LayerName, Size, Text,
                                      command, typed_number)
from nnpipe.errors import UserError
from nnpipe.nn import activations, boundary, optimizers, schedulers
from nnpipe.nn.layers import Clone, Input, Rename, count
from nnpipe.nn.layers.append import Append
from nnpipe.nn.layers.crop import Crop
from nnpipe.nn.layers.distance import Distance
from nnpipe.nn.layers.dropout import Dropout
from nnpipe.nn.layers.elementwise import Add, Multiply
from nnpipe.nn.layers.fc import FullyConnected
from nnpipe.nn.layers.loss import (BinaryCrossEntropy, CrossEntropy, MeanSquaredError, NormLoss,
                                   SoftmaxCrossEntropy)
from nnpipe.nn.layers.nlfc import NonlinearFullyConnected
from nnpipe.nn.layers.nonlinearity import Nonlinearity
from nnpipe.nn.layers.normalize import Normalize
from nnpipe.nn.layers.patch import PatchDown, PatchUp
from nnpipe.nn.layers.reshape import Reshape, Split
from nnpipe.nn.layers.resize import Resize
from nnpipe.nn.layers.run import RunCommand
from nnpipe.nn.network import DEFAULT_NAME, Network, Trainer


OUT = LayerName("out", previous=False, help="name of the new layer")
IN = LayerName("in", help="input layer ('.' = previous layer)")
IN_OR_PREVIOUS = LayerName("in", ".", help="input layer ('.' = previous layer)")
IN0 = LayerName("in0", help="first input ('.' = previous layer)")
IN1 = LayerName("in1", ".", help="second input ('.' = previous layer)")
GROUND_TRUTH = LayerName("ground_truth", previous=False,
                         help="name of the ground-truth input (created with the size of IN)")


ACTIVATION = Choice("activation", "leakyrelu", choices=activations.NAMES)


def learning_mode(default):
    return Int("learning_mode", default, low=0, high=3,
               help="0 no learning, 1 weights only, 2 biases only, 3 weights and biases")


LEARNING_MODE = learning_mode(3)


def network_command(name, *params, help=""):
    return command(name, group=NETWORK, params=list(params), takes_selection=False,
                   builds_network=True, help=help)


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
            ctx.images.append(layer.initialize([network.modules[i].size for i in module.inputs],
                                               ctx.rng), name)
        elif existing.shape != tuple(shape):
            raise UserError(f"image '{name}' exists with size {_wh(existing.shape)} but layer"
                            f" '{name}' needs {_wh(shape)}")
    return name


def _wh(shape):
    return ",".join(str(v) for v in shape[::-1])


@command("nn_init", group=NETWORK, takes_selection=False, params=[
    LayerName("name", DEFAULT_NAME, previous=False, help="network name")])
def nn_init(ctx, selection, name):
    """Start a new, empty network (replacing one of the same name) and make it current."""
    ctx.networks[name] = Network(name)
    ctx.current_network = name


@command("nn_select", group=NETWORK, takes_selection=False, params=[
    LayerName("name", previous=False, help="network name")])
def nn_select(ctx, selection, name):
    """Make an existing network the current one."""
    if name not in ctx.networks:
        raise UserError(f"no network named '{name}' (networks: {', '.join(ctx.networks) or 'none'})")
    ctx.current_network = name


@network_command("nn_input", OUT, Int("width", low=1), Int("height", 1, low=1),
                 Int("depth", 1, low=1), Int("spectrum", 1, low=1))
def nn_input(ctx, selection, out, width, height, depth, spectrum):
    """Add an input of size width,height,depth,spectrum (fed from the samples)."""
    add(ctx, out, Input(size=(width, height, depth, spectrum)), [])


@network_command("nn_fc", OUT, IN, Int("nb_channels", low=1), LEARNING_MODE)
def nn_fc(ctx, selection, out, source, channels, learning_mode):
    """Add a fully connected layer: modules OUT_fc (weights image OUT_fc) and OUT."""
    fc = add(ctx, f"{out}_fc", FullyConnected(channels=channels, learning_mode=learning_mode), [source])
    add(ctx, out, Rename(), [fc])


@network_command("nn_fcnl", OUT, IN, Int("nb_neurons", low=1), ACTIVATION, LEARNING_MODE)
def nn_fcnl(ctx, selection, out, source, channels, activation, learning_mode):
    """Add a fully connected layer then a nonlinearity: OUT_fc, OUT."""
    fc = add(ctx, f"{out}_fc", FullyConnected(channels=channels, learning_mode=learning_mode), [source])
    add(ctx, out, Nonlinearity(activation=activation), [fc])


@network_command("nn_fcnnl", OUT, IN, Int("nb_neurons", low=1), ACTIVATION, LEARNING_MODE)
def nn_fcnnl(ctx, selection, out, source, channels, activation, learning_mode):
    """Add fully connected, normalize, nonlinearity: OUT_fc, OUT_normalize, OUT."""
    fc = add(ctx, f"{out}_fc", FullyConnected(channels=channels, learning_mode=learning_mode), [source])
    normalized = add(ctx, f"{out}_normalize", Normalize(channelwise=False, learning_mode=3), [fc])
    add(ctx, out, Nonlinearity(activation=activation), [normalized])


@network_command("nn_nlfc", OUT, IN, Int("nb_channels", low=1), ACTIVATION, LEARNING_MODE)
def nn_nlfc(ctx, selection, out, source, channels, activation, learning_mode):
    """Add a nonlinear fully connected layer, y_i = sum_j act(W_ij x_j + B_ij): OUT_nlfc, OUT."""
    layer = NonlinearFullyConnected(channels=channels, activation=activation, learning_mode=learning_mode)
    nlfc = add(ctx, f"{out}_nlfc", layer, [source])
    add(ctx, out, Rename(), [nlfc])


def residual(ctx, out, source, make_branch, normalization, activation):
    """nn_lib's residual block: clone, a branch keeping the size, (normalize), add,
    (nonlinearity). `make_branch(input size)` gives the branch's (name suffix, layer);
    `normalization` is None, "global" or "channelwise"."""
    network = ctx.network()
    source = network.resolve(source)
    clone0 = add(ctx, f"{out}_clone0", Clone(), [source])
    clone1 = add(ctx, f"{out}_clone1", Clone(), [source])
    suffix, layer = make_branch(network.modules[source].size)
    branch = add(ctx, f"{out}_{suffix}", layer, [clone1])
    if normalization:
        branch = add(ctx, f"{out}_normalize",
                     Normalize(channelwise=normalization == "channelwise", learning_mode=3), [branch])
    if activation is None:
        add(ctx, out, Add(), [branch, clone0])
    else:
        total = add(ctx, f"{out}_add", Add(), [branch, clone0])
        add(ctx, out, Nonlinearity(activation=activation), [total])


def _fc_branch(learning_mode):
    return lambda size: ("fc", FullyConnected(channels=count(size), learning_mode=learning_mode))


@network_command("nn_resfc", OUT, IN_OR_PREVIOUS, LEARNING_MODE)
def nn_resfc(ctx, selection, out, source, learning_mode):
    """Add a residual fully connected block, OUT = IN + fc(IN): OUT_clone0/1, OUT_fc, OUT."""
    residual(ctx, out, source, _fc_branch(learning_mode), None, None)


@network_command("nn_resfcnl", OUT, IN_OR_PREVIOUS, ACTIVATION, LEARNING_MODE)
def nn_resfcnl(ctx, selection, out, source, activation, learning_mode):
    """Add a residual block then a nonlinearity: OUT_clone0/1, OUT_fc, OUT_add, OUT."""
    residual(ctx, out, source, _fc_branch(learning_mode), None, activation)


@network_command("nn_resfcnnl", OUT, IN_OR_PREVIOUS, ACTIVATION, LEARNING_MODE)
def nn_resfcnnl(ctx, selection, out, source, activation, learning_mode):
    """Add a residual block with normalization then a nonlinearity (the fc learns weights
    only, as in nn_lib): OUT_clone0/1, OUT_fc, OUT_normalize, OUT_add, OUT."""
    residual(ctx, out, source, _fc_branch(1), "global", activation)


@network_command("nn_nl", OUT, IN_OR_PREVIOUS, ACTIVATION)
def nn_nl(ctx, selection, out, source, activation):
    """Add a nonlinearity: elu gelu leakyrelu linear relu sigmoid sin sinc softmax sqr sqrt
    swish tanh, or nn_lib's steps waves0..waves4 zpsinz (formulas in the README)."""
    add(ctx, out, Nonlinearity(activation=activation), [source])


@network_command("nn_normalize", OUT, IN_OR_PREVIOUS, Bool("normalization_mode", False,
                 help="0 global parameters, 1 one set per channel"),
                 Int("learning_mode", 3, low=0, high=3, help="0 none, 1 alpha only, 2 beta only, 3 both"))
def nn_normalize(ctx, selection, out, source, channelwise, learning_mode):
    """Add a normalize layer: OUT_normalize (parameters alpha, beta, running mean, variance) and OUT."""
    normalized = add(ctx, f"{out}_normalize", Normalize(channelwise=channelwise, learning_mode=learning_mode), [source])
    add(ctx, out, Rename(), [normalized])


@network_command("nn_clone", OUT, LayerName("out1", previous=False, help="name of the second copy"), IN_OR_PREVIOUS)
def nn_clone(ctx, selection, out0, out1, source):
    """Add two layers that both pass their input through unchanged."""
    source = ctx.network().resolve(source)
    add(ctx, out0, Clone(), [source])
    add(ctx, out1, Clone(), [source])
    ctx.network().latest = out0


@network_command("nn_add", OUT, IN, IN1)
def nn_add(ctx, selection, out, first, second):
    """Add a layer summing two inputs of the same size."""
    add(ctx, out, Add(), [first, second])


@network_command("nn_mul", OUT, IN, IN1)
def nn_mul(ctx, selection, out, first, second):
    """Add a layer multiplying two inputs of the same size, value by value."""
    add(ctx, out, Multiply(), [first, second])


@network_command("nn_rename", OUT, IN_OR_PREVIOUS)
def nn_rename(ctx, selection, out, source):
    """Give a layer another name (a module passing its input through)."""
    add(ctx, out, Rename(), [source])


@network_command("nn_dropout", OUT, IN, Float("dropout_rate", low=0, high=0.999999))
def nn_dropout(ctx, selection, out, source, rate):
    """Add dropout: while training, each sample drops whole channels with this probability."""
    add(ctx, out, Dropout(rate=rate), [source])


@network_command("nn_reshape", OUT, IN, Int("width", low=1), Int("height", low=1),
                 Int("depth", low=1), Int("spectrum", low=1))
def nn_reshape(ctx, selection, out, source, width, height, depth, spectrum):
    """Add a layer holding its input's values, in the same order, under another size.

    The new size must hold the same number of values."""
    add(ctx, out, Reshape(size=(width, height, depth, spectrum)), [source])


@network_command("nn_split", LayerName("name0", previous=False, help="name of the first part"),
                 LayerName("name1", previous=False, help="name of the second part"), IN,
                 Int("nb_channels0", low=1,
                     help="channels of the first part (the rest go to the second)"))
def nn_split(ctx, selection, name0, name1, source, channels):
    """Add two layers: the first nb_channels0 channels of the input, and the others."""
    source = ctx.network().resolve(source)
    add(ctx, name0, Split(channels=channels, part=0), [source])
    add(ctx, name1, Split(channels=channels, part=1), [source])
    ctx.network().latest = name0


@network_command("nn_append", OUT, IN0, IN1)
def nn_append(ctx, selection, out, first, second):
    """Add a layer stacking the channels of two inputs of the same width, height and depth."""
    add(ctx, out, Append(), [first, second])


CORNERS = [Int(axis) for axis in ("x0", "y0", "z0", "c0", "x1", "y1", "z1", "c1")]


@network_command("nn_crop", OUT, IN, *CORNERS,
                 Choice("boundary_conditions", "dirichlet", choices=boundary.NAMES,
                        help="0 dirichlet (zeros outside), 1 neumann, 2 periodic, 3 mirror"))
def nn_crop(ctx, selection, out, source, x0, y0, z0, c0, x1, y1, z1, c1, boundary_conditions):
    """Add a layer cropping the box (x0,y0,z0,c0)-(x1,y1,z1,c1), both corners included.

    Outside the input, values follow the boundary conditions."""
    add(ctx, out, Crop(first=(x0, y0, z0, c0), last=(x1, y1, z1, c1),
                       boundary_conditions=boundary_conditions), [source])


@network_command("nn_resize", OUT, IN, Size("width"), Size("height", SAME), Size("depth", SAME),
                 Size("spectrum", SAME),
                 Int("interpolation", 3, low=0, high=3,
                     help="0 none (zeros beyond the input), 1 nearest, 2 moving average, 3 linear"))
def nn_resize(ctx, selection, out, source, width, height, depth, spectrum, interpolation):
    """Add a layer resizing its input, as nn_lib does (CImg's linear resize).

    Sizes are in values, or N% of the input's. Linear interpolation aligns the corners when
    growing and averages over each output cell when shrinking; moving average is nearest when
    growing."""
    add(ctx, out, Resize(size=(width, height, depth, spectrum), interpolation=interpolation), [source])


@network_command("nn_run", OUT, IN, Text("command", help="the command run on each sample's input"
                                        " image (quoted when it holds spaces)"),
                 Size("width", SAME), Size("height", SAME), Size("depth", SAME), Size("spectrum", SAME))
def nn_run(ctx, selection, out, source, command, width, height, depth, spectrum):
    """Add a layer computed by a command, as nn_lib's nn_run: for each sample, the command runs
    on a list holding only the input (an image of the input's size), and its last image,
    resized linearly to width,height,depth,spectrum (values, or N% of the input's), is the
    output. The gradient passes straight through, resized linearly to the input's size.

    The command runs sample by sample, in Python: a network with an nn_run layer trains and
    evaluates much more slowly than one without."""
    add(ctx, out, RunCommand(command=command, size=(width, height, depth, spectrum)), [source])


PATCH_SIZE = Int("patch_size", 2, low=2)


@network_command("nn_patchdown2d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchdown2d(ctx, selection, out, source, patch_size):
    """Add a layer moving each p x p patch into channels (space to depth): size w/p,h/p,d,s*p^2."""
    add(ctx, out, PatchDown(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_patchdown3d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchdown3d(ctx, selection, out, source, patch_size):
    """Add a layer moving each p x p x p patch into channels: size w/p,h/p,d/p,s*p^3."""
    add(ctx, out, PatchDown(patch_size=patch_size, dimensions=3), [source])


@network_command("nn_patchup2d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchup2d(ctx, selection, out, source, patch_size):
    """Add a layer undoing nn_patchdown2d (depth to space): size w*p,h*p,d,s/p^2."""
    add(ctx, out, PatchUp(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_patchup3d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchup3d(ctx, selection, out, source, patch_size):
    """Add a layer undoing nn_patchdown3d: size w*p,h*p,d*p,s/p^3."""
    add(ctx, out, PatchUp(patch_size=patch_size, dimensions=3), [source])


@network_command("nn_distance", OUT, IN0, IN1,
                 Float("metric", 0, low=0, help="0 squared L2 norm, p > 0 the Lp norm"))
def nn_distance(ctx, selection, out, first, second, metric):
    """Add a layer computing the distance between two inputs of the same size (one value)."""
    add(ctx, out, Distance(metric=metric), [first, second])


def _loss(ctx, out, source, ground_truth, layer):
    """Add a loss; one of the same name is replaced (nn_lib's way to train a loaded network:
    nn_load, then declare the loss and trainer again)."""
    network = ctx.network()
    source = network.resolve(source)
    if network.is_loss(out):
        # the same ground truth keeps its place among the feeds, so the samples' layout holds
        truth = network.modules[out].inputs[1]
        network.remove(out, keep_ground_truth=truth == ground_truth
                       and network.modules[truth].size == network.modules[source].size)
    if ground_truth in network.modules:
        if network.modules[ground_truth].size != network.modules[source].size:
            raise UserError(f"ground truth '{ground_truth}' has another size than '{source}'")
    else:
        add(ctx, ground_truth, Input(size=network.modules[source].size, ground_truth_of=out), [])
    add(ctx, out, layer, [source, ground_truth])
    for trainer in network.trainers.values():
        add_moments(ctx, network, trainer.optimizer)


def add_moments(ctx, network, optimizer):
    """Zero moment images (P_m, P_v, P_g2) for every trained parameter image that has none
    yet; existing ones are kept, as nn_lib keeps them."""
    for name in network.trained_modules():
        shape = network.modules[name].parameter_shape(network)
        for suffix in optimizers.MOMENTS[optimizer] if shape is not None else ():
            if ctx.images.get(name + suffix) is None:
                ctx.images.append(np.zeros(shape, dtype=np.float32), name + suffix)


@network_command("nn_loss_mse", OUT, IN, GROUND_TRUTH)
def nn_loss_mse(ctx, selection, out, source, ground_truth):
    """Add a mean-squared-error loss: mean of (IN - GROUND_TRUTH)^2 over the values of a sample."""
    _loss(ctx, out, source, ground_truth, MeanSquaredError(ground_truth=ground_truth))


@network_command("nn_loss_normp", OUT, IN, GROUND_TRUTH,
                 Int("metric", 1, low=0, help="0 squared L2, p > 0 the Lp norm"))
def nn_loss_normp(ctx, selection, out, source, ground_truth, metric):
    """Add a p-norm loss: ||IN - GROUND_TRUTH||_p divided by the number of values."""
    _loss(ctx, out, source, ground_truth, NormLoss(ground_truth=ground_truth, metric=metric))


@network_command("nn_loss_crossentropy", OUT, IN, GROUND_TRUTH)
def nn_loss_crossentropy(ctx, selection, out, source, ground_truth):
    """Add a cross-entropy loss: -sum GT log(IN + 1e-8) over the values of a sample.

    IN holds probabilities (e.g. after a softmax), GT the ground truth."""
    _loss(ctx, out, source, ground_truth, CrossEntropy(ground_truth=ground_truth))


@network_command("nn_loss_binary_crossentropy", OUT, IN, GROUND_TRUTH)
def nn_loss_binary_crossentropy(ctx, selection, out, source, ground_truth):
    """Add a binary cross-entropy loss: -sum [GT log(IN+1e-5) + (1-GT) log(1-IN+1e-5)].

    The sum is over the values of a sample; IN holds probabilities in [0, 1] (e.g. after a
    sigmoid), GT the ground truth."""
    _loss(ctx, out, source, ground_truth, BinaryCrossEntropy(ground_truth=ground_truth))


@network_command("nn_loss_softmax_crossentropy", OUT, IN, GROUND_TRUTH)
def nn_loss_softmax_crossentropy(ctx, selection, out, source, ground_truth):
    """Add a softmax cross-entropy loss: -sum GT log softmax(IN) over the values of a sample.

    The softmax runs over all the values of a sample (IN: scores, GT: the ground truth); the
    gradient is softmax(IN) - GT for ground truths summing to 1, such as one-hot labels."""
    _loss(ctx, out, source, ground_truth, SoftmaxCrossEntropy(ground_truth=ground_truth))


@network_command("nn_trainer", OUT, LayerName("loss", ".", help="loss layer ('.' = latest)"),
                 Float("learning_rate", typed_number("2e-4"), positive=True),
                 Choice("optimizer", "rmsprop", choices=optimizers.NAMES),
                 Choice("scheduler", "constant", choices=schedulers.NAMES))
def nn_trainer(ctx, selection, name, loss, learning_rate, optimizer, scheduler):
    """Add a trainer. A training step computes every loss of the network, as nn_lib does,
    and minimizes their sum; LOSS is the one nn_print shows. The trainer's state is the image
    NAME (iteration, learning rate, ...); the optimizer's moments are images named after each
    parameter image (P_m, P_v, P_g2).

    Declaring a trainer of an existing name replaces it, as in nn_lib: its state image (the
    iteration count) and the moment images are kept, and the learning rate is the new one."""
    network = ctx.network()
    loss = network.resolve(loss)
    if not network.is_loss(loss):
        raise UserError(f"'{loss}' is a {network.modules[loss].layer.kind} layer, not a loss")
    replaced = network.trainers.get(name)
    trainer = Trainer(name, loss, learning_rate, optimizer, scheduler)
    if replaced is not None:
        network.remove(name)
        trainer.history = replaced.history   # the state goes on, so does the loss curve
    network.add_trainer(trainer)
    if replaced is not None:
        drop_unused_moments(ctx, network, replaced.optimizer)
    state = ctx.images.get(name)
    if state is None:
        ctx.images.append(schedulers.new_state(learning_rate, int(ctx.rng.integers(1 << 24))), name)
    else:  # a loaded trainer resumes where it was, at the learning rate declared now
        ctx.images.set(name, schedulers.with_learning_rate(state, learning_rate))
    add_moments(ctx, network, optimizer)


def drop_unused_moments(ctx, network, optimizer):
    """Remove the moment images of `optimizer` that no trainer of the network uses any more
    (a trainer re-declared with another optimizer), so they are not taken for data."""
    used = {suffix for trainer in network.trainers.values()
            for suffix in optimizers.MOMENTS[trainer.optimizer]}
    unused = {module.name + suffix for module in network.parameter_modules()
              for suffix in optimizers.MOMENTS[optimizer] if suffix not in used}
    ctx.images.remove([i for i, image_name in enumerate(ctx.images.names) if image_name in unused])


@command("nn_check_layer", group=NETWORK, takes_selection=False, params=[
    LayerName("name", previous=False, help="layer (or trainer) name")])
def nn_check_layer(ctx, selection, name):
    """Stop with an error unless the current network has a layer (or trainer) of this name."""
    network = ctx.network()
    if name not in network.trainers:
        network.resolve(name)


@command("nn_print", group=NETWORK, takes_selection=False)
def nn_print(ctx, selection):
    """Print the current network in nn_lib's layout: one block per module (type, input,
    output size, properties, parameter count; a trainer's parameters are its state image's
    values), then the totals. Ground truths are not modules in nn_lib and are not listed:
    each loss names its own."""
    network = ctx.network()
    ctx.echo(network.describe({name: ctx.images.get(name).size for name in network.trainers
                               if ctx.images.get(name) is not None}))


@command("nn_size", group=NETWORK, takes_selection=False)
def nn_size(ctx, selection):
    """Return the number of stored parameters of the current network as the command's status,
    for ${-nn_size}; it prints nothing, as in nn_lib. It also sets $size to that number."""
    size = ctx.network().size()
    ctx.status = str(size)
    ctx.set_variable("size", size)

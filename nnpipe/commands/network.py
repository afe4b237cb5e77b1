"""Commands about networks as a whole: starting and choosing a network, its trainer, printing
and sizing it, in nn_lib's 2023 API and G'MIC 3.6's (nn_init differs; the others work on a
network of either). The commands that add layers are declared in their layer files
(nnpipe.nn.layers)."""

from nnpipe.errors import UserError
from nnpipe.nn import optimizers, schedulers
from nnpipe.nn.building import OUT_NAME, add_moments, network_command
from nnpipe.nn.network import DEFAULT_NAME, Network, Trainer
from nnpipe.registry import NETWORK, Choice, Float, LayerName, command, typed_number


@command(
    "nn_init",
    group=NETWORK,
    api="2023",
    takes_selection=False,
    params=[LayerName("name", DEFAULT_NAME, previous=False, help="network name")],
)
def nn_init(ctx, selection, name):
    """Start a new, empty network (replacing one of the same name) and make it current."""
    ctx.networks[name] = Network(name)
    ctx.current_network = name


@command(
    "nn_init",
    group=NETWORK,
    api="3.6",
    takes_selection=False,
    params=[LayerName("network_name", previous=False, help="network name")],
)
def nn_init_36(ctx, selection, name):
    """Start a new, empty network NETWORK_NAME (replacing one of the same name) and make it
    current. The parameters of its layer L are the image NETWORK_NAME_L; an image of that
    name already in the list (weights given beforehand, or kept from a network of the same
    name) is used as it is."""
    ctx.networks[name] = Network(name, api="3.6")
    ctx.current_network = name


@command(
    "nn_select",
    group=NETWORK,
    takes_selection=False,
    params=[LayerName("name", previous=False, help="network name")],
)
def nn_select(ctx, selection, name):
    """Make an existing network the current one."""
    if name not in ctx.networks:
        raise UserError(f"no network named '{name}' (networks: {', '.join(ctx.networks) or 'none'})")
    ctx.current_network = name


@network_command(
    "nn_trainer",
    OUT_NAME,
    LayerName("loss", ".", help="loss layer ('.' = latest)"),
    Float("learning_rate", typed_number("2e-4"), positive=True),
    Choice("optimizer", "rmsprop", choices=optimizers.NAMES),
    Choice("scheduler", "constant", choices=schedulers.NAMES),
)
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
        trainer.history = replaced.history  # the state goes on, so does the loss curve
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
    used = {
        suffix for trainer in network.trainers.values() for suffix in optimizers.MOMENTS[trainer.optimizer]
    }
    unused = {
        module.name + suffix
        for module in network.parameter_modules()
        for suffix in optimizers.MOMENTS[optimizer]
        if suffix not in used
    }
    ctx.images.remove([i for i, image_name in enumerate(ctx.images.names) if image_name in unused])


@command(
    "nn_check_layer",
    group=NETWORK,
    takes_selection=False,
    params=[LayerName("name", previous=False, help="layer (or trainer) name")],
)
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
    # a network of G'MIC 3.6's API is printed in 3.6's layout (see Network.describe_36)
    network = ctx.network()
    ctx.echo(
        network.describe(
            {name: ctx.images.get(name).size for name in network.trainers if ctx.images.get(name) is not None}
        )
    )


@command("nn_size", group=NETWORK, takes_selection=False)
def nn_size(ctx, selection):
    """Return the number of stored parameters of the current network as the command's status,
    for ${-nn_size}; it prints nothing, as in nn_lib. It also sets $size to that number."""
    size = ctx.network().size()
    ctx.status = str(size)
    ctx.set_variable("size", size)

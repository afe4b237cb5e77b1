"""Network files, mirroring nn_lib's nn_save, nn_load and nn_store; nn_view writes pictures of
the weights. The formats are in nnpipe.nn.files. A network is saved in the format of its nn_lib
API, and a file is read as the API it was written in says, whatever the option: a network
read from a G'MIC 3.6 file is a 3.6 network."""

import dataclasses
import os

import numpy as np

from nnpipe.errors import UserError
from nnpipe.images import atomic
from nnpipe.images.imagelist import ImageList
from nnpipe.nn import files, optimizers, schedulers
from nnpipe.nn.building import builds_network
from nnpipe.nn.files import pictures
from nnpipe.nn.network import Network
from nnpipe.registry import FILES, Bool, Int, Param, Text, command, lookup

TRAINER_DATA = Bool(
    "include_trainer_data", True, help="also the trainer states and optimizer moments (to resume training)"
)


class VariableName(Param):
    def describe(self):
        return "a variable name"

    def parse(self, text):
        if not text.isidentifier():
            self.fail(text)
        return text


@command(
    "nn_save",
    group=FILES,
    takes_selection=False,
    params=[
        Text(
            "file",
            help=".gmz (nn_lib's format, lossless), .tif/.tiff (lossless) or .png (a folder"
            " of 16-bit PNG files, lossy)",
        ),
        TRAINER_DATA,
    ],
)
def nn_save(ctx, selection, path, include_trainer_data):
    """Save the current network to a .gmz or .tif file (lossless) or a .png folder (lossy).

    The file holds the commands that rebuild the network and its weight images; with the
    trainer data also the optimizer moments and trainer states, so training resumes exactly.
    .gmz: nn_lib's own format, G'MIC's compressed list of named images (what `gmic ...
    output FILE.gmz` writes): the weight images named as their modules, the moments and
    trainer states, and the text image _nn_init of the commands; G'MIC opens it.
    .tif/.tiff: one multi-page float32 TIFF, a page per image, lossless.
    .png: a folder FILE of 16-bit PNG files 000_NAME.png ..., each image mapped from its
    min..max to 0..65535 (lossy: for looking at and sharing weights, not to resume training).
    Missing folders are created; the file is written under a temporary name and renamed: a
    crash never leaves half a file."""
    network = ctx.existing_network()
    # a network of G'MIC 3.6's API goes in 3.6's layout, for its nn_load (see gmz_format)
    saved = files.gather(network, ctx.images, include_trainer_data)
    summary = files.write(path, saved)
    ctx.notice(f"wrote network '{network.name}' to {path} ({summary})")


@command(
    "nn_load",
    group=FILES,
    takes_selection=False,
    params=[Text("file", help="a file written by nn_save, or a variable set by nn_store"), TRAINER_DATA],
)
def nn_load(ctx, selection, source, include_trainer_data):
    """Load a network saved by nn_save (or kept by nn_store) and make it current.

    It replaces the network of the same name (with its weight, moment and trainer images) or
    creates it, and puts the loaded images at the end of the list. Without trainer data, the
    trainers start afresh. A damaged or foreign file changes nothing.
    A .gmz file written by nn_lib holds no losses or trainers, only their data (trainer
    states, moments): those images are loaded as they are, and the nn_trainer declared after
    the load takes them over, as in nn_lib."""
    # a file of G'MIC 3.6's nn_lib gives a network of that API (whatever --nnlib says): its
    # weights and, with the trainer data, their moments; its trainer state is left out, as
    # 3.6's nn_load does (see install)
    if files.is_stored(source):
        label = "the stored network"
        saved = files.from_text(source, label)
    elif source.isidentifier() and files.is_stored(ctx.lookup(source, "")):
        label = f"variable '{source}'"
        saved = files.from_text(ctx.lookup(source), label)
    else:
        label = f"'{source}'"
        saved = files.read(source)
    install(ctx, saved, include_trainer_data, label)
    ctx.notice(f"loaded network '{saved.network}' from {label}")


STORE_PARAMS = [VariableName("variable", help="name of the variable"), TRAINER_DATA]


@command("nn_store", group=FILES, api="2023", takes_selection=False, params=STORE_PARAMS)
def nn_store(ctx, selection, variable, include_trainer_data):
    """Keep a lossless copy of the current network in a variable, for nn_load VARIABLE.

    For instance, keep the best weights seen during training and go back to them later."""
    saved = files.gather(ctx.existing_network(), ctx.images, include_trainer_data)
    ctx.set_variable(variable, files.to_text(saved))


@command("nn_store", group=FILES, api="3.6", takes_selection=False, params=STORE_PARAMS)
def nn_store_36(ctx, selection, variable, include_trainer_data):
    """Move the current network's images (weights; with the trainer data, their moments and
    the trainer states) into a variable, as G'MIC 3.6's nn_store does: they leave the list.
    nn_load VARIABLE puts them back (with a name starting with '_', the variable is seen
    everywhere)."""
    saved = files.gather(ctx.existing_network(), ctx.images, include_trainer_data)
    ctx.set_variable(variable, files.to_text(saved))
    stored = {entry.name for entry in saved.entries}
    ctx.images.remove([index for index, name in enumerate(ctx.images.names) if name in stored])


@command(
    "nn_view",
    group=FILES,
    takes_selection=False,
    params=[
        Text("folder", help="folder for the pictures (created if missing)"),
        Int(
            "min_size",
            256,
            low=1,
            help="small images are enlarged (nearest neighbour) until their"
            " longer side has at least this many pixels",
        ),
    ],
)
def nn_view(ctx, selection, folder, min_size):
    """Write the weight images of the current network as 8-bit PNG pictures FOLDER/NAME.png.

    Each image's values are mapped from its min..max to 0..255. An fc layer's weights are a
    picture of one row per neuron, one column per input, the biases in the last column;
    images of several channels or slices are shown as tiles."""
    network = ctx.existing_network()
    saved = files.gather(network, ctx.images, include_trainer_data=False)
    atomic.check_name(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"'{folder}' is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create folder '{folder}': {error.strerror or error}") from None
    modules = {network.image_name(module.name): module for module in network.parameter_modules()}
    for entry in saved.entries:
        layout = getattr(modules[entry.name].layer, "picture", None)
        pictures.write_picture(
            os.path.join(folder, entry.name + ".png"), pictures.picture(entry.image, min_size, layout)
        )
    ctx.notice(f"wrote {len(saved.entries)} pictures of network '{network.name}' to {folder}")


# --- putting a loaded network in place -------------------------------------------------------------


def install(ctx, saved, include_trainer_data, label):
    """Rebuild `saved` apart from the interpreter's list and networks, check it, then put it in:
    a failure at any step leaves the list and the networks as they were."""
    random_state = ctx.rng.bit_generator.state  # a fresh trainer draws its seed
    try:
        if any(entry.role is None for entry in saved.entries):
            saved = with_roles(ctx, saved, label)
            ctx.rng.bit_generator.state = random_state
        kept = (
            (files.PARAMETER, files.MOMENT)
            if saved.api == "3.6"
            else (files.PARAMETER, files.MOMENT, files.TRAINER)
        )
        entries = [
            e for e in saved.entries if e.role == files.PARAMETER or (include_trainer_data and e.role in kept)
        ]
        network, images = rebuild(ctx, saved, entries, label)
        check(network, images, entries, label, saved.loose_trainer_data)
    except UserError:
        ctx.rng.bit_generator.state = random_state
        raise
    replaced = ctx.networks.get(network.name)
    if replaced is not None:
        ctx.images.remove(
            [i for i, name in enumerate(ctx.images.names) if name in replaced.owned_image_names()]
        )
    for name, image in zip(images.names, images.images):
        ctx.images.set(name, image)
    network.input_magnitudes = dict(saved.input_magnitudes)
    ctx.networks[network.name] = network
    ctx.current_network = network.name


def rebuild(ctx, saved, entries, label):
    """Replay the network's commands against a list holding only the loaded images, so existing
    weights are reused; return the new network and that list."""
    steps = []
    for text in saved.commands:
        name, _, arguments = text.partition(" ")
        entry = lookup(name, saved.api)
        if not builds_network(entry):
            raise UserError(
                f"cannot load {label}: '{name}' in its commands is not a network-building command"
            )
        steps.append((entry, arguments or None, text))
    images = ImageList()
    for e in entries:
        images.append(e.image, e.name)
    network = Network(saved.network, saved.api)
    network.weights_from_file = True
    kept = ctx.images, ctx.networks, ctx.current_network
    ctx.images, ctx.networks, ctx.current_network = images, {network.name: network}, network.name
    try:
        for entry, arguments, text in steps:
            entry.function(ctx, [], *entry.parse_arguments(arguments))
            network.commands.append(text)
    except UserError as error:
        raise UserError(
            f"cannot load {label}: rebuilding the network failed at '{text}': {error.message}"
        ) from None
    finally:
        ctx.images, ctx.networks, ctx.current_network = kept
    network.weights_from_file = False
    return network, images


def with_roles(ctx, saved, label):
    """`saved` with each image's role, told by replaying its commands: the images of parameter
    modules are weights, the others trainer data (moments or trainer states)."""
    network, _ = rebuild(ctx, saved, saved.entries, label)
    weights = {network.image_name(module.name) for module in network.parameter_modules()}
    suffixes = (
        files.MOMENTS_36 if saved.api == "3.6" else {s for kind in optimizers.MOMENTS.values() for s in kind}
    )
    moments = {name + suffix for name in weights for suffix in suffixes}
    entries = [
        files.Entry(
            e.name,
            files.PARAMETER if e.name in weights else files.MOMENT if e.name in moments else files.TRAINER,
            e.image,
        )
        for e in saved.entries
    ]
    return dataclasses.replace(saved, entries=entries)


def check(network, images, entries, label, loose_trainer_data):
    """Every weight comes from the file, and the trainer data fits the network (or, with
    `loose_trainer_data`, waits for a trainer declared after the load)."""
    loaded = {e.name for e in entries}
    for module in network.parameter_modules():
        if network.image_name(module.name) not in loaded:
            raise UserError(f"cannot load {label}: it holds no weights for layer '{module.name}'")
        if not np.all(np.isfinite(images.get(network.image_name(module.name)))):
            raise UserError(f"cannot load {label}: the weights of layer '{module.name}' are not all finite")
    for trainer in network.trainers.values():
        state = images.get(trainer.name)
        if state is None or state.shape != schedulers.STATE_SHAPE:
            raise UserError(f"cannot load {label}: trainer state '{trainer.name}' is not a 5x3 image")
        for module in network.parameter_modules():
            for suffix in optimizers.MOMENTS[trainer.optimizer]:
                moment = images.get(module.name + suffix)
                if moment is not None and moment.shape != images.get(module.name).shape:
                    raise UserError(
                        f"cannot load {label}: moment image '{module.name + suffix}'"
                        " does not have the size of its weights"
                    )
    extra = sorted(loaded - network.owned_image_names())
    if extra and not loose_trainer_data:
        raise UserError(f"cannot load {label}: it holds images the network does not use ({', '.join(extra)})")

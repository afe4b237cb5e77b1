"""The .gmz network format, nn_lib's own (see nnpipe.nn.files): G'MIC's compressed image list
with names, the network's commands in a text image: nn_lib 2023's `_nn_init` (a row, after the
weights, trainer states and moments) or G'MIC 3.6's `NET__init__` (a column, after the
network's images in the order of the image list)."""

from nnpipe.images import gmz
from nnpipe.nn.files.init_text import (
    INIT_IMAGE,
    INIT_SUFFIX_36,
    init_text,
    init_text_36,
    parse_init_text,
    parse_init_text_36,
)
from nnpipe.nn.files.manifest import MOMENT, PARAMETER, TRAINER, BadFile, Entry, NetworkFile


def encode(saved):
    """nn_lib 2023's layout, its images in the order nn_lib creates them: weights, trainer
    states, moments, then `_nn_init`; G'MIC 3.6's: the images in the order given, then
    `NET__init__`, a column."""
    if saved.api == "3.6":
        text = gmz.text_image(init_text_36(saved)).reshape(1, 1, -1, 1)
        return gmz.encode(
            [entry.image for entry in saved.entries] + [text],
            [entry.name for entry in saved.entries] + [saved.network + INIT_SUFFIX_36],
        )
    ordered = sorted(saved.entries, key=lambda entry: (PARAMETER, TRAINER, MOMENT).index(entry.role))
    return gmz.encode(
        [entry.image for entry in ordered] + [gmz.text_image(init_text(saved))],
        [entry.name for entry in ordered] + [INIT_IMAGE],
    )


def read(path):
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        named = gmz.decode(data)
    except gmz.GmzError as error:
        raise BadFile(str(error)) from None
    names = [name for name, _ in named]
    if INIT_IMAGE not in names and any(name.endswith(INIT_SUFFIX_36) for name in names):
        return _read_36(named, next(name for name in names if name.endswith(INIT_SUFFIX_36)))
    if INIT_IMAGE not in names:
        raise BadFile(f"not a network file: it holds no {INIT_IMAGE} image (load its images with 'input')")
    text = gmz.image_text(named[names.index(INIT_IMAGE)][1])
    if text is None:
        raise BadFile(f"its {INIT_IMAGE} image is not text")
    network, commands = parse_init_text(text)
    return NetworkFile(network, commands, _entries(named), loose_trainer_data=True)


def _read_36(named, image):
    """A network saved by G'MIC 3.6's nn_lib: `NET__init__` holds its commands, `NET_LAYER`
    the parameters of layer LAYER."""
    text = gmz.image_text(dict(named)[image])
    if text is None:
        raise BadFile(f"its {image} image is not text")
    network, commands = parse_init_text_36(text, image)
    if image != network + INIT_SUFFIX_36:
        raise BadFile(f"its {image} image holds the commands of network '{network}'")
    return NetworkFile(network, commands, _entries(named), loose_trainer_data=True, api="3.6")


def _entries(named):
    """Entries (roles unknown) of the images but the text image."""
    entries, seen = [], set()
    for name, image in named:
        if name == INIT_IMAGE or name.endswith(INIT_SUFFIX_36):
            continue
        if not name.isidentifier():
            raise BadFile(f"it holds an image named {name!r}, not a layer name")
        if name in seen:
            raise BadFile(f"it holds two images named '{name}'")
        seen.add(name)
        entries.append(Entry(name, None, image))
    return entries

"""The .gmz network format, nn_lib's own (see nnpipe.nn.files): G'MIC's compressed image list
with names, the network's commands in a text image."""

from nnpipe.images import gmz
from nnpipe.nn.files.init_text import INIT_IMAGE, LATER_INIT_SUFFIX, init_text, parse_init_text
from nnpipe.nn.files.manifest import MOMENT, PARAMETER, TRAINER, BadFile, Entry, NetworkFile


def encode(saved):
    """nn_lib's layout, its images in the order nn_lib creates them: weights, trainer states,
    moments, then `_nn_init`."""
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
    later = [name for name in names if name.endswith(LATER_INIT_SUFFIX)]
    if INIT_IMAGE not in names and later:
        return _read_later_gmz(named, later[0])
    if INIT_IMAGE not in names:
        raise BadFile(f"not a network file: it holds no {INIT_IMAGE} image (load its images with 'input')")
    text = gmz.image_text(named[names.index(INIT_IMAGE)][1])
    if text is None:
        raise BadFile(f"its {INIT_IMAGE} image is not text")
    network, commands = parse_init_text(text)
    return NetworkFile(network, commands, _entries(named), loose_trainer_data=True)


def _entries(named, renamed=None):
    """Entries (roles unknown) of the images but the text image; with `renamed` (file name ->
    name), only the images it names, under their new names."""
    entries, seen = [], set()
    for name, image in named:
        if name == INIT_IMAGE or name.endswith(LATER_INIT_SUFFIX):
            continue
        if renamed is not None:
            if name not in renamed:
                continue
            name = renamed[name]
        if not name.isidentifier():
            raise BadFile(f"it holds an image named {name!r}, not a layer name")
        if name in seen:
            raise BadFile(f"it holds two images named '{name}'")
        seen.add(name)
        entries.append(Entry(name, None, image))
    return entries


def _read_later_gmz(named, init_name):
    """A network saved by the later nn_lib of current G'MIC (3.6): `NET__init__` holds its
    commands ("nn_init NET nn_input IN,2,1,1,1 nn_fc OUT,IN,5,3,0,3 nn_nl A,OUT,tanh") and
    `NET_LAYER` the weights of layer LAYER. Its nn_input, nn_fc and nn_nl are the 2023 ones
    (fc weights laid out alike; the extra fc arguments, weight decay and initialisation, do
    not change what the layer computes): they are read as such, weights only. Any other
    command is refused."""
    text = gmz.image_text(dict(named)[init_name])
    words = text.split() if text is not None else []
    if len(words) < 2 or len(words) % 2 or words[0] != "nn_init":
        raise BadFile(f"its {init_name} image is not the text of a later nn_lib network")
    network = words[1]
    commands, renamed = [], {}
    for name, arguments in zip(words[2::2], words[3::2]):
        parts = arguments.split(",")
        if name in ("nn_input", "nn_nl"):
            commands.append(f"{name} {arguments}")
        elif name == "nn_fc" and len(parts) >= 3:
            commands.append(f"nn_fc {','.join(parts[:3] + parts[3:4])}")
            renamed[f"{network}_{parts[0]}"] = f"{parts[0]}_fc"
        else:
            raise BadFile(
                f"it is a network of a later nn_lib (as in G'MIC 3.6) with '{name}',"
                " which nnpipe does not read (it reads nn_input, nn_fc and nn_nl of"
                " that nn_lib, and nn_lib 2023's files)"
            )
    return NetworkFile(network, commands, _entries(named, renamed), loose_trainer_data=True)

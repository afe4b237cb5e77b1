"""The text of the commands that rebuild a network, as nn_lib keeps it in a network file:
nn_init, then each network-building command and its arguments, separated by blanks. nn_lib
2023 keeps it in the image `_nn_init`, G'MIC 3.6 in `NET__init__` (a column of character
codes; its network name is required, every command takes one argument item, and blanks or
line breaks separate the items)."""

import re

from nnpipe.nn.building import builds_network
from nnpipe.nn.files.manifest import BadFile
from nnpipe.nn.network import DEFAULT_NAME
from nnpipe.registry import lookup

INIT_IMAGE = "_nn_init"  # nn_lib's text image of the commands that build the network
INIT_SUFFIX_36 = "__init__"  # G'MIC 3.6's: NET__init__


def init_text(saved):
    """The `_nn_init` text: nn_init, then each command, its arguments quoted if they hold spaces."""
    words = ["nn_init"] + ([saved.network] if saved.network != DEFAULT_NAME else [])
    for text in saved.commands:
        name, _, arguments = text.partition(" ")
        words.append(name)
        if arguments:
            words.append(
                f'"{arguments}"' if re.search(r"\s", arguments) and '"' not in arguments else arguments
            )
    return " ".join(words)


def parse_init_text(text):
    """(network name, ["command arguments", ...]) from an `_nn_init` text. A command takes the
    next word as its arguments unless that word is a command (nn_lib's nn_init takes none)."""
    words = re.findall(r'"[^"]*"|\S+', text)
    if not words or words[0] != "nn_init":
        raise BadFile(f"its {INIT_IMAGE} text does not start with nn_init")
    network, commands, index = DEFAULT_NAME, [], 1
    if index < len(words) and lookup(words[index]) is None:
        network, index = words[index], index + 1
        if not network.isidentifier():
            raise BadFile(f"its {INIT_IMAGE} text names the network {network!r}, not a valid name")
    while index < len(words):
        name, index = words[index], index + 1
        entry = lookup(name)
        if not builds_network(entry):
            raise BadFile(f"'{name}' in its {INIT_IMAGE} text is not a network-building command")
        if entry.takes_arguments and index < len(words) and lookup(words[index]) is None:
            arguments, index = words[index], index + 1
            if re.search(r"\s", arguments):
                arguments = arguments[1:-1]
            commands.append(f"{name} {arguments}")
        else:
            commands.append(name)
    return network, commands


def init_text_36(saved):
    """G'MIC 3.6's `NET__init__` text: nn_init NET, then each command (recorded with its
    defaults filled in, a quoted argument kept quoted), separated by spaces."""
    return " ".join([f"nn_init {saved.network}"] + list(saved.commands))


def parse_init_text_36(text, image):
    """(network name, ["command arguments", ...]) from G'MIC 3.6's `NET__init__` text: items
    separated by blanks outside double quotes, the first two `nn_init NET`, then commands of
    G'MIC 3.6's API, each followed by its argument item."""
    words = _items(text)
    if len(words) < 2 or words[0] != "nn_init" or not words[1].isidentifier():
        raise BadFile(f"its {image} text does not start with nn_init NAME")
    network, commands, index = words[1], [], 2
    while index < len(words):
        name = words[index]
        entry = lookup(name, "3.6")
        if not builds_network(entry):
            other = lookup(name) if entry is None else None
            raise BadFile(
                f"its {image} text uses '{name}', which "
                + (
                    "is no layer command of G'MIC 3.6's nn_lib"
                    if entry is None and other is None
                    else "nnpipe does not read in a G'MIC 3.6 network"
                )
            )
        if index + 1 >= len(words):
            raise BadFile(f"its {image} text ends with '{name}', without arguments")
        commands.append(f"{name} {words[index + 1]}")
        index += 2
    return network, commands


def _items(text):
    """The text's items: runs of characters other than blanks, double quotes grouping."""
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char.isspace() and not quoted:
            if current:
                items.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        items.append("".join(current))
    return items

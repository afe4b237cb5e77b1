"""The text of the commands that rebuild a network, as nn_lib keeps it in a network file:
nn_init, then each network-building command and its arguments, separated by blanks."""

import re

from nnpipe.nn.building import builds_network
from nnpipe.nn.files.manifest import BadFile
from nnpipe.nn.network import DEFAULT_NAME
from nnpipe.registry import lookup

INIT_IMAGE = "_nn_init"  # nn_lib's text image of the commands that build the network
LATER_INIT_SUFFIX = "__init__"  # the later nn_lib's (G'MIC 3.6): NET__init__


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

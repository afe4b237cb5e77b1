"""Command families; importing them (and the layer files, which declare their own commands)
fills the registry."""

import importlib

from nnpipe.registry import COMMANDS

FAMILIES = [
    "images",
    "axes",
    "colors",
    "patches",
    "filters",
    "draw",
    "control",
    "network",
    "samples",
    "training",
    "inference",
    "plot",
    "data",
    "files",
    "export",
]


def load_all():
    """The registry of every command (nnpipe.registry.COMMANDS), filled."""
    for family in FAMILIES:
        importlib.import_module(f"nnpipe.commands.{family}")
    importlib.import_module("nnpipe.nn.layers.registry")
    return COMMANDS

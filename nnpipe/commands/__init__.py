"""Command families; importing them fills the registry."""

import importlib

FAMILIES = ["images", "control", "network", "conv", "training", "data", "files", "export"]


def load_all():
    for family in FAMILIES:
        importlib.import_module(f"nnpipe.commands.{family}")
    importlib.import_module("nnpipe.nn.layers.registry")  # layer files declare commands too

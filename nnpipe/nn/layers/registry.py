"""The layer files, one line each. A file listed here declares a layer type in one place (see
nnpipe.nn.layers): the commands it declares are registered, its position is its opcode, and
its kernels enter the dispatch the engine generates for the networks that use it. Files of
layers that compute nothing (inputs, and aliases of their input's values) have no kernels. A
layer may pick its kernel file by its options (`kernel_file`): the nonlinearity's relu and
leakyrelu run the small kernels of rectifier.py."""

import importlib

from nnpipe.nn.layers import NO_OP

LAYER_FILES = (
    "input",
    "rename",
    "reshape",
    "fc",
    "nonlinearity",
    "rectifier",
    "elementwise",
    "normalize",
    "dropout",
    "nlfc",
    "loss",
    "conv",
    "pool",
    "append",
    "crop",
    "resize",
    "patch",
    "distance",
    "run",
    "scale",
)

KERNEL_FILES = tuple(importlib.import_module(f"nnpipe.nn.layers.{name}") for name in LAYER_FILES)
_OPCODES = {module.__name__: code for code, module in enumerate(KERNEL_FILES)}


def opcode(layer):
    """The opcode of `layer`'s kernels; NO_OP for a layer that computes nothing."""
    if not layer.computes:
        return NO_OP
    if layer.kernel_file not in _OPCODES:
        raise LookupError(f"layer file {layer.kernel_file} is not listed in {__name__}")
    return _OPCODES[layer.kernel_file]


def kernel_file(code):
    return KERNEL_FILES[code]

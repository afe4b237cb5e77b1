"""Append: two inputs stacked along the channels (nn_lib 2023), or along any axis (G'MIC 3.6),
their sizes equal on the other axes. Along the channels a sample's values are the first
input's followed by the second's; along x, y or z each output value comes from a table of
sources, as in nnpipe.nn.layers.gather."""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN0_NAME, IN1_NAME, IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import (
    IN0,
    IN0_LEN,
    IN1,
    IN_D,
    IN_H,
    IN_W,
    OUT,
    OUT_D,
    OUT_H,
    OUT_LEN,
    OUT_W,
    Layer,
    column,
    gather,
)
from nnpipe.numbers import size_text
from nnpipe.registry import Choice, LayerName

AXES = "xyzc"


class Append(Layer):
    """options: axis (x, y, z or c; nn_lib 2023's is c)."""

    kind = "append"
    inputs = 2
    kernel_arguments = ("axis",)

    def axis(self):
        return AXES.index(self.options.get("axis", "c"))

    def build(self, input_sizes):
        first, second = input_sizes
        axis = self.axis()
        if [n for i, n in enumerate(first) if i != axis] != [n for i, n in enumerate(second) if i != axis]:
            *others, last = (
                name for i, name in enumerate(("width", "height", "depth", "channels")) if i != axis
            )
            raise UserError(
                f"append along {AXES[axis]} needs inputs of the same {', '.join(others)} and {last}"
                f" (got {size_text(first)} and {size_text(second)})"
            )
        return tuple(n + (second[i] if i == axis else 0) for i, n in enumerate(first))

    def arguments(self, input_sizes):
        return {"axis": self.axis()}

    def properties(self):
        return f"axis={self.options['axis']}" if "axis" in self.options else ""

    def export_onnx(self, g, step):
        return g.node("Concat", step.inputs, step.name, axis=g.AXES[self.axis()])


AXIS = column(Append, "axis")


@network_command("nn_append", OUT_NAME, IN0_NAME, IN1_NAME)
def nn_append(ctx, selection, out, first, second):
    """Add a layer stacking the channels of two inputs of the same width, height and depth."""
    add(ctx, out, Append(), [first, second])


@network_command(
    "nn_append",
    OUT_NAME,
    IN_NAME,
    LayerName("in1", help="second input ('.' = previous layer)"),
    Choice("axis", choices=tuple(AXES), help="x, y, z or c"),
    api="3.6",
)
def nn_append_36(ctx, selection, out, first, second, axis):
    """Add a layer appending the second input after the first along an axis (their other
    sizes equal)."""
    add(ctx, out, Append(axis=axis), [first, second])


@numba.njit(cache=True)
def sources(op):
    """For each output value, the first input's value it copies (0..n0-1), or n0 + the second
    input's."""
    axis, w, h, d = op[AXIS], op[IN_W], op[IN_H], op[IN_D]
    length = (w, h, d, op[IN0_LEN] // (w * h * d))[axis]  # the first input's, along the axis
    # the second input's width, height and depth
    w1 = op[OUT_W] - w if axis == 0 else w
    h1 = op[OUT_H] - h if axis == 1 else h
    d1 = op[OUT_D] - d if axis == 2 else d
    table = np.empty(op[OUT_LEN], dtype=np.int64)
    for k in range(table.size):
        x, y, z, c = gather.position(k, op[OUT_W], op[OUT_H], op[OUT_D])
        if (x, y, z, c)[axis] < length:
            table[k] = gather.index(x, y, z, c, w, h, d)
            continue
        x, y = (x - length if axis == 0 else x), (y - length if axis == 1 else y)
        z, c = (z - length if axis == 2 else z), (c - length if axis == 3 else c)
        table[k] = op[IN0_LEN] + gather.index(x, y, z, c, w1, h1, d1)
    return table


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    table = sources(op)
    for k in range(table.size):
        s = table[k]
        at = (op[IN0] + s) * width if s < op[IN0_LEN] else (op[IN1] + s - op[IN0_LEN]) * width
        y = (op[OUT] + k) * width
        for c in range(width):
            acts[y + c] = acts[at + c]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, grad_acts, width):
    table = sources(op)
    for k in range(table.size):
        s = table[k]
        at = (op[IN0] + s) * width if s < op[IN0_LEN] else (op[IN1] + s - op[IN0_LEN]) * width
        y = (op[OUT] + k) * width
        for c in range(width):
            grad_acts[at + c] += grad_acts[y + c]

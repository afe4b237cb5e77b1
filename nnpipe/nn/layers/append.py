"""Append: two inputs of the same width, height and depth stacked along the channels. A
sample's values are flattened channel after channel, so this is the first input's values
followed by the second's."""

import numba

from nnpipe.errors import UserError
from nnpipe.nn.building import IN0_NAME, IN1_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, IN0_LEN, IN1, IN1_LEN, OUT, Layer
from nnpipe.numbers import size_text


class Append(Layer):
    kind = "append"
    inputs = 2

    def build(self, input_sizes):
        first, second = input_sizes
        if first[:3] != second[:3]:
            raise UserError(
                f"append needs inputs of the same width, height and depth"
                f" (got {size_text(first)} and {size_text(second)})"
            )
        return first[:3] + (first[3] + second[3],)

    def export_onnx(self, g, step):
        return g.node("Concat", step.inputs, step.name, axis=g.CHANNEL_AXIS)


@network_command("nn_append", OUT_NAME, IN0_NAME, IN1_NAME)
def nn_append(ctx, selection, out, first, second):
    """Add a layer stacking the channels of two inputs of the same width, height and depth."""
    add(ctx, out, Append(), [first, second])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    y, a, b = op[OUT] * width, op[IN0] * width, op[IN1] * width
    first = op[IN0_LEN] * width
    for i in range(first):
        acts[y + i] = acts[a + i]
    for i in range(op[IN1_LEN] * width):
        acts[y + first + i] = acts[b + i]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, grad_acts, width):
    y, a, b = op[OUT] * width, op[IN0] * width, op[IN1] * width
    first = op[IN0_LEN] * width
    for i in range(first):
        grad_acts[a + i] += grad_acts[y + i]
    for i in range(op[IN1_LEN] * width):
        grad_acts[b + i] += grad_acts[y + first + i]

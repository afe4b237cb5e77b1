"""Scale (an nnpipe extension, not in nn_lib): y = a_c x + b_c, one learnt scale a_c and shift
b_c per channel c of the input. The parameter image has one row (a, b) per channel, starting
at (1, 0): the identity. This file is the whole layer: its command, its class, its kernels."""

import numba
import numpy as np

from nnpipe.nn.building import IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, PARAM, Layer, column, learning_mask
from nnpipe.nn.layers.rename import Rename
from nnpipe.registry import Int


class Scale(Layer):
    kind = "scale"
    kernel_arguments = ("channels",)

    def parameter_shape(self, input_sizes):
        return (1, 1, input_sizes[0][3], 2)

    def initialize(self, input_sizes, rng):
        values = np.zeros(self.parameter_shape(input_sizes), dtype=np.float32)
        values[..., 0] = 1
        return values

    def trainable(self, input_sizes):
        return learning_mask(2, input_sizes[0][3], self.options["learning_mode"])

    def arguments(self, input_sizes):
        return {"channels": input_sizes[0][3]}

    def properties(self):
        return f"learning_mode={self.options['learning_mode']}"

    def export_onnx(self, g, step):
        rows = step.weights.reshape(-1, 2)
        scale = g.constant(rows[:, 0].reshape(1, -1, 1, 1, 1), f"{step.name}_scale")
        shift = g.constant(rows[:, 1].reshape(1, -1, 1, 1, 1), f"{step.name}_shift")
        scaled = g.node("Mul", [step.inputs[0], scale], f"{step.name}_scaled")
        return g.node("Add", [scaled, shift], step.name)


CHANNELS = column(Scale, "channels")


@network_command(
    "nn_scale",
    OUT_NAME,
    IN_OR_PREVIOUS,
    Int("learning_mode", 3, low=0, high=3, help="0 none, 1 scales only, 2 shifts only, 3 both"),
)
def nn_scale(ctx, selection, out, source, learning_mode):
    """Add a per-channel scale and shift, y = a x + b (an nnpipe extension): OUT_scale, whose
    parameter image holds one row (a, b) per channel, and OUT."""
    scaled = add(ctx, f"{out}_scale", Scale(learning_mode=learning_mode), [source])
    add(ctx, out, Rename(), [scaled])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, params, width):
    size = op[OUT_LEN] // op[CHANNELS] * width  # values of one channel, all samples
    for c in range(op[CHANNELS]):
        a, b = params[op[PARAM] + 2 * c], params[op[PARAM] + 2 * c + 1]
        x = acts[(op[IN0] * width + c * size) : (op[IN0] * width + (c + 1) * size)]
        y = acts[(op[OUT] * width + c * size) : (op[OUT] * width + (c + 1) * size)]
        for i in range(size):
            y[i] = a * x[i] + b


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, params, grads, width):
    size = op[OUT_LEN] // op[CHANNELS] * width
    for c in range(op[CHANNELS]):
        a = params[op[PARAM] + 2 * c]
        x = acts[(op[IN0] * width + c * size) : (op[IN0] * width + (c + 1) * size)]
        gx = grad_acts[(op[IN0] * width + c * size) : (op[IN0] * width + (c + 1) * size)]
        gy = grad_acts[(op[OUT] * width + c * size) : (op[OUT] * width + (c + 1) * size)]
        g_scale, g_shift = np.float32(0), np.float32(0)
        for i in range(size):
            gx[i] += a * gy[i]
            g_scale += gy[i] * x[i]
            g_shift += gy[i]
        grads[op[PARAM] + 2 * c] += g_scale
        grads[op[PARAM] + 2 * c + 1] += g_shift

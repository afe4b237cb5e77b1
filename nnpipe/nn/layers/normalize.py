"""Normalize, as nn_lib does it: y = alpha * (x - mean) / (sqrt(var) + 1e-8) + beta with the
*running* mean and variance, so each sample is computed on its own. The parameter image holds
one row (alpha, beta, running mean, running variance) for the whole input (global mode) or one
row per channel; training moves the running statistics toward each batch's average of the
per-sample mean and (unbiased) variance at rate 0.01."""

import math

import numba
import numpy as np

from nnpipe.nn.building import IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, PARAM, STATS, Layer, column
from nnpipe.nn.layers.rename import Rename
from nnpipe.registry import Bool, Int

RUNNING_RATE = 0.01
EPSILON = 1e-8


class Normalize(Layer):
    kind = "normalize"
    kernel_arguments = ("groups",)

    def groups(self, input_sizes):
        return input_sizes[0][3] if self.options["channelwise"] else 1

    def parameter_shape(self, input_sizes):
        return (1, 1, self.groups(input_sizes), 4)

    def initialize(self, input_sizes, rng):
        values = np.zeros(self.parameter_shape(input_sizes), dtype=np.float32)
        values[..., 0] = 1  # alpha
        values[..., 3] = 1  # running variance
        return values

    def trainable(self, input_sizes):
        mask = np.zeros((self.groups(input_sizes), 4), dtype=np.float32)
        mode = self.options["learning_mode"]
        mask[:, 0] = mode & 1
        mask[:, 1] = (mode & 2) >> 1
        return mask.ravel()

    def arguments(self, input_sizes):
        return {"groups": self.groups(input_sizes)}

    def statistics(self, input_sizes):
        return 2 * self.groups(input_sizes)  # the sums of the samples' means and variances

    def properties(self):
        mode = "channel-by-channel" if self.options["channelwise"] else "global"
        return f"normalization={mode}, learning_mode={self.options['learning_mode']}"

    def export_onnx(self, g, step):
        """Its inference-time map, y = alpha (x - running mean) / (sqrt(running variance) +
        1e-8) + beta = scale x + shift, one (scale, shift) for the input or one per channel."""
        rows = step.weights.reshape(-1, 4).astype(np.float64)
        alpha, beta, mean, variance = rows.T
        scale = alpha / (np.sqrt(variance) + EPSILON)
        shift = beta - mean * scale
        shape = [1, -1, 1, 1, 1] if rows.shape[0] > 1 else [1, 1, 1, 1, 1]
        scaled = g.node(
            "Mul",
            [step.inputs[0], g.constant(scale.reshape(shape), f"{step.name}_scale")],
            f"{step.name}_scaled",
        )
        return g.node("Add", [scaled, g.constant(shift.reshape(shape), f"{step.name}_shift")], step.name)


GROUPS = column(Normalize, "groups")


@network_command(
    "nn_normalize",
    OUT_NAME,
    IN_OR_PREVIOUS,
    Bool("normalization_mode", False, help="0 global parameters, 1 one set per channel"),
    Int("learning_mode", 3, low=0, high=3, help="0 none, 1 alpha only, 2 beta only, 3 both"),
)
def nn_normalize(ctx, selection, out, source, channelwise, learning_mode):
    """Add a normalize layer: OUT_normalize (parameters alpha, beta, running mean, variance) and OUT."""
    normalized = add(
        ctx, f"{out}_normalize", Normalize(channelwise=channelwise, learning_mode=learning_mode), [source]
    )
    add(ctx, out, Rename(), [normalized])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, params, width, valid, stats):
    """`stats` (per thread, empty at inference) gathers each group's sums of the per-sample
    mean and variance over the `valid` first samples of the chunk."""
    groups, n = op[GROUPS], op[OUT_LEN]
    size = n // groups
    for g in range(groups):
        p = op[PARAM] + 4 * g
        alpha, beta, mean = params[p], params[p + 1], params[p + 2]
        scale = alpha / (math.sqrt(params[p + 3]) + EPSILON)
        x = acts[(op[IN0] + g * size) * width : (op[IN0] + (g + 1) * size) * width]
        y = acts[(op[OUT] + g * size) * width : (op[OUT] + (g + 1) * size) * width]
        for i in range(size * width):
            y[i] = (x[i] - mean) * scale + beta
        if stats.size == 0:
            continue
        for c in range(valid):
            total = 0.0
            for i in range(c, size * width, width):
                total += x[i]
            sample_mean = total / size
            square = 0.0
            for i in range(c, size * width, width):
                square += (x[i] - sample_mean) ** 2
            stats[op[STATS] + 2 * g] += sample_mean
            stats[op[STATS] + 2 * g + 1] += square / max(size - 1, 1)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, params, grads, width):
    groups, n = op[GROUPS], op[OUT_LEN]
    size = n // groups
    for g in range(groups):
        p = op[PARAM] + 4 * g
        alpha, mean = params[p], params[p + 2]
        std = math.sqrt(params[p + 3]) + EPSILON
        x = acts[(op[IN0] + g * size) * width : (op[IN0] + (g + 1) * size) * width]
        gx = grad_acts[(op[IN0] + g * size) * width : (op[IN0] + (g + 1) * size) * width]
        gy = grad_acts[(op[OUT] + g * size) * width : (op[OUT] + (g + 1) * size) * width]
        g_alpha = np.float32(0)
        g_beta = np.float32(0)
        for i in range(size * width):
            g_alpha += gy[i] * (x[i] - mean)
            g_beta += gy[i]
            gx[i] += gy[i] * (alpha / std)
        grads[p] += g_alpha / std
        grads[p + 1] += g_beta


@numba.njit(cache=True)
def after_step(op, params, stats, batch):
    """The running statistics move toward the step's averages."""
    for g in range(op[GROUPS]):
        p = op[PARAM] + 4 * g
        params[p + 2] += RUNNING_RATE * (stats[op[STATS] + 2 * g] / batch - params[p + 2])
        params[p + 3] += RUNNING_RATE * (stats[op[STATS] + 2 * g + 1] / batch - params[p + 3])

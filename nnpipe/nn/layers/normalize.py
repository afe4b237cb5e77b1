"""Normalize, as nn_lib does it: y = alpha * (x - mean) / (sqrt(var) + 1e-8) + beta with the
*running* mean and variance, so each sample is computed on its own. The parameter image holds
one row (alpha, beta, running mean, running variance) for the whole input (global mode) or one
row per channel; training moves the running statistics toward each batch's average of the
per-sample mean and (unbiased) variance at rate 0.01.

G'MIC 3.6's (option sample_statistics) starts with the running variance at -1, meaning none
yet: while the first row's variance is negative (or NaN), each sample is normalized by the mean
and standard deviation of all its values (one pair for every channel, as 3.6.3 does, its
backward pass holding them constant as 3.6.3's does), and the first training step replaces the
running statistics by the batch's instead of moving toward them. A group of one value has a NaN
variance there (3.6.3 divides by n - 1), which keeps the layer on per-sample statistics."""

import math

import numba
import numpy as np

from nnpipe.nn.building import IN_NAME, IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, PARAM, STATS, Layer, column, count
from nnpipe.nn.layers.rename import Rename
from nnpipe.registry import Bool, Int

RUNNING_RATE = 0.01
EPSILON = 1e-8


class Normalize(Layer):
    """options: channelwise, learning_mode; sample_statistics (G'MIC 3.6's)."""

    kind = "normalize"
    kernel_arguments = ("groups", "sample_statistics")

    def groups(self, input_sizes):
        return input_sizes[0][3] if self.options["channelwise"] else 1

    def parameter_shape(self, input_sizes):
        return (1, 1, self.groups(input_sizes), 4)

    def initialize(self, input_sizes, rng):
        values = np.zeros(self.parameter_shape(input_sizes), dtype=np.float32)
        values[..., 0] = 1  # alpha
        values[..., 3] = -1 if self.options.get("sample_statistics") else 1  # running variance
        return values

    def trainable(self, input_sizes):
        mask = np.zeros((self.groups(input_sizes), 4), dtype=np.float32)
        mode = self.options["learning_mode"]
        mask[:, 0] = mode & 1
        mask[:, 1] = (mode & 2) >> 1
        return mask.ravel()

    def arguments(self, input_sizes):
        return {
            "groups": self.groups(input_sizes),
            "sample_statistics": int(self.options.get("sample_statistics", False)),
        }

    def statistics(self, input_sizes):
        return 2 * self.groups(input_sizes)  # the sums of the samples' means and variances

    def properties(self):
        mode = "channel-by-channel" if self.options["channelwise"] else "global"
        return f"normalization={mode}, learning_mode={self.options['learning_mode']}"

    def export_onnx(self, g, step):
        """Its inference-time map, y = alpha (x - running mean) / (sqrt(running variance) +
        1e-8) + beta = scale x + shift, one (scale, shift) for the input or one per channel;
        without running statistics yet (G'MIC 3.6's), each sample by its own."""
        rows = step.weights.reshape(-1, 4).astype(np.float64)
        if self.options.get("sample_statistics") and not rows[0, 3] >= 0:
            return self._export_per_sample(g, step, rows)
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

    def _export_per_sample(self, g, step, rows):
        name, shape = step.name, [1, -1, 1, 1, 1] if rows.shape[0] > 1 else [1, 1, 1, 1, 1]
        flat = g.flat(step.inputs[0], f"{name}_flat")
        mean = g.node("ReduceMean", [flat], f"{name}_mean", axes=[1], keepdims=1)
        centered = g.node("Sub", [flat, mean], f"{name}_centered")
        total = g.node(
            "ReduceSum",
            [
                g.node("Mul", [centered, centered], f"{name}_squares"),
                g.constant([1], f"{name}_axes", np.int64),
            ],
            f"{name}_total",
            keepdims=1,
        )
        variance = g.node(
            "Div", [total, g.constant(count(step.input_sizes[0]) - 1, f"{name}_n")], f"{name}_variance"
        )
        deviation = g.node(
            "Add",
            [g.node("Sqrt", [variance], f"{name}_sqrt"), g.constant(EPSILON, f"{name}_epsilon")],
            f"{name}_deviation",
        )
        normalized = g.to_5d(
            g.node("Div", [centered, deviation], f"{name}_divided"), step.size, f"{name}_normalized"
        )
        scaled = g.node(
            "Mul", [normalized, g.constant(rows[:, 0].reshape(shape), f"{name}_alpha")], f"{name}_scaled"
        )
        return g.node("Add", [scaled, g.constant(rows[:, 1].reshape(shape), f"{name}_beta")], name)


GROUPS, SAMPLE_STATISTICS = column(Normalize, "groups"), column(Normalize, "sample_statistics")


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


@network_command(
    "nn_normalize",
    OUT_NAME,
    IN_NAME,
    Bool("normalization_mode", True, help="0 global parameters, 1 one set per channel"),
    Int("learning_mode", 3, low=0, high=3, help="0 none, 1 alpha only, 2 beta only, 3 both"),
    api="3.6",
)
def nn_normalize_36(ctx, selection, out, source, channelwise, learning_mode):
    """Add a normalize layer OUT, its parameters the image NET_OUT: one row (alpha, beta,
    running mean, running variance) for all values or per channel, starting at (1,0,0,-1).
    While the running variance is negative, each sample is normalized by its own mean and
    standard deviation; the first training step stores the batch's."""
    layer = Normalize(channelwise=channelwise, learning_mode=learning_mode, sample_statistics=True)
    add(ctx, out, layer, [source])


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def unset(op, params):
    """Whether a G'MIC 3.6 layer has no running statistics yet: its first variance is
    negative or NaN."""
    return op[SAMPLE_STATISTICS] and not params[op[PARAM] + 3] >= 0


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def sample_moments(x, c, n, width):
    """Mean and standard deviation (unbiased, (n - 1) below: NaN for one value) of sample c's
    n values, at c, c + width, ..."""
    total = 0.0
    for i in range(c, n * width, width):
        total += x[i]
    mean = total / n
    square = 0.0
    for i in range(c, n * width, width):
        square += (x[i] - mean) ** 2
    return mean, math.sqrt(square / (n - 1))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, params, width, valid, stats):
    """`stats` (per thread, empty at inference) gathers each group's sums of the per-sample
    mean and variance over the `valid` first samples of the chunk."""
    groups, n = op[GROUPS], op[OUT_LEN]
    size = n // groups
    if unset(op, params):  # each sample by the mean and deviation of all its values
        x, y = acts[op[IN0] * width : (op[IN0] + n) * width], acts[op[OUT] * width : (op[OUT] + n) * width]
        for c in range(width):
            mean, deviation = sample_moments(x, c, n, width)
            for g in range(groups):
                p = op[PARAM] + 4 * g
                scale = params[p] / (deviation + EPSILON)
                for i in range(g * size * width + c, (g + 1) * size * width, width):
                    y[i] = (x[i] - mean) * scale + params[p + 1]
    for g in range(groups):
        p = op[PARAM] + 4 * g
        x = acts[(op[IN0] + g * size) * width : (op[IN0] + (g + 1) * size) * width]
        y = acts[(op[OUT] + g * size) * width : (op[OUT] + (g + 1) * size) * width]
        if not unset(op, params):
            alpha, beta, mean = params[p], params[p + 1], params[p + 2]
            scale = alpha / (math.sqrt(params[p + 3]) + EPSILON)
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
            # G'MIC 3.6's variance of one value is NaN
            stats[op[STATS] + 2 * g + 1] += square / (size - 1 if op[SAMPLE_STATISTICS] else max(size - 1, 1))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, params, grads, width):
    groups, n = op[GROUPS], op[OUT_LEN]
    size = n // groups
    per_sample = unset(op, params)
    for g in range(groups):
        p = op[PARAM] + 4 * g
        alpha = params[p]
        x = acts[(op[IN0] + g * size) * width : (op[IN0] + (g + 1) * size) * width]
        gx = grad_acts[(op[IN0] + g * size) * width : (op[IN0] + (g + 1) * size) * width]
        gy = grad_acts[(op[OUT] + g * size) * width : (op[OUT] + (g + 1) * size) * width]
        if per_sample:  # the statistics held constant, as G'MIC 3.6 does
            whole = acts[op[IN0] * width : (op[IN0] + n) * width]
            g_alpha = np.float32(0)
            g_beta = np.float32(0)
            for c in range(width):
                mean, deviation = sample_moments(whole, c, n, width)
                std = deviation + EPSILON
                for i in range(c, size * width, width):
                    g_alpha += gy[i] * (x[i] - mean) / std
                    g_beta += gy[i]
                    gx[i] += gy[i] * (alpha / std)
            grads[p] += g_alpha
            grads[p + 1] += g_beta
            continue
        mean = params[p + 2]
        std = math.sqrt(params[p + 3]) + EPSILON
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
    """The running statistics move toward the step's averages (G'MIC 3.6's: are replaced by
    them on the first step)."""
    replace = unset(op, params)
    for g in range(op[GROUPS]):
        p = op[PARAM] + 4 * g
        for k in range(2):
            average = stats[op[STATS] + 2 * g + k] / batch
            if replace:
                params[p + 2 + k] = average
            elif op[SAMPLE_STATISTICS]:  # CImg's float arithmetic
                params[p + 2 + k] = np.float32(RUNNING_RATE) * average + params[p + 2 + k] * np.float32(
                    1 - RUNNING_RATE
                )
            else:
                params[p + 2 + k] += RUNNING_RATE * (average - params[p + 2 + k])

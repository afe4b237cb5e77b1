"""Resize: the input resampled to another size (w,h,d,s), as CImg's resize does it, one axis
after the other. Interpolations (nn_lib's numbers):
0 none: the input at the origin, zeros beyond it (cropped when smaller);
1 nearest: output o reads input floor(o * n_in / n_out);
2 moving average: shrinking averages the input over each output cell (fractional cells
  weighted by their overlap); growing is nearest;
3 linear (nn_lib's default): growing interpolates with the corners aligned, input i at
  output i * (n_out - 1) / (n_in - 1); shrinking is the moving average; from 1 value, nearest.
G'MIC 3.6's also (CImg's, with the same alignment and shrinking):
4 grid: growing puts input i at output ceil(i * n_out / n_in), zeros between; shrinking is
  nearest;
5 cubic: growing interpolates by Catmull-Rom over 4 inputs (clamped at the ends, values not);
6 lanczos: growing weighs 4 inputs by sinc(d) sinc(d/2), normalized.
Every mode is linear in the input: the backward pass applies the transposed weights, the exact
adjoint (nn_lib's backward resizes the gradient back with another interpolation instead)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import (
    IN0,
    IN_D,
    IN_H,
    IN_S,
    IN_W,
    OUT,
    OUT_D,
    OUT_H,
    OUT_LEN,
    OUT_S,
    OUT_W,
    Layer,
    column,
    gather,
)
from nnpipe.numbers import INT_LIMIT
from nnpipe.registry import SAME, Int, Size

NAMES = ("none", "nearest", "average", "linear", "grid", "cubic", "lanczos")
NONE, NEAREST, AVERAGE, LINEAR, GRID, CUBIC, LANCZOS = range(len(NAMES))


class Resize(Layer):
    """options: size, four (value, is_percent) pairs (w, h, d, s); interpolation (0-6); G'MIC
    3.6's width_percent_of_height (3.6.3 takes a width percentage of the input's height)."""

    kind = "resize"
    kernel_arguments = ("interpolation",)

    def build(self, input_sizes):
        size = input_sizes[0]
        if self.options.get("width_percent_of_height"):
            width = sized(size[1:2], self.options["size"][:1])
            return width + sized(size, self.options["size"])[1:]
        return sized(size, self.options["size"])

    def arguments(self, input_sizes):
        return {"interpolation": self.options["interpolation"]}

    def properties(self):
        return f"interpolation={self.options['interpolation']}"

    def export_onnx(self, g, step):
        """Linear along each axis, by the layer's own per-axis weights."""
        mode = self.arguments(step.input_sizes)["interpolation"]
        x = step.inputs[0]
        for axis, n_in, n_out in zip(g.AXES, step.input_sizes[0], step.size):
            sources, weights = axis_weights(n_in, n_out, mode)
            matrix = np.zeros((n_out, n_in))
            for out in range(n_out):
                for source, weight in zip(sources[out], weights[out]):
                    if weight:
                        matrix[out, source] += weight
            x = g.linear_axis(x, axis, matrix, f"{step.name}_axis{axis}")
        return x


INTERPOLATION = column(Resize, "interpolation")


@network_command(
    "nn_resize",
    OUT_NAME,
    IN_NAME,
    Size("width"),
    Size("height", SAME),
    Size("depth", SAME),
    Size("spectrum", SAME),
    Int(
        "interpolation",
        3,
        low=0,
        high=3,
        help="0 none (zeros beyond the input), 1 nearest, 2 moving average, 3 linear",
    ),
)
def nn_resize(ctx, selection, out, source, width, height, depth, spectrum, interpolation):
    """Add a layer resizing its input, as nn_lib does (CImg's linear resize).

    Sizes are in values, or N% of the input's. Linear interpolation aligns the corners when
    growing and averages over each output cell when shrinking; moving average is nearest when
    growing."""
    add(ctx, out, Resize(size=(width, height, depth, spectrum), interpolation=interpolation), [source])


@network_command(
    "nn_resize",
    OUT_NAME,
    IN_NAME,
    Size("width"),
    Size("height", SAME),
    Size("depth", SAME),
    Size("spectrum", SAME),
    Int(
        "interpolation",
        LINEAR,
        low=-1,
        high=6,
        help="0 none (zeros beyond the input), 1 nearest, 2 moving average, 3 linear, 4 grid,"
        " 5 cubic, 6 lanczos (-1, raw memory, is refused)",
    ),
    api="3.6",
)
def nn_resize_36(ctx, selection, out, source, width, height, depth, spectrum, interpolation):
    """Add a layer resizing its input as G'MIC 3.6 does (CImg's resize, boundary 0, no
    centering). Sizes are in values or N% of the input's; as in 3.6.3, a width percentage is
    taken of the input's height."""
    if interpolation < 0:
        raise UserError(
            "interpolation -1 (the values read again under the new size, no interpolation) is not supported"
        )
    layer = Resize(
        size=(width, height, depth, spectrum), interpolation=interpolation, width_percent_of_height=True
    )
    add(ctx, out, layer, [source])


def sized(size, requested):
    """(w, h, d, s) from four (value, is_percent) pairs, percentages of `size` rounded as
    nn_lib rounds them, at least 1."""
    sizes = []
    for n, (value, percent) in zip(size, requested):
        target = n * value / 100 if percent else value
        if target > INT_LIMIT:  # 1e308% is a size no layer can have (and no integer holds inf)
            raise UserError(f"{value:g}{'%' * percent} of {n} is too large a size (at most {INT_LIMIT})")
        sizes.append(max(1, math.floor(target + 0.5)) if percent else int(target))
    return tuple(sizes)


@numba.njit(cache=True, inline="always")
def _sinc(x):
    return 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)


@numba.njit(cache=True)
def axis_weights(n_in, n_out, mode):
    """Output o of the axis is the sum over j of weights[o, j] * input[sources[o, j]]."""
    shrinking = n_out < n_in
    average = shrinking and mode != NEAREST and mode != GRID and mode != NONE
    taps = (n_in + n_out - 1) // n_out + 1 if average else 4
    sources = np.zeros((n_out, taps), dtype=np.int64)
    weights = np.zeros((n_out, taps), dtype=np.float32)
    for o in range(n_out):
        if n_in == n_out or (mode == NONE and o < n_in):
            sources[o, 0], weights[o, 0] = o, 1
        elif mode == NONE:
            continue
        elif average:
            # in units of 1 / (n_in n_out): output o covers [o n_in, (o + 1) n_in), input i
            # covers [i n_out, (i + 1) n_out)
            first = o * n_in // n_out
            for j in range(taps):
                i = first + j
                overlap = min((i + 1) * n_out, (o + 1) * n_in) - max(i * n_out, o * n_in)
                if i < n_in and overlap > 0:
                    sources[o, j], weights[o, j] = i, overlap / n_in
        elif mode == GRID and not shrinking:  # input i lands on output ceil(i n_out / n_in)
            i = o * n_in // n_out
            if i * n_out > (o - 1) * n_in:
                sources[o, 0], weights[o, 0] = i, 1
        elif (mode == LINEAR or mode == CUBIC or mode == LANCZOS) and n_in > 1:
            base = o * (n_in - 1) // (n_out - 1)
            t = o * (n_in - 1) % (n_out - 1) / (n_out - 1)
            if mode == LINEAR:
                sources[o, 0], weights[o, 0] = base, 1 - t
                sources[o, 1], weights[o, 1] = min(base + 1, n_in - 1), t
                continue
            if mode == CUBIC:  # Catmull-Rom
                tap_weights = (
                    ((-0.5 * t + 1.0) * t - 0.5) * t,
                    (1.5 * t - 2.5) * t * t + 1,
                    ((-1.5 * t + 2.0) * t + 0.5) * t,
                    (0.5 * t - 0.5) * t * t,
                )
            else:
                tap_weights = (
                    _sinc(t + 1) * _sinc((t + 1) / 2),
                    _sinc(t) * _sinc(t / 2),
                    _sinc(t - 1) * _sinc((t - 1) / 2),
                    _sinc(t - 2) * _sinc((t - 2) / 2),
                )
            total = (
                tap_weights[0] + tap_weights[1] + tap_weights[2] + tap_weights[3] if mode == LANCZOS else 1.0
            )
            for j in range(4):
                sources[o, j] = min(max(base + j - 1, 0), n_in - 1)
                weights[o, j] = tap_weights[j] / total
        else:
            sources[o, 0], weights[o, 0] = o * n_in // n_out, 1
    return sources, weights


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def resample(op, buffer, width, adjoint):
    """Forward (adjoint=False): output rows = weights x input rows, in `buffer` = the
    activations. Backward (adjoint=True): input rows += weights^T x output rows, in `buffer` =
    the gradients."""
    mode = op[INTERPOLATION]
    sx, wx = axis_weights(op[IN_W], op[OUT_W], mode)
    sy, wy = axis_weights(op[IN_H], op[OUT_H], mode)
    sz, wz = axis_weights(op[IN_D], op[OUT_D], mode)
    sc, wc = axis_weights(op[IN_S], op[OUT_S], mode)
    if not adjoint:
        buffer[op[OUT] * width : (op[OUT] + op[OUT_LEN]) * width] = 0
    for k in range(op[OUT_LEN]):
        x, y, z, c = gather.position(k, op[OUT_W], op[OUT_H], op[OUT_D])
        out = (op[OUT] + k) * width
        for jc in range(wc.shape[1]):
            for jz in range(wz.shape[1]):
                for jy in range(wy.shape[1]):
                    for jx in range(wx.shape[1]):
                        weight = wc[c, jc] * wz[z, jz] * wy[y, jy] * wx[x, jx]
                        if weight == 0:
                            continue
                        source = gather.index(
                            sx[x, jx], sy[y, jy], sz[z, jz], sc[c, jc], op[IN_W], op[IN_H], op[IN_D]
                        )
                        at = (op[IN0] + source) * width
                        if adjoint:
                            for s in range(width):
                                buffer[at + s] += weight * buffer[out + s]
                        else:
                            for s in range(width):
                                buffer[out + s] += weight * buffer[at + s]


@numba.njit(cache=True)
def forward(op, acts, width):
    resample(op, acts, width, False)


@numba.njit(cache=True)
def backward(op, grad_acts, width):
    resample(op, grad_acts, width, True)

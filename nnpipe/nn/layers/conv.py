"""Convolution (nn_lib's conv2d and conv3d) and its transpose (tconv2d).

The weights image has one row per output channel o: the kernels of every input channel i
(k x k, or k x k x k in 3D, x fastest), then the bias. As nn_lib (CImg's `convolve`), a true
convolution, kernel flipped, starting `shrink` pixels into the input:

  OUT[o](x,y,z) = b[o] + sum_i sum_{p,q,r} W[o][i](p,q,r) IN_bc[i](X(x,p), Y(y,q), Z(z,r))
  X(x,p) = shrink + stride x - dilation (p - centre),  centre = k - 1 - floor(k/2)

(the same along y, and along z in 3D; in 2D, Z = z and r = 0). IN_bc reads outside the
input by the boundary conditions. The output is (w/stride - 2 shrink, h/stride - 2 shrink,
d, channels), d too shrinks and strides in 3D.

The transposed convolution is the adjoint of the stride-s convolution (zeros outside, no
shrink) plus a bias: it spreads each input value over the output, s times larger; a tconv2d
of stride s undoes the geometry of a conv2d of stride s.

Both are computed the same way: for each output pixel, a list of (weight, input value) pairs,
so the forward pass is a gathered dot product per output value and the backward pass its
exact adjoint. At stride 1, the columns of an output row whose taps all fall inside the input
are done at once: their values, and those they read, are consecutive in the feature-major
buffers, so each pair becomes one long vector operation instead of one per column.
"""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import boundary
from nnpipe.nn.layers import (IN0, IN_D, IN_H, IN_S, IN_W, OUT, OUT_D, OUT_H, OUT_S, OUT_W, PARAM,
                              Layer, column, learning_mask, size_text, weights_and_biases)


class Convolution(Layer):
    """options: channels, kernel_size, stride, dilation, shrink, boundary_conditions,
    learning_mode, dimensions (2 or 3), transposed."""
    kernel_arguments = ("kernel_size", "stride", "dilation", "shrink", "boundary_conditions",
                        "dimensions", "transposed")

    def __init__(self, **options):
        options.setdefault("transposed", False)
        super().__init__(**options)
        self.kind = f"{'t' if options['transposed'] else ''}conv{options['dimensions']}d"

    def kernel_volume(self):
        return self.options["kernel_size"] ** self.options["dimensions"]

    def build(self, input_sizes):
        (w, h, d, _), o = input_sizes[0], self.options
        strided_axes = 3 if o["dimensions"] == 3 else 2
        if o["transposed"]:
            size = [n * o["stride"] for n in (w, h, d)[:strided_axes]]
        else:
            size = [n // o["stride"] - 2 * o["shrink"] for n in (w, h, d)[:strided_axes]]
        size = tuple(size) + (d,) * (3 - strided_axes) + (o["channels"],)
        if min(size) < 1:
            raise UserError(f"{self.kind} of stride {o['stride']} and border shrink {o['shrink']}"
                            f" leaves nothing of an input of size {size_text(input_sizes[0])}")
        return size

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], input_sizes[0][3] * self.kernel_volume() + 1)

    def initialize(self, input_sizes, rng):
        return weights_and_biases(self.parameter_shape(input_sizes),
                                  input_sizes[0][3] * self.kernel_volume(),
                                  self.options["learning_mode"], rng)

    def trainable(self, input_sizes):
        _, _, height, width = self.parameter_shape(input_sizes)
        return learning_mask(width, height, self.options["learning_mode"])

    def arguments(self, input_sizes):
        o = self.options
        return {name: int(o[name]) for name in self.kernel_arguments}

    def picture(self, weights, gap=1):
        """nn_view's layout of a weights image: a grid of kernel tiles, one row per output
        channel, one column per input channel (a 3D kernel: its k slices side by side), then
        the bias, 1-pixel black gaps between them."""
        k, dimensions = self.options["kernel_size"], self.options["dimensions"]
        rows = weights.reshape(weights.shape[2], -1)
        channels = (rows.shape[1] - 1) // k ** dimensions
        kernels = rows[:, :-1].reshape(rows.shape[0], channels, -1, k, k)   # (o, i, slice, q, p)
        tile_w = kernels.shape[2] * k
        canvas = np.zeros((rows.shape[0] * (k + gap) - gap, channels * (tile_w + gap) + 1))
        for o in range(rows.shape[0]):
            top = o * (k + gap)
            for i in range(channels):
                left = i * (tile_w + gap)
                canvas[top:top + k, left:left + tile_w] = np.hstack(list(kernels[o, i]))
            canvas[top, -1] = rows[o, -1]
        return canvas

    def properties(self):
        o = self.options
        kernel = "x".join([str(o["kernel_size"])] * o["dimensions"])
        text = f"kernel={kernel}, stride={o['stride']}, dilation={o['dilation']}"
        if not o["transposed"]:
            text += (f", border_shrink={o['shrink']},"
                     f" boundary_conditions={boundary.NAMES[o['boundary_conditions']]}")
        return text + f", learning_mode={o['learning_mode']}"


(KERNEL_SIZE, STRIDE, DILATION, SHRINK, CONDITION, DIMENSIONS,
 TRANSPOSED) = (column(Convolution, name) for name in Convolution.kernel_arguments)


@numba.njit(cache=True, inline="always")
def _source(out, tap, n_in, k, stride, dilation, shrink, condition, transposed):
    """The input coordinate that output coordinate `out` reads through kernel tap `tap`
    along one axis, or -1 for none."""
    offset = dilation * (tap - (k - 1 - k // 2))
    if transposed:
        position = out + offset
        if position % stride:
            return -1
        position //= stride
        return position if 0 <= position < n_in else -1
    return boundary.coordinate(shrink + stride * out - offset, n_in, condition)


@numba.njit(cache=True)
def pairs(op, x, y, z, weight_of, value_of):
    """Fill the (weight offset in the kernels row, input value) pairs that output pixel
    (x, y, z) sums over; return how many there are."""
    k, stride, dilation, shrink = op[KERNEL_SIZE], op[STRIDE], op[DILATION], op[SHRINK]
    condition, three_d, transposed = op[CONDITION], op[DIMENSIONS] == 3, op[TRANSPOSED]
    w, h, d = op[IN_W], op[IN_H], op[IN_D]
    kz = k if three_d else 1
    volume = k * k * kz
    count = 0
    for r in range(kz):
        zz = _source(z, r, d, k, stride, dilation, shrink, condition, transposed) if three_d else z
        if zz < 0:
            continue
        for q in range(k):
            yy = _source(y, q, h, k, stride, dilation, shrink, condition, transposed)
            if yy < 0:
                continue
            for p in range(k):
                xx = _source(x, p, w, k, stride, dilation, shrink, condition, transposed)
                if xx < 0:
                    continue
                for i in range(op[IN_S]):
                    weight_of[count] = i * volume + p + k * (q + k * r)
                    value_of[count] = op[IN0] + xx + w * (yy + h * (zz + d * i))
                    count += 1
    return count


@numba.njit(cache=True)
def interior(op):
    """The output columns [first, last) that read only inside the input, from consecutive
    input columns (stride 1, not transposed): computed as one run per row."""
    k, stride, dilation, shrink = op[KERNEL_SIZE], op[STRIDE], op[DILATION], op[SHRINK]
    if stride != 1 or op[TRANSPOSED]:
        return 0, 0
    centre = k - 1 - k // 2
    return max(0, dilation * (k - 1 - centre) - shrink), min(op[OUT_W], op[IN_W] - shrink - dilation * centre)


@numba.njit(cache=True)
def runs(op):
    """(first column, columns) of each run of an output row: the interior as one run, every
    other column alone."""
    first, last = interior(op)
    table = np.empty((op[OUT_W], 2), dtype=np.int64)
    count, x = 0, 0
    while x < op[OUT_W]:
        length = last - first if x == first and last > first else 1
        table[count, 0], table[count, 1] = x, length
        count += 1
        x += length
    return table[:count]


@numba.njit(cache=True, inline="always")
def _values(buffer, index, length, width):
    """The chunk's samples of `length` consecutive values from value `index`."""
    return buffer[index * width:(index + length) * width]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, params, width):
    plane = op[OUT_W] * op[OUT_H] * op[OUT_D]
    row_length = op[IN_S] * op[KERNEL_SIZE] ** op[DIMENSIONS] + 1
    weight_of = np.empty(row_length, dtype=np.int64)
    value_of = np.empty(row_length, dtype=np.int64)
    columns = runs(op)
    for z in range(op[OUT_D]):
        for y in range(op[OUT_H]):
            for first, length in columns:
                n = pairs(op, first, y, z, weight_of, value_of)
                pixel = op[OUT] + first + op[OUT_W] * (y + op[OUT_H] * z)
                _forward_run(op, acts, params, width, n, weight_of, value_of, pixel, length, plane, row_length)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _forward_run(op, acts, params, width, n, weight_of, value_of, pixel, length, plane, row_length):
    quads = n - n % 4
    for o in range(op[OUT_S]):
        row = op[PARAM] + o * row_length
        out = _values(acts, pixel + o * plane, length, width)
        out[:] = params[row + row_length - 1]
        for j in range(0, quads, 4):
            w0, w1 = params[row + weight_of[j]], params[row + weight_of[j + 1]]
            w2, w3 = params[row + weight_of[j + 2]], params[row + weight_of[j + 3]]
            x0, x1 = _values(acts, value_of[j], length, width), _values(acts, value_of[j + 1], length, width)
            x2, x3 = _values(acts, value_of[j + 2], length, width), _values(acts, value_of[j + 3], length, width)
            for c in range(out.size):
                out[c] += w0 * x0[c] + w1 * x1[c] + w2 * x2[c] + w3 * x3[c]
        for j in range(quads, n):
            w0, x0 = params[row + weight_of[j]], _values(acts, value_of[j], length, width)
            for c in range(out.size):
                out[c] += w0 * x0[c]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, params, grads, width):
    plane = op[OUT_W] * op[OUT_H] * op[OUT_D]
    row_length = op[IN_S] * op[KERNEL_SIZE] ** op[DIMENSIONS] + 1
    weight_of = np.empty(row_length, dtype=np.int64)
    value_of = np.empty(row_length, dtype=np.int64)
    columns = runs(op)
    for z in range(op[OUT_D]):
        for y in range(op[OUT_H]):
            for first, length in columns:
                n = pairs(op, first, y, z, weight_of, value_of)
                pixel = op[OUT] + first + op[OUT_W] * (y + op[OUT_H] * z)
                _backward_run(op, acts, grad_acts, params, grads, width, n, weight_of, value_of,
                              pixel, length, plane, row_length)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _backward_run(op, acts, grad_acts, params, grads, width, n, weight_of, value_of, pixel, length,
                  plane, row_length):
    channels = op[OUT_S]
    quads = channels - channels % 4
    for o in range(channels):
        grads[op[PARAM] + (o + 1) * row_length - 1] += _values(grad_acts, pixel + o * plane, length, width).sum()
    # four output channels per pass: each input run is loaded and stored once for four
    # multiply-adds
    for o in range(0, quads, 4):
        row = op[PARAM] + o * row_length
        g0 = _values(grad_acts, pixel + o * plane, length, width)
        g1 = _values(grad_acts, pixel + (o + 1) * plane, length, width)
        g2 = _values(grad_acts, pixel + (o + 2) * plane, length, width)
        g3 = _values(grad_acts, pixel + (o + 3) * plane, length, width)
        for j in range(n):
            a = row + weight_of[j]
            w0, w1 = params[a], params[a + row_length]
            w2, w3 = params[a + 2 * row_length], params[a + 3 * row_length]
            x, gx = _values(acts, value_of[j], length, width), _values(grad_acts, value_of[j], length, width)
            t0 = t1 = t2 = t3 = np.float32(0)
            for c in range(x.size):
                gx[c] += w0 * g0[c] + w1 * g1[c] + w2 * g2[c] + w3 * g3[c]
                t0 += g0[c] * x[c]
                t1 += g1[c] * x[c]
                t2 += g2[c] * x[c]
                t3 += g3[c] * x[c]
            grads[a] += t0
            grads[a + row_length] += t1
            grads[a + 2 * row_length] += t2
            grads[a + 3 * row_length] += t3
    for o in range(quads, channels):
        row = op[PARAM] + o * row_length
        g0 = _values(grad_acts, pixel + o * plane, length, width)
        for j in range(n):
            a = row + weight_of[j]
            x, gx = _values(acts, value_of[j], length, width), _values(grad_acts, value_of[j], length, width)
            t0 = np.float32(0)
            for c in range(x.size):
                gx[c] += params[a] * g0[c]
                t0 += g0[c] * x[c]
            grads[a] += t0

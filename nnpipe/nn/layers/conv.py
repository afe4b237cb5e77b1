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

Both are computed the same way, as matrix products through BLAS (nnpipe.nn.blas). A
chunk's buffers are feature-major, so a module's output is a row-major (channels x pixels
samples) matrix. For a block of output pixels, `columns` gathers (im2col) the matrix of what
each kernel tap reads: row i * volume + tap, one column per pixel and sample, zero where the
tap reads nothing; then OUT (channels x columns) += W (channels x taps) COLS, and in the
backward pass dW += dOUT COLS^T, dCOLS = W^T dOUT, which `columns` adds back (col2im) into the
input's gradient. Each axis reads through a table of input coordinates per output coordinate
and tap (`sources`, from the boundary conditions, stride, dilation, shrink, or the transposed
rule); along x, consecutive sources make runs (`runs`), copied as slices of run length x
samples values. The blocks keep the columns within a core's cache.
"""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import boundary
from nnpipe.nn.blas import gemm
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

# values of a column block (taps x pixels of a block x samples) the kernels aim at: 1 MB in
# float32, so a block's columns stay in the core's L2 cache between their writing and the
# matrix products reading them (measured: 128-512K floats all within a few percent)
BLOCK_VALUES = 1 << 18


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
def sources(op, axis):
    """(taps, n_out) table of the input coordinate (-1: none) each output coordinate reads
    through each kernel tap along `axis` (0: x, 1: y, 2: z). A 2D convolution has one tap
    along z, and reads its own slice."""
    n_out, n_in = op[OUT_W + axis], op[IN_W + axis]
    k = op[KERNEL_SIZE]
    if axis == 2 and op[DIMENSIONS] != 3:
        table = np.empty((1, n_out), dtype=np.int64)
        for z in range(n_out):
            table[0, z] = z
        return table
    table = np.empty((k, n_out), dtype=np.int64)
    for tap in range(k):
        for x in range(n_out):
            table[tap, x] = _source(x, tap, n_in, k, op[STRIDE], op[DILATION], op[SHRINK],
                                    op[CONDITION], op[TRANSPOSED])
    return table


@numba.njit(cache=True)
def runs(xs):
    """The runs of an output row for each x tap: (first column, columns, source column or -1)
    of the longest stretches whose sources are consecutive (or all none); the tap's run count
    in `counts`. At stride 1 the interior of a row is one run."""
    taps, n = xs.shape
    table = np.empty((taps, n, 3), dtype=np.int64)
    counts = np.zeros(taps, dtype=np.int64)
    for tap in range(taps):
        x = 0
        while x < n:
            source, length = xs[tap, x], 1
            while x + length < n and xs[tap, x + length] == (source + length if source >= 0 else -1):
                length += 1
            j = counts[tap]
            table[tap, j, 0], table[tap, j, 1], table[tap, j, 2] = x, length, source
            counts[tap] += 1
            x += length
    return table, counts


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def columns(op, buffer, width, first, last, cols, ld, table, counts, ys, zs, adjoint):
    """im2col: row t of `cols` (rows `ld` apart) gets, for output pixels [first, last) of a
    plane (x fastest, then y, then z) and every sample of the chunk, the input values that
    kernel tap t (i * volume + p + k (q + k r)) reads, zero where it reads none. `adjoint`:
    col2im, the transpose: add each row of `cols` back into the input values it was read
    from (the input's gradient)."""
    k, ow, oh = op[KERNEL_SIZE], op[OUT_W], op[OUT_H]
    w, h, d = op[IN_W], op[IN_H], op[IN_D]
    kz = zs.shape[0]
    volume = k * k * kz
    for i in range(op[IN_S]):
        for r in range(kz):
            for q in range(k):
                for p in range(k):
                    base = (i * volume + p + k * (q + k * r)) * ld
                    for row in range(first // ow, (last - 1) // ow + 1):
                        lo = max(first - row * ow, 0)
                        hi = min(last - row * ow, ow)
                        at = base + (row * ow + lo - first) * width
                        yy, zz = ys[q, row % oh], zs[r, row // oh]
                        if yy < 0 or zz < 0:
                            if not adjoint:
                                cols[at:at + (hi - lo) * width] = 0
                            continue
                        line = op[IN0] + w * (yy + h * (zz + d * i))
                        for j in range(counts[p]):
                            x0, length, source = table[p, j, 0], table[p, j, 1], table[p, j, 2]
                            a, b = max(x0, lo), min(x0 + length, hi)
                            if a >= b:
                                continue
                            into = at + (a - lo) * width
                            n = (b - a) * width
                            if source < 0:
                                if not adjoint:
                                    cols[into:into + n] = 0
                                continue
                            start = (line + source + a - x0) * width
                            # views indexed from 0: the loops vectorize
                            column, value = cols[into:into + n], buffer[start:start + n]
                            if adjoint:
                                for c in range(n):
                                    value[c] += column[c]
                            else:
                                for c in range(n):
                                    column[c] = value[c]


@numba.njit(cache=True)
def block_pixels(op, width):
    """Output pixels per column block: BLOCK_VALUES values of taps x pixels x samples."""
    taps = op[IN_S] * op[KERNEL_SIZE] ** op[DIMENSIONS]
    return max(1, BLOCK_VALUES // (taps * width))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, params, width):
    plane = op[OUT_W] * op[OUT_H] * op[OUT_D]
    taps = op[IN_S] * op[KERNEL_SIZE] ** op[DIMENSIONS]
    row_length, channels = taps + 1, op[OUT_S]
    out, weights = op[OUT] * width, params[op[PARAM]:]
    for o in range(channels):
        acts[out + o * plane * width:out + (o + 1) * plane * width] = weights[o * row_length + taps]
    table, counts = runs(sources(op, 0))
    ys, zs = sources(op, 1), sources(op, 2)
    step = block_pixels(op, width)
    cols = np.empty(taps * min(step, plane) * width, dtype=acts.dtype)
    for first in range(0, plane, step):
        last = min(first + step, plane)
        n = (last - first) * width
        columns(op, acts, width, first, last, cols, n, table, counts, ys, zs, False)
        # OUT^T (n x channels) += cols^T (n x taps) W^T (taps x channels)
        gemm(False, False, n, channels, taps, cols, n, weights, row_length, acts[out + first * width:],
             plane * width)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, params, grads, width):
    plane = op[OUT_W] * op[OUT_H] * op[OUT_D]
    taps = op[IN_S] * op[KERNEL_SIZE] ** op[DIMENSIONS]
    row_length, channels = taps + 1, op[OUT_S]
    out, weights, weight_grads = op[OUT] * width, params[op[PARAM]:], grads[op[PARAM]:]
    for o in range(channels):
        weight_grads[o * row_length + taps] += grad_acts[out + o * plane * width:
                                                         out + (o + 1) * plane * width].sum()
    table, counts = runs(sources(op, 0))
    ys, zs = sources(op, 1), sources(op, 2)
    step = block_pixels(op, width)
    cols = np.empty(taps * min(step, plane) * width, dtype=acts.dtype)
    grad_cols = np.empty_like(cols)
    for first in range(0, plane, step):
        last = min(first + step, plane)
        n = (last - first) * width
        grad_out = grad_acts[out + first * width:]
        columns(op, acts, width, first, last, cols, n, table, counts, ys, zs, False)
        # dW^T (taps x channels) += cols (taps x n) dOUT^T (n x channels)
        gemm(True, False, taps, channels, n, cols, n, grad_out, plane * width, weight_grads, row_length)
        # dcols^T (n x taps) = dOUT^T (n x channels) W (channels x taps), then added back
        grad_cols[:taps * n] = 0
        gemm(False, True, n, taps, channels, grad_out, plane * width, weights, row_length, grad_cols, n)
        columns(op, grad_acts, width, first, last, grad_cols, n, table, counts, ys, zs, True)

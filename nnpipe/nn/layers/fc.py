"""Fully connected: y = W x + b, weights an image of width (inputs + 1) and height N whose last
column holds the biases."""

import numba
import numpy as np

from nnpipe.nn.layers import (IN0, IN0_LEN, OUT, OUT_LEN, PARAM, Layer, count, learning_mask,
                              weights_and_biases)


class FullyConnected(Layer):
    kind = "fc"

    def build(self, input_sizes):
        return (1, 1, 1, self.options["channels"])

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], count(input_sizes[0]) + 1)

    def initialize(self, input_sizes, rng):
        return weights_and_biases(self.parameter_shape(input_sizes), count(input_sizes[0]),
                                  self.options["learning_mode"], rng)

    def trainable(self, input_sizes):
        _, _, height, width = self.parameter_shape(input_sizes)
        return learning_mask(width, height, self.options["learning_mode"])

    def properties(self):
        return f"learning_mode={self.options['learning_mode']}"


# Kernels work on a chunk of samples stored feature-major: value k of a module at offset `o`
# for sample c is acts[(o + k) * C + c], so every inner loop runs over the samples of the chunk
# and vectorizes. Four rows are combined per pass over a row of results: each pass loads and
# stores that row once for four multiply-adds, where one row at a time is bound by stores.

@numba.njit(cache=True, fastmath=True)
def forward(op, acts, params, width):
    n_in, n_out = op[IN0_LEN], op[OUT_LEN]
    x0, y0 = op[IN0] * width, op[OUT] * width
    quads = n_in - n_in % 4
    for n in range(n_out):
        row = op[PARAM] + n * (n_in + 1)
        y = acts[y0 + n * width:y0 + (n + 1) * width]
        y[:] = params[row + n_in]
        for k in range(0, quads, 4):
            w0, w1, w2, w3 = params[row + k], params[row + k + 1], params[row + k + 2], params[row + k + 3]
            x = acts[x0 + k * width:x0 + (k + 4) * width]
            for c in range(width):
                y[c] += w0 * x[c] + w1 * x[width + c] + w2 * x[2 * width + c] + w3 * x[3 * width + c]
        for k in range(quads, n_in):
            w = params[row + k]
            x = acts[x0 + k * width:x0 + (k + 1) * width]
            for c in range(width):
                y[c] += w * x[c]


@numba.njit(cache=True, fastmath=True)
def backward(op, acts, grad_acts, params, grads, width):
    n_in, n_out = op[IN0_LEN], op[OUT_LEN]
    x0, y0 = op[IN0] * width, op[OUT] * width
    stride = n_in + 1
    quads = n_out - n_out % 4
    for n in range(n_out):
        grads[op[PARAM] + n * stride + n_in] += grad_acts[y0 + n * width:y0 + (n + 1) * width].sum()
    for n in range(0, quads, 4):
        row = op[PARAM] + n * stride
        gy = grad_acts[y0 + n * width:y0 + (n + 4) * width]
        for k in range(n_in):
            w0, w1, w2, w3 = (params[row + k], params[row + stride + k],
                              params[row + 2 * stride + k], params[row + 3 * stride + k])
            x = acts[x0 + k * width:x0 + (k + 1) * width]
            gx = grad_acts[x0 + k * width:x0 + (k + 1) * width]
            t0 = t1 = t2 = t3 = np.float32(0)
            for c in range(width):
                g0, g1, g2, g3 = gy[c], gy[width + c], gy[2 * width + c], gy[3 * width + c]
                gx[c] += w0 * g0 + w1 * g1 + w2 * g2 + w3 * g3
                t0 += g0 * x[c]
                t1 += g1 * x[c]
                t2 += g2 * x[c]
                t3 += g3 * x[c]
            grads[row + k] += t0
            grads[row + stride + k] += t1
            grads[row + 2 * stride + k] += t2
            grads[row + 3 * stride + k] += t3
    for n in range(quads, n_out):
        row = op[PARAM] + n * stride
        gy = grad_acts[y0 + n * width:y0 + (n + 1) * width]
        for k in range(n_in):
            w = params[row + k]
            x = acts[x0 + k * width:x0 + (k + 1) * width]
            gx = grad_acts[x0 + k * width:x0 + (k + 1) * width]
            total = np.float32(0)
            for c in range(width):
                gx[c] += w * gy[c]
                total += gy[c] * x[c]
            grads[row + k] += total

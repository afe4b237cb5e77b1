"""Fully connected: y = W x + b, weights an image of width (inputs + 1) and height N whose last
column holds the biases."""

import numba
import numpy as np

from nnpipe.nn.layers import IN0, IN0_LEN, OUT, OUT_LEN, PARAM, Layer, count, learning_mask

OPCODE = 1


class FullyConnected(Layer):
    kind = "fc"
    opcode = OPCODE

    def output_size(self, input_sizes):
        return (1, 1, 1, self.options["channels"])

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], count(input_sizes[0]) + 1)

    def initialize(self, input_sizes, rng):
        # nn_lib's rule: every value, biases included, drawn from N(0, 1) * 4 / fan_in; biases
        # that are not learnt start at 0.
        shape = self.parameter_shape(input_sizes)
        weights = (rng.standard_normal(shape) * (4.0 / count(input_sizes[0]))).astype(np.float32)
        if not self.options["learning_mode"] & 2:
            weights[..., -1] = 0
        return weights

    def trainable(self, input_sizes):
        _, _, height, width = self.parameter_shape(input_sizes)
        return learning_mask(width, height, self.options["learning_mode"])

    def properties(self):
        return f"learning_mode={self.options['learning_mode']}"


# Kernels work on a chunk of samples stored feature-major: value k of a module at offset `o`
# for sample c is acts[(o + k) * C + c], so every inner loop runs over the samples of the chunk
# and vectorizes.

@numba.njit(cache=True, fastmath=True)
def forward(op, acts, params, width):
    n_in, n_out = op[IN0_LEN], op[OUT_LEN]
    x0, y0 = op[IN0] * width, op[OUT] * width
    for n in range(n_out):
        row = op[PARAM] + n * (n_in + 1)
        y = y0 + n * width
        bias = params[row + n_in]
        for c in range(width):
            acts[y + c] = bias
        for k in range(n_in):
            w = params[row + k]
            x = x0 + k * width
            for c in range(width):
                acts[y + c] += w * acts[x + c]


@numba.njit(cache=True, fastmath=True)
def backward(op, acts, grad_acts, params, grads, width):
    n_in, n_out = op[IN0_LEN], op[OUT_LEN]
    x0, y0 = op[IN0] * width, op[OUT] * width
    for n in range(n_out):
        row = op[PARAM] + n * (n_in + 1)
        y = y0 + n * width
        total = np.float32(0)
        for c in range(width):
            total += grad_acts[y + c]
        grads[row + n_in] += total
        for k in range(n_in):
            w = params[row + k]
            x = x0 + k * width
            total = np.float32(0)
            for c in range(width):
                grad_acts[x + c] += w * grad_acts[y + c]
                total += grad_acts[y + c] * acts[x + c]
            grads[row + k] += total

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


@numba.njit(cache=True, fastmath=True)
def forward(op, acts, params, b0, b1):
    n_in, n_out = op[IN0_LEN], op[OUT_LEN]
    width = n_in + 1
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n_in]
        y = acts[b, op[OUT]:op[OUT] + n_out]
        for n in range(n_out):
            row = op[PARAM] + n * width
            total = params[row + n_in]
            for k in range(n_in):
                total += params[row + k] * x[k]
            y[n] = total


@numba.njit(cache=True, fastmath=True)
def backward(op, acts, grad_acts, params, grads, b0, b1):
    n_in, n_out = op[IN0_LEN], op[OUT_LEN]
    width = n_in + 1
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n_in]
        gx = grad_acts[b, op[IN0]:op[IN0] + n_in]
        gy = grad_acts[b, op[OUT]:op[OUT] + n_out]
        for n in range(n_out):
            g = gy[n]
            row = op[PARAM] + n * width
            for k in range(n_in):
                gx[k] += params[row + k] * g
                grads[row + k] += g * x[k]
            grads[row + n_in] += g

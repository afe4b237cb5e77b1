"""Nonlinear fully connected (nn_lib's nlfc): y_i = sum_j act(W_ij x_j + B_ij). The parameter
image has width 2 x inputs: the weights W, then one bias per weight B."""

import numba
import numpy as np

from nnpipe.nn import activations
from nnpipe.nn.layers import ARG0, IN0, IN0_LEN, OUT, OUT_LEN, PARAM, count
from nnpipe.nn.layers.fc import FullyConnected

OPCODE = 6


class NonlinearFullyConnected(FullyConnected):
    kind = "nlfc"
    opcode = OPCODE

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], 2 * count(input_sizes[0]))

    def initialize(self, input_sizes, rng):
        weights = super().initialize(input_sizes, rng)
        if not self.options["learning_mode"] & 2:
            weights[..., count(input_sizes[0]):] = 0
        return weights

    def trainable(self, input_sizes):
        n_in = count(input_sizes[0])
        mask = np.zeros((self.options["channels"], 2 * n_in), dtype=np.float32)
        mask[:, :n_in] = self.options["learning_mode"] & 1
        mask[:, n_in:] = (self.options["learning_mode"] & 2) >> 1
        return mask.ravel()

    def arguments(self, input_sizes):
        return (activations.NAMES.index(self.options["activation"]),), 0.0

    def properties(self):
        return f"activation={self.options['activation']}, learning_mode={self.options['learning_mode']}"


@numba.njit(cache=True, fastmath=True)
def forward(op, acts, params, b0, b1):
    kind, n_in, n_out = op[ARG0], op[IN0_LEN], op[OUT_LEN]
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n_in]
        y = acts[b, op[OUT]:op[OUT] + n_out]
        for i in range(n_out):
            row = op[PARAM] + i * 2 * n_in
            total = np.float32(0)
            for j in range(n_in):
                total += activations.value(kind, params[row + j] * x[j] + params[row + n_in + j])
            y[i] = total


@numba.njit(cache=True, fastmath=True)
def backward(op, acts, grad_acts, params, grads, b0, b1):
    kind, n_in, n_out = op[ARG0], op[IN0_LEN], op[OUT_LEN]
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n_in]
        gx = grad_acts[b, op[IN0]:op[IN0] + n_in]
        gy = grad_acts[b, op[OUT]:op[OUT] + n_out]
        for i in range(n_out):
            row = op[PARAM] + i * 2 * n_in
            for j in range(n_in):
                z = params[row + j] * x[j] + params[row + n_in + j]
                dz = activations.derivative(kind, z, activations.value(kind, z)) * gy[i]
                gx[j] += dz * params[row + j]
                grads[row + j] += dz * x[j]
                grads[row + n_in + j] += dz

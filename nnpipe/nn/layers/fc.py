"""Fully connected: y = W x + b, weights an image of width (inputs + 1) and height N whose last
column holds the biases."""

import numba

from nnpipe.nn.blas import gemm
from nnpipe.nn.layers import (IN0, IN0_LEN, INPUT_GRADIENTS, OUT, OUT_LEN, PARAM, Layer, count,
                              learning_mask, weights_and_biases)


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


# Kernels work on a chunk of samples stored feature-major: the input is an (inputs x width)
# row-major matrix X, the output (N x width) Y, so the layer is one matrix product
# Y = W X + b, and its gradients dX += W^T dY, dW += dY X^T: BLAS's sgemm does each (see
# nnpipe.nn.blas: to it, these row-major blocks are the transposed, column-major matrices, and
# W's rows are n_in + 1 apart, the bias column between them).

@numba.njit(cache=True)
def forward(op, acts, params, width):
    n_in, n_out, stride = op[IN0_LEN], op[OUT_LEN], op[IN0_LEN] + 1
    x, y, w = op[IN0] * width, op[OUT] * width, op[PARAM]
    for n in range(n_out):
        acts[y + n * width:y + (n + 1) * width] = params[w + n * stride + n_in]
    # Y^T (width x N) += X^T (width x n_in) W^T (n_in x N)
    gemm(False, False, width, n_out, n_in, acts[x:], width, params[w:], stride, acts[y:], width)


@numba.njit(cache=True)
def backward(op, acts, grad_acts, params, grads, width):
    n_in, n_out, stride = op[IN0_LEN], op[OUT_LEN], op[IN0_LEN] + 1
    x, y, w = op[IN0] * width, op[OUT] * width, op[PARAM]
    for n in range(n_out):
        grads[w + n * stride + n_in] += grad_acts[y + n * width:y + (n + 1) * width].sum()
    if op[INPUT_GRADIENTS]:
        # dX^T (width x n_in) += dY^T (width x N) W (N x n_in)
        gemm(False, True, width, n_in, n_out, grad_acts[y:], width, params[w:], stride, grad_acts[x:], width)
    # dW^T (n_in x N) += X (n_in x width) dY^T (width x N)
    gemm(True, False, n_in, n_out, width, acts[x:], width, grad_acts[y:], width, grads[w:], stride)

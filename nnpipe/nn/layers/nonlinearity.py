"""Nonlinearity: an activation applied to every value (softmax: over all values of a sample)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import activations
from nnpipe.nn.activations import LEAKY_SLOPE, LEAKYRELU, RELU, SOFTMAX
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, Layer, column


class Nonlinearity(Layer):
    kind = "nl"
    kernel_arguments = ("activation",)

    def __init__(self, **options):
        super().__init__(**options)
        if options["activation"] not in activations.NAMES:
            raise UserError(f"activation must be one of {'|'.join(activations.NAMES)}"
                            f" (got '{options['activation']}')")

    def arguments(self, input_sizes):
        return {"activation": activations.NAMES.index(self.options["activation"])}

    def properties(self):
        return f"activation={self.options['activation']}"


ACTIVATION = column(Nonlinearity, "activation")


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    kind, n = op[ACTIVATION], op[OUT_LEN] * width
    x = acts[op[IN0] * width:op[IN0] * width + n]
    y = acts[op[OUT] * width:op[OUT] * width + n]
    if kind == LEAKYRELU or kind == RELU:  # the common ones get loops of their own, which vectorize
        slope = LEAKY_SLOPE if kind == LEAKYRELU else np.float32(0)
        for i in range(n):
            y[i] = x[i] if x[i] > 0 else slope * x[i]
        return
    if kind != SOFTMAX:
        for i in range(n):
            y[i] = activations.value(kind, x[i])
        return
    for c in range(width):
        top = x[c]
        for i in range(c, n, width):
            top = max(top, x[i])
        total = 0.0
        for i in range(c, n, width):
            y[i] = math.exp(x[i] - top)
            total += y[i]
        for i in range(c, n, width):
            y[i] /= total


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, width):
    kind, n = op[ACTIVATION], op[OUT_LEN] * width
    x = acts[op[IN0] * width:op[IN0] * width + n]
    y = acts[op[OUT] * width:op[OUT] * width + n]
    gx = grad_acts[op[IN0] * width:op[IN0] * width + n]
    gy = grad_acts[op[OUT] * width:op[OUT] * width + n]
    if kind == LEAKYRELU or kind == RELU:
        slope = LEAKY_SLOPE if kind == LEAKYRELU else np.float32(0)
        for i in range(n):
            gx[i] += gy[i] if x[i] > 0 else slope * gy[i]
        return
    if kind != SOFTMAX:
        for i in range(n):
            gx[i] += gy[i] * activations.derivative(kind, x[i], y[i])
        return
    for c in range(width):
        dot = 0.0
        for i in range(c, n, width):
            dot += gy[i] * y[i]
        for i in range(c, n, width):
            gx[i] += y[i] * (gy[i] - dot)

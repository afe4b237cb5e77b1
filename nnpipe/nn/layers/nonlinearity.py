"""Nonlinearity: an activation applied to every value (softmax: over all values of a sample)."""

import math

import numba

from nnpipe.errors import UserError
from nnpipe.nn import activations
from nnpipe.nn.activations import SOFTMAX
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, Layer, column


class Nonlinearity(Layer):
    kind = "nl"
    kernel_arguments = ("activation",)

    def __init__(self, **options):
        super().__init__(**options)
        if options["activation"] not in activations.NAMES:
            raise UserError(f"activation must be one of {'|'.join(activations.NAMES)}"
                            f" (got '{options['activation']}')")
        if options["activation"] in ("relu", "leakyrelu"):
            self.kernel_file = "nnpipe.nn.layers.rectifier"

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

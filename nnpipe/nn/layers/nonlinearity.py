"""Nonlinearity: an activation applied to every value (softmax: over all values of a sample)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import activations
from nnpipe.nn.activations import SOFTMAX
from nnpipe.nn.layers import ARG0, IN0, OUT, OUT_LEN, Layer

OPCODE = 2


class Nonlinearity(Layer):
    kind = "nl"
    opcode = OPCODE

    def __init__(self, **options):
        super().__init__(**options)
        if options["activation"] not in activations.NAMES:
            raise UserError(f"activation must be one of {'|'.join(activations.NAMES)}"
                            f" (got '{options['activation']}')")

    def arguments(self, input_sizes):
        return (activations.NAMES.index(self.options["activation"]),), 0.0

    def properties(self):
        return f"activation={self.options['activation']}"


@numba.njit(cache=True, fastmath=True)
def forward(op, acts, b0, b1):
    kind, n = op[ARG0], op[OUT_LEN]
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n]
        y = acts[b, op[OUT]:op[OUT] + n]
        if kind == SOFTMAX:
            top = x.max()
            total = np.float32(0)
            for k in range(n):
                y[k] = math.exp(x[k] - top)
                total += y[k]
            for k in range(n):
                y[k] /= total
        else:
            for k in range(n):
                y[k] = activations.value(kind, x[k])


@numba.njit(cache=True, fastmath=True)
def backward(op, acts, grad_acts, b0, b1):
    kind, n = op[ARG0], op[OUT_LEN]
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n]
        y = acts[b, op[OUT]:op[OUT] + n]
        gx = grad_acts[b, op[IN0]:op[IN0] + n]
        gy = grad_acts[b, op[OUT]:op[OUT] + n]
        if kind == SOFTMAX:
            dot = np.float32(0)
            for k in range(n):
                dot += gy[k] * y[k]
            for k in range(n):
                gx[k] += y[k] * (gy[k] - dot)
        else:
            for k in range(n):
                gx[k] += gy[k] * activations.derivative(kind, x[k], y[k])

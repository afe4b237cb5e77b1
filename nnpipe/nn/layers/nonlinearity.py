"""Nonlinearity: an activation applied to every value (softmax: over all values of a sample)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import activations
from nnpipe.nn.activations import SOFTMAX
from nnpipe.nn.building import ACTIVATION as ACTIVATION_NAME
from nnpipe.nn.building import IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, Layer, column


class Nonlinearity(Layer):
    kind = "nl"
    kernel_arguments = ("activation",)

    def __init__(self, **options):
        super().__init__(**options)
        if options["activation"] not in activations.NAMES:
            raise UserError(
                f"activation must be one of {'|'.join(activations.NAMES)} (got '{options['activation']}')"
            )
        if options["activation"] in ("relu", "leakyrelu"):
            self.kernel_file = "nnpipe.nn.layers.rectifier"

    def arguments(self, input_sizes):
        return {"activation": activations.NAMES.index(self.options["activation"])}

    def properties(self):
        return f"activation={self.options['activation']}"

    def export_onnx(self, g, step):
        return ONNX[self.options["activation"]](g, step.inputs[0], step.size, step.name)


ACTIVATION = column(Nonlinearity, "activation")


@network_command("nn_nl", OUT_NAME, IN_OR_PREVIOUS, ACTIVATION_NAME)
def nn_nl(ctx, selection, out, source, activation):
    """Add a nonlinearity: elu gelu leakyrelu linear relu sigmoid sin sinc softmax sqr sqrt
    swish tanh, or nn_lib's steps waves0..waves4 zpsinz (formulas in the documentation)."""
    add(ctx, out, Nonlinearity(activation=activation), [source])


# --- ONNX: each activation as (graph, tensor, size, hint) -> tensor --------------------------


def _softmax(g, x, size, hint):
    """Over all the values of a sample."""
    scores = g.node("Softmax", [g.flat(x, f"{hint}_flat")], f"{hint}_softmax", axis=1)
    return g.to_5d(scores, size, hint)


def _gelu(g, x, size, hint):
    scaled = g.node("Mul", [x, g.constant(np.sqrt(0.5), f"{hint}_sqrt_half")], f"{hint}_scaled")
    erf = g.node("Erf", [scaled], f"{hint}_erf")
    one_plus = g.node("Add", [erf, g.constant(1.0, f"{hint}_one")], f"{hint}_one_plus")
    half = g.node("Mul", [x, g.constant(0.5, f"{hint}_half")], f"{hint}_half_x")
    return g.node("Mul", [half, one_plus], hint)


def _sinc(g, x, size, hint):
    ratio = g.node("Div", [g.node("Sin", [x], f"{hint}_sin"), x], f"{hint}_ratio")
    zero = g.node("Equal", [x, g.constant(0.0, f"{hint}_zero")], f"{hint}_at_zero")
    return g.node("Where", [zero, g.constant(1.0, f"{hint}_one"), ratio], hint)


def _single(op, **attributes):
    return lambda g, x, size, hint: g.node(op, [x], hint, **attributes)


ONNX = {
    "elu": _single("Elu", alpha=1.0),
    "gelu": _gelu,
    "leakyrelu": _single("LeakyRelu", alpha=0.05),
    "linear": lambda g, x, size, hint: x,
    "relu": _single("Relu"),
    "sigmoid": _single("Sigmoid"),
    "sin": _single("Sin"),
    "sinc": _sinc,
    "softmax": _softmax,
    "sqr": lambda g, x, size, hint: g.node("Mul", [x, x], hint),
    "sqrt": lambda g, x, size, hint: g.node("Sqrt", [g.node("Abs", [x], f"{hint}_magnitude")], hint),
    "swish": lambda g, x, size, hint: g.node("Mul", [x, g.node("Sigmoid", [x], f"{hint}_sigmoid")], hint),
    "tanh": _single("Tanh"),
}


# --- kernels ---------------------------------------------------------------------------------


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    kind, n = op[ACTIVATION], op[OUT_LEN] * width
    x = acts[op[IN0] * width : op[IN0] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
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
    x = acts[op[IN0] * width : op[IN0] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
    gx = grad_acts[op[IN0] * width : op[IN0] * width + n]
    gy = grad_acts[op[OUT] * width : op[OUT] * width + n]
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

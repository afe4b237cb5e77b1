"""Nonlinearity: an activation applied to every value (softmax and norm2: over all values of a
sample). leakyrelu's slope below 0 is an option of the layer, which each nn_lib API's commands
set: 0.05 in 2023's, 0.01 in G'MIC 3.6's (the kernels read it as `real`)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import activations
from nnpipe.nn.activations import NORM2, NORM_FLOOR, SOFTMAX
from nnpipe.nn.building import ACTIVATION as ACTIVATION_NAME
from nnpipe.nn.building import IN_NAME, IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, Layer, column
from nnpipe.registry import Choice


class Nonlinearity(Layer):
    """options: activation (a name of nnpipe.nn.activations), slope (leakyrelu's below 0)."""

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

    @classmethod
    def of(cls, activation, api):
        """The nonlinearity `activation` as nn_lib `api` ("2023" or "3.6") computes it."""
        return cls(activation=activation, slope=activations.LEAKY_SLOPES[api])

    def arguments(self, input_sizes):
        return {"activation": activations.NAMES.index(self.options["activation"])}

    def real(self, input_sizes):
        return self.options["slope"]

    def properties(self):
        return f"activation={self.options['activation']}"

    def export_onnx(self, g, step):
        activation = self.options["activation"]
        if activation == "leakyrelu":
            return g.node("LeakyRelu", [step.inputs[0]], step.name, alpha=float(self.options["slope"]))
        return ONNX[activation](g, step.inputs[0], step.size, step.name)


ACTIVATION = column(Nonlinearity, "activation")


@network_command("nn_nl", OUT_NAME, IN_OR_PREVIOUS, ACTIVATION_NAME)
def nn_nl(ctx, selection, out, source, activation):
    """Add a nonlinearity: elu gelu leakyrelu linear relu sigmoid sin sinc softmax sqr sqrt
    swish tanh, or nn_lib's steps waves0..waves4 zpsinz (formulas in the documentation)."""
    add(ctx, out, Nonlinearity.of(activation, "2023"), [source])


@network_command(
    "nn_nl",
    OUT_NAME,
    IN_NAME,
    Choice("activation", "leakyrelu", choices=activations.NAMES_36),
    api="3.6",
)
def nn_nl_36(ctx, selection, out, source, activation):
    """Add a nonlinearity: elu gelu leakyrelu (slope 0.01 below 0) linear relu sigmoid sin sinc
    softmax sqr sqrt swish tanh, or norm2 (the sample's values divided by their L2 norm),
    waves0..waves4, zpsinz (formulas in the documentation)."""
    add(ctx, out, Nonlinearity.of(activation, "3.6"), [source])


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


def _norm2(g, x, size, hint):
    """Over all the values of a sample: x / max(||x||, 1e-8)."""
    flat = g.flat(x, f"{hint}_flat")
    norm = g.node("ReduceL2", [flat], f"{hint}_norm", axes=[1], keepdims=1)
    floored = g.node("Max", [norm, g.constant(NORM_FLOOR, f"{hint}_floor")], f"{hint}_floored")
    return g.to_5d(g.node("Div", [flat, floored], f"{hint}_divided"), size, hint)


def _single(op, **attributes):
    return lambda g, x, size, hint: g.node(op, [x], hint, **attributes)


ONNX = {
    "elu": _single("Elu", alpha=1.0),
    "gelu": _gelu,
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
    "norm2": _norm2,
}


# --- kernels ---------------------------------------------------------------------------------


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, width):
    kind, n = op[ACTIVATION], op[OUT_LEN] * width
    x = acts[op[IN0] * width : op[IN0] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
    if kind != SOFTMAX and kind != NORM2:
        for i in range(n):
            y[i] = activations.value(kind, x[i], real)
        return
    for c in range(width):
        if kind == NORM2:
            total = 0.0
            for i in range(c, n, width):
                total += x[i] * x[i]
            norm = max(math.sqrt(total), NORM_FLOOR)
            for i in range(c, n, width):
                y[i] = x[i] / norm
            continue
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
def backward(op, real, acts, grad_acts, width):
    kind, n = op[ACTIVATION], op[OUT_LEN] * width
    x = acts[op[IN0] * width : op[IN0] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
    gx = grad_acts[op[IN0] * width : op[IN0] * width + n]
    gy = grad_acts[op[OUT] * width : op[OUT] * width + n]
    if kind != SOFTMAX and kind != NORM2:
        for i in range(n):
            gx[i] += gy[i] * activations.derivative(kind, x[i], y[i], real)
        return
    for c in range(width):
        dot = 0.0
        for i in range(c, n, width):
            dot += gy[i] * y[i]
        if kind == SOFTMAX:
            for i in range(c, n, width):
                gx[i] += y[i] * (gy[i] - dot)
            continue
        total = 0.0  # norm2: dx = (dy - (dy . y) y) / max(||x||, 1e-8)
        for i in range(c, n, width):
            total += x[i] * x[i]
        norm = max(math.sqrt(total), NORM_FLOOR)
        for i in range(c, n, width):
            gx[i] += (gy[i] - dot * y[i]) / norm

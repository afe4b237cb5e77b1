"""Add, subtract, multiply and divide: element-wise layers of two inputs of the same size, or
(G'MIC 3.6's) of one input and a constant on either side, without parameters; and nn_lib's
residual block, whose branch an add joins back. Division is G'MIC 3.6's, a / abscut(b) with
abscut(b) = sign(b) max(|b|, 1e-8): a divisor of exactly 0 gives inf or NaN there too."""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN1_NAME, IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, IN1, OUT, OUT_LEN, Layer, column, same_sizes
from nnpipe.nn.layers.nonlinearity import Nonlinearity
from nnpipe.nn.layers.normalize import Normalize
from nnpipe.nn.layers.rename import Clone
from nnpipe.registry import LayerName, typed_number

OPERATIONS = ("add", "sub", "mul", "div")
ADD, SUB, MUL, DIV = range(len(OPERATIONS))
# where a G'MIC 3.6 layer's constant is: none (two inputs), the second operand, the first
NO_CONSTANT, CONSTANT_SECOND, CONSTANT_FIRST = range(3)
DIVISOR_FLOOR = 1e-8
ONNX_OPERATORS = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}


class Elementwise(Layer):
    """options: operation (one of OPERATIONS); with one input, G'MIC 3.6's constant and
    constant_position (0: the first operand, 1: the second)."""

    kernel_arguments = ("operation", "constant_side")
    inputs = 2

    def __init__(self, **options):
        super().__init__(**options)
        self.kind = options["operation"]
        if "constant" in options:
            self.inputs = 1

    def build(self, input_sizes):
        return same_sizes(self.kind, input_sizes)

    def arguments(self, input_sizes):
        if "constant" not in self.options:
            side = NO_CONSTANT
        else:
            side = CONSTANT_FIRST if self.options["constant_position"] == 0 else CONSTANT_SECOND
        return {"operation": OPERATIONS.index(self.kind), "constant_side": side}

    def real(self, input_sizes):
        return self.options.get("constant", 0.0)

    def export_onnx(self, g, step):
        operands = list(step.inputs)
        if "constant" in self.options:
            operands.insert(
                self.options["constant_position"],
                g.constant(self.options["constant"], f"{step.name}_constant"),
            )
        if self.kind == "div":
            divisor = operands[1]
            floored = g.node(
                "Max",
                [
                    g.node("Abs", [divisor], f"{step.name}_magnitude"),
                    g.constant(DIVISOR_FLOOR, f"{step.name}_floor"),
                ],
                f"{step.name}_floored",
            )
            operands[1] = g.node(
                "Mul", [g.node("Sign", [divisor], f"{step.name}_sign"), floored], f"{step.name}_divisor"
            )
        return g.node(ONNX_OPERATORS[self.kind], operands, step.name)


OPERATION, CONSTANT_SIDE = column(Elementwise, "operation"), column(Elementwise, "constant_side")


@network_command("nn_add", OUT_NAME, IN_NAME, IN1_NAME)
def nn_add(ctx, selection, out, first, second):
    """Add a layer summing two inputs of the same size."""
    add(ctx, out, Elementwise(operation="add"), [first, second])


@network_command("nn_mul", OUT_NAME, IN_NAME, IN1_NAME)
def nn_mul(ctx, selection, out, first, second):
    """Add a layer multiplying two inputs of the same size, value by value."""
    add(ctx, out, Elementwise(operation="mul"), [first, second])


class LayerOrNumber(LayerName):
    """A layer name, '.' (the previous layer) or a number (G'MIC 3.6's constant operand)."""

    def describe(self):
        return "a layer name, '.' (previous layer) or a number"

    def parse(self, text):
        try:
            return typed_number(text)
        except ValueError:
            return super().parse(text)


def elementwise_36(ctx, out, first, second, operation):
    """Add G'MIC 3.6's `operation` of two layers, or of a layer and a constant."""
    constants = [isinstance(operand, float) for operand in (first, second)]
    if all(constants):
        raise UserError(f"{operation} needs at least one layer among its two inputs (got {first},{second})")
    if not any(constants):
        add(ctx, out, Elementwise(operation=operation), [first, second])
        return
    position = constants.index(True)
    layer = Elementwise(operation=operation, constant=(first, second)[position], constant_position=position)
    add(ctx, out, layer, [(first, second)[1 - position]])


def _declare_36(operation, verb):
    @network_command(
        f"nn_{operation}",
        OUT_NAME,
        LayerOrNumber("in0", help="first operand: a layer, '.' (previous layer) or a number"),
        LayerOrNumber("in1", help="second operand: a layer, '.' (previous layer) or a number"),
        api="3.6",
        help=f"""
        Add a layer {verb}, value by value, two inputs of the same size, or an input and a
        number (either operand).""",
    )
    def declared(ctx, selection, out, first, second):
        elementwise_36(ctx, out, first, second, operation)


for _operation, _verb in zip(
    OPERATIONS, ("summing", "subtracting (in0 - in1)", "multiplying", "dividing (in0 / in1)")
):
    _declare_36(_operation, _verb)


def residual(ctx, out, source, make_branch, normalization, activation):
    """nn_lib's residual block: clone, a branch keeping the size, (normalize), add,
    (nonlinearity). `make_branch(input size)` gives the branch's (name suffix, layer);
    `normalization` is None, "global" or "channelwise"."""
    network = ctx.network()
    source = network.resolve(source)
    clone0 = add(ctx, f"{out}_clone0", Clone(), [source])
    clone1 = add(ctx, f"{out}_clone1", Clone(), [source])
    suffix, layer = make_branch(network.modules[source].size)
    branch = add(ctx, f"{out}_{suffix}", layer, [clone1])
    if normalization:
        branch = add(
            ctx,
            f"{out}_normalize",
            Normalize(channelwise=normalization == "channelwise", learning_mode=3),
            [branch],
        )
    if activation is None:
        add(ctx, out, Elementwise(operation="add"), [branch, clone0])
    else:
        total = add(ctx, f"{out}_add", Elementwise(operation="add"), [branch, clone0])
        add(ctx, out, Nonlinearity.of(activation, "2023"), [total])


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def abscut(b):
    """sign(b) max(|b|, 1e-8): G'MIC 3.6's divisor (0 stays 0)."""
    return np.sign(b) * max(abs(b), DIVISOR_FLOOR)


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def combine(operation, a, b):
    if operation == ADD:
        return a + b
    if operation == SUB:
        return a - b
    if operation == MUL:
        return a * b
    return a / abscut(b)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, width):
    n, operation, side = op[OUT_LEN] * width, op[OPERATION], op[CONSTANT_SIDE]
    x = acts[op[IN0] * width : op[IN0] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
    if side == CONSTANT_SECOND:
        for i in range(n):
            y[i] = combine(operation, x[i], real)
    elif side == CONSTANT_FIRST:
        for i in range(n):
            y[i] = combine(operation, real, x[i])
    else:
        b = acts[op[IN1] * width : op[IN1] * width + n]
        for i in range(n):
            y[i] = combine(operation, x[i], b[i])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, real, acts, grad_acts, width):
    n, operation, side = op[OUT_LEN] * width, op[OPERATION], op[CONSTANT_SIDE]
    gy = grad_acts[op[OUT] * width : op[OUT] * width + n]
    x = acts[op[IN0] * width : op[IN0] * width + n]
    gx = grad_acts[op[IN0] * width : op[IN0] * width + n]
    if side != NO_CONSTANT:  # the derivative of (x op c) or (c op x) by x
        for i in range(n):
            if operation == ADD:
                slope = np.float32(1)
            elif operation == SUB:
                slope = np.float32(1) if side == CONSTANT_SECOND else np.float32(-1)
            elif operation == MUL:
                slope = real
            elif side == CONSTANT_SECOND:
                slope = 1 / abscut(real)
            else:
                slope = -real / abscut(x[i]) ** 2
            gx[i] += gy[i] * slope
        return
    b = acts[op[IN1] * width : op[IN1] * width + n]
    gb = grad_acts[op[IN1] * width : op[IN1] * width + n]
    for i in range(n):
        if operation == ADD:
            gx[i] += gy[i]
            gb[i] += gy[i]
        elif operation == SUB:
            gx[i] += gy[i]
            gb[i] -= gy[i]
        elif operation == MUL:
            gx[i] += gy[i] * b[i]
            gb[i] += gy[i] * x[i]
        else:
            divisor = abscut(b[i])
            gx[i] += gy[i] / divisor
            gb[i] -= gy[i] * x[i] / (divisor * divisor)

"""Add and multiply: element-wise layers of two inputs, without parameters; and nn_lib's
residual block, whose branch an add joins back."""

import numba

from nnpipe.nn.building import IN1_NAME, IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, IN1, OUT, OUT_LEN, Layer, column, same_sizes
from nnpipe.nn.layers.nonlinearity import Nonlinearity
from nnpipe.nn.layers.normalize import Normalize
from nnpipe.nn.layers.rename import Clone

ADD, MUL = 0, 1


class Elementwise(Layer):
    kernel_arguments = ("operation",)
    inputs = 2
    operation = ADD

    def build(self, input_sizes):
        return same_sizes(self.kind, input_sizes)

    def arguments(self, input_sizes):
        return {"operation": self.operation}

    def export_onnx(self, g, step):
        return g.node(self.onnx_operator, step.inputs, step.name)


OPERATION = column(Elementwise, "operation")


class Add(Elementwise):
    kind = "add"
    operation = ADD
    onnx_operator = "Add"


class Multiply(Elementwise):
    kind = "mul"
    operation = MUL
    onnx_operator = "Mul"


@network_command("nn_add", OUT_NAME, IN_NAME, IN1_NAME)
def nn_add(ctx, selection, out, first, second):
    """Add a layer summing two inputs of the same size."""
    add(ctx, out, Add(), [first, second])


@network_command("nn_mul", OUT_NAME, IN_NAME, IN1_NAME)
def nn_mul(ctx, selection, out, first, second):
    """Add a layer multiplying two inputs of the same size, value by value."""
    add(ctx, out, Multiply(), [first, second])


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
        add(ctx, out, Add(), [branch, clone0])
    else:
        total = add(ctx, f"{out}_add", Add(), [branch, clone0])
        add(ctx, out, Nonlinearity.of(activation, "2023"), [total])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    n = op[OUT_LEN] * width
    a = acts[op[IN0] * width : op[IN0] * width + n]
    b = acts[op[IN1] * width : op[IN1] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
    if op[OPERATION] == ADD:
        for i in range(n):
            y[i] = a[i] + b[i]
    else:
        for i in range(n):
            y[i] = a[i] * b[i]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, width):
    n = op[OUT_LEN] * width
    gy = grad_acts[op[OUT] * width : op[OUT] * width + n]
    ga = grad_acts[op[IN0] * width : op[IN0] * width + n]
    gb = grad_acts[op[IN1] * width : op[IN1] * width + n]
    if op[OPERATION] == ADD:
        for i in range(n):
            ga[i] += gy[i]
            gb[i] += gy[i]
    else:
        a = acts[op[IN0] * width : op[IN0] * width + n]
        b = acts[op[IN1] * width : op[IN1] * width + n]
        for i in range(n):
            ga[i] += gy[i] * b[i]
            gb[i] += gy[i] * a[i]

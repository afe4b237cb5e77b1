"""Add and multiply: element-wise layers of two inputs, without parameters."""

import numba

from nnpipe.nn.layers import IN0, IN1, OUT, OUT_LEN, Layer, column, same_sizes

ADD, MUL = 0, 1


class Elementwise(Layer):
    kernel_arguments = ("operation",)
    inputs = 2
    operation = ADD

    def build(self, input_sizes):
        return same_sizes(self.kind, input_sizes)

    def arguments(self, input_sizes):
        return {"operation": self.operation}


OPERATION = column(Elementwise, "operation")


class Add(Elementwise):
    kind = "add"
    operation = ADD


class Multiply(Elementwise):
    kind = "mul"
    operation = MUL


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    n = op[OUT_LEN] * width
    a = acts[op[IN0] * width:op[IN0] * width + n]
    b = acts[op[IN1] * width:op[IN1] * width + n]
    y = acts[op[OUT] * width:op[OUT] * width + n]
    if op[OPERATION] == ADD:
        for i in range(n):
            y[i] = a[i] + b[i]
    else:
        for i in range(n):
            y[i] = a[i] * b[i]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, width):
    n = op[OUT_LEN] * width
    gy = grad_acts[op[OUT] * width:op[OUT] * width + n]
    ga = grad_acts[op[IN0] * width:op[IN0] * width + n]
    gb = grad_acts[op[IN1] * width:op[IN1] * width + n]
    if op[OPERATION] == ADD:
        for i in range(n):
            ga[i] += gy[i]
            gb[i] += gy[i]
    else:
        a = acts[op[IN0] * width:op[IN0] * width + n]
        b = acts[op[IN1] * width:op[IN1] * width + n]
        for i in range(n):
            ga[i] += gy[i] * b[i]
            gb[i] += gy[i] * a[i]

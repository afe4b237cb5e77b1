"""Add and multiply: element-wise layers of two inputs, without parameters."""

import numba

from nnpipe.nn.layers import ARG0, IN0, IN1, OUT, OUT_LEN, Layer, same_sizes

OPCODE = 3
ADD, MUL = 0, 1


class Add(Layer):
    kind = "add"
    opcode = OPCODE
    inputs = 2

    def output_size(self, input_sizes):
        return same_sizes("add", input_sizes)

    def arguments(self, input_sizes):
        return (ADD,), 0.0


class Multiply(Layer):
    kind = "mul"
    opcode = OPCODE
    inputs = 2

    def output_size(self, input_sizes):
        return same_sizes("mul", input_sizes)

    def arguments(self, input_sizes):
        return (MUL,), 0.0


@numba.njit(cache=True, fastmath=True)
def forward(op, acts, b0, b1):
    kind, n = op[ARG0], op[OUT_LEN]
    for b in range(b0, b1):
        a = acts[b, op[IN0]:op[IN0] + n]
        c = acts[b, op[IN1]:op[IN1] + n]
        y = acts[b, op[OUT]:op[OUT] + n]
        for k in range(n):
            y[k] = a[k] + c[k] if kind == ADD else a[k] * c[k]


@numba.njit(cache=True, fastmath=True)
def backward(op, acts, grad_acts, b0, b1):
    kind, n = op[ARG0], op[OUT_LEN]
    for b in range(b0, b1):
        gy = grad_acts[b, op[OUT]:op[OUT] + n]
        ga = grad_acts[b, op[IN0]:op[IN0] + n]
        gc = grad_acts[b, op[IN1]:op[IN1] + n]
        if kind == ADD:
            ga += gy
            gc += gy
        else:
            a = acts[b, op[IN0]:op[IN0] + n]
            c = acts[b, op[IN1]:op[IN1] + n]
            for k in range(n):
                ga[k] += gy[k] * c[k]
                gc[k] += gy[k] * a[k]

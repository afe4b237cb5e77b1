"""Element-wise nonlinearities: each one's value and derivative side by side.

`derivative(kind, x, y)` receives both the input x and the output y so each activation
uses whichever is cheaper. softmax is not element-wise; the nl layer treats it apart.
"""

import math

import numba
import numpy as np

NAMES = ("elu", "gelu", "leakyrelu", "linear", "relu", "sigmoid", "sin", "sinc", "softmax",
         "sqr", "sqrt", "swish", "tanh")
(ELU, GELU, LEAKYRELU, LINEAR, RELU, SIGMOID, SIN, SINC, SOFTMAX,
 SQR, SQRT, SWISH, TANH) = range(len(NAMES))
LEAKY_SLOPE = np.float32(0.05)
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@numba.njit(cache=True, fastmath=True, inline="always")
def value(kind, x):
    if kind == LEAKYRELU:
        return x if x > 0 else LEAKY_SLOPE * x
    if kind == RELU:
        return x if x > 0 else np.float32(0)
    if kind == LINEAR:
        return x
    if kind == TANH:
        return math.tanh(x)
    if kind == SIGMOID:
        return 1 / (1 + math.exp(-x))
    if kind == ELU:
        return x if x > 0 else math.exp(x) - 1
    if kind == GELU:
        return 0.5 * x * (1 + math.erf(x * SQRT_HALF))
    if kind == SIN:
        return math.sin(x)
    if kind == SINC:
        return math.sin(x) / x if x != 0 else np.float32(1)
    if kind == SQR:
        return x * x
    if kind == SQRT:
        return math.sqrt(x) if x > 0 else np.float32(0)
    if kind == SWISH:
        return x / (1 + math.exp(-x))
    return x


@numba.njit(cache=True, fastmath=True, inline="always")
def derivative(kind, x, y):
    if kind == LEAKYRELU:
        return np.float32(1) if x > 0 else LEAKY_SLOPE
    if kind == RELU:
        return np.float32(1) if x > 0 else np.float32(0)
    if kind == LINEAR:
        return np.float32(1)
    if kind == TANH:
        return 1 - y * y
    if kind == SIGMOID:
        return y * (1 - y)
    if kind == ELU:
        return np.float32(1) if x > 0 else y + 1
    if kind == GELU:
        return 0.5 * (1 + math.erf(x * SQRT_HALF)) + x * math.exp(-0.5 * x * x) * INV_SQRT_2PI
    if kind == SIN:
        return math.cos(x)
    if kind == SINC:
        return (math.cos(x) - y) / x if x != 0 else np.float32(0)
    if kind == SQR:
        return 2 * x
    if kind == SQRT:
        return 0.5 / y if y > 0 else np.float32(0)
    if kind == SWISH:
        s = 1 / (1 + math.exp(-x))
        return s + x * s * (1 - s)
    return np.float32(1)

"""Element-wise nonlinearities: each one's value and derivative side by side.

`derivative(kind, x, y, slope)` receives both the input x and the output y so each
activation uses whichever is cheaper. softmax and norm2 (x / max(||x||, 1e-8), G'MIC 3.6's)
are not element-wise; the nl layer treats them apart. leakyrelu's slope below 0 is the layer's:
0.05 in nn_lib 2023, 0.01 in G'MIC 3.6 (LEAKY_SLOPES, what each API's commands give it).

Beyond the usual ones, nn_lib's quantizing activations, with its default constants (nn_lib
lets the global variables $_S0 and $_S1 change steps' and waves0's; nnpipe does not read them):
with r = round(z) (halves away from zero, as G'MIC rounds) and f = z - r in [-1/2, 1/2],
- steps: r + (2 f where |f| < 1/6; else 0.5 f -+ 1/4): slope 2 near integers, 0.5 between;
- waves1..4: r + a f^3 + b sign(f) f^2 + c f with (a,b,c) = (-6,3,1) (-4,0,2) (-2,-3,3) (0,-6,4),
  and waves0 the same family with (-4,0,2);
- zpsinz: z + sin(2 pi z) / 2.
"""

import math

import numba
import numpy as np

NAMES = (
    "elu",
    "gelu",
    "leakyrelu",
    "linear",
    "relu",
    "sigmoid",
    "sin",
    "sinc",
    "softmax",
    "sqr",
    "sqrt",
    "swish",
    "tanh",
    "steps",
    "waves0",
    "waves1",
    "waves2",
    "waves3",
    "waves4",
    "zpsinz",
    "norm2",
)
(
    ELU,
    GELU,
    LEAKYRELU,
    LINEAR,
    RELU,
    SIGMOID,
    SIN,
    SINC,
    SOFTMAX,
    SQR,
    SQRT,
    SWISH,
    TANH,
    STEPS,
    WAVES0,
    WAVES1,
    WAVES2,
    WAVES3,
    WAVES4,
    ZPSINZ,
    NORM2,
) = range(len(NAMES))
NAMES_2023 = tuple(name for name in NAMES if name != "norm2")  # what each API's nn_nl takes
NAMES_36 = tuple(name for name in NAMES if name != "steps")
LEAKY_SLOPES = {"2023": 0.05, "3.6": 0.01}
NORM_FLOOR = 1e-8  # norm2 divides by max(||x||, 1e-8)
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
SQRT_FLOOR = 1e-8  # nn_lib's sqrt derivative divides by sqrt(max(1e-8, |z|))
STEPS_INNER, STEPS_OUTER = 2.0, 0.5  # slopes near and between integers
STEPS_SHIFT = (1 - STEPS_OUTER) / 2
STEPS_EDGE = STEPS_SHIFT / (STEPS_INNER - STEPS_OUTER)  # |f| where the slopes meet
# (a, b, c) of waves0..waves4; waves0's come from its slopes 2 and -1 (nn_lib's S0, S1)
WAVES = np.array([(-4, 0, 2), (-6, 3, 1), (-4, 0, 2), (-2, -3, 3), (0, -6, 4)], dtype=np.float64)
TWO_PI = 2 * math.pi


@numba.njit(cache=True, inline="always")
def round_half_away(z):
    return math.floor(z + 0.5) if z >= 0 else -math.floor(0.5 - z)


@numba.njit(cache=True, inline="always")
def steps(z):
    r = round_half_away(z)
    f = z - r
    if f < -STEPS_EDGE:
        return r + STEPS_OUTER * f - STEPS_SHIFT
    if f < STEPS_EDGE:
        return r + STEPS_INNER * f
    return r + STEPS_OUTER * f + STEPS_SHIFT


@numba.njit(cache=True, inline="always")
def waves(kind, z):
    a, b, c = WAVES[kind - WAVES0, 0], WAVES[kind - WAVES0, 1], WAVES[kind - WAVES0, 2]
    r = round_half_away(z)
    f = z - r
    return r + a * f * f * f + b * np.sign(f) * f * f + c * f


@numba.njit(cache=True, inline="always")
def waves_derivative(kind, z):
    a, b, c = WAVES[kind - WAVES0, 0], WAVES[kind - WAVES0, 1], WAVES[kind - WAVES0, 2]
    f = z - round_half_away(z)
    return 3 * a * f * f + 2 * b * abs(f) + c


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def value(kind, x, slope):
    if kind == LEAKYRELU:
        return x if x > 0 else slope * x
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
        return math.sqrt(abs(x))
    if kind == SWISH:
        return x / (1 + math.exp(-x))
    if kind == STEPS:
        return steps(x)
    if WAVES0 <= kind <= WAVES4:
        return waves(kind, x)
    if kind == ZPSINZ:
        return x + 0.5 * math.sin(TWO_PI * x)
    return x


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def derivative(kind, x, y, slope):
    if kind == LEAKYRELU:
        return np.float32(1) if x > 0 else slope
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
        return 0.5 * np.sign(x) / math.sqrt(max(SQRT_FLOOR, abs(x)))
    if kind == SWISH:
        s = 1 / (1 + math.exp(-x))
        return s + x * s * (1 - s)
    if kind == STEPS:
        return STEPS_INNER if abs(x - round_half_away(x)) < STEPS_EDGE else STEPS_OUTER
    if WAVES0 <= kind <= WAVES4:
        return waves_derivative(kind, x)
    if kind == ZPSINZ:
        return 1 + math.pi * math.cos(TWO_PI * x)
    return np.float32(1)

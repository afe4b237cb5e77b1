"""The functions and operators of G'MIC's math expressions, over whole pixel grids: each
entry of FUNCTIONS is (function, least arguments, most arguments, kind), kind "map" (per
value) or "reduce" (over the arguments' values)."""

import math

import numpy as np

from nnpipe.expr.values import scalar


def _sample_variance(values):
    """G'MIC's iv: the variance dividing by n-1; 0 for one value."""
    return float(np.var(values, ddof=1)) if values.size > 1 else 0.0


IMAGE_STATISTICS = {
    "im": np.min,
    "iM": np.max,
    "ia": np.mean,
    "is": np.sum,
    "iv": _sample_variance,
    "id": lambda values: math.sqrt(_sample_variance(values)),
    "ic": np.median,
    "ip": np.prod,
    "in": np.linalg.norm,
}
CONSTANTS = {
    "pi": math.pi,
    "e": math.e,
    "inf": math.inf,
    "nan": math.nan,
    "eps": float(np.finfo(np.float64).eps),
}


def _floor_mod(a, b):
    """G'MIC's modulo: the sign of b; x % inf is x, inf % m is 0, x % 0 is nan."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    result = a - b * np.floor(a / b)
    result = np.where(np.isinf(b) & np.isfinite(a), a, result)
    return np.where(np.isinf(a) & np.isfinite(b) & (b != 0), 0.0, result)


def _round(value, step=None):
    """G'MIC rounds halves away from zero; round(x, step) rounds to a multiple of step."""
    if step is None:
        return np.sign(value) * np.floor(np.abs(value) + 0.5) + 0.0  # round(-0.4) is 0, not -0
    scaled = value / step
    return np.where(step == 0, value, np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) * step)


def bitwise_not(value):
    """G'MIC's ~ works on 32-bit unsigned integers: ~0 is 4294967295."""
    return (~value.astype(np.int64) & 0xFFFFFFFF).astype(np.float64)


def _positive_nan(function):
    """G'MIC prints the NaN of sqrt(-1), log(-1) or 5%0 as `nan`, not `-nan` (the sign x86's
    default NaN has)."""

    def run(*args):
        result = function(*args)
        return np.where(np.isnan(result), np.abs(result), result)

    return run


def _factorial(value):
    """n!: beyond 170! a float64 overflows, so the product stops there (and nan stays nan)."""
    result = np.ones_like(value, dtype=np.float64)
    top = np.max(np.where(np.isnan(value), 1.0, value), initial=1)
    for k in range(2, int(min(top, 171)) + 1):
        result = np.where(value >= k, result * k, result)
    return np.where(np.isnan(value), np.nan, np.where(value > 170, np.inf, result))


def _round_toward(value, step=None, direction=None):
    """round(x,step,direction): direction 0 nearest (halves away from zero), 1 up, -1 down."""
    if direction is None:
        return _round(value, step)
    step = np.where(step == 0, 1.0, step) if step is not None else 1.0
    scaled = value / step
    rounded = np.where(
        direction > 0, np.ceil(scaled), np.where(direction < 0, np.floor(scaled), _round(scaled))
    )
    return rounded * step + 0.0


def _count(parts):
    return scalar(float(len(parts)))


def _stack(parts):
    return np.stack(np.broadcast_arrays(*parts))


def _variance(parts):
    """G'MIC's var() and std() divide by n-1."""
    values = _stack(parts)
    deviations = values - values.mean(axis=0)
    return (deviations * deviations).sum(axis=0) / (len(parts) - 1)  # one value: nan, as G'MIC


def _kth(parts):
    """kth(k,a,b,…): the k-th smallest of a,b,… (k from 1)."""
    values = np.sort(_stack(parts[1:]), axis=0)
    k = np.clip(np.asarray(parts[0]).astype(np.int64) - 1, 0, len(parts) - 2)
    return np.take_along_axis(values, np.broadcast_to(k, values.shape[1:])[None], 0)[0]


def _nth_argument(parts):
    """arg(n,a1,a2,…): a_n (n from 1); 0 beyond."""
    values = _stack(parts[1:])
    n = np.asarray(parts[0]).astype(np.int64) - 1
    inside = (n >= 0) & (n < len(parts) - 1)
    picked = np.take_along_axis(
        values, np.broadcast_to(np.clip(n, 0, len(parts) - 2), values.shape[1:])[None], 0
    )[0]
    return np.where(inside, picked, 0.0)


def _by_magnitude(choose):
    def run(parts):
        values = _stack(parts)
        index = choose(np.abs(values), axis=0)
        return np.take_along_axis(values, index[None], 0)[0]

    return run


def _gcd(a, b):
    return np.gcd(a.astype(np.int64), b.astype(np.int64)).astype(np.float64)


def _lcm(a, b):
    return np.lcm(a.astype(np.int64), b.astype(np.int64)).astype(np.float64)


def _gauss(x, sigma=None):
    sigma = 1.0 if sigma is None else sigma
    return np.exp(-x * x / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)


def _lerp(a, b, t):
    return a * (1 - t) + b * t


OPERATORS = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "%": _positive_nan(_floor_mod),
    "^": np.power,
    "<": lambda a, b: (a < b).astype(np.float64),
    "<=": lambda a, b: (a <= b).astype(np.float64),
    ">": lambda a, b: (a > b).astype(np.float64),
    ">=": lambda a, b: (a >= b).astype(np.float64),
    "==": lambda a, b: (a == b).astype(np.float64),
    "!=": lambda a, b: (a != b).astype(np.float64),
    "&": lambda a, b: (a.astype(np.int64) & b.astype(np.int64)).astype(np.float64),
    "|": lambda a, b: (a.astype(np.int64) | b.astype(np.int64)).astype(np.float64),
    "<<": lambda a, b: (a.astype(np.int64) << b.astype(np.int64)).astype(np.float64),
    ">>": lambda a, b: (a.astype(np.int64) >> b.astype(np.int64)).astype(np.float64),
}


def _reduce(function):
    def run(parts):
        result = parts[0]
        for part in parts[1:]:
            result = function(result, part)
        return result

    return run


FUNCTIONS = {  # name: (function, least arguments, most arguments, kind)
    "abs": (np.abs, 1, 1, "map"),
    "sqrt": (_positive_nan(np.sqrt), 1, 1, "map"),
    "exp": (np.exp, 1, 1, "map"),
    "log": (_positive_nan(np.log), 1, 1, "map"),
    "log2": (_positive_nan(np.log2), 1, 1, "map"),
    "log10": (_positive_nan(np.log10), 1, 1, "map"),
    "sin": (np.sin, 1, 1, "map"),
    "cos": (np.cos, 1, 1, "map"),
    "tan": (np.tan, 1, 1, "map"),
    "asin": (np.arcsin, 1, 1, "map"),
    "acos": (_positive_nan(np.arccos), 1, 1, "map"),
    "atan": (np.arctan, 1, 1, "map"),
    "atan2": (np.arctan2, 2, 2, "map"),
    "sinh": (np.sinh, 1, 1, "map"),
    "cosh": (np.cosh, 1, 1, "map"),
    "tanh": (np.tanh, 1, 1, "map"),
    "floor": (np.floor, 1, 1, "map"),
    "ceil": (lambda v: np.ceil(v) + 0.0, 1, 1, "map"),
    "round": (_round_toward, 1, 3, "map"),
    "int": (lambda v: np.trunc(v) + 0.0, 1, 1, "map"),  # +0.0: G'MIC prints int(-0.5) as 0
    "sign": (lambda v: np.nan_to_num(np.sign(v), nan=0.0), 1, 1, "map"),  # sign(nan) is 0
    "pow": (np.power, 2, 2, "map"),
    "lerp": (_lerp, 3, 3, "map"),
    "cut": (lambda v, a, b: np.minimum(np.maximum(v, a), b), 3, 3, "map"),
    "isnan": (lambda v: np.isnan(v).astype(np.float64), 1, 1, "map"),
    "isinf": (lambda v: np.isinf(v).astype(np.float64), 1, 1, "map"),
    "sqr": (np.square, 1, 1, "map"),
    "cbrt": (np.cbrt, 1, 1, "map"),
    "hypot": (np.hypot, 2, 2, "map"),
    "fact": (_factorial, 1, 1, "map"),
    "xor": (lambda a, b: (a.astype(np.int64) ^ b.astype(np.int64)).astype(np.float64), 2, 2, "map"),
    # min and max skip NaN, as G'MIC's do: min(-1,nan) is -1
    "min": (_reduce(np.fmin), 1, None, "reduce"),
    "max": (_reduce(np.fmax), 1, None, "reduce"),
    "sum": (_reduce(np.add), 1, None, "reduce"),
    "prod": (_reduce(np.multiply), 1, None, "reduce"),
    "size": (_count, 1, None, "reduce"),
    "narg": (_count, 0, None, "reduce"),
    "avg": (lambda parts: np.mean(_stack(parts), axis=0), 1, None, "reduce"),
    "med": (lambda parts: np.median(_stack(parts), axis=0), 1, None, "reduce"),
    "var": (_positive_nan(_variance), 1, None, "reduce"),
    "std": (_positive_nan(lambda parts: np.sqrt(_variance(parts))), 1, None, "reduce"),
    "argmin": (lambda parts: np.argmin(_stack(parts), axis=0) + 0.0, 1, None, "reduce"),
    "argmax": (lambda parts: np.argmax(_stack(parts), axis=0) + 0.0, 1, None, "reduce"),
    "minabs": (_by_magnitude(np.argmin), 1, None, "reduce"),
    "maxabs": (_by_magnitude(np.argmax), 1, None, "reduce"),
    "kth": (_kth, 2, None, "reduce"),
    "arg": (_nth_argument, 2, None, "reduce"),
    "norm1": (lambda parts: np.sum(np.abs(_stack(parts)), axis=0), 1, None, "reduce"),
    "norm2": (lambda parts: np.sqrt(np.sum(_stack(parts) ** 2, axis=0)), 1, None, "reduce"),
    "norminf": (lambda parts: np.max(np.abs(_stack(parts)), axis=0), 1, None, "reduce"),
    "bool": (lambda v: (v != 0).astype(np.float64), 1, 1, "map"),
    "isint": (lambda v: (np.isfinite(v) & (v == np.round(v))).astype(np.float64), 1, 1, "map"),
    "isfinite": (lambda v: np.isfinite(v).astype(np.float64), 1, 1, "map"),
    "isnum": (lambda v: np.ones_like(v), 1, 1, "map"),
    "isbool": (lambda v: ((v == 0) | (v == 1)).astype(np.float64), 1, 1, "map"),
    "sinc": (lambda v: np.where(v == 0, 1.0, np.sin(v) / np.where(v == 0, 1.0, v)), 1, 1, "map"),
    "asinh": (np.arcsinh, 1, 1, "map"),
    "acosh": (_positive_nan(np.arccosh), 1, 1, "map"),
    "atanh": (_positive_nan(np.arctanh), 1, 1, "map"),
    "gauss": (_gauss, 1, 2, "map"),
    "deg2rad": (lambda v: v * (np.pi / 180), 1, 1, "map"),
    "rad2deg": (lambda v: v * (180 / np.pi), 1, 1, "map"),
    "gcd": (_gcd, 2, 2, "map"),
    "lcm": (_lcm, 2, 2, "map"),
    "norm": (lambda parts: np.sqrt(_reduce(np.add)([p * p for p in parts])), 1, None, "reduce"),
}

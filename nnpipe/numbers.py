"""Numbers as nnpipe shows them, and the limits every layer of the code checks against."""

import math

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)  # beyond it a value becomes inf
INT_LIMIT = 2**31 - 1  # larger counts, sizes and offsets only overflow or exhaust memory later


def format_number(value):
    """nnpipe's own numbers (losses, statistics): integers bare, others in their shortest
    exact form."""
    if isinstance(value, bool):
        value = int(value)
    value = float(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return gmic_number(value) if not math.isfinite(value) else repr(value)


def gmic_number(value):
    """A number as G'MIC prints it: C's %.17g, `inf`, `-inf`, `nan` (`-nan` when negative)."""
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1, value) < 0 else "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return "%.17g" % value


def gmic_round(value):
    """`value` rounded as G'MIC rounds coordinates: to the nearest integer, halves away from 0
    (-0.5 is -1)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def short_number(value):
    """A number as G'MIC's `{_expression}` prints it: C's %g (6 significant digits: 98.33,
    0.333333, 666667, 1.23457e+08), `inf`, `-inf`, `nan`, `-nan`."""
    value = float(value)
    if math.isnan(value):
        return gmic_number(value)
    return "%g" % value


def format_value(value, number=gmic_number):
    """A scalar, or a vector as comma-separated numbers, as G'MIC prints them (`number`:
    gmic_number, or short_number for `{_expression}`)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(number(v) for v in np.ravel(value))
    return number(value)


def size_text(size):
    """A size (w, h, d, s) as users read it: `w,h,d,s`. An array's is size_text(shape[::-1])."""
    return ",".join(str(v) for v in size)

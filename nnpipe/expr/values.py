"""Values of a compiled expression: a scalar is a float64 array of 4 dimensions (s, d, h, w)
broadcasting over the pixel grid, a vector of n components has a leading axis of length n."""

import math

import numpy as np

SCALAR = None  # the size of a scalar; a vector's size is its number of components


_CONSTANTS = {}


def scalar(value):
    """A number as a one-pixel scalar; the same read-only array for the same number."""
    key = value if value != 0 else ("zero", math.copysign(1.0, value))  # -0 keeps its sign
    array = _CONSTANTS.get(key)
    if array is None:
        if len(_CONSTANTS) > 10000:
            _CONSTANTS.clear()
        array = np.full((1, 1, 1, 1), value, dtype=np.float64)
        array.flags.writeable = False
        if value == value:  # NaN is no dictionary key
            _CONSTANTS[key] = array
    return array


C_INT = 2**31  # G'MIC casts an image index to C's int: beyond it (inf too) x86-64 gives -2**31


def image_position(index, count):
    """Which of `count` images `#index` names, as G'MIC reads it: the index truncated to an
    integer (-2**31 when it does not fit C's int, as the cast gives it), taken modulo the
    number of images (`#-1` the last, `#count` the first again); None for NaN or an empty list."""
    if count == 0 or math.isnan(index):
        return None
    whole = int(index) if -C_INT - 1 < index < C_INT else -C_INT
    return whole % count


def truth(value):
    return value != 0


def components(value, size):
    """A vector's components, or a scalar's one."""
    return [value] if size is SCALAR else [value[k] for k in range(value.shape[0])]

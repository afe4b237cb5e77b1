"""Kernels shared by the layers whose output values are input values moved around (crop,
patchdown, patchup): each such layer computes a table of sources (for each output value, the
input value it copies, or -1 for zero) and the engine hands it to these, which copy the
samples' rows along the table and add the gradients back along it, so the backward pass is
the exact adjoint of the forward one."""

import numba

from nnpipe.nn.layers import IN0, OUT


@numba.njit(cache=True, inline="always")
def position(k, w, h, d):
    """(x, y, z, c) of value k of a (w, h, d, s) image flattened in (s, d, h, w) order."""
    x, k = k % w, k // w
    y, k = k % h, k // h
    return x, y, k % d, k // d


@numba.njit(cache=True, inline="always")
def index(x, y, z, c, w, h, d):
    return x + w * (y + h * (z + d * c))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width, sources):
    for k in range(sources.size):
        y, s = (op[OUT] + k) * width, sources[k]
        if s < 0:
            acts[y : y + width] = 0
            continue
        x = (op[IN0] + s) * width
        for c in range(width):
            acts[y + c] = acts[x + c]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, grad_acts, width, sources):
    for k in range(sources.size):
        if sources[k] >= 0:
            x, y = (op[IN0] + sources[k]) * width, (op[OUT] + k) * width
            for c in range(width):
                grad_acts[x + c] += grad_acts[y + c]

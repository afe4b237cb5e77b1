"""Dropout, as nn_lib does it: during training each sample drops whole channels with
probability `rate` and scales the kept ones by channels/kept; at inference it does nothing."""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.layers import ARG0, IN0, OUT, OUT_LEN, Layer

OPCODE = 5


class Dropout(Layer):
    kind = "dropout"
    opcode = OPCODE

    def __init__(self, **options):
        super().__init__(**options)
        if not 0 <= options["rate"] < 1:
            raise UserError(f"dropout_rate must be in [0, 1) (got {options['rate']:g})")

    def arguments(self, input_sizes):
        return (input_sizes[0][3],), self.options["rate"]

    def properties(self):
        return f"dropout_rate={self.options['rate']:g}"


@numba.njit(cache=True, inline="always")
def uniform(seed, sample, channel):
    """A uniform number in [0, 1) from a counter-based hash (splitmix64): the same for the
    same (seed, sample, channel) on any thread, and cheap to recompute in backward."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(sample) * np.uint64(0xBF58476D1CE4E5B9) \
        + np.uint64(channel) * np.uint64(0x94D049BB133111EB) + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) / 9007199254740992.0


@numba.njit(cache=True)
def channel_scales(op, rate, seed, sample, scales):
    channels = op[ARG0]
    kept = 0
    for c in range(channels):
        scales[c] = 1.0 if uniform(seed, sample, c) >= rate else 0.0
        kept += int(scales[c])
    if kept == 0:
        scales[:] = 1.0
    else:
        scales *= channels / kept


@numba.njit(cache=True, fastmath=True)
def forward(op, rate, acts, b0, b1, training, seed):
    n, channels = op[OUT_LEN], op[ARG0]
    size = n // channels
    scales = np.empty(channels, dtype=np.float32)
    for b in range(b0, b1):
        x = acts[b, op[IN0]:op[IN0] + n]
        y = acts[b, op[OUT]:op[OUT] + n]
        if not training or rate == 0:
            y[:] = x
            continue
        channel_scales(op, rate, seed, b, scales)
        for k in range(n):
            y[k] = x[k] * scales[k // size]


@numba.njit(cache=True, fastmath=True)
def backward(op, rate, grad_acts, b0, b1, seed):
    n, channels = op[OUT_LEN], op[ARG0]
    size = n // channels
    scales = np.empty(channels, dtype=np.float32)
    for b in range(b0, b1):
        gx = grad_acts[b, op[IN0]:op[IN0] + n]
        gy = grad_acts[b, op[OUT]:op[OUT] + n]
        if rate == 0:
            gx += gy
            continue
        channel_scales(op, rate, seed, b, scales)
        for k in range(n):
            gx[k] += gy[k] * scales[k // size]

"""Dropout, as nn_lib does it: during training each step draws one channel mask for the whole
mini-batch, dropping whole channels with probability `rate` and scaling the kept ones by
channels/kept (all of them kept if every one was drawn); at inference it does nothing."""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, OUT, OUT_LEN, Layer, column, copy_values
from nnpipe.registry import Float


class Dropout(Layer):
    kind = "dropout"
    kernel_arguments = ("channels",)

    def __init__(self, **options):
        super().__init__(**options)
        if not 0 <= options["rate"] < 1:
            raise UserError(f"dropout_rate must be in [0, 1) (got {options['rate']:g})")

    def arguments(self, input_sizes):
        return {"channels": input_sizes[0][3]}

    def real(self, input_sizes):
        return self.options["rate"]

    def properties(self):
        return f"dropout_rate={self.options['rate']}"

    def export_onnx(self, g, step):
        return step.inputs[0]  # dropout does nothing at inference


CHANNELS = column(Dropout, "channels")


RATE = Float("dropout_rate", low=0, high=0.999999)


@network_command("nn_dropout", OUT_NAME, IN_NAME, RATE, api="3.6")
@network_command("nn_dropout", OUT_NAME, IN_NAME, RATE)
def nn_dropout(ctx, selection, out, source, rate):
    """Add dropout: while training, each sample drops whole channels with this probability."""
    add(ctx, out, Dropout(rate=rate), [source])


@numba.njit(cache=True, inline="always")
def uniform(seed, a, b):
    """A uniform number in [0, 1) from a counter-based hash (splitmix64) of three integers:
    the same on any thread, and cheap to recompute in backward."""
    z = (
        np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        + np.uint64(a) * np.uint64(0xBF58476D1CE4E5B9)
        + np.uint64(b) * np.uint64(0x94D049BB133111EB)
        + np.uint64(0x632BE59BD9B4E019)
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) / 9007199254740992.0


@numba.njit(cache=True)
def scales(op, rate, seed):
    """One factor per channel: 0 for a dropped channel, channels/kept otherwise. The draws
    depend on the step's seed and the layer (its output offset), not on the sample, so every
    chunk of the batch, on any thread, and the backward pass see the same mask."""
    channels = op[CHANNELS]
    result = np.ones(channels, dtype=np.float32)
    kept = 0
    for k in range(channels):
        if uniform(seed, op[OUT], k) < rate:
            result[k] = 0
        else:
            kept += 1
    if kept == 0:
        result[:] = 1
    else:
        result *= channels / kept
    return result


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, width, training, seed):
    rate = real
    n, channels = op[OUT_LEN], op[CHANNELS]
    size = n // channels
    x = acts[op[IN0] * width : (op[IN0] + n) * width]
    y = acts[op[OUT] * width : (op[OUT] + n) * width]
    if not training or rate == 0:
        copy_values(x, y)
        return
    factors = scales(op, rate, seed)
    for k in range(n):
        f = factors[k // size]
        for c in range(width):
            y[k * width + c] = x[k * width + c] * f


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, real, grad_acts, width, seed):
    rate = real
    n, channels = op[OUT_LEN], op[CHANNELS]
    size = n // channels
    gx = grad_acts[op[IN0] * width : (op[IN0] + n) * width]
    gy = grad_acts[op[OUT] * width : (op[OUT] + n) * width]
    if rate == 0:
        gx += gy
        return
    factors = scales(op, rate, seed)
    for k in range(n):
        f = factors[k // size]
        for c in range(width):
            gx[k * width + c] += gy[k * width + c] * f

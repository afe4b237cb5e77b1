"""The nonlinearity layer's kernels for relu and leakyrelu, the activations most networks use,
in a file of their own: a network whose nonlinearities are all rectifiers compiles these small
loops alone, not the general kernels holding every activation (a second or so less to wait on
a first run). nnpipe.nn.layers.nonlinearity chooses this file for those two activations;
leakyrelu's slope is the layer's `real`."""

import numba
import numpy as np

from nnpipe.nn.activations import LEAKYRELU
from nnpipe.nn.layers import IN0, OUT, OUT_LEN
from nnpipe.nn.layers.nonlinearity import ACTIVATION


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, width):
    n = op[OUT_LEN] * width
    x = acts[op[IN0] * width : op[IN0] * width + n]
    y = acts[op[OUT] * width : op[OUT] * width + n]
    slope = real if op[ACTIVATION] == LEAKYRELU else np.float32(0)
    for i in range(n):
        y[i] = x[i] if x[i] > 0 else slope * x[i]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, real, acts, grad_acts, width):
    n = op[OUT_LEN] * width
    x = acts[op[IN0] * width : op[IN0] * width + n]
    gx = grad_acts[op[IN0] * width : op[IN0] * width + n]
    gy = grad_acts[op[OUT] * width : op[OUT] * width + n]
    slope = real if op[ACTIVATION] == LEAKYRELU else np.float32(0)
    for i in range(n):
        gx[i] += gy[i] if x[i] > 0 else slope * gy[i]

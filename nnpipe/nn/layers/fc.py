"""Fully connected: y = W x + b, weights an image of width (inputs + 1) and height N whose last
column holds the biases."""

import numba
import numpy as np

from nnpipe.nn.blas import gemm
from nnpipe.nn.building import (
    ACTIVATION,
    IN_NAME,
    IN_OR_PREVIOUS,
    INITIALIZATION,
    LEARNING_MODE,
    OUT_NAME,
    WEIGHT_DECAY,
    add,
    network_command,
)
from nnpipe.nn.layers import (
    IN0,
    IN0_LEN,
    INPUT_GRADIENTS,
    OUT,
    OUT_LEN,
    PARAM,
    Layer,
    count,
    initialized,
    learning_mask,
    weights_and_biases,
)
from nnpipe.nn.layers.elementwise import residual
from nnpipe.nn.layers.nonlinearity import Nonlinearity
from nnpipe.nn.layers.normalize import Normalize
from nnpipe.nn.layers.rename import Rename
from nnpipe.registry import Int


class FullyConnected(Layer):
    """options: channels, learning_mode; G'MIC 3.6's also weight_decay (kept for training) and
    initialization (0 zero, 1 identity, 2 LeCun, 3 He; else nn_lib 2023's)."""

    kind = "fc"

    def build(self, input_sizes):
        return (1, 1, 1, self.options["channels"])

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], count(input_sizes[0]) + 1)

    def initialize(self, input_sizes, rng):
        shape, fan_in = self.parameter_shape(input_sizes), count(input_sizes[0])
        if "initialization" in self.options:
            return initialized(shape, fan_in, self.options["initialization"], _identity, rng)
        return weights_and_biases(shape, fan_in, self.options["learning_mode"], rng)

    def trainable(self, input_sizes):
        _, _, height, width = self.parameter_shape(input_sizes)
        return learning_mask(width, height, self.options["learning_mode"])

    def properties(self):
        text = f"learning_mode={self.options['learning_mode']}"
        if "weight_decay" in self.options:
            text += f", weight_decay={self.options['weight_decay']}"
        return text

    def export_onnx(self, g, step):
        weights = step.weights.reshape(step.weights.shape[2], -1)
        product = g.node(
            "Gemm",
            [
                g.flat(step.inputs[0], f"{step.name}_flat"),
                g.constant(weights[:, :-1], f"{step.name}_weights"),
                g.constant(weights[:, -1], f"{step.name}_biases"),
            ],
            f"{step.name}_gemm",
            transB=1,
        )
        return g.to_5d(product, step.size, step.name)


def fully_connected(ctx, out, source, channels, learning_mode):
    """OUT_fc, the module holding the weights image OUT_fc; returns its name."""
    return add(ctx, f"{out}_fc", FullyConnected(channels=channels, learning_mode=learning_mode), [source])


@network_command("nn_fc", OUT_NAME, IN_NAME, Int("nb_channels", low=1), LEARNING_MODE)
def nn_fc(ctx, selection, out, source, channels, learning_mode):
    """Add a fully connected layer: modules OUT_fc (weights image OUT_fc) and OUT."""
    add(ctx, out, Rename(), [fully_connected(ctx, out, source, channels, learning_mode)])


def _identity(rows, columns):
    """G'MIC 3.6's identity initialisation: weight (row, column) is 1 where column % rows ==
    row % columns."""
    row, column = np.indices((rows, columns))
    return column % rows == row % columns


@network_command(
    "nn_fc",
    OUT_NAME,
    IN_NAME,
    Int("nb_channels", low=1),
    LEARNING_MODE,
    WEIGHT_DECAY,
    INITIALIZATION,
    api="3.6",
)
def nn_fc_36(ctx, selection, out, source, channels, learning_mode, weight_decay, initialization):
    """Add a fully connected layer OUT, its weights the image NET_OUT (one row per output: a
    weight per input value, then the bias). Weights start as `initialization` says, biases at 0."""
    layer = FullyConnected(
        channels=channels,
        learning_mode=learning_mode,
        weight_decay=weight_decay,
        initialization=initialization,
    )
    add(ctx, out, layer, [source])


@network_command("nn_fcnl", OUT_NAME, IN_NAME, Int("nb_neurons", low=1), ACTIVATION, LEARNING_MODE)
def nn_fcnl(ctx, selection, out, source, channels, activation, learning_mode):
    """Add a fully connected layer then a nonlinearity: OUT_fc, OUT."""
    fc = fully_connected(ctx, out, source, channels, learning_mode)
    add(ctx, out, Nonlinearity.of(activation, "2023"), [fc])


@network_command("nn_fcnnl", OUT_NAME, IN_NAME, Int("nb_neurons", low=1), ACTIVATION, LEARNING_MODE)
def nn_fcnnl(ctx, selection, out, source, channels, activation, learning_mode):
    """Add fully connected, normalize, nonlinearity: OUT_fc, OUT_normalize, OUT."""
    fc = fully_connected(ctx, out, source, channels, learning_mode)
    normalized = add(ctx, f"{out}_normalize", Normalize(channelwise=False, learning_mode=3), [fc])
    add(ctx, out, Nonlinearity.of(activation, "2023"), [normalized])


def _fc_branch(learning_mode):
    return lambda size: ("fc", FullyConnected(channels=count(size), learning_mode=learning_mode))


@network_command("nn_resfc", OUT_NAME, IN_OR_PREVIOUS, LEARNING_MODE)
def nn_resfc(ctx, selection, out, source, learning_mode):
    """Add a residual fully connected block, OUT = IN + fc(IN): OUT_clone0/1, OUT_fc, OUT."""
    residual(ctx, out, source, _fc_branch(learning_mode), None, None)


@network_command("nn_resfcnl", OUT_NAME, IN_OR_PREVIOUS, ACTIVATION, LEARNING_MODE)
def nn_resfcnl(ctx, selection, out, source, activation, learning_mode):
    """Add a residual block then a nonlinearity: OUT_clone0/1, OUT_fc, OUT_add, OUT."""
    residual(ctx, out, source, _fc_branch(learning_mode), None, activation)


@network_command("nn_resfcnnl", OUT_NAME, IN_OR_PREVIOUS, ACTIVATION, LEARNING_MODE)
def nn_resfcnnl(ctx, selection, out, source, activation, learning_mode):
    """Add a residual block with normalization then a nonlinearity (the fc learns weights
    only, as in nn_lib): OUT_clone0/1, OUT_fc, OUT_normalize, OUT_add, OUT."""
    residual(ctx, out, source, _fc_branch(1), "global", activation)


# Kernels work on a chunk of samples stored feature-major: the input is an (inputs x width)
# row-major matrix X, the output (N x width) Y, so the layer is one matrix product
# Y = W X + b, and its gradients dX += W^T dY, dW += dY X^T: BLAS's sgemm does each (see
# nnpipe.nn.blas: to it, these row-major blocks are the transposed, column-major matrices, and
# W's rows are n_in + 1 apart, the bias column between them).


@numba.njit(cache=True)
def forward(op, acts, params, width):
    n_in, n_out, stride = op[IN0_LEN], op[OUT_LEN], op[IN0_LEN] + 1
    x, y, w = op[IN0] * width, op[OUT] * width, op[PARAM]
    for n in range(n_out):
        acts[y + n * width : y + (n + 1) * width] = params[w + n * stride + n_in]
    # Y^T (width x N) += X^T (width x n_in) W^T (n_in x N)
    gemm(False, False, width, n_out, n_in, acts[x:], width, params[w:], stride, acts[y:], width)


@numba.njit(cache=True)
def backward(op, acts, grad_acts, params, grads, width):
    n_in, n_out, stride = op[IN0_LEN], op[OUT_LEN], op[IN0_LEN] + 1
    x, y, w = op[IN0] * width, op[OUT] * width, op[PARAM]
    for n in range(n_out):
        grads[w + n * stride + n_in] += grad_acts[y + n * width : y + (n + 1) * width].sum()
    if op[INPUT_GRADIENTS]:
        # dX^T (width x n_in) += dY^T (width x N) W (N x n_in)
        gemm(False, True, width, n_in, n_out, grad_acts[y:], width, params[w:], stride, grad_acts[x:], width)
    # dW^T (n_in x N) += X (n_in x width) dY^T (width x N)
    gemm(True, False, n_in, n_out, width, acts[x:], width, grad_acts[y:], width, grads[w:], stride)

"""Nonlinear fully connected (nn_lib's nlfc): y_i = sum_j act(W_ij x_j + B_ij). The parameter
image has width 2 x inputs: the weights W, then one bias per weight B."""

import numba
import numpy as np

from nnpipe.nn import activations
from nnpipe.nn.building import ACTIVATION as ACTIVATION_NAME
from nnpipe.nn.building import IN_NAME, LEARNING_MODE, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, IN0_LEN, OUT, OUT_LEN, PARAM, column, count
from nnpipe.nn.layers.fc import FullyConnected
from nnpipe.nn.layers.nonlinearity import ONNX
from nnpipe.nn.layers.rename import Rename
from nnpipe.registry import Int


class NonlinearFullyConnected(FullyConnected):
    kind = "nlfc"
    kernel_arguments = ("activation",)

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], 2 * count(input_sizes[0]))

    def initialize(self, input_sizes, rng):
        """N(0, 1) * 4 / (2 n_in - 1): nn_lib scales every weights image by 4 / (its width - 1),
        which for nlfc's 2 n_in columns is not fc's 4 / n_in."""
        n_in = count(input_sizes[0])
        weights = rng.standard_normal(self.parameter_shape(input_sizes)) * (4.0 / (2 * n_in - 1))
        weights = weights.astype(np.float32)
        if not self.options["learning_mode"] & 2:
            weights[..., n_in:] = 0
        return weights

    def trainable(self, input_sizes):
        n_in = count(input_sizes[0])
        mask = np.zeros((self.options["channels"], 2 * n_in), dtype=np.float32)
        mask[:, :n_in] = self.options["learning_mode"] & 1
        mask[:, n_in:] = (self.options["learning_mode"] & 2) >> 1
        return mask.ravel()

    def arguments(self, input_sizes):
        return {"activation": activations.NAMES.index(self.options["activation"])}

    def real(self, input_sizes):
        return self.options["slope"]

    def properties(self):
        return f"activation={self.options['activation']}, learning_mode={self.options['learning_mode']}"

    def export_onnx(self, g, step):
        """y_i = sum_j act(W_ij x_j + B_ij): an (N, outputs, inputs) tensor summed over inputs.
        The engine applies softmax there value by value, where it is the identity."""
        name, weights = step.name, step.weights.reshape(step.weights.shape[2], -1)
        n_in = weights.shape[1] // 2
        x = g.node(
            "Unsqueeze",
            [g.flat(step.inputs[0], f"{name}_flat"), g.constant([1], f"{name}_axis", np.int64)],
            f"{name}_row",
        )
        z = g.node(
            "Add",
            [
                g.node("Mul", [x, g.constant(weights[:, :n_in], f"{name}_weights")], f"{name}_wx"),
                g.constant(weights[:, n_in:], f"{name}_biases"),
            ],
            f"{name}_z",
        )
        activation = step.options["activation"]
        a = ONNX["linear" if activation == "softmax" else activation](g, z, None, f"{name}_act")
        total = g.node(
            "ReduceSum", [a, g.constant([2], f"{name}_sum_axis", np.int64)], f"{name}_sum", keepdims=0
        )
        return g.to_5d(total, step.size, name)


@network_command("nn_nlfc", OUT_NAME, IN_NAME, Int("nb_channels", low=1), ACTIVATION_NAME, LEARNING_MODE)
def nn_nlfc(ctx, selection, out, source, channels, activation, learning_mode):
    """Add a nonlinear fully connected layer, y_i = sum_j act(W_ij x_j + B_ij): OUT_nlfc, OUT."""
    layer = NonlinearFullyConnected(
        channels=channels,
        activation=activation,
        learning_mode=learning_mode,
        slope=activations.LEAKY_SLOPES["2023"],
    )
    add(ctx, out, Rename(), [add(ctx, f"{out}_nlfc", layer, [source])])


ACTIVATION = column(NonlinearFullyConnected, "activation")


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, params, width):
    kind, n_in, n_out = op[ACTIVATION], op[IN0_LEN], op[OUT_LEN]
    x0, y0 = op[IN0] * width, op[OUT] * width
    for i in range(n_out):
        row = op[PARAM] + i * 2 * n_in
        y = acts[y0 + i * width : y0 + (i + 1) * width]
        y[:] = 0
        for j in range(n_in):
            w, bias = params[row + j], params[row + n_in + j]
            x = acts[x0 + j * width : x0 + (j + 1) * width]
            for c in range(width):
                y[c] += activations.value(kind, w * x[c] + bias, real)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, real, acts, grad_acts, params, grads, width):
    kind, n_in, n_out = op[ACTIVATION], op[IN0_LEN], op[OUT_LEN]
    x0, y0 = op[IN0] * width, op[OUT] * width
    for i in range(n_out):
        row = op[PARAM] + i * 2 * n_in
        gy = grad_acts[y0 + i * width : y0 + (i + 1) * width]
        for j in range(n_in):
            w, bias = params[row + j], params[row + n_in + j]
            x = acts[x0 + j * width : x0 + (j + 1) * width]
            gx = grad_acts[x0 + j * width : x0 + (j + 1) * width]
            g_weight = np.float32(0)
            g_bias = np.float32(0)
            for c in range(width):
                z = w * x[c] + bias
                dz = activations.derivative(kind, z, activations.value(kind, z, real), real) * gy[c]
                gx[c] += dz * w
                g_weight += dz * x[c]
                g_bias += dz
            grads[row + j] += g_weight
            grads[row + n_in + j] += g_bias

"""Losses comparing a prediction y with its ground truth t, per sample of n values:

- normp, metric 0 (and mse): sum((y - t)^2) / n; metric p > 0: ||y - t||_p / n;
- crossentropy: -sum t log(y + 1e-8);
- binary_crossentropy: -sum [t log(y + 1e-5) + (1 - t) log(1 - y + 1e-5)];
- softmax_crossentropy: -sum t log softmax(y), softmax over the sample's n values.

As in nn_lib, the cross-entropies are sums over the sample's values, not means (a classifier's
loss does not shrink with its number of classes). The reported loss is the batch mean of the
per-sample losses; the gradients are the exact derivatives of that mean. Where nn_lib differs:
- its binary cross-entropy gradient drops the epsilons' share;
- its softmax cross-entropy gradient is s - t where the derivative is s * sum(t) - t (the
  same when t sums to 1, as one-hot labels do); it adds 1e-8 to the softmax, which caps the
  loss, where this one computes log softmax directly, stable for any y; and it reports that
  loss twice over (its backward pass adds the batch's loss again)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import GROUND_TRUTH, IN_NAME, OUT_NAME, add, add_moments, network_command
from nnpipe.nn.layers import IN0, IN0_LEN, IN1, Layer, column, same_sizes
from nnpipe.nn.layers.input import Input
from nnpipe.registry import Int

NORMP, CROSSENTROPY, BINARY_CROSSENTROPY, SOFTMAX_CROSSENTROPY = range(4)
CE_EPSILON, BCE_EPSILON = 1e-8, 1e-5


class Loss(Layer):
    """options: ground_truth (name of its input), and metric for normp."""

    is_loss = True
    inputs = 2  # prediction, ground truth
    kernel_arguments = ("formula", "metric")
    formula = NORMP

    def build(self, input_sizes):
        same_sizes(self.kind, input_sizes)
        return (1, 1, 1, 1)

    def arguments(self, input_sizes):
        return {"formula": self.formula, "metric": self.options.get("metric", 0)}

    def properties(self):
        return f"ground_truth={self.options['ground_truth']}"


FORMULA, METRIC = column(Loss, "formula"), column(Loss, "metric")


class NormLoss(Loss):
    kind = "loss_normp"

    def properties(self):
        return f"{super().properties()}, metric={self.options['metric']}"


class MeanSquaredError(Loss):
    kind = "loss_mse"


class CrossEntropy(Loss):
    """-sum t log(y + 1e-8) over the sample's values, a sum as in nn_lib; gradient
    -t / (y + 1e-8)."""

    kind = "loss_crossentropy"
    formula = CROSSENTROPY


class BinaryCrossEntropy(Loss):
    """-sum [t log(y + 1e-5) + (1 - t) log(1 - y + 1e-5)] over the sample's values;
    gradient (1 - t) / (1 - y + 1e-5) - t / (y + 1e-5), epsilons included."""

    kind = "loss_binary_crossentropy"
    formula = BINARY_CROSSENTROPY


class SoftmaxCrossEntropy(Loss):
    """-sum t log softmax(y), the softmax over all the sample's values; gradient
    softmax(y) sum(t) - t, i.e. softmax(y) - t for one-hot t."""

    kind = "loss_softmax_crossentropy"
    formula = SOFTMAX_CROSSENTROPY


def _loss(ctx, out, source, ground_truth, layer):
    """Add a loss; one of the same name is replaced (nn_lib's way to train a loaded network:
    nn_load, then declare the loss and trainer again)."""
    network = ctx.network()
    source = network.resolve(source)
    if network.is_loss(out):
        # the same ground truth keeps its place among the feeds, so the samples' layout holds
        truth = network.modules[out].inputs[1]
        network.remove(
            out,
            keep_ground_truth=truth == ground_truth
            and network.modules[truth].size == network.modules[source].size,
        )
    if ground_truth in network.modules:
        if network.modules[ground_truth].size != network.modules[source].size:
            raise UserError(f"ground truth '{ground_truth}' has another size than '{source}'")
    else:
        add(ctx, ground_truth, Input(size=network.modules[source].size, ground_truth_of=out), [])
    add(ctx, out, layer, [source, ground_truth])
    for trainer in network.trainers.values():
        add_moments(ctx, network, trainer.optimizer)


@network_command("nn_loss_mse", OUT_NAME, IN_NAME, GROUND_TRUTH)
def nn_loss_mse(ctx, selection, out, source, ground_truth):
    """Add a mean-squared-error loss: mean of (IN - GROUND_TRUTH)^2 over the values of a sample."""
    _loss(ctx, out, source, ground_truth, MeanSquaredError(ground_truth=ground_truth))


@network_command(
    "nn_loss_normp",
    OUT_NAME,
    IN_NAME,
    GROUND_TRUTH,
    Int("metric", 1, low=0, help="0 squared L2, p > 0 the Lp norm"),
)
def nn_loss_normp(ctx, selection, out, source, ground_truth, metric):
    """Add a p-norm loss: ||IN - GROUND_TRUTH||_p divided by the number of values."""
    _loss(ctx, out, source, ground_truth, NormLoss(ground_truth=ground_truth, metric=metric))


@network_command("nn_loss_crossentropy", OUT_NAME, IN_NAME, GROUND_TRUTH)
def nn_loss_crossentropy(ctx, selection, out, source, ground_truth):
    """Add a cross-entropy loss: -sum GT log(IN + 1e-8) over the values of a sample.

    IN holds probabilities (e.g. after a softmax), GT the ground truth."""
    _loss(ctx, out, source, ground_truth, CrossEntropy(ground_truth=ground_truth))


@network_command("nn_loss_binary_crossentropy", OUT_NAME, IN_NAME, GROUND_TRUTH)
def nn_loss_binary_crossentropy(ctx, selection, out, source, ground_truth):
    """Add a binary cross-entropy loss: -sum [GT log(IN+1e-5) + (1-GT) log(1-IN+1e-5)].

    The sum is over the values of a sample; IN holds probabilities in [0, 1] (e.g. after a
    sigmoid), GT the ground truth."""
    _loss(ctx, out, source, ground_truth, BinaryCrossEntropy(ground_truth=ground_truth))


@network_command("nn_loss_softmax_crossentropy", OUT_NAME, IN_NAME, GROUND_TRUTH)
def nn_loss_softmax_crossentropy(ctx, selection, out, source, ground_truth):
    """Add a softmax cross-entropy loss: -sum GT log softmax(IN) over the values of a sample.

    The softmax runs over all the values of a sample (IN: scores, GT: the ground truth); the
    gradient is softmax(IN) - GT for ground truths summing to 1, such as one-hot labels."""
    _loss(ctx, out, source, ground_truth, SoftmaxCrossEntropy(ground_truth=ground_truth))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def loss(op, acts, grad_acts, losses, width, valid, scale):
    """For the `valid` first samples of the chunk: each one's loss into `losses`, and
    d(loss)/d(prediction) * scale into grad_acts."""
    formula, n = op[FORMULA], op[IN0_LEN]
    y = acts[op[IN0] * width : (op[IN0] + n) * width]
    t = acts[op[IN1] * width : (op[IN1] + n) * width]
    gy = grad_acts[op[IN0] * width : (op[IN0] + n) * width]
    for c in range(valid):
        # the values of sample c are at c, c + width, ...
        if formula == NORMP:
            losses[c] = norm_loss(op[METRIC], y, t, gy, c, n * width, width, scale / n) / n
        elif formula == CROSSENTROPY:
            total = 0.0
            for i in range(c, n * width, width):
                total -= t[i] * math.log(y[i] + CE_EPSILON)
                gy[i] -= t[i] / (y[i] + CE_EPSILON) * scale
            losses[c] = total
        elif formula == BINARY_CROSSENTROPY:
            total = 0.0
            for i in range(c, n * width, width):
                one, zero = y[i] + BCE_EPSILON, 1 - y[i] + BCE_EPSILON
                total -= t[i] * math.log(one) + (1 - t[i]) * math.log(zero)
                gy[i] += ((1 - t[i]) / zero - t[i] / one) * scale
            losses[c] = total
        else:
            losses[c] = softmax_crossentropy(y, t, gy, c, n * width, width, scale)


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def norm_loss(metric, y, t, gy, c, end, width, scale):
    """||y - t||_p (squared L2 for metric 0) of one sample; adds its gradient * scale."""
    total = 0.0
    if metric == 0:
        for i in range(c, end, width):
            d = y[i] - t[i]
            total += d * d
            gy[i] += 2 * d * scale
        return total
    for i in range(c, end, width):
        total += abs(y[i] - t[i]) ** metric
    norm = total ** (1.0 / metric)
    if norm > 0:
        for i in range(c, end, width):
            d = y[i] - t[i]
            gy[i] += np.sign(d) * (abs(d) / norm) ** (metric - 1) * scale
    return norm


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def softmax_crossentropy(y, t, gy, c, end, width, scale):
    """-sum t log softmax(y) of one sample, with log softmax(y) = y - top - log(sum exp(y - top));
    adds its gradient softmax(y) sum(t) - t, times scale."""
    top = y[c]
    for i in range(c, end, width):
        top = max(top, y[i])
    exps, truth = 0.0, 0.0
    for i in range(c, end, width):
        exps += math.exp(y[i] - top)
        truth += t[i]
    log_sum = math.log(exps)
    total = 0.0
    for i in range(c, end, width):
        total -= t[i] * (y[i] - top - log_sum)
        gy[i] += (math.exp(y[i] - top - log_sum) * truth - t[i]) * scale
    return total

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
  loss twice over (its backward pass adds the batch's loss again).

G'MIC 3.6's losses (variant 1) take a weight w multiplying the loss and its gradient, and:
- normp's metric 0 counts the values that differ (its gradient is 0); mse and normp
  back-propagate the gradient of w ||y - t|| (squared for mse), not divided by n as the loss
  it reports is, as 3.6.3 does;
- crossentropy: -sum t log max(y, 1e-8); binary: -sum [t log max(y, 1e-8) + (1 - t) log
  max(1 - y, 1e-8)]; softmax: -sum t log max(softmax(y), 1e-8)."""

import math

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import GROUND_TRUTH, IN_NAME, OUT_NAME, add, add_moments, network_command
from nnpipe.nn.layers import IN0, IN0_LEN, IN1, Layer, column, same_sizes
from nnpipe.nn.layers.input import Input
from nnpipe.registry import Float, Int, LayerName

NORMP, CROSSENTROPY, BINARY_CROSSENTROPY, SOFTMAX_CROSSENTROPY = range(4)
CE_EPSILON, BCE_EPSILON = 1e-8, 1e-5
GMIC36_FLOOR = 1e-8  # G'MIC 3.6's losses take max(p, 1e-8) for each probability p


class Loss(Layer):
    """options: ground_truth (name of its input), and metric for normp; G'MIC 3.6's weight."""

    is_loss = True
    inputs = 2  # prediction, ground truth
    kernel_arguments = ("formula", "metric", "variant")
    formula = NORMP

    def build(self, input_sizes):
        same_sizes(self.kind, input_sizes)
        return (1, 1, 1, 1)

    def arguments(self, input_sizes):
        variant = int("weight" in self.options)  # 1: G'MIC 3.6's
        # G'MIC 3.6's mse is its normp's squared L2, metric 0 there counting differences
        metric = -1 if variant and self.kind == "loss_mse" else self.options.get("metric", 0)
        return {"formula": self.formula, "metric": metric, "variant": variant}

    def real(self, input_sizes):
        return self.options.get("weight", 1.0)

    def properties(self):
        text = f"ground_truth={self.options['ground_truth']}"
        if "metric" in self.options:
            text += f", metric={self.options['metric']}"
        return text + (f", weight={self.options['weight']}" if "weight" in self.options else "")


FORMULA, METRIC, VARIANT = (column(Loss, name) for name in Loss.kernel_arguments)
SQUARED_L2_36 = -1  # the metric of G'MIC 3.6's mse


class NormLoss(Loss):
    kind = "loss_normp"


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


WEIGHT = Float("weight", 1, help="the loss and its gradient are multiplied by it")
GMIC36_LOSSES = {
    "mse": (MeanSquaredError, "mean of (IN - GROUND_TRUTH)^2 over the values of a sample"),
    "crossentropy": (CrossEntropy, "-sum GROUND_TRUTH log max(IN, 1e-8)"),
    "binary_crossentropy": (
        BinaryCrossEntropy,
        "-sum [GROUND_TRUTH log max(IN, 1e-8) + (1 - GROUND_TRUTH) log max(1 - IN, 1e-8)]",
    ),
    "softmax_crossentropy": (SoftmaxCrossEntropy, "-sum GROUND_TRUTH log max(softmax(IN), 1e-8)"),
}


def _declare_36(name, layer_class, formula):
    @network_command(
        f"nn_loss_{name}",
        OUT_NAME,
        IN_NAME,
        GROUND_TRUTH,
        WEIGHT,
        api="3.6",
        recorded=False,
        help=f"""Add a loss: {formula}, times the weight (sums are over the values of a
        sample; the reported loss is the batch mean).""",
    )
    def declared(ctx, selection, out, source, ground_truth, weight):
        _loss(ctx, out, source, ground_truth, layer_class(ground_truth=ground_truth, weight=weight))


for _name, (_class, _formula) in GMIC36_LOSSES.items():
    _declare_36(_name, _class, _formula)


@network_command(
    "nn_loss_normp",
    OUT_NAME,
    IN_NAME,
    GROUND_TRUTH,
    Int("metric", 1, low=0, help="p > 0 the Lp norm, 0 the count of values that differ"),
    WEIGHT,
    api="3.6",
    recorded=False,
)
def nn_loss_normp_36(ctx, selection, out, source, ground_truth, metric, weight):
    """Add a p-norm loss: ||IN - GROUND_TRUTH||_p divided by the number of values, times the
    weight."""
    _loss(ctx, out, source, ground_truth, NormLoss(ground_truth=ground_truth, metric=metric, weight=weight))


class LossSum(Layer):
    """G'MIC 3.6's loss_add: a loss that is the sum of two losses. It computes nothing: a
    training step already minimizes the sum of a network's losses, which this one's value is,
    and adds no gradient of its own (the two losses give theirs)."""

    kind = "loss_add"
    is_loss = True
    takes_losses = True
    alias = True
    inputs = 2

    def build(self, input_sizes):
        return (1, 1, 1, 1)


@network_command(
    "nn_loss_add",
    OUT_NAME,
    LayerName("in0", help="first loss ('.' = previous layer)"),
    LayerName("in1", help="second loss ('.' = previous layer)"),
    api="3.6",
    recorded=False,
)
def nn_loss_add(ctx, selection, out, first, second):
    """Add a loss that is the sum of two losses (3.6.3's command refuses every argument: this
    is what it was meant to do). Training minimizes the sum of a network's losses anyway."""
    network = ctx.network()
    for source in (first, second):
        if not network.is_loss(network.resolve(source)):
            raise UserError(f"'{network.resolve(source)}' is not a loss")
    add(ctx, out, LossSum(), [first, second])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def loss(op, real, acts, grad_acts, losses, width, valid, scale):
    """For the `valid` first samples of the chunk: each one's loss (times the weight `real`)
    into `losses`, and d(loss)/d(prediction) * scale into grad_acts."""
    formula, n, weight = op[FORMULA], op[IN0_LEN], real
    y = acts[op[IN0] * width : (op[IN0] + n) * width]
    t = acts[op[IN1] * width : (op[IN1] + n) * width]
    gy = grad_acts[op[IN0] * width : (op[IN0] + n) * width]
    if op[VARIANT]:
        gmic36_loss(formula, op[METRIC], weight, y, t, gy, losses, n, width, valid, scale)
        return
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


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def gmic36_loss(formula, metric, weight, y, t, gy, losses, n, width, valid, scale):
    """G'MIC 3.6's losses (see the module's documentation)."""
    for c in range(valid):
        end = n * width
        if formula == NORMP and metric == 0:
            differing = 0
            for i in range(c, end, width):
                differing += y[i] != t[i]
            losses[c] = differing / n * weight
        elif formula == NORMP:
            norm = norm_loss(max(metric, 0), y, t, gy, c, end, width, scale * weight)
            losses[c] = norm / n * weight
        elif formula == CROSSENTROPY:
            total = 0.0
            for i in range(c, end, width):
                floored = max(y[i], GMIC36_FLOOR)
                total -= t[i] * math.log(floored)
                gy[i] -= t[i] / floored * weight * scale
            losses[c] = total * weight
        elif formula == BINARY_CROSSENTROPY:
            total = 0.0
            for i in range(c, end, width):
                one, zero = max(y[i], GMIC36_FLOOR), max(1 - y[i], GMIC36_FLOOR)
                total -= t[i] * math.log(one) + (1 - t[i]) * math.log(zero)
                gy[i] += (y[i] - t[i]) / (one * zero) * weight * scale
            losses[c] = total * weight
        else:
            softmax_crossentropy(y, t, gy, c, end, width, scale * weight)
            top = y[c]
            for i in range(c, end, width):
                top = max(top, y[i])
            exps = 0.0
            for i in range(c, end, width):
                exps += math.exp(y[i] - top)
            total = 0.0
            for i in range(c, end, width):
                total -= t[i] * math.log(max(math.exp(y[i] - top) / exps, GMIC36_FLOOR))
            losses[c] = total * weight


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

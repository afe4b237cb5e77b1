"""Losses comparing a prediction with its ground truth, per sample:
normp with metric 0 (and mse) is sum((y - t)^2) / n, metric p > 0 is ||y - t||_p / n.
The reported loss is the batch mean; gradients are those of that mean."""

import numba
import numpy as np

from nnpipe.nn.layers import ARG0, IN0, IN0_LEN, IN1, Layer, same_sizes

OPCODE = 7


class NormLoss(Layer):
    kind = "loss_normp"
    opcode = OPCODE
    inputs = 2   # prediction, ground truth

    def output_size(self, input_sizes):
        same_sizes(self.kind, input_sizes)
        return (1, 1, 1, 1)

    def arguments(self, input_sizes):
        return (self.options.get("metric", 0),), 0.0

    def properties(self):
        metric = self.options.get("metric", 0)
        text = f"ground_truth={self.options['ground_truth']}"
        return text if self.kind == "loss_mse" else f"{text}, metric={metric}"


class MeanSquaredError(NormLoss):
    kind = "loss_mse"


@numba.njit(cache=True, fastmath=True)
def loss(op, acts, grad_acts, losses, width, valid, scale):
    """For the `valid` first samples of the chunk: each one's loss into `losses`, and
    d(loss)/d(prediction) * scale into grad_acts."""
    metric, n = op[ARG0], op[IN0_LEN]
    y = acts[op[IN0] * width:(op[IN0] + n) * width]
    t = acts[op[IN1] * width:(op[IN1] + n) * width]
    gy = grad_acts[op[IN0] * width:(op[IN0] + n) * width]
    for c in range(valid):
        total = 0.0
        if metric == 0:
            for i in range(c, n * width, width):
                d = y[i] - t[i]
                total += d * d
                gy[i] += 2 * d / n * scale
            losses[c] = total / n
            continue
        for i in range(c, n * width, width):
            total += abs(y[i] - t[i]) ** metric
        norm = total ** (1.0 / metric)
        losses[c] = norm / n
        if norm == 0:
            continue
        for i in range(c, n * width, width):
            d = y[i] - t[i]
            gy[i] += np.sign(d) * (abs(d) / norm) ** (metric - 1) / n * scale

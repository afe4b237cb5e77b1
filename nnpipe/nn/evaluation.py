"""A trained loss measured on samples it does not train on (nn_train's validation set): each
sample's loss, forward only (as nn_eval runs the network), computed by the loss layer's own
compiled kernel, so it is the very quantity training reports, and a classifier's accuracy."""

import numpy as np

from nnpipe.nn import engine
from nnpipe.nn.layers import IN0, IN1, count, loss

CLASSIFIER_LOSSES = ("loss_softmax_crossentropy", "loss_crossentropy")


def truth_columns(plan):
    """The columns of the samples matrix that feed the loss's ground truth."""
    start = 0
    for _, offset, length in plan.feeds:
        if offset == plan.loss_rows[0][IN1]:
            return slice(start, start + length)
        start += length
    raise ValueError("the loss's ground truth is not fed from the samples")


def is_classifier(network, loss_name):
    """A cross-entropy loss over several values: the largest prediction names a class."""
    module = network.modules[loss_name]
    return module.layer.kind in CLASSIFIER_LOSSES and count(network.modules[module.inputs[0]].size) > 1


def measure(plan, params, samples, classifier):
    """(mean loss, accuracy or None) of a loss plan over every row of `samples`. With
    `classifier`, the accuracy is the share of samples whose largest prediction is where their
    ground truth is largest (nn_classify's rule)."""
    predictions = engine.infer(plan, params, samples)
    truth = np.ascontiguousarray(samples[:, truth_columns(plan)])
    count, values = predictions.shape
    # the kernel reads a chunk feature-major (value k of sample c at k * count + c): the
    # prediction, then the ground truth; it also writes a gradient, unused here (scale 0)
    acts = np.concatenate([predictions.T.ravel(), truth.T.ravel()]).astype(np.float32)
    op = plan.loss_rows[0].copy()  # nn_train refuses a validation set with several losses
    op[IN0], op[IN1] = 0, values
    losses = np.empty(count, dtype=np.float32)
    loss.loss(op, plan.loss_reals[0], acts, np.zeros_like(acts), losses, count, count, 0.0)
    accuracy = float(np.mean(predictions.argmax(axis=1) == truth.argmax(axis=1))) if classifier else None
    return float(losses.mean(dtype=np.float64)), accuracy

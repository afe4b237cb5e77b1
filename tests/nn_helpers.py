"""Helpers for the neural-network tests: build networks through the real interpreter, and run
the engine's kernels directly on small batches (loss, analytic gradients)."""

import io

import numpy as np

import nnpipe.cli  # noqa: F401  (importing the CLI registers every command family)
from nnpipe.commands import load_all
from nnpipe.lang.interpreter import Interpreter
from nnpipe.nn.chunks import load_chunk
from nnpipe.nn.layers import INPUT_GRADIENTS


def interpreter(seed=0, api="2023"):
    return Interpreter(load_all(), seed=seed, quiet=True, out=io.StringIO(), err=io.StringIO(), api=api)


def build(script, seed=0, api="2023"):
    """An interpreter that has run `script` (items separated by white space) in nn_lib's `api`."""
    interp = interpreter(seed, api)
    interp.run_source(script, "test.nnp")
    return interp


def parameters(interp, plan):
    """The plan's parameter vector, read from the images of `interp`'s list."""
    images = interp.workspace.images
    return plan.gather({name: images.get(plan.network.image_name(name)) for name, _, _ in plan.parameters})


def _forward(plan, params, samples, training, seed, dtype):
    """A forward pass over one chunk holding every row of `samples` (B, feed values); the
    engine's buffers are feature-major: value k of the module at offset o for sample c is at
    (o + k) * B + c. The kernels are typed by their arguments: float32 is what users run,
    float64 lets gradient checks tell a wrong derivative from rounding."""
    samples = np.ascontiguousarray(samples, dtype=dtype)
    params = np.ascontiguousarray(params, dtype=dtype)
    batch = samples.shape[0]
    acts = np.zeros(plan.width * batch, dtype=dtype)
    stats = np.zeros(plan.stats_width, dtype=dtype)
    load_chunk(plan.feed_table, samples, np.arange(batch), acts, batch)
    kernels = plan.kernels()
    kernels.module.forward_ops(
        plan.ops,
        plan.reals,
        acts,
        params,
        batch,
        batch,
        training,
        seed,
        stats,
        kernels.table(dtype),
    )
    return acts, params, batch


def run_batch(plan, params, samples, training=False, seed=0, dtype=np.float32, as_trained=False):
    """Forward, loss and backward over every row of `samples` (B, feed values).

    Returns (the sum over the plan's losses of their batch means, as float64, parameter
    gradients, gradients of the samples). Training skips the samples' gradients; these
    checks ask for them, unless `as_trained`."""
    acts, params, batch = _forward(plan, params, samples, training, seed, dtype)
    grad_acts = np.zeros_like(acts)
    losses = np.empty((len(plan.loss_rows), batch), dtype=dtype)
    kernels = plan.kernels()
    table = kernels.table(dtype)
    kernels.module.loss_ops(
        plan.loss_rows, plan.loss_reals, acts, grad_acts, losses, 0, batch, batch, dtype(1.0 / batch), table
    )
    grads = np.zeros(plan.parameter_size, dtype=dtype)
    ops = plan.ops.copy()
    if not as_trained:
        ops[:, INPUT_GRADIENTS] = 1
    kernels.module.backward_ops(ops, plan.reals, acts, grad_acts, params, grads, batch, seed, table)
    per_value = grad_acts.reshape(plan.width, batch).T
    sample_grads = np.concatenate(
        [per_value[:, offset : offset + length] for offset, length in plan.feed_table], axis=1
    )
    return float(losses.astype(np.float64).mean(axis=1).sum()), grads, sample_grads


def activations(plan, params, samples, training=False, seed=0, dtype=np.float32):
    """The activations after a forward pass over `samples`: (B, plan.width), sample-major."""
    acts, _, batch = _forward(plan, params, samples, training, seed, dtype)
    return acts.reshape(plan.width, batch).T.copy()

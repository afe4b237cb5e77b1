"""The engine's compiled driver, as a template: nnpipe.nn.compiled appends to this text the
dispatch generated for one set of layer types and one trainer (forward_ops, backward_ops,
loss_ops, after_step_ops: a branch per layer type the network uses, nothing else;
optimizer_step, scheduler_step: its trainer's optimizer and scheduler) and imports the result
as a module of its own, cached on disk, so a network compiles only its own kernels. The
dispatch calls them through their addresses, in the table `addresses` that every function here
takes last and passes on (see nnpipe.nn.kernel_calls). This file is never imported as it is.

A training step runs forward, loss and backward over the mini-batch's chunks, then the
optimizer's update. train_serial does it on the calling thread; train_parallel shares the
chunks out among the threads inside one parallel region per step, each thread accumulating
gradients and statistics in its own buffers, summed once per step. Both are compiled only
when first called: a small batch never pays for the parallel one.
"""

import math

import numba
import numpy as np
from numba import prange

from nnpipe.nn import optimizers, schedulers  # noqa: F401 (optimizer_step calls one)
from nnpipe.nn.chunks import all_finite, load_chunk, sample_indices
from nnpipe.nn.layers import copy_values


@numba.njit(cache=True, inline="always")
def thread_chunks(
    t,
    threads,
    ops,
    reals,
    loss_rows,
    loss_reals,
    feeds,
    samples,
    indices,
    width,
    acts,
    grad_acts,
    params,
    grads,
    stats,
    losses,
    seed,
    scale,
    addresses,
):
    """Chunks t, t + threads, ... of the batch `indices`: forward, loss, backward. Gradients
    and statistics add up in `grads` and `stats`, zeroed first."""
    batch = indices.size
    grads[:] = 0
    stats[:] = 0
    for chunk in range(t, (batch + width - 1) // width, threads):
        first = chunk * width
        valid = min(width, batch - first)
        load_chunk(feeds, samples, indices[first : first + valid], acts, width)
        forward_ops(ops, reals, acts, params, width, valid, True, seed, stats, addresses)
        grad_acts[:] = 0
        loss_ops(loss_rows, loss_reals, acts, grad_acts, losses, first, width, valid, scale, addresses)
        backward_ops(ops, reals, acts, grad_acts, params, grads, width, seed, addresses)


@numba.njit(cache=True, inline="always")
def update(ops, params, grads, mask, moments, state, stats, batch, value, addresses):
    """The end of a step: the layers' after-step hooks (running statistics), the optimizer's
    update, the scheduler. False when the update left a parameter non-finite."""
    after_step_ops(ops, params, stats, batch, addresses)
    optimizer_step(params, grads, mask, moments, state[schedulers.RATE], int(state[schedulers.ITERATION]) + 1)
    scheduler_step(state, value)
    schedulers.end_step(state, value)
    return all_finite(params)


@numba.njit(cache=True)
def train_serial(
    ops,
    reals,
    loss_rows,
    loss_reals,
    feeds,
    samples,
    iterations,
    batch,
    width,
    params,
    mask,
    moments,
    state,
    acts,
    grad_acts,
    thread_grads,
    thread_stats,
    indices,
    losses,
    losses_out,
    addresses,
):
    """Run `iterations` training steps; return how many completed. Fewer: a non-finite loss
    stopped the run, the parameters left as they were before that step; a negative count -k-1:
    step k's update left a parameter non-finite (the caller puts back the weights of before
    it). The loss of a step is the sum of the network's losses, each the mean over the batch;
    their gradients add up."""
    seed = int(state[schedulers.SEED])
    scale = np.float32(1.0 / batch)
    for step in range(iterations):
        iteration = int(state[schedulers.ITERATION])
        sample_indices(seed, iteration, samples.shape[0], indices)
        thread_chunks(
            0,
            1,
            ops,
            reals,
            loss_rows,
            loss_reals,
            feeds,
            samples,
            indices,
            width,
            acts[0],
            grad_acts[0],
            params,
            thread_grads[0],
            thread_stats[0],
            losses,
            seed + iteration,
            scale,
            addresses,
        )
        value = losses.sum() / batch
        if not math.isfinite(value):
            return step
        losses_out[step] = value
        if not update(
            ops, params, thread_grads[0], mask, moments, state, thread_stats[0], batch, value, addresses
        ):
            return -step - 1
    return iterations


@numba.njit(parallel=True, cache=True)
def train_parallel(
    ops,
    reals,
    loss_rows,
    loss_reals,
    feeds,
    samples,
    iterations,
    batch,
    width,
    params,
    mask,
    moments,
    state,
    acts,
    grad_acts,
    thread_grads,
    thread_stats,
    indices,
    losses,
    losses_out,
    addresses,
):
    """train_serial, the chunks of each step shared out among the threads."""
    threads = thread_grads.shape[0]
    seed = int(state[schedulers.SEED])
    scale = np.float32(1.0 / batch)
    for step in range(iterations):
        iteration = int(state[schedulers.ITERATION])
        sample_indices(seed, iteration, samples.shape[0], indices)
        for t in prange(threads):
            thread_chunks(
                t,
                threads,
                ops,
                reals,
                loss_rows,
                loss_reals,
                feeds,
                samples,
                indices,
                width,
                acts[t],
                grad_acts[t],
                params,
                thread_grads[t],
                thread_stats[t],
                losses,
                seed + iteration,
                scale,
                addresses,
            )
        value = losses.sum() / batch
        if not math.isfinite(value):
            return step
        for t in range(1, threads):
            thread_grads[0] += thread_grads[t]
            thread_stats[0] += thread_stats[t]
        losses_out[step] = value
        if not update(
            ops, params, thread_grads[0], mask, moments, state, thread_stats[0], batch, value, addresses
        ):
            return -step - 1
    return iterations


@numba.njit(cache=True, inline="always")
def infer_chunks(
    t,
    threads,
    ops,
    reals,
    feeds,
    samples,
    rows,
    params,
    width,
    acts,
    no_stats,
    output_offset,
    result,
    addresses,
):
    """The forward pass over chunks t, t + threads, ... of the samples `rows`; the output into
    `result`."""
    count = rows.size
    for chunk in range(t, (count + width - 1) // width, threads):
        first = chunk * width
        valid = min(width, count - first)
        load_chunk(feeds, samples, rows[first : first + valid], acts, width)
        forward_ops(ops, reals, acts, params, width, valid, False, 0, no_stats, addresses)
        for j in range(result.shape[1]):
            at = (output_offset + j) * width
            copy_values(acts[at : at + valid], result[first : first + valid, j])


@numba.njit(cache=True)
def infer_serial(
    ops, reals, feeds, samples, rows, params, width, acts, no_stats, output_offset, result, addresses
):
    infer_chunks(
        0,
        1,
        ops,
        reals,
        feeds,
        samples,
        rows,
        params,
        width,
        acts[0],
        no_stats,
        output_offset,
        result,
        addresses,
    )


@numba.njit(parallel=True, cache=True)
def infer_parallel(
    ops, reals, feeds, samples, rows, params, width, acts, no_stats, output_offset, result, addresses
):
    threads = acts.shape[0]
    for t in prange(threads):
        infer_chunks(
            t,
            threads,
            ops,
            reals,
            feeds,
            samples,
            rows,
            params,
            width,
            acts[t],
            no_stats,
            output_offset,
            result,
            addresses,
        )

"""The engine: a network compiled once into a flat plan, run by Numba.

A plan is a table of rows (one per computing module: opcode, buffer offsets and lengths,
parameter offset, small arguments) over three flat buffers: the activations of every sample
of the batch (one row per sample), the parameters of the whole network (one vector), and the
gradients. A training step runs forward, loss, backward for the whole mini-batch inside one
parallel region, the samples split into one chunk per thread, each thread accumulating
gradients in its own buffer; the buffers are summed once, then the optimizer updates every
parameter. Nothing in Python runs per sample or per layer.
"""

import math

import numba
import numpy as np
from numba import prange

from nnpipe.nn import optimizers, schedulers
from nnpipe.nn.layers import (IN0, IN0_LEN, IN1, IN1_LEN, NO_OP, OPCODE, OUT, OUT_LEN, PARAM,
                              PARAM_LEN, ROW_WIDTH, ARG0, ARG1, ARG2, count)
from nnpipe.nn.layers import dropout, elementwise, fc, loss, nlfc, nonlinearity, normalize

INFERENCE_CHUNK = 64


class Plan:
    """The flat program computing `target` (and, for training, the loss feeding on it)."""

    def __init__(self, network, target):
        self.network = network
        needed = network.ancestors(target)
        self.offsets, self.width = {}, 0
        self.feeds, self.parameters, rows, rates = [], [], [], []
        self.stats_width, parameter_size = 0, 0
        masks = []
        for name in needed:
            module = network.modules[name]
            layer = module.layer
            if layer.alias:
                self.offsets[name] = self.offsets[module.inputs[0]]
                continue
            self.offsets[name] = self.width
            self.width += count(module.size)
            input_sizes = [network.modules[i].size for i in module.inputs]
            if layer.inputs == 0:
                self.feeds.append((name, self.offsets[name], count(module.size)))
                continue
            row = np.zeros(ROW_WIDTH, dtype=np.int64)
            row[OPCODE] = layer.opcode
            row[IN0], row[IN0_LEN] = self.offsets[module.inputs[0]], count(input_sizes[0])
            if len(module.inputs) > 1:
                row[IN1], row[IN1_LEN] = self.offsets[module.inputs[1]], count(input_sizes[1])
            row[OUT], row[OUT_LEN] = self.offsets[name], count(module.size)
            shape = layer.parameter_shape(input_sizes)
            if shape is not None:
                length = int(np.prod(shape))
                row[PARAM], row[PARAM_LEN] = parameter_size, length
                self.parameters.append((name, parameter_size, shape))
                masks.append(layer.trainable(input_sizes))
                parameter_size += length
            integers, rate = layer.arguments(input_sizes)
            row[ARG0:ARG0 + len(integers)] = integers
            if layer.opcode == normalize.OPCODE:
                row[ARG1] = self.stats_width
                self.stats_width += 2 * integers[0]
            rows.append(row)
            rates.append(rate)
        self.is_loss = network.modules[target].layer.opcode == loss.OPCODE
        if self.is_loss:
            self.loss_row = rows.pop()
            rates.pop()
        self.ops = np.array(rows, dtype=np.int64).reshape(-1, ROW_WIDTH)
        self.rates = np.array(rates, dtype=np.float32)
        self.mask = np.concatenate(masks) if masks else np.zeros(0, dtype=np.float32)
        self.parameter_size = parameter_size
        target_module = network.modules[target]
        prediction = target_module.inputs[0] if self.is_loss else target
        self.output = (self.offsets[prediction], count(network.modules[prediction].size))
        self.feed_table = np.array([(offset, length) for _, offset, length in self.feeds],
                                   dtype=np.int64).reshape(-1, 2)

    @property
    def feed_width(self):
        return int(self.feed_table[:, 1].sum())

    def gather(self, images):
        """The parameter vector, read from the parameter images."""
        vector = np.empty(self.parameter_size, dtype=np.float32)
        for name, offset, shape in self.parameters:
            vector[offset:offset + int(np.prod(shape))] = images[name].ravel()
        return vector

    def scatter(self, vector, shapes_from=None):
        """Split a parameter-sized vector into {name: image}."""
        return {name: vector[offset:offset + int(np.prod(shape))].reshape(shape).copy()
                for name, offset, shape in self.parameters}


# --- kernels dispatch ---------------------------------------------------------------------------

@numba.njit(cache=True)
def forward_ops(ops, rates, acts, params, b0, b1, training, seed, stats):
    for i in range(ops.shape[0]):
        op = ops[i]
        code = op[OPCODE]
        if code == fc.OPCODE:
            fc.forward(op, acts, params, b0, b1)
        elif code == nonlinearity.OPCODE:
            nonlinearity.forward(op, acts, b0, b1)
        elif code == elementwise.OPCODE:
            elementwise.forward(op, acts, b0, b1)
        elif code == normalize.OPCODE:
            normalize.forward(op, acts, params, b0, b1, stats)
        elif code == dropout.OPCODE:
            dropout.forward(op, rates[i], acts, b0, b1, training, seed)
        elif code == nlfc.OPCODE:
            nlfc.forward(op, acts, params, b0, b1)


@numba.njit(cache=True)
def backward_ops(ops, rates, acts, grad_acts, params, grads, b0, b1, seed):
    for i in range(ops.shape[0] - 1, -1, -1):
        op = ops[i]
        code = op[OPCODE]
        if code == fc.OPCODE:
            fc.backward(op, acts, grad_acts, params, grads, b0, b1)
        elif code == nonlinearity.OPCODE:
            nonlinearity.backward(op, acts, grad_acts, b0, b1)
        elif code == elementwise.OPCODE:
            elementwise.backward(op, acts, grad_acts, b0, b1)
        elif code == normalize.OPCODE:
            normalize.backward(op, acts, grad_acts, params, grads, b0, b1)
        elif code == dropout.OPCODE:
            dropout.backward(op, rates[i], grad_acts, b0, b1, seed)
        elif code == nlfc.OPCODE:
            nlfc.backward(op, acts, grad_acts, params, grads, b0, b1)


@numba.njit(cache=True)
def load_samples(feeds, samples, indices, acts, b0, b1):
    for b in range(b0, b1):
        column = 0
        sample = samples[indices[b]]
        for f in range(feeds.shape[0]):
            offset, length = feeds[f, 0], feeds[f, 1]
            acts[b, offset:offset + length] = sample[column:column + length]
            column += length


@numba.njit(cache=True)
def sample_indices(seed, iteration, count, batch, out):
    """Mini-batch `iteration`: `batch` sample indices drawn from a counter-based hash, so
    training resumed from a saved trainer draws exactly the batches it would have drawn."""
    for b in range(batch):
        out[b] = int(dropout.uniform(seed, iteration, b + 1 << 20) * count)


# --- training ------------------------------------------------------------------------------------

@numba.njit(parallel=True, cache=True)
def train_steps(ops, rates, loss_row, feeds, samples, iterations, batch, params, mask, moments,
                state, optimizer, scheduler, thread_grads, thread_stats, losses_out):
    """Run `iterations` training steps; return how many completed (fewer: non-finite loss)."""
    threads = thread_grads.shape[0]
    width = 0
    for i in range(ops.shape[0]):
        width = max(width, ops[i, OUT] + ops[i, OUT_LEN])
    for f in range(feeds.shape[0]):
        width = max(width, feeds[f, 0] + feeds[f, 1])
    acts = np.zeros((batch, width), dtype=np.float32)
    grad_acts = np.zeros((batch, width), dtype=np.float32)
    indices = np.empty(batch, dtype=np.int64)
    losses = np.empty(batch, dtype=np.float32)
    grads = np.empty(params.size, dtype=np.float32)
    seed = int(state[schedulers.SEED])
    scale = np.float32(1.0 / batch)
    for step in range(iterations):
        iteration = int(state[schedulers.ITERATION])
        sample_indices(seed, iteration, samples.shape[0], batch, indices)
        for t in prange(threads):
            b0, b1 = t * batch // threads, (t + 1) * batch // threads
            thread_grads[t, :] = 0
            thread_stats[t, :] = 0
            grad_acts[b0:b1, :] = 0
            load_samples(feeds, samples, indices, acts, b0, b1)
            forward_ops(ops, rates, acts, params, b0, b1, True, seed + iteration, thread_stats[t])
            loss.loss(loss_row, acts, grad_acts, losses, b0, b1, scale)
            backward_ops(ops, rates, acts, grad_acts, params, thread_grads[t], b0, b1, seed + iteration)
        value = losses.sum() / batch
        if not math.isfinite(value):
            return step
        grads[:] = thread_grads[0]
        for t in range(1, threads):
            grads += thread_grads[t]
        stats = thread_stats.sum(axis=0) if threads > 1 else thread_stats[0]
        for i in range(ops.shape[0]):
            if ops[i, OPCODE] == normalize.OPCODE:
                normalize.update_running(ops[i], params, stats, batch)
        optimizers.update(optimizer, params, grads, mask, moments, state[schedulers.RATE], iteration)
        schedulers.update(scheduler, state, value)
        losses_out[step] = value
    return iterations


def train(plan, params, moments, state, samples, iterations, batch, optimizer, scheduler, losses_out):
    threads = numba.get_num_threads()
    thread_grads = np.zeros((threads, plan.parameter_size), dtype=np.float32)
    thread_stats = np.zeros((threads, max(plan.stats_width, 1)), dtype=np.float32)
    return train_steps(plan.ops, plan.rates, plan.loss_row, plan.feed_table, samples, iterations,
                       batch, params, plan.mask, moments, state, optimizer, scheduler,
                       thread_grads, thread_stats, losses_out)


# --- inference -----------------------------------------------------------------------------------

@numba.njit(parallel=True, cache=True)
def infer_samples(ops, rates, feeds, samples, params, width, output_offset, result):
    count = samples.shape[0]
    chunks = (count + INFERENCE_CHUNK - 1) // INFERENCE_CHUNK
    identity = np.arange(count)
    no_stats = np.zeros(0, dtype=np.float32)
    for c in prange(chunks):
        b0 = c * INFERENCE_CHUNK
        b1 = min(b0 + INFERENCE_CHUNK, count)
        acts = np.empty((b1 - b0, width), dtype=np.float32)
        load_samples(feeds, samples[b0:b1], identity, acts, 0, b1 - b0)
        forward_ops(ops, rates, acts, params, 0, b1 - b0, False, 0, no_stats)
        result[b0:b1] = acts[:, output_offset:output_offset + result.shape[1]]


def infer(plan, params, samples):
    """Run the plan forward on every row of `samples` (N, feed values); return (N, outputs)."""
    result = np.empty((samples.shape[0], plan.output[1]), dtype=np.float32)
    if samples.shape[0]:
        infer_samples(plan.ops, plan.rates, plan.feed_table, np.ascontiguousarray(samples),
                      params, plan.width, plan.output[0], result)
    return result

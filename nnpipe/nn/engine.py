"""The engine: a network compiled once into a flat plan, run by Numba.

A plan is a table of rows (one per computing module: opcode, buffer offsets and lengths,
parameter offset, small arguments) over flat buffers: the activations of a chunk of samples
(feature-major, so inner loops run over samples and vectorize), the parameters of the whole
network (one vector), and the gradients. A training step runs forward, loss and backward for
the whole mini-batch inside one parallel region, its chunks shared out among the threads,
each thread accumulating gradients in its own buffer; the buffers are summed once, then the
optimizer updates every parameter. Nothing in Python runs per sample or per layer, except in
a network with nn_run layers: their forward pass runs a command of the language, so the plan
is run in compiled parts between them, one chunk at a time.
"""

import contextlib
import math
import threading

import numba
import numpy as np
from numba import prange
from numba.core import event

from nnpipe.nn import optimizers, schedulers
from nnpipe.nn.layers import (ARG0, ARG1, IN0, IN0_LEN, IN1, IN1_LEN, IN_S, IN_W, OPCODE, OUT,
                              OUT_LEN, OUT_S, OUT_W, PARAM, PARAM_LEN, ROW_WIDTH, count)
from nnpipe.nn.layers import dropout, elementwise, fc, loss, nlfc, nonlinearity, normalize
from nnpipe.nn.layers import append, conv, crop, distance, gather, patch, pool, resize, run


# --- saying that Numba compiles ------------------------------------------------------------------

COMPILING = "compiling kernels for this network (first run only)…"
NOTICE_DELAY = 1.0  # seconds a compile lasts before the user is told why nothing happens


class _CompileNotice(event.Listener):
    """Listens to Numba's compile events (sent on a cache miss only, never when the kernels
    load from the disk cache): once an outermost compile has lasted NOTICE_DELAY, says
    COMPILING through `notice`, once a process."""

    announced = False

    def __init__(self, notice):
        self.notice = notice
        self.depth = 0  # compiling a kernel compiles the kernels it calls inside its event
        self.timer = None

    def on_start(self, _):
        self.depth += 1
        if self.depth == 1 and not _CompileNotice.announced:
            self.timer = threading.Timer(NOTICE_DELAY, self.announce)
            self.timer.daemon = True  # never keeps an interrupted process alive
            self.timer.start()

    def on_end(self, _):
        self.depth -= 1
        if self.depth == 0:
            self.cancel()

    def cancel(self):
        if self.timer:
            self.timer.cancel()
            self.timer = None

    def announce(self):
        if not _CompileNotice.announced:
            _CompileNotice.announced = True
            self.notice(COMPILING)


@contextlib.contextmanager
def compile_notice(notice):
    """Around engine calls: `notice(COMPILING)` if Numba compiles for more than NOTICE_DELAY
    inside the block (a command passes ctx.notice, which --quiet silences)."""
    listener = _CompileNotice(notice)
    with event.install_listener("numba:compile", listener):
        try:
            yield
        finally:
            listener.cancel()


class Plan:
    """The flat program computing `targets`: one layer (inference), or every loss of the
    network (training: forward, then each loss, then backward)."""

    def __init__(self, network, targets):
        self.network = network
        needed = network.ancestors(*targets)
        self.offsets, self.width = {}, 0
        self.feeds, self.parameters, rows, rates, loss_rows = [], [], [], [], []
        self.callbacks = []   # (row in ops, command) of the nn_run layers
        self.stats_width, parameter_size = 0, 0
        masks = []
        for name in needed:
            module = network.modules[name]
            layer = module.layer
            input_sizes = [network.modules[i].size for i in module.inputs]
            if layer.alias:
                self.offsets[name] = self.offsets[module.inputs[0]] + layer.alias_offset(input_sizes)
                continue
            self.offsets[name] = self.width
            self.width += count(module.size)
            if layer.inputs == 0:
                self.feeds.append((name, self.offsets[name], count(module.size)))
                continue
            row = np.zeros(ROW_WIDTH, dtype=np.int64)
            row[OPCODE] = layer.opcode
            row[IN0], row[IN0_LEN] = self.offsets[module.inputs[0]], count(input_sizes[0])
            if len(module.inputs) > 1:
                row[IN1], row[IN1_LEN] = self.offsets[module.inputs[1]], count(input_sizes[1])
            row[OUT], row[OUT_LEN] = self.offsets[name], count(module.size)
            row[IN_W:IN_S + 1], row[OUT_W:OUT_S + 1] = input_sizes[0], module.size
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
            if layer.opcode == loss.OPCODE:  # losses feed no layer: they run after the forward pass
                loss_rows.append(row)
                continue
            if layer.opcode == run.OPCODE:
                self.callbacks.append((len(rows), layer.options["command"]))
            rows.append(row)
            rates.append(rate)
        self.is_loss = all(network.modules[t].layer.opcode == loss.OPCODE for t in targets)
        self.loss_rows = np.array(loss_rows, dtype=np.int64).reshape(-1, ROW_WIDTH)
        self.ops = np.array(rows, dtype=np.int64).reshape(-1, ROW_WIDTH)
        self.rates = np.array(rates, dtype=np.float32)
        self.mask = np.concatenate(masks) if masks else np.zeros(0, dtype=np.float32)
        self.parameter_size = parameter_size
        target_module = network.modules[targets[-1]]
        prediction = target_module.inputs[0] if self.is_loss else targets[-1]
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

    def scatter(self, vector):
        """Split a parameter-sized vector into {name: image}."""
        return {name: vector[offset:offset + int(np.prod(shape))].reshape(shape).copy()
                for name, offset, shape in self.parameters}


# --- kernels dispatch ---------------------------------------------------------------------------
# Buffers hold one chunk of samples feature-major: value k of the module at offset o, for the
# chunk's sample c, is at (o + k) * width + c. `valid` samples are real; the rest pad the chunk.

@numba.njit(cache=True)
def forward_ops(ops, rates, acts, params, width, valid, training, seed, stats):
    for i in range(ops.shape[0]):
        op = ops[i]
        code = op[OPCODE]
        if code == fc.OPCODE:
            fc.forward(op, acts, params, width)
        elif code == nonlinearity.OPCODE:
            nonlinearity.forward(op, acts, width)
        elif code == elementwise.OPCODE:
            elementwise.forward(op, acts, width)
        elif code == normalize.OPCODE:
            normalize.forward(op, acts, params, width, valid, stats)
        elif code == dropout.OPCODE:
            dropout.forward(op, rates[i], acts, width, training, seed)
        elif code == nlfc.OPCODE:
            nlfc.forward(op, acts, params, width)
        elif code == append.OPCODE:
            append.forward(op, acts, width)
        elif code == crop.OPCODE:
            gather.forward(op, acts, width, crop.sources(op))
        elif code == resize.OPCODE:
            resize.resample(op, acts, width, False)
        elif code == patch.OPCODE:
            gather.forward(op, acts, width, patch.sources(op))
        elif code == distance.OPCODE:
            distance.forward(op, rates[i], acts, width)
        elif code == conv.OPCODE:
            conv.forward(op, acts, params, width)
        elif code == pool.OPCODE:
            pool.forward(op, acts, width)


@numba.njit(cache=True)
def backward_ops(ops, rates, acts, grad_acts, params, grads, width, seed):
    for i in range(ops.shape[0] - 1, -1, -1):
        op = ops[i]
        code = op[OPCODE]
        if code == fc.OPCODE:
            fc.backward(op, acts, grad_acts, params, grads, width)
        elif code == nonlinearity.OPCODE:
            nonlinearity.backward(op, acts, grad_acts, width)
        elif code == elementwise.OPCODE:
            elementwise.backward(op, acts, grad_acts, width)
        elif code == normalize.OPCODE:
            normalize.backward(op, acts, grad_acts, params, grads, width)
        elif code == dropout.OPCODE:
            dropout.backward(op, rates[i], grad_acts, width, seed)
        elif code == nlfc.OPCODE:
            nlfc.backward(op, acts, grad_acts, params, grads, width)
        elif code == append.OPCODE:
            append.backward(op, grad_acts, width)
        elif code == crop.OPCODE:
            gather.backward(op, grad_acts, width, crop.sources(op))
        elif code == resize.OPCODE:
            resize.resample(op, grad_acts, width, True)
        elif code == patch.OPCODE:
            gather.backward(op, grad_acts, width, patch.sources(op))
        elif code == distance.OPCODE:
            distance.backward(op, rates[i], acts, grad_acts, width)
        elif code == conv.OPCODE:
            conv.backward(op, acts, grad_acts, params, grads, width)
        elif code == pool.OPCODE:
            pool.backward(op, acts, grad_acts, width)
        elif code == run.OPCODE:
            run.backward(op, grad_acts, width)


@numba.njit(cache=True)
def load_chunk(feeds, samples, rows, acts, width):
    """Copy the samples `rows` into the input buffers of a chunk; zeros pad the chunk."""
    column = 0
    for f in range(feeds.shape[0]):
        offset, length = feeds[f, 0], feeds[f, 1]
        for j in range(length):
            target = acts[(offset + j) * width:(offset + j + 1) * width]
            for c in range(rows.size):
                target[c] = samples[rows[c], column + j]
            target[rows.size:] = 0
        column += length


@numba.njit(cache=True)
def chunk_width(batch, threads, largest):
    """Samples per chunk: enough for the inner loops to vectorize, few enough that every
    thread gets work and a chunk's buffers stay in cache."""
    per_thread = (batch + threads - 1) // threads
    return max(8, min(largest, (per_thread + 7) // 8 * 8))


@numba.njit(cache=True)
def sample_indices(seed, iteration, count, out):
    """Mini-batch `iteration`: sample indices drawn from a counter-based hash, so training
    resumed from a saved trainer state draws exactly the batches it would have drawn. A batch
    as large as the samples (nn_step) takes every sample once."""
    if out.size == count:
        out[:] = np.arange(count)
        return
    for b in range(out.size):
        out[b] = int(dropout.uniform(seed, iteration, b - out.size) * count)


# --- training ------------------------------------------------------------------------------------

TRAIN_CHUNK = 64


@numba.njit(parallel=True, cache=True)
def train_steps(ops, rates, loss_rows, feeds, samples, iterations, batch, values, params, mask,
                moments, state, optimizer, scheduler, thread_grads, thread_stats, losses_out):
    """Run `iterations` training steps; return how many completed (fewer: non-finite loss,
    the parameters left as they were before that step). The loss of a step is the sum of the
    network's losses, each the mean over the batch; their gradients add up."""
    threads = thread_grads.shape[0]
    width = chunk_width(batch, threads, TRAIN_CHUNK)
    chunks = (batch + width - 1) // width
    acts = np.zeros((threads, values * width), dtype=np.float32)
    grad_acts = np.zeros((threads, values * width), dtype=np.float32)
    indices = np.empty(batch, dtype=np.int64)
    losses = np.empty((loss_rows.shape[0], batch), dtype=np.float32)
    grads = np.empty(params.size, dtype=np.float32)
    seed = int(state[schedulers.SEED])
    scale = np.float32(1.0 / batch)
    for step in range(iterations):
        iteration = int(state[schedulers.ITERATION])
        sample_indices(seed, iteration, samples.shape[0], indices)
        for t in prange(threads):
            thread_grads[t, :] = 0
            thread_stats[t, :] = 0
            for chunk in range(t, chunks, threads):
                first = chunk * width
                valid = min(width, batch - first)
                load_chunk(feeds, samples, indices[first:first + valid], acts[t], width)
                grad_acts[t, :] = 0
                forward_ops(ops, rates, acts[t], params, width, valid, True, seed + iteration,
                            thread_stats[t])
                for j in range(loss_rows.shape[0]):
                    loss.loss(loss_rows[j], acts[t], grad_acts[t], losses[j, first:first + valid],
                              width, valid, scale)
                backward_ops(ops, rates, acts[t], grad_acts[t], params, thread_grads[t], width,
                             seed + iteration)
        value = losses.sum() / batch
        if not math.isfinite(value):
            return step
        grads[:] = thread_grads[0]
        for t in range(1, threads):
            grads += thread_grads[t]
        update(ops, params, grads, mask, moments, state, optimizer, scheduler, thread_stats.sum(axis=0),
               batch, value)
        losses_out[step] = value
    return iterations


@numba.njit(cache=True)
def update(ops, params, grads, mask, moments, state, optimizer, scheduler, stats, batch, value):
    """The end of a step: running statistics, the optimizer's update, the scheduler."""
    for i in range(ops.shape[0]):
        if ops[i, OPCODE] == normalize.OPCODE:
            normalize.update_running(ops[i], params, stats, batch)
    optimizers.update(optimizer, params, grads, mask, moments, state[schedulers.RATE],
                      int(state[schedulers.ITERATION]))
    schedulers.update(scheduler, state, value)


def train(plan, params, moments, state, samples, iterations, batch, optimizer, scheduler, losses_out,
          runner=None):
    """`runner(command, image)`: runs nn_run's commands (see nnpipe.nn.layers.run)."""
    if plan.callbacks:
        return train_calling_back(plan, params, moments, state, samples, iterations, batch,
                                  optimizer, scheduler, losses_out, runner)
    threads = numba.get_num_threads()
    thread_grads = np.zeros((threads, plan.parameter_size), dtype=np.float32)
    thread_stats = np.zeros((threads, plan.stats_width), dtype=np.float32)
    return train_steps(plan.ops, plan.rates, plan.loss_rows, plan.feed_table, samples, iterations,
                       batch, plan.width, params, plan.mask, moments, state, optimizer, scheduler,
                       thread_grads, thread_stats, losses_out)


def forward_calling_back(plan, acts, params, width, valid, training, seed, stats, runner):
    """The forward pass of a plan with nn_run layers: compiled parts, and the commands
    between them."""
    start = 0
    for row, command in plan.callbacks:
        forward_ops(plan.ops[start:row], plan.rates[start:row], acts, params, width, valid, training,
                    seed, stats)
        run.forward(plan.ops[row], command, acts, width, valid, runner)
        start = row + 1
    forward_ops(plan.ops[start:], plan.rates[start:], acts, params, width, valid, training, seed, stats)


def train_calling_back(plan, params, moments, state, samples, iterations, batch, optimizer,
                       scheduler, losses_out, runner):
    """train_steps for a plan with nn_run layers: the whole batch as one chunk, one step after
    the other, the same draws, losses and updates."""
    acts = np.empty(plan.width * batch, dtype=np.float32)
    grad_acts = np.empty_like(acts)
    indices = np.empty(batch, dtype=np.int64)
    losses = np.empty((len(plan.loss_rows), batch), dtype=np.float32)
    seed = int(state[schedulers.SEED])
    for step in range(iterations):
        iteration = int(state[schedulers.ITERATION])
        sample_indices(seed, iteration, samples.shape[0], indices)
        acts[:], grad_acts[:] = 0, 0
        grads = np.zeros(plan.parameter_size, dtype=np.float32)
        stats = np.zeros(plan.stats_width, dtype=np.float32)
        load_chunk(plan.feed_table, samples, indices, acts, batch)
        forward_calling_back(plan, acts, params, batch, batch, True, seed + iteration, stats, runner)
        for row, row_losses in zip(plan.loss_rows, losses):
            loss.loss(row, acts, grad_acts, row_losses, batch, batch, np.float32(1.0 / batch))
        value = float(losses.sum()) / batch
        if not math.isfinite(value):
            return step
        backward_ops(plan.ops, plan.rates, acts, grad_acts, params, grads, batch, seed + iteration)
        update(plan.ops, params, grads, plan.mask, moments, state, optimizer, scheduler, stats,
               batch, value)
        losses_out[step] = value
    return iterations


# --- inference -----------------------------------------------------------------------------------

INFERENCE_CHUNK = 64


@numba.njit(parallel=True, cache=True)
def infer_samples(ops, rates, feeds, samples, params, values, output_offset, threads, result):
    count = samples.shape[0]
    width = chunk_width(count, threads, INFERENCE_CHUNK)
    chunks = (count + width - 1) // width
    rows = np.arange(count)
    no_stats = np.zeros(0, dtype=np.float32)
    for t in prange(threads):
        acts = np.empty(values * width, dtype=np.float32)
        for chunk in range(t, chunks, threads):
            first = chunk * width
            valid = min(width, count - first)
            load_chunk(feeds, samples, rows[first:first + valid], acts, width)
            forward_ops(ops, rates, acts, params, width, valid, False, 0, no_stats)
            for j in range(result.shape[1]):
                result[first:first + valid, j] = acts[(output_offset + j) * width:(output_offset + j) * width + valid]


def infer(plan, params, samples, runner=None):
    """Run the plan forward on every row of `samples` (N, feed values); return (N, outputs).
    `runner(command, image)`: runs nn_run's commands (see nnpipe.nn.layers.run)."""
    result = np.empty((samples.shape[0], plan.output[1]), dtype=np.float32)
    if plan.callbacks:
        infer_calling_back(plan, params, np.ascontiguousarray(samples), runner, result)
    elif samples.shape[0]:
        infer_samples(plan.ops, plan.rates, plan.feed_table, np.ascontiguousarray(samples),
                      params, plan.width, plan.output[0], numba.get_num_threads(), result)
    return result


def infer_calling_back(plan, params, samples, runner, result):
    """infer_samples for a plan with nn_run layers, a chunk at a time."""
    offset, length = plan.output
    acts = np.empty(plan.width * INFERENCE_CHUNK, dtype=np.float32)
    no_stats = np.zeros(0, dtype=np.float32)
    for first in range(0, samples.shape[0], INFERENCE_CHUNK):
        rows = np.arange(first, min(first + INFERENCE_CHUNK, samples.shape[0]))
        load_chunk(plan.feed_table, samples, rows, acts, INFERENCE_CHUNK)
        forward_calling_back(plan, acts, params, INFERENCE_CHUNK, rows.size, False, 0, no_stats, runner)
        values = acts[offset * INFERENCE_CHUNK:(offset + length) * INFERENCE_CHUNK]
        result[rows] = values.reshape(length, INFERENCE_CHUNK)[:, :rows.size].T

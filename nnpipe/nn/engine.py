"""The engine: a network compiled once into a flat plan, run by Numba.

A plan is a table of rows (one per computing module: opcode, buffer offsets and lengths,
parameter offset, its layer's named arguments) over flat buffers: the activations of a chunk
of samples (feature-major, so inner loops run over samples and vectorize), the parameters of
the whole network (one vector), and the gradients. The plan runs on the compiled engine of
its set of layer types (nnpipe.nn.compiled: the driver of nnpipe.nn.steps and a dispatch
generated from the layer registry). A training step runs forward, loss and backward for the
whole mini-batch in compiled code, on one thread when the batch is too small for more to
pay, else its chunks shared out among the threads; then the optimizer updates every
parameter. Nothing in Python runs per sample or per layer, except in a network with nn_run
layers: their forward kernel calls the language's runner for each sample (Numba's object
mode), so such a plan runs on one thread.
"""

import contextlib
import threading
import time
from dataclasses import dataclass

import numba
import numpy as np
from numba.core import event

from nnpipe.nn import blas, compiled, optimizers, schedulers
from nnpipe.nn.chunks import chunk_width
from nnpipe.nn.layers import (
    COMMAND_RUNNER,
    FIRST_ARGUMENT,
    IN0,
    IN0_LEN,
    IN1,
    IN1_LEN,
    IN_S,
    IN_W,
    INPUT_GRADIENTS,
    MAX_ARGUMENTS,
    OPCODE,
    OUT,
    OUT_LEN,
    OUT_S,
    OUT_W,
    PARAM,
    PARAM_LEN,
    ROW_WIDTH,
    STATS,
    count,
    registry,
)

# --- saying that Numba compiles ------------------------------------------------------------------

COMPILING = "compiling kernels for this network (first run only)"
NOTICE_DELAY = 1.0  # seconds a compile lasts before the user is told why nothing happens


class _CompileNotice(event.Listener):
    """Listens to Numba's compile events (sent on a cache miss only, never when the kernels
    load from the disk cache) and to the compile children's count (compiled.PROGRESS): once an
    outermost compile has lasted NOTICE_DELAY, shows COMPILING on a status line with the
    kernels compiled so far out of all, and ends the line with the compile's time (training's
    kernels, then inference's, are two waits a first run says). Counts the time every
    outermost compile takes (`seconds`)."""

    announcements = 0  # made in this process
    seconds = 0.0  # spent compiling in this process (a progress bar says how much of its time)

    def __init__(self, line):
        self.line = line  # a progress.StatusLine
        self.depth = 0  # compiling a kernel compiles the kernels it calls inside its event
        self.timer = None
        self.started = None
        self.counts = None  # (kernels compiled, kernels to compile), once the children say
        self.showing = False

    def notify(self, happening):
        if happening.kind == compiled.PROGRESS:  # from the threads tending the compile children
            self.counts = happening.data
            if self.showing:
                self.line.show(self.text())
        else:
            super().notify(happening)

    def on_start(self, _):
        self.depth += 1
        if self.depth == 1:
            self.started, self.counts = time.perf_counter(), None
            self.timer = threading.Timer(NOTICE_DELAY, self.announce)
            self.timer.daemon = True  # never keeps an interrupted process alive
            self.timer.start()

    def on_end(self, _):
        self.depth -= 1
        if self.depth == 0:
            seconds = time.perf_counter() - self.started
            _CompileNotice.seconds += seconds
            self.cancel()
            if self.showing:
                self.showing = False
                self.line.end(self.text(seconds))

    def text(self, seconds=None):
        count = f": {self.counts[0]}/{self.counts[1]}" if self.counts else ""
        return COMPILING + count + ("…" if seconds is None else f" in {seconds:.1f}s")

    def cancel(self):
        if self.timer:
            self.timer.cancel()
            self.timer = None

    def announce(self):
        _CompileNotice.announcements += 1
        self.showing = True
        self.line.show(self.text())


def compile_seconds():
    """The time this process has spent compiling inside compile_notice blocks."""
    return _CompileNotice.seconds


@contextlib.contextmanager
def compile_notice(line):
    """Around engine calls: if Numba compiles for more than NOTICE_DELAY inside the block,
    COMPILING and the count of kernels compiled on `line`, a progress.StatusLine (which
    --quiet silences)."""
    listener = _CompileNotice(line)
    with (
        event.install_listener("numba:compile", listener),
        event.install_listener(compiled.PROGRESS, listener),
    ):
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
        self.feeds, self.parameters, rows, reals, loss_rows, loss_reals = [], [], [], [], [], []
        self.calls_back = False  # a layer's forward kernel calls Python (nn_run): one thread
        self.stats_width, parameter_size = 0, 0
        masks = []
        upstream_parameters = {}  # module name: whether a parameter lies upstream of (or in) it
        for name in needed:
            module = network.modules[name]
            layer = module.layer
            input_sizes = [network.modules[i].size for i in module.inputs]
            shape = layer.parameter_shape(input_sizes)
            inputs_upstream = any(upstream_parameters[i] for i in module.inputs)
            upstream_parameters[name] = inputs_upstream or shape is not None
            if layer.alias:
                self.offsets[name] = self.offsets[module.inputs[0]] + layer.alias_offset(input_sizes)
                continue
            self.offsets[name] = self.width
            self.width += count(module.size)
            if layer.inputs == 0:
                self.feeds.append((name, self.offsets[name], count(module.size)))
                continue
            row = np.zeros(ROW_WIDTH, dtype=np.int64)
            row[OPCODE] = registry.opcode(layer)
            row[IN0], row[IN0_LEN] = self.offsets[module.inputs[0]], count(input_sizes[0])
            if len(module.inputs) > 1:
                row[IN1], row[IN1_LEN] = self.offsets[module.inputs[1]], count(input_sizes[1])
            row[OUT], row[OUT_LEN] = self.offsets[name], count(module.size)
            row[IN_W : IN_S + 1], row[OUT_W : OUT_S + 1] = input_sizes[0], module.size
            row[INPUT_GRADIENTS] = inputs_upstream
            if shape is not None:
                length = int(np.prod(shape))
                row[PARAM], row[PARAM_LEN] = parameter_size, length
                self.parameters.append((name, parameter_size, shape))
                masks.append(layer.trainable(input_sizes))
                parameter_size += length
            row[STATS] = self.stats_width
            self.stats_width += layer.statistics(input_sizes)
            row[FIRST_ARGUMENT : FIRST_ARGUMENT + MAX_ARGUMENTS] = _named_arguments(layer, input_sizes)
            if layer.is_loss:  # losses feed no layer: they run after the forward pass
                loss_rows.append(row)
                loss_reals.append(layer.real(input_sizes))
                continue
            self.calls_back |= layer.calls_back
            rows.append(row)
            reals.append(layer.real(input_sizes))
        self.is_loss = all(network.modules[t].layer.is_loss for t in targets)
        self.loss_rows = np.array(loss_rows, dtype=np.int64).reshape(-1, ROW_WIDTH)
        self.loss_reals = np.array(loss_reals, dtype=np.float32)
        self.ops = np.array(rows, dtype=np.int64).reshape(-1, ROW_WIDTH)
        self.reals = np.array(reals, dtype=np.float32)
        self.mask = np.concatenate(masks) if masks else np.zeros(0, dtype=np.float32)
        self.parameter_size = parameter_size
        target_module = network.modules[targets[-1]]
        prediction = target_module.inputs[0] if self.is_loss else targets[-1]
        self.output = (self.offsets[prediction], count(network.modules[prediction].size))
        self.feed_table = np.array(
            [(offset, length) for _, offset, length in self.feeds], dtype=np.int64
        ).reshape(-1, 2)
        # multiply-adds per sample, roughly: what decides whether a batch is worth threads
        self.work = self.width + sum(int(r[PARAM_LEN]) * int(r[OUT_LEN] // max(r[OUT_S], 1)) for r in rows)
        self._kernels = {}

    def kernels(self, optimizer=0, scheduler=0):
        """The compiled engine of this plan's layer types, with the optimizer and scheduler of
        those numbers (generated and loaded on first use)."""
        blas.load()
        if (optimizer, scheduler) not in self._kernels:
            codes = list(self.ops[:, OPCODE]) + list(self.loss_rows[:, OPCODE])
            self._kernels[optimizer, scheduler] = compiled.kernels(
                codes, optimizers.NAMES[optimizer], schedulers.NAMES[scheduler]
            )
        return self._kernels[optimizer, scheduler]

    @property
    def feed_width(self):
        return int(self.feed_table[:, 1].sum())

    def gather(self, images):
        """The parameter vector, read from the parameter images."""
        vector = np.empty(self.parameter_size, dtype=np.float32)
        for name, offset, shape in self.parameters:
            vector[offset : offset + int(np.prod(shape))] = images[name].ravel()
        return vector

    def scatter(self, vector):
        """Split a parameter-sized vector into {name: image}."""
        return {
            name: vector[offset : offset + int(np.prod(shape))].reshape(shape).copy()
            for name, offset, shape in self.parameters
        }


def _named_arguments(layer, input_sizes):
    """The layer's kernel arguments in the order its class names them."""
    values = layer.arguments(input_sizes)
    if set(values) != set(layer.kernel_arguments) or len(values) > MAX_ARGUMENTS:
        raise LookupError(
            f"{type(layer).__name__}.arguments gives {sorted(values)}, its class"
            f" declares {list(layer.kernel_arguments)} (at most {MAX_ARGUMENTS})"
        )
    row = np.zeros(MAX_ARGUMENTS, dtype=np.int64)
    row[: len(values)] = [values[name] for name in layer.kernel_arguments]
    return row


# --- training ------------------------------------------------------------------------------------

TRAIN_CHUNK = 64
# multiply-adds a step must have before a second thread pays for waking it. Measured on the
# tutorial net (26.6k a sample) on the 2-core machine, one process per number: one thread is
# faster at 128 samples (3.7k it/s against 2.8k) and 256 (1.85k, steady, against 1.4k-2.0k),
# even at 384 (10.2M), two threads 1.37x faster at 512 (13.6M)
PARALLEL_WORK = 12_000_000


def threads_for(plan, batch):
    """How many threads a batch of `batch` samples is worth: one unless the batch's work pays
    for a parallel region, and never more than its samples (each thread takes whole ones);
    one for a plan whose kernels call Python (the language's runner is not for threads)."""
    threads = min(numba.get_num_threads(), batch)
    parallel = threads > 1 and batch * plan.work >= PARALLEL_WORK and not plan.calls_back
    return threads if parallel else 1


@contextlib.contextmanager
def commands_run_by(runner):
    """Around a run of a plan: `runner(command, image)` runs the commands of its nn_run layers."""
    token = COMMAND_RUNNER.set(runner)
    try:
        yield
    finally:
        COMMAND_RUNNER.reset(token)


@dataclass
class Trained:
    """What a call of `train` did: `completed` steps; `stopped`: None, "loss" (a non-finite
    loss at the next step: the weights are those before it) or "weights" (the next step's
    update left a weight non-finite: the weights were put back as they were before it)."""

    completed: int
    stopped: str = None


def train(
    plan, params, moments, state, samples, iterations, batch, optimizer, scheduler, losses_out, runner=None
):
    """Run `iterations` training steps (see nnpipe.nn.steps) on `params`, `moments` and
    `state`, their losses into `losses_out`; return a Trained.
    `runner(command, image)`: runs nn_run's commands (see nnpipe.nn.layers.run)."""
    threads = threads_for(plan, batch)
    width = chunk_width(batch, threads, TRAIN_CHUNK)
    acts = np.zeros((threads, plan.width * width), dtype=np.float32)
    buffers = (acts, np.zeros_like(acts), np.zeros((threads, plan.parameter_size), dtype=np.float32))
    buffers += (np.zeros((threads, plan.stats_width), dtype=np.float32), np.empty(batch, dtype=np.int64))
    buffers += (np.empty((len(plan.loss_rows), batch), dtype=np.float32),)
    kernels = plan.kernels(optimizer, scheduler)
    steps = "train_parallel" if threads > 1 else "train_serial"
    before = (params.copy(), moments.copy(), state.copy())

    def run(count):
        with commands_run_by(runner):
            return kernels.run(
                steps, plan.ops, plan.reals, plan.loss_rows, plan.loss_reals, plan.feed_table, samples, count,
                batch, width,
                params, plan.mask, moments, state, *buffers, losses_out,
            )  # fmt: skip

    completed = run(iterations)
    if completed >= 0:
        return Trained(completed, None if completed == iterations else "loss")
    # step k = -completed - 1 left a weight non-finite: from the weights of before this call,
    # the steps before it again (the batches and dropout are drawn from the state: the same)
    completed = -completed - 1
    for kept, saved in zip((params, moments, state), before):
        kept[:] = saved
    if completed:
        run(completed)
    return Trained(completed, "weights")


# --- inference -----------------------------------------------------------------------------------

INFERENCE_CHUNK = 64


def infer(plan, params, samples, runner=None):
    """Run the plan forward on every row of `samples` (N, feed values); return (N, outputs).
    `runner(command, image)`: runs nn_run's commands (see nnpipe.nn.layers.run)."""
    result = np.empty((samples.shape[0], plan.output[1]), dtype=np.float32)
    samples = np.ascontiguousarray(samples)
    if samples.shape[0]:
        threads = threads_for(plan, samples.shape[0])
        width = chunk_width(samples.shape[0], threads, INFERENCE_CHUNK)
        acts = np.zeros((threads, plan.width * width), dtype=np.float32)
        kernels = plan.kernels()
        forward = "infer_parallel" if threads > 1 else "infer_serial"
        with commands_run_by(runner):
            kernels.run(
                forward,
                plan.ops,
                plan.reals,
                plan.feed_table,
                samples,
                np.arange(samples.shape[0]),
                params,
                width,
                acts,
                np.zeros(0, dtype=np.float32),
                plan.output[0],
                result,
            )
    return result

"""Training commands (nn_train, nn_step): they take the place of nn_lib's per-pixel `eval`
loops. A training run gathers a trainer's parameters, runs the engine's steps in chunks that
keep the progress bar live, and between chunks validates, checkpoints and stops early."""

import contextlib
import math
import os
import time
import weakref
from dataclasses import dataclass

import numpy as np

from nnpipe.commands.files import install
from nnpipe.commands.samples import command_runner, one_stack_per_feed, parameter_images, samples_matrix
from nnpipe.errors import UserError
from nnpipe.nn import engine, evaluation, files, optimizers, schedulers
from nnpipe.numbers import format_number
from nnpipe.progress import Progress, StatusLine
from nnpipe.registry import TRAINING, Bool, Int, LayerName, Param, Text, command, split_arguments

TRAINER = LayerName("trainer", ".", help="trainer name ('.' = the latest trainer)")
CHUNK_SECONDS = 0.1
DIVERGING = 1000  # a loss this many times the first one trained: the training diverges


def find_trainer(network, name):
    if not network.trainers:
        raise UserError(f"network '{network.name}' has no trainer: add one with nn_trainer")
    if name == ".":
        return list(network.trainers.values())[-1]
    if name not in network.trainers:
        raise UserError(f"no trainer named '{name}' (trainers: {', '.join(network.trainers)})")
    return network.trainers[name]


class TrainingRun:
    """A trainer's parameters, moments and state as flat vectors whose parts *are* the images
    in the list (views), so that steps need no gathering or writing back. A network keeps its
    run (see `training_run`) while none of those images was replaced or moved and its training
    plan stays the same: nn_lib's training expression runs one step per evaluation."""

    def __init__(self, ctx, trainer):
        self.ctx, self.trainer = ctx, trainer
        self.plan = ctx.network().training_plan()
        self.params = self.plan.gather(parameter_images(ctx, self.plan))
        self.moments = np.zeros((2, self.plan.parameter_size), dtype=np.float32)
        suffixes = optimizers.MOMENTS[trainer.optimizer]
        for row, suffix in enumerate(suffixes):
            self.moments[row] = self.plan.gather(parameter_images(ctx, self.plan, suffix))
        state = ctx.images.get(trainer.name)
        if state is None or state.size != np.prod(schedulers.STATE_SHAPE):
            raise UserError(f"trainer state image '{trainer.name}' is missing or not 5x3")
        self.state = state.reshape(-1).copy()
        owned = {trainer.name: self.state.reshape(schedulers.STATE_SHAPE)}
        for name, offset, shape in self.plan.parameters:
            length = int(np.prod(shape))
            image = self.plan.network.image_name(name)
            owned[image] = self.params[offset : offset + length].reshape(shape)
            for row, suffix in enumerate(suffixes):
                owned[image + suffix] = self.moments[row, offset : offset + length].reshape(shape)
        self.views = []
        for name, view in owned.items():
            index = ctx.images.set(name, view)
            self.views.append((index, name, ctx.images.images[index]))
        self.noticed = set()
        self.first_loss, self.warned_growth = None, False

    def is_current(self, ctx, network, trainer):
        images = ctx.images
        return (
            trainer is self.trainer
            and network.training_plan() is self.plan
            and all(
                index < len(images) and images.images[index] is view and images.names[index] == name
                for index, name, view in self.views
            )
        )

    def steps(self, samples, iterations, batch, losses):
        """Train `iterations` steps on mini-batches of `batch` samples drawn from `samples`,
        their losses into `losses`; return the engine's Trained (a run stopped by a non-finite
        loss or weights keeps the weights from before that step)."""
        trained = engine.train(
            self.plan,
            self.params,
            self.moments,
            self.state,
            samples,
            iterations,
            batch,
            optimizers.NAMES.index(self.trainer.optimizer),
            schedulers.NAMES.index(self.trainer.scheduler),
            losses,
            command_runner(self.ctx, self.plan),
        )
        return trained

    def watch_growth(self, losses, start):
        """Say once when the loss grows to orders of magnitude above the first one trained: the
        training diverges, though no value is infinite yet. (Above its lowest would take the
        noise of a nearly fitted small batch for it.)"""
        if self.warned_growth or not len(losses):
            return
        if self.first_loss is None:
            self.first_loss = float(losses[0])
        grown = np.flatnonzero(losses > DIVERGING * self.first_loss) if self.first_loss > 0 else []
        if len(grown):
            at = grown[0]
            self.ctx.warn(
                f"the loss grew from {self.first_loss:.4g} to {losses[at]:.4g} by iteration {start + at + 1}:"
                " the training diverges (too high a learning rate?)"
            )
            self.warned_growth = True

    def stopped(self, trained):
        """The warning of a run a non-finite loss or weights stopped."""
        at = int(self.state[schedulers.ITERATION]) + 1
        if trained.stopped == "loss":
            return (
                f"loss is not finite at iteration {at}: training stopped, weights from before that step kept"
            )
        return (
            f"the weights would not be finite after iteration {at} (the training diverges: too high a"
            " learning rate?): training stopped, weights from before that step kept"
        )

    def noticing(self, kind):
        """The compile notice, around a run's first call of each kind only: later calls run
        kernels already loaded, and a listener per step would cost time in a tight loop."""
        if kind in self.noticed:
            return contextlib.nullcontext()
        self.noticed.add(kind)
        return engine.compile_notice(StatusLine(self.ctx))

    def run(self, samples, iterations, batch, label, watch=None):
        """Train `iterations` steps in chunks that keep the progress bar live; `watch` (a Watch)
        validates and checkpoints between chunks and may stop early. Returns the losses and
        the warning of a run a non-finite loss or weights stopped (or None)."""
        losses = np.empty(iterations, dtype=np.float32)
        progress = Progress(self.ctx, label, iterations)
        compiled_before = engine.compile_seconds()
        done, chunk, failed = 0, 1, None
        while done < iterations:
            count = min(chunk, iterations - done, (watch.next_stop(done) if watch else iterations) - done)
            started = time.perf_counter()
            with self.noticing("train"):
                trained = self.steps(samples, count, batch, losses[done : done + count])
            elapsed = time.perf_counter() - started
            done += trained.completed
            if trained.stopped:
                failed = self.stopped(trained)
                break
            if watch and watch.after(done, self):
                progress.note = watch.note
                break
            if watch:
                progress.note = watch.note
            progress.update(done, losses[done - 1])
            # chunks of about CHUNK_SECONDS keep the progress bar live at no cost to speed
            chunk = max(1, min(chunk * 4, int(count * CHUNK_SECONDS / max(elapsed, 1e-6))))
        if watch:
            watch.finish(done, self)
            progress.note = watch.note
        self.trainer.history.extend(float(v) for v in losses[:done])
        progress.compiling = engine.compile_seconds() - compiled_before
        stopped = "stopped: not finite" if failed else "stopped early" if done < iterations else ""
        if iterations:  # none when resumed from the checkpoint of a finished run
            progress.close(done, losses[done - 1] if done else math.nan, stopped)
        if not failed:  # else the warning of the stop says it
            self.watch_growth(losses[:done], int(self.state[schedulers.ITERATION]) - done)
        return losses[:done], failed


_runs = weakref.WeakKeyDictionary()  # network -> its TrainingRun


def training_run(ctx, network, trainer):
    """The network's training run for `trainer`, made anew when it is not current."""
    current = _runs.get(network)
    if current is None or not current.is_current(ctx, network, trainer):
        current = _runs[network] = TrainingRun(ctx, trainer)
    return current


def feed_columns(plan):
    """(feed name, first column, column count) of the samples matrix the plan is fed."""
    columns, start = [], 0
    for name, _, length in plan.feeds:
        columns.append((name, start, length))
        start += length
    return columns


def remember_magnitudes(network, plan, samples):
    for name, start, length in feed_columns(plan):
        magnitude = float(np.max(np.abs(samples[:, start : start + length]), initial=0))
        network.input_magnitudes[name] = max(magnitude, network.input_magnitudes.get(name, 0.0))


@dataclass
class Options:
    """nn_train's validation and checkpoint settings (see its help)."""

    validation: object = None  # None, a fraction held out, or image names/indices
    validate_every: int = 100
    patience: int = 0
    keep_best: bool = False
    checkpoint: str = ""
    checkpoint_every: int = 1000


class Watch:
    """What happens between chunks of steps: validation (its loss, the best weights, early
    stopping) and checkpoints."""

    def __init__(self, ctx, options, validation, classifier, label, start):
        self.ctx, self.options, self.samples, self.classifier = ctx, options, validation, classifier
        self.label, self.start = label, start  # the trainer's iteration count at the start
        self.periods = ([options.validate_every] if validation is not None else []) + (
            [options.checkpoint_every] if options.checkpoint else []
        )
        self.loss = self.accuracy = None
        self.best_loss, self.best_params, self.best_iteration = math.inf, None, None
        self.stale = 0  # validations since the best one
        self.stopped = False
        self.note = ""
        self.points = []  # (iteration within this run, validation loss)

    def next_stop(self, done):
        """The next iteration (of this run) that needs a validation or a checkpoint: they fall
        on multiples of their periods in the trainer's count, so a resumed run keeps them."""
        at = self.start + done
        stops = [(at // every + 1) * every - self.start for every in self.periods]
        return min(stops) if stops else math.inf

    def after(self, done, run):
        """Called after a chunk ending at iteration `done`; True to stop early."""
        at = self.start + done
        if self.samples is not None and at % self.options.validate_every == 0:
            self.validate(done, run)
            patience = self.options.patience
            if patience and self.stale >= patience:
                self.stopped = True
                return True
        if self.options.checkpoint and at % self.options.checkpoint_every == 0:
            self.checkpoint(run)
        return False

    def validate(self, done, run):
        if self.points and self.points[-1][0] == done:
            return
        with engine.compile_notice(StatusLine(self.ctx)):
            self.loss, self.accuracy = evaluation.measure(run.plan, run.params, self.samples, self.classifier)
        self.points.append((done, self.loss))
        if self.loss < self.best_loss:
            self.best_loss, self.best_iteration, self.stale = self.loss, self.start + done, 0
            if self.options.keep_best:
                self.best_params = run.params.copy()
        else:
            self.stale += 1
        self.describe()

    def describe(self):
        """The progress bar's note: the latest validation."""
        self.note = f"val_loss {format_number(round(self.loss, 6))}" + (
            f" val_accuracy {100 * self.accuracy:.1f}%" if self.accuracy is not None else ""
        )

    def finish(self, done, run):
        """After the last step: validate the final weights, go back to the best ones if asked,
        and write the last checkpoint (one that says the run is over when it stopped early)."""
        if self.samples is not None:
            self.validate(done, run)
            if self.stopped:
                self.ctx.notice(
                    f"{self.label}: stopped early at iteration {self.start + done}: the"
                    f" validation loss has not improved in {self.options.patience} validations"
                )
            if self.options.keep_best and self.best_params is not None and self.best_loss < self.loss:
                run.params[:] = self.best_params
                self.loss, self.accuracy = evaluation.measure(
                    run.plan, run.params, self.samples, self.classifier
                )
                self.describe()
                self.ctx.notice(
                    f"{self.label}: kept the weights of iteration {self.best_iteration}"
                    f" (validation loss {format_number(round(self.loss, 6))})"
                )
        if self.options.checkpoint:
            if self.stopped:  # a rerun finds the run over
                run.state[schedulers.TARGET] = run.state[schedulers.ITERATION]
            self.checkpoint(run)

    def checkpoint(self, run):
        network = self.ctx.network()
        files.write(self.options.checkpoint, files.gather(network, self.ctx.images, True))


def train(ctx, selection, trainer_name, iterations, batch, label, options=None):
    options = options or Options()
    network = ctx.existing_network()
    trainer = find_trainer(network, trainer_name)
    if not selection:
        raise UserError("no samples image selected")
    plan = network.training_plan()
    if options.validation is not None and len(plan.loss_rows) > 1:
        raise UserError("a validation set with several losses is not supported yet")
    samples = samples_matrix(ctx, selection, plan)
    if samples.shape[0] == 0:
        raise UserError("the samples image is empty")
    samples, validation = validation_samples(ctx, options.validation, samples, plan)
    resumed = False
    if options.checkpoint:
        if files.kind(options.checkpoint) == "png":  # a wrong extension is refused before training
            raise UserError(f"checkpoint '{options.checkpoint}': a checkpoint is lossless, .gmz or .tif")
        if os.path.exists(options.checkpoint):
            resume(ctx, options.checkpoint, network)
            network, resumed = ctx.network(), True
            trainer = find_trainer(network, trainer.name)
    run = training_run(ctx, network, trainer)
    state = run.state
    if resumed and state[schedulers.TARGET] > 0:
        iterations = int(max(0, state[schedulers.TARGET] - state[schedulers.ITERATION]))
        if iterations == 0:
            ctx.notice(
                f"{label}: already trained: checkpoint {options.checkpoint} holds the run's end"
                f" (iteration {int(state[schedulers.ITERATION])}); delete it to train again"
            )
    elif options.checkpoint:  # where a resumed run will stop
        state[schedulers.TARGET] = state[schedulers.ITERATION] + iterations
    watch = None
    if validation is not None or options.checkpoint:
        watch = Watch(
            ctx,
            options,
            validation,
            evaluation.is_classifier(network, trainer.loss),
            label,
            int(state[schedulers.ITERATION]),
        )
    remember_magnitudes(network, run.plan, samples)
    # a batch of every sample, as in a PyTorch DataLoader, rather than draws repeating samples
    whole = batch == 0 or batch >= samples.shape[0]
    start = len(trainer.history)
    losses, failed = run.run(samples, iterations, samples.shape[0] if whole else batch, label, watch)
    if watch and watch.loss is not None:
        trainer.validation.extend((start + done, value) for done, value in watch.points)
        ctx.set_variable("val_loss", round(watch.loss, 6))
        if watch.accuracy is not None:
            ctx.set_variable("val_accuracy", round(watch.accuracy, 6))
    if failed:
        ctx.set_variable("loss", "nan")
        ctx.warn(failed)
        return
    if len(losses):
        ctx.set_variable("loss", float(losses[-1]))
    elif iterations == 0:  # resumed from the checkpoint of a finished run
        ctx.set_variable("loss", float(state[schedulers.PREVIOUS_LOSS]))


def validation_samples(ctx, validation, samples, plan):
    """(training rows, validation rows or None): a fraction of `samples` held out along a
    random permutation, or the rows of the validation images."""
    if validation is None:
        return samples, None
    if isinstance(validation, float):
        count = samples.shape[0]
        held_out = int(round(count * validation))
        if not 0 < held_out < count:
            raise UserError(
                f"holding out {format_number(validation)} of {count} samples for"
                f" validation leaves {'none' if held_out == 0 else 'none to train on'}"
            )
        order = ctx.rng.permutation(count)  # as nn_split_samples draws it
        return samples[order[held_out:]], samples[order[:held_out]]
    indices = [image_index(ctx, item) for item in validation]
    try:
        rows = samples_matrix(ctx, indices, plan)
    except UserError as error:
        raise UserError(f"validation set: {error.message}") from None
    if rows.shape[0] == 0:
        raise UserError("the validation images hold no samples")
    return samples, rows


def image_index(ctx, item):
    """The index of the image named or numbered `item`."""
    count = len(ctx.images)
    if item.lstrip("-").isdigit():
        index = int(item)
        if not -count <= index < count:
            raise UserError(f"validation image [{item}] does not exist ({count} images)")
        return index % count
    index = ctx.images.find(item)
    if index is None:
        raise UserError(f"no image named '{item}' for the validation set")
    return index


def resume(ctx, path, network):
    """Load the checkpoint `path` of an interrupted run of the same network."""
    saved = files.read(path)
    if saved.network != network.name or saved.commands != network.commands:
        raise UserError(
            f"checkpoint '{path}' holds another network than '{network.name}' as built"
            " here: delete it (or name another checkpoint) to start afresh"
        )
    install(ctx, saved, True, f"checkpoint '{path}'")
    ctx.notice(f"resuming from checkpoint {path}")


class Validation(Param):
    """nn_train's validation set: 0 (none), a fraction of the samples, or [images]."""

    def describe(self):
        return "0, a fraction in (0, 1), or [image,...] (names or indices)"

    def parse(self, text):
        if text.startswith("[") and text.endswith("]"):
            items = [item.strip() for item in split_arguments(text[1:-1])]
            if not all(item.isidentifier() or item.lstrip("-").isdigit() for item in items):
                self.fail(text)
            return items
        try:
            value = float(text)
        except ValueError:
            self.fail(text)
        if not 0 <= value < 1:
            self.fail(text)
        return value or None


SAMPLES_HELP = """
    Pixel mode, when one image is selected and every feed of the network is a vector (at
    most one of w,h,d,s above 1): each pixel is a sample, its channels the values of the
    network's inputs then ground truths, in the order they were declared (the seed's
    [x,y,R,G,B] layout for nn_input IN,2 and a 3-value ground truth).
    Stack mode, otherwise: one image per feed (inputs then ground truths, in declared order),
    the M samples stacked along depth: a feed of size w,h,d,s takes an image of size
    w,h,d*M,s, so a label vector (1,1,1,K) takes K channels of depth M, 1x1 (as does any
    vector feed of K values, nn_input IN,K included). Every stack must hold the same M.
    Without a selection: the last data images, one per feed, if they are such stacks or the
    feeds are image-shaped; else the last data image."""


@command(
    "nn_train",
    group=TRAINING,
    default_selection=one_stack_per_feed,
    params=[
        Int("iterations", low=1),
        Int("batch_size", 32, low=1),
        TRAINER,
        Validation(
            "validation",
            None,
            help="0: none; a fraction in (0, 1): that part of"
            " the samples, drawn at random, is held out; [image,...]: images (names or"
            " indices) holding validation samples in the layout of the training samples",
        ),
        Int("validate_every", 100, low=1, help="iterations between validations"),
        Int(
            "patience",
            0,
            low=0,
            help="stop after this many validations without a lower validation loss (0: never stop early)",
        ),
        Bool("keep_best", False, help="end with the weights of the lowest validation loss (default: 0)"),
        Text(
            "checkpoint",
            "",
            help=".gmz/.tif file written every checkpoint_every iterations and at"
            " the end; if it exists, training resumes from it (default: none)",
        ),
        Int("checkpoint_every", 1000, low=1, help="iterations between checkpoints"),
    ],
    help="""
    Train on random mini-batches drawn from the selected samples; a batch_size of at least
    the number of samples takes every sample once in each step.
"""
    + SAMPLES_HELP
    + """

    Shows a progress bar (hidden by --quiet), sets $loss to the last batch loss and keeps the
    loss history for nn_plot. A non-finite loss stops training, keeping the weights from
    before that step.

    Validation: every validate_every iterations and at the end, the loss (as the trainer's
    loss, mean over the validation samples, forward only as nn_eval) and, for a classifier
    (cross-entropy over several values), the accuracy (as nn_classify) are measured on the
    validation samples, shown in the progress bar, set as $val_loss and $val_accuracy (those
    of the final weights) and drawn by nn_plot. With patience P, training stops after P
    validations in a row without a new lowest validation loss; with keep_best, it ends with
    the weights that had the lowest (the moments and trainer state stay those of the last
    step).

    Checkpoints: the network is saved (as nn_save with trainer data, atomically) to the
    checkpoint file every checkpoint_every iterations and at the end. If the file exists
    when nn_train starts, it must hold the same network: it is loaded and training goes on
    until the iteration the interrupted run was to reach (nothing more if it had finished),
    so running a killed script again resumes it. After a resume, early stopping and
    keep_best start over from the checkpoint's weights. Delete the file to start afresh.""",
)
def nn_train(
    ctx,
    selection,
    iterations,
    batch_size,
    trainer,
    validation,
    validate_every,
    patience,
    keep_best,
    checkpoint,
    checkpoint_every,
):
    label = ctx.images.names[selection[0]] if selection else ""
    train(
        ctx,
        selection,
        trainer,
        iterations,
        batch_size,
        f"nn_train {label}".strip(),
        Options(validation, validate_every, patience, keep_best, checkpoint, checkpoint_every),
    )


@command(
    "nn_step",
    group=TRAINING,
    default_selection=one_stack_per_feed,
    params=[TRAINER],
    help="""
    Run one training step with every selected sample in the mini-batch.
"""
    + SAMPLES_HELP,
)
def nn_step(ctx, selection, trainer):
    train(ctx, selection, trainer, 1, 0, "nn_step")

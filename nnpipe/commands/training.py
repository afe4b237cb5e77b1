"""Training and inference commands: they take the place of nn_lib's per-pixel `eval` loops."""

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from nnpipe.commands.files import install
from nnpipe.registry import TRAINING, Bool, Float, Int, LayerName, Param, Text, command, split_arguments
from nnpipe.errors import UserError
from nnpipe.images import atomic
from nnpipe.numbers import format_number, size_text
from nnpipe.nn import engine, evaluation, files, optimizers, schedulers
from nnpipe.progress import Progress

TRAINER = LayerName("trainer", ".", help="trainer name ('.' = the latest trainer)")
CHUNK_SECONDS = 0.1


def find_trainer(network, name):
    if not network.trainers:
        raise UserError(f"network '{network.name}' has no trainer: add one with nn_trainer")
    if name == ".":
        return list(network.trainers.values())[-1]
    if name not in network.trainers:
        raise UserError(f"no trainer named '{name}' (trainers: {', '.join(network.trainers)})")
    return network.trainers[name]


def last_data_image(ctx):
    """The default selection of training commands: the last image not owned by a network."""
    return last_data_images(ctx, 1)


def last_data_images(ctx, count):
    """The last `count` images not owned by a network, in list order."""
    owned = ctx.network_images()
    found = [i for i in range(len(ctx.images)) if ctx.images.names[i] not in owned]
    return found[-count:]


def one_stack_per_feed(ctx):
    """nn_train's default selection: the last data images, one per feed of the network, if
    they are stacks of its feeds or the feeds are image-shaped; else the last data image
    (pixel mode)."""
    network = ctx.networks.get(ctx.current_network)
    sizes = [m.size for m in network.modules.values() if m.layer.inputs == 0] if network else []
    found = last_data_images(ctx, len(sizes))
    stacks = len(found) == len(sizes) > 1 and all(
        stack_layout(ctx.images[index], size) is not None for index, size in zip(found, sizes))
    return found if stacks or not all(map(is_vector, sizes)) else found[-1:]


# --- samples: images to the engine's (M, S) matrix and back --------------------------------------
# Pixel mode: one image whose every pixel is a sample, its channels the values of every feed
# (the seed's layout). Stack mode: one image per feed, the M samples stacked along depth, so a
# feed of size w,h,d,s is fed from an image of size w,h,d*M,s, i.e. the array (s, d*M, h, w).

def is_vector(size):
    """At most one of w,h,d,s above 1: the feed is a plain vector of values."""
    return sum(v > 1 for v in size) <= 1


def feed_sizes(plan):
    return [(name, plan.network.modules[name].size) for name, _, _ in plan.feeds]


def feeds_text(plan):
    return ", ".join(f"{name} {size_text(size)}" for name, size in feed_sizes(plan))


def image_label(ctx, index):
    name = ctx.images.names[index]
    return f"[{index}] '{name}'" if name else f"[{index}]"


def stack_layout(image, size):
    """(feed size, M) if `image` is a stack of M samples of a feed of size `size`, else None.
    A vector feed also takes its n values as channels (1,1,M,n), the layout of label stacks
    and loaded CSV files, whichever axis it was declared along: the values are the same."""
    channels, depth, height, width = image.shape
    layouts = [size] + ([(1, 1, 1, size[0] * size[1] * size[2] * size[3])] if is_vector(size) else [])
    for w, h, d, s in layouts:
        if (channels, height, width) == (s, h, w) and depth % d == 0:
            return (w, h, d, s), depth // d
    return None


def from_stack(image, size, count):
    """(s, d*M, h, w) stack -> (M, s*d*h*w) rows, each a sample's values in (s,d,h,w) order."""
    w, h, d, s = size
    return image.reshape(s, count, d * h * w).transpose(1, 0, 2).reshape(count, -1)


def to_stack(rows, size):
    """The inverse of from_stack: (M, s*d*h*w) rows -> (s, d*M, h, w) stack."""
    w, h, d, s = size
    count = rows.shape[0]
    return np.ascontiguousarray(rows.reshape(count, s, d * h * w).transpose(1, 0, 2)
                                ).reshape(s, d * count, h, w)


def pixel_mode(plan, selection):
    return len(selection) == 1 and all(is_vector(size) for _, size in feed_sizes(plan))


def samples_matrix(ctx, selection, plan):
    """The (M, S) matrix the plan is fed from the selected images (pixel or stack mode)."""
    if pixel_mode(plan, selection):
        image = ctx.images[selection[0]]
        channels = image.shape[0]
        if channels != plan.feed_width:
            raise UserError(f"image {image_label(ctx, selection[0])} has {channels}"
                            f" channel{'s' * (channels != 1)} but the network takes"
                            f" {plan.feed_width} values per sample ({feeds_text(plan)})")
        return np.ascontiguousarray(image.reshape(channels, -1).T)
    feeds = feed_sizes(plan)
    if len(selection) != len(feeds):
        raise UserError(f"{len(selection)} image{'s' * (len(selection) != 1)} selected but the network"
                        f" is fed {len(feeds)} stack{'s' * (len(feeds) != 1)} ({feeds_text(plan)}):"
                        " select one per feed, inputs then ground truths")
    blocks, counts = [], []
    for index, (name, size) in zip(selection, feeds):
        image = ctx.images[index]
        layout = stack_layout(image, size)
        if layout is None:
            w, h, d, s = size
            depth = "M" if d == 1 else f"{d}*M"
            vector = f" or 1,1,M,{w * h * d * s}" if is_vector(size) and s == 1 else ""
            raise UserError(f"image {image_label(ctx, index)} ({size_text(image.shape[::-1])}) is"
                            f" not a stack of {name} samples: it needs size {w},{h},{depth},{s}"
                            f"{vector} (M samples along depth)")
        count = layout[1]
        blocks.append(from_stack(image, *layout))
        counts.append((count, index))
    if len({count for count, _ in counts}) > 1:
        raise UserError("the stacks hold different numbers of samples: " + ", ".join(
            f"{image_label(ctx, index)} {count}" for count, index in counts))
    return np.ascontiguousarray(np.concatenate(blocks, axis=1))


def parameter_images(ctx, plan, suffix=""):
    """{module: image} of the plan's parameter images (or their moments), checked."""
    images = {}
    for name, _, shape in plan.parameters:
        image = ctx.images.get(name + suffix)
        if image is None:
            raise UserError(f"parameter image '{name + suffix}' is missing from the list")
        if image.shape != tuple(shape):
            raise UserError(f"parameter image '{name + suffix}' has size "
                            f"{','.join(map(str, image.shape[::-1]))}, expected"
                            f" {','.join(map(str, shape[::-1]))}")
        images[name] = image
    return images


def command_runner(ctx, plan):
    """What runs the commands of a plan's nn_run layers: the workspace's run_commands(command,
    image), which runs `command` on a list holding only `image` and returns the last image it
    leaves."""
    return ctx.run_commands if plan.callbacks else None


class TrainingRun:
    """Gathers a trainer's parameters, moments and state from the image list, runs steps in
    compiled chunks, and writes them back."""

    def __init__(self, ctx, trainer):
        self.ctx, self.trainer = ctx, trainer
        network = ctx.network()
        self.plan = network.training_plan()
        self.params = self.plan.gather(parameter_images(ctx, self.plan))
        suffixes = optimizers.MOMENTS[trainer.optimizer]
        self.moments = np.zeros((2, self.plan.parameter_size), dtype=np.float32)
        for row, suffix in enumerate(suffixes):
            self.moments[row] = self.plan.gather(parameter_images(ctx, self.plan, suffix))
        state = ctx.images.get(trainer.name)
        if state is None or state.size != np.prod(schedulers.STATE_SHAPE):
            raise UserError(f"trainer state image '{trainer.name}' is missing or not 5x3")
        self.state = state.reshape(-1).copy()

    def run(self, samples, iterations, batch, label, watch=None):
        """Train `iterations` steps; `watch` (a Watch) validates and checkpoints between
        chunks and may stop early. Returns the losses and the iteration a non-finite loss
        stopped training at (or None)."""
        optimizer = optimizers.NAMES.index(self.trainer.optimizer)
        scheduler = schedulers.NAMES.index(self.trainer.scheduler)
        losses = np.empty(iterations, dtype=np.float32)
        progress = Progress(self.ctx, label, iterations)
        done, chunk, failed = 0, 1, False
        while done < iterations:
            count = min(chunk, iterations - done, (watch.next_stop(done) if watch else iterations) - done)
            started = time.perf_counter()
            with engine.compile_notice(self.ctx.notice):
                completed = engine.train(self.plan, self.params, self.moments, self.state, samples,
                                         count, batch, optimizer, scheduler, losses[done:done + count],
                                         command_runner(self.ctx, self.plan))
            elapsed = time.perf_counter() - started
            done += completed
            if completed < count:
                failed = True
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
        self.store()
        self.trainer.history.extend(float(v) for v in losses[:done])
        progress.close(done, losses[done - 1] if done else math.nan)
        failed_at = int(self.state[schedulers.ITERATION]) if failed else None
        return losses[:done], failed_at

    def store(self):
        """Put the parameters, moments and trainer state in the image list."""
        images = self.ctx.images
        for name, image in self.plan.scatter(self.params).items():
            images.set(name, image)
        for row, suffix in enumerate(optimizers.MOMENTS[self.trainer.optimizer]):
            for name, image in self.plan.scatter(self.moments[row]).items():
                images.set(name + suffix, image)
        images.set(self.trainer.name, self.state.reshape(schedulers.STATE_SHAPE))


def feed_columns(plan):
    """(feed name, first column, column count) of the samples matrix the plan is fed."""
    columns, start = [], 0
    for name, _, length in plan.feeds:
        columns.append((name, start, length))
        start += length
    return columns


def remember_magnitudes(trainer, plan, samples):
    for name, start, length in feed_columns(plan):
        magnitude = float(np.max(np.abs(samples[:, start:start + length]), initial=0))
        trainer.feed_magnitudes[name] = max(magnitude, trainer.feed_magnitudes.get(name, 0.0))


TRAINED_SMALL, GIVEN_LARGE = 2.0, 20.0  # inputs within ±1 at training, 0..255 at evaluation


def warn_about_input_range(ctx, network, plan, selection):
    """Warn (once) when the network was trained on inputs within about ±1 and is evaluated on
    values such as 0..255: most likely the images were not divided by 255 this time."""
    trainers = [t for t in network.trainers.values() if t.feed_magnitudes and not t.warned_range]
    names = [name for name, _, _ in plan.feeds]
    trained = [t.feed_magnitudes[name] for t in trainers for name in names if name in t.feed_magnitudes]
    if not trained or max(trained) > TRAINED_SMALL:
        return
    given = max(float(np.max(np.abs(ctx.images[index]), initial=0)) for index in selection)
    if given > GIVEN_LARGE:
        ctx.warn(f"the input holds values up to {given:.4g}, but network '{network.name}' was trained"
                 f" on inputs within ±{max(trained):.3g}: divide by the same value as for training"
                 " (e.g. 255)?")
        for trainer in trainers:
            trainer.warned_range = True


@dataclass
class Options:
    """nn_train's validation and checkpoint settings (see its help)."""
    validation: object = None       # None, a fraction held out, or image names/indices
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
        self.label, self.start = label, start      # the trainer's iteration count at the start
        self.periods = ([options.validate_every] if validation is not None else []) + \
            ([options.checkpoint_every] if options.checkpoint else [])
        self.loss = self.accuracy = None
        self.best_loss, self.best_params, self.best_iteration = math.inf, None, None
        self.stale = 0            # validations since the best one
        self.stopped = False
        self.note = ""
        self.points = []          # (iteration within this run, validation loss)

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
        with engine.compile_notice(self.ctx.notice):
            self.loss, self.accuracy = evaluation.measure(run.plan, run.params, self.samples,
                                                          self.classifier)
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
            f" val_accuracy {100 * self.accuracy:.1f}%" if self.accuracy is not None else "")

    def finish(self, done, run):
        """After the last step: validate the final weights, go back to the best ones if asked,
        and write the last checkpoint (one that says the run is over when it stopped early)."""
        if self.samples is not None:
            self.validate(done, run)
            if self.stopped:
                self.ctx.notice(f"{self.label}: stopped early at iteration {self.start + done}: the"
                                f" validation loss has not improved in {self.options.patience} validations")
            if self.options.keep_best and self.best_params is not None and self.best_loss < self.loss:
                run.params[:] = self.best_params
                self.loss, self.accuracy = evaluation.measure(run.plan, run.params, self.samples,
                                                              self.classifier)
                self.describe()
                self.ctx.notice(f"{self.label}: kept the weights of iteration {self.best_iteration}"
                                f" (validation loss {format_number(round(self.loss, 6))})")
        if self.options.checkpoint:
            if self.stopped:  # a rerun finds the run over
                run.state[schedulers.TARGET] = run.state[schedulers.ITERATION]
            self.checkpoint(run)

    def checkpoint(self, run):
        run.store()
        network = self.ctx.network()
        files.write(self.options.checkpoint, files.gather(network, self.ctx.images, True))


def train(ctx, selection, trainer_name, iterations, batch, label, options=Options()):
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
    run = TrainingRun(ctx, trainer)
    state = run.state
    if resumed and state[schedulers.TARGET] > 0:
        iterations = int(max(0, state[schedulers.TARGET] - state[schedulers.ITERATION]))
    elif options.checkpoint:  # where a resumed run will stop
        state[schedulers.TARGET] = state[schedulers.ITERATION] + iterations
    watch = None
    if validation is not None or options.checkpoint:
        watch = Watch(ctx, options, validation, evaluation.is_classifier(network, trainer.loss), label,
                      int(state[schedulers.ITERATION]))
    remember_magnitudes(trainer, run.plan, samples)
    # a batch of every sample, as in a PyTorch DataLoader, rather than draws repeating samples
    whole = batch == 0 or batch >= samples.shape[0]
    start = len(trainer.history)
    losses, failed_at = run.run(samples, iterations, samples.shape[0] if whole else batch, label, watch)
    if watch and watch.loss is not None:
        trainer.validation.extend((start + done, value) for done, value in watch.points)
        ctx.set_variable("val_loss", round(watch.loss, 6))
        if watch.accuracy is not None:
            ctx.set_variable("val_accuracy", round(watch.accuracy, 6))
    if failed_at is not None:
        ctx.set_variable("loss", "nan")
        ctx.warn(f"loss is not finite at iteration {failed_at}: training stopped,"
                 " weights from before that step kept")
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
            raise UserError(f"holding out {format_number(validation)} of {count} samples for"
                            f" validation leaves {'none' if held_out == 0 else 'none to train on'}")
        order = ctx.rng.permutation(count)   # as nn_split_samples draws it
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
        raise UserError(f"checkpoint '{path}' holds another network than '{network.name}' as built"
                        " here: delete it (or name another checkpoint) to start afresh")
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


@command("nn_train", group=TRAINING, default_selection=one_stack_per_feed, params=[
    Int("iterations", low=1), Int("batch_size", 32, low=1), TRAINER,
    Validation("validation", None, help="0: none; a fraction in (0, 1): that part of"
               " the samples, drawn at random, is held out; [image,...]: images (names or"
               " indices) holding validation samples in the layout of the training samples"),
    Int("validate_every", 100, low=1, help="iterations between validations"),
    Int("patience", 0, low=0, help="stop after this many validations without a lower"
        " validation loss (0: never stop early)"),
    Bool("keep_best", False, help="end with the weights of the lowest validation loss (default: 0)"),
    Text("checkpoint", "", help=".gmz/.tif file written every checkpoint_every iterations and at"
         " the end; if it exists, training resumes from it (default: none)"),
    Int("checkpoint_every", 1000, low=1, help="iterations between checkpoints")], help="""
    Train on random mini-batches drawn from the selected samples; a batch_size of at least
    the number of samples takes every sample once in each step.
""" + SAMPLES_HELP + """

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
    keep_best start over from the checkpoint's weights. Delete the file to start afresh.""")
def nn_train(ctx, selection, iterations, batch_size, trainer, validation, validate_every, patience,
             keep_best, checkpoint, checkpoint_every):
    label = ctx.images.names[selection[0]] if selection else ""
    train(ctx, selection, trainer, iterations, batch_size, f"nn_train {label}".strip(),
          Options(validation, validate_every, patience, keep_best, checkpoint, checkpoint_every))


@command("nn_step", group=TRAINING, default_selection=one_stack_per_feed, params=[TRAINER], help="""
    Run one training step with every selected sample in the mini-batch.
""" + SAMPLES_HELP)
def nn_step(ctx, selection, trainer):
    train(ctx, selection, trainer, 1, 0, "nn_step")


def default_output(network):
    losses = [m for m in network.modules.values() if m.layer.kind.startswith("loss")]
    if losses:
        return losses[-1].inputs[0]
    if network.latest is None:
        raise UserError(f"network '{network.name}' is empty")
    return network.latest


class Inference:
    """The plan computing one layer, its parameters read from the image list."""

    def __init__(self, ctx, output):
        network = ctx.existing_network()
        self.target = default_output(network) if output == "." else network.resolve(output)
        self.plan = network.plan(self.target)
        self.params = self.plan.gather(parameter_images(ctx, self.plan))
        self.runner = command_runner(ctx, self.plan)
        self.notice = ctx.notice
        module = network.modules[self.target]
        prediction = module.inputs[0] if self.plan.is_loss else self.target
        self.size = network.modules[prediction].size

    def rows(self, samples):
        with engine.compile_notice(self.notice):
            return engine.infer(self.plan, self.params, samples, self.runner)

    def evaluate(self, ctx, selection, tile_margin=-1):
        """The output image for the selected images: pixel mode gives an image of their
        width, height and depth, stack mode a stack."""
        plan = self.plan
        if len(selection) == 1 and len(plan.feeds) == 1 and self.tiles(ctx.images[selection[0]]):
            return self.tiled(ctx.images[selection[0]], tile_margin)
        rows = self.rows(samples_matrix(ctx, selection, plan))
        if pixel_mode(plan, selection):
            return rows.T.reshape((rows.shape[1],) + ctx.images[selection[0]].shape[1:])
        return to_stack(rows, self.size)

    def tiles(self, image):
        """Whether `image` is larger than the input of a network with one image-shaped input,
        so it is evaluated tile by tile."""
        w, h, d, s = feed_sizes(self.plan)[0][1]
        channels, depth, height, width = image.shape
        return not is_vector((w, h, d, s)) and channels == s and depth % d == 0 \
            and (height, width) != (h, w)

    def tiled(self, image, margin):
        """Run a fully convolutional network over an image larger than its input: overlapping
        tiles of the input's size, each keeping its inner part (`margin` pixels dropped at
        inner edges, where the network saw the tile's border instead of the image) stitched."""
        w, h, d, s = feed_sizes(self.plan)[0][1]
        ow, oh, od, os = self.size
        if (ow, oh) != (w, h):
            raise UserError(f"the image ({size_text(image.shape[::-1])}) differs in size from the"
                            f" input ({size_text((w, h, d, s))}), and tiling it needs an output of"
                            f" the input's width and height (got {size_text(self.size)})")
        margin = min(w, h) // 4 if margin < 0 else margin
        _, depth, height, width = image.shape
        count = depth // d
        rows_at, row_owner, row_offset = tile_layout(height, h, margin)
        cols_at, col_owner, col_offset = tile_layout(width, w, margin)
        rows = rows_at[:, None] + np.arange(h)
        cols = cols_at[:, None] + np.arange(w)
        tiles = image.reshape(s, count, d, height, width)[
            :, :, :, rows[:, None, :, None], cols[None, :, None, :]]    # (s, M, d, ny, nx, h, w)
        samples = tiles.transpose(1, 3, 4, 0, 2, 5, 6).reshape(count * rows.shape[0] * cols.shape[0], -1)
        result = self.rows(np.ascontiguousarray(samples)).reshape(
            count, rows.shape[0], cols.shape[0], os, od, h, w).transpose(3, 0, 4, 1, 5, 2, 6)
        stitched = result[:, :, :, row_owner[:, None], row_offset[:, None],
                          col_owner[None, :], col_offset[None, :]]    # (os, M, od, height, width)
        return stitched.reshape(os, count * od, height, width)


def tile_layout(length, tile, margin):
    """Tiles along one axis: their starts, and for each pixel the tile whose inner part (its
    margins dropped, except at the image's borders) holds it and its offset in that tile."""
    if length < tile:
        raise UserError(f"the image is smaller ({length}) than the network's input ({tile}):"
                        " resize it or evaluate it whole")
    step = tile - 2 * margin
    if step < 1:
        raise UserError(f"a tile margin of {margin} leaves nothing of a {tile}-pixel tile")
    starts = np.append(np.arange(0, length - tile, step), length - tile)
    inner = starts + margin
    inner[0] = 0
    owner = np.searchsorted(inner, np.arange(length), side="right") - 1
    return starts, owner, np.arange(length) - starts[owner]


@command("nn_eval", group=TRAINING, default_selection=last_data_image, params=[
    LayerName("output", ".", help="layer to compute ('.' = what the latest loss compares)"),
    Int("tile_margin", -1, low=-1, help="when tiling: pixels dropped at inner tile edges, at least the"
        " network's receptive-field radius (-1: a quarter of the input's width or height)")])
def nn_eval(ctx, selection, output, tile_margin):
    """Run the network forward on the selected images (default: the last image that is not a
    weight, moment or trainer image) and append the output, named after the output layer.

    Pixel mode (one image, every input a vector): the output is an image of the same width,
    height and depth with one channel per output value. Stack mode (image-shaped inputs):
    each selected image is a stack of M samples along depth (w,h,d*M,s for an input w,h,d,s;
    with several inputs, select one stack per input) and the output is a stack of the same
    M. An image larger than the one image-shaped input of a fully convolutional network
    (output width and height those of the input) is evaluated in overlapping tiles of the
    input's size, each keeping its inner part, and the output has the image's width and
    height."""
    inference = Inference(ctx, output)
    plan = inference.plan
    if selection:
        warn_about_input_range(ctx, ctx.network(), plan, selection)
    separately = len(plan.feeds) == 1 or all(is_vector(size) for _, size in feed_sizes(plan))
    groups = [[index] for index in selection] if separately else [list(selection)]
    outputs = [inference.evaluate(ctx, group, tile_margin) for group in groups]
    for image in outputs:  # appended once all are made: a failure leaves the list as it was
        ctx.images.append(image, inference.target)


@command("nn_coords", group=TRAINING, each=True, default_selection=last_data_image)
def nn_coords(ctx, image):
    """Replace an image (default: the last data image) by its pixel coordinates: 2 channels
    x,y in [-1,1], the input of a coordinate network."""
    _, _, height, width = image.shape
    return coordinates(width, height)


def coordinates(width, height):
    x = np.linspace(-1, 1, width, dtype=np.float32) if width > 1 else np.zeros(1, np.float32)
    y = np.linspace(-1, 1, height, dtype=np.float32) if height > 1 else np.zeros(1, np.float32)
    grid = np.empty((2, 1, height, width), dtype=np.float32)
    grid[0, 0] = x[np.newaxis, :]
    grid[1, 0] = y[:, np.newaxis]
    return grid


@command("nn_samples", group=TRAINING, each=True, default_selection=last_data_image, params=[
    Float("max_value", 255, positive=True, help="value mapped to 1 (255 for 8-bit images)")])
def nn_samples(ctx, image, max_value):
    """Replace a 2D image (default: the last data image) by a training set: one sample per
    pixel with channels [x, y, values / max_value...], x,y in [-1,1] (size 1,M,1,2+s: the
    seed's layout)."""
    channels, depth, height, width = image.shape
    if depth != 1:
        raise UserError("nn_samples needs a 2D image (depth 1)")
    coords = coordinates(width, height).reshape(2, -1)
    values = image.reshape(channels, -1) / np.float32(max_value)
    return np.concatenate([coords, values]).reshape(channels + 2, 1, height * width, 1)


@command("nn_plot", group=TRAINING, takes_selection=False, params=[
    Text("filename", help="PNG file to write"), TRAINER])
def nn_plot(ctx, selection, filename, trainer):
    """Write the loss curve of a trainer (every iteration trained in this run) as a PNG, with
    the validation loss of nn_train's validations beside it."""
    trainer = find_trainer(ctx.existing_network(), trainer)
    history = trainer.history
    if not history:
        raise UserError("no loss history yet: train first")
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise UserError("the loss curve needs matplotlib: pip install 'nnpipe[plot]'") from None
    figure, axes = pyplot.subplots(figsize=(7, 4), dpi=100)
    losses = np.asarray(history)
    axes.plot(np.arange(1, len(losses) + 1), losses, linewidth=0.6, alpha=0.4, label="batch loss")
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axes.plot(np.arange(window, len(losses) + 1), smooth, linewidth=1.5, label=f"mean of {window}")
    if trainer.validation:
        iterations, values = zip(*trainer.validation)
        axes.plot(iterations, values, marker="o", markersize=3, linewidth=1.5, label="validation loss")
        losses = np.concatenate([losses, values])
    axes.set_yscale("log" if np.all(losses > 0) else "linear")
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    try:
        atomic.write_file(filename, lambda tmp: figure.savefig(tmp, format="png"))
    finally:
        pyplot.close(figure)
    ctx.notice(f"wrote {filename}")

"""Training and inference commands: they take the place of nn_lib's per-pixel `eval` loops."""

import math
import time

import numpy as np

from nnpipe.commands.registry import TRAINING, Float, Int, LayerName, Text, command
from nnpipe.errors import UserError
from nnpipe.images import io
from nnpipe.nn import optimizers, schedulers
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
    owned = ctx.network_images()
    for index in range(len(ctx.images) - 1, -1, -1):
        if ctx.images.names[index] not in owned:
            return [index]
    return []


def last_selected(ctx, selection, what):
    if not selection:
        raise UserError(f"no image to use as {what}")
    return selection[-1]


def samples_matrix(image, plan, network, what):
    """One row per pixel, its channels as the values fed to the plan's inputs."""
    channels = image.shape[0]
    if channels != plan.feed_width:
        feeds = ", ".join(f"{name} {length}" for name, _, length in plan.feeds)
        raise UserError(f"{what} has {channels} channel{'s' * (channels != 1)} but the network"
                        f" takes {plan.feed_width} values per sample ({feeds})")
    return np.ascontiguousarray(image.reshape(channels, -1).T)


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


class TrainingRun:
    """Gathers a trainer's parameters, moments and state from the image list, runs steps in
    compiled chunks, and writes them back."""

    def __init__(self, ctx, trainer):
        self.ctx, self.trainer = ctx, trainer
        network = ctx.network()
        self.plan = network.plan(trainer.loss)
        self.params = self.plan.gather(parameter_images(ctx, self.plan))
        suffixes = optimizers.MOMENTS[trainer.optimizer]
        self.moments = np.zeros((2, self.plan.parameter_size), dtype=np.float32)
        for row, suffix in enumerate(suffixes):
            self.moments[row] = self.plan.gather(parameter_images(ctx, self.plan, suffix))
        state = ctx.images.get(trainer.name)
        if state is None or state.size != np.prod(schedulers.STATE_SHAPE):
            raise UserError(f"trainer state image '{trainer.name}' is missing or not 5x3")
        self.state = state.reshape(-1).copy()

    def run(self, samples, iterations, batch, label):
        from nnpipe.nn import engine  # loads Numba and the compiled kernels

        optimizer = optimizers.NAMES.index(self.trainer.optimizer)
        scheduler = schedulers.NAMES.index(self.trainer.scheduler)
        losses = np.empty(iterations, dtype=np.float32)
        progress = Progress(self.ctx, label, iterations)
        done, chunk = 0, 1
        while done < iterations:
            count = min(chunk, iterations - done)
            started = time.perf_counter()
            completed = engine.train(self.plan, self.params, self.moments, self.state, samples,
                                     count, batch, optimizer, scheduler, losses[done:done + count])
            elapsed = time.perf_counter() - started
            done += completed
            if completed < count:
                break
            progress.update(done, losses[done - 1])
            # chunks of about CHUNK_SECONDS keep the progress bar live at no cost to speed
            chunk = max(1, min(chunk * 4, int(count * CHUNK_SECONDS / max(elapsed, 1e-6))))
        self.write_back(losses[:done])
        progress.close(done, losses[done - 1] if done else math.nan)
        failed_at = int(self.state[schedulers.ITERATION]) if done < iterations else None
        return losses[:done], failed_at

    def write_back(self, losses):
        images = self.ctx.images
        for name, image in self.plan.scatter(self.params).items():
            images.set(name, image)
        for row, suffix in enumerate(optimizers.MOMENTS[self.trainer.optimizer]):
            for name, image in self.plan.scatter(self.moments[row]).items():
                images.set(name + suffix, image)
        images.set(self.trainer.name, self.state.reshape(schedulers.STATE_SHAPE))
        self.trainer.history.extend(float(v) for v in losses)


def train(ctx, samples_image, trainer_name, iterations, batch, label):
    network = ctx.network()
    trainer = find_trainer(network, trainer_name)
    run = TrainingRun(ctx, trainer)
    samples = samples_matrix(samples_image, run.plan, network, "the samples image")
    if samples.shape[0] == 0:
        raise UserError("the samples image is empty")
    losses, failed_at = run.run(samples, iterations, batch or samples.shape[0], label)
    if failed_at is not None:
        ctx.set_variable("loss", "nan")
        ctx.warn(f"loss is not finite at iteration {failed_at}: training stopped,"
                 " weights from before that step kept")
        return
    if len(losses):
        ctx.set_variable("loss", float(losses[-1]))


@command("nn_train", group=TRAINING, default_selection=last_data_image, params=[
    Int("iterations", low=1), Int("batch_size", 32, low=1), TRAINER])
def nn_train(ctx, selection, iterations, batch_size, trainer):
    """Train on random mini-batches drawn from a samples image (default: the last image that is not a
    weight, moment or trainer image).

    Each pixel of the samples image is one sample; its channels are the values of the
    network's inputs then ground truths, in the order they were declared (the seed's
    [x,y,R,G,B] layout for nn_input IN,2 and a 3-value ground truth). Shows a progress bar
    (hidden by --quiet), sets $loss to the last batch loss and keeps the loss history for
    nn_plot. A non-finite loss stops training, keeping the weights from before that step."""
    index = last_selected(ctx, selection, "samples")
    train(ctx, ctx.images[index], trainer, iterations, batch_size, f"nn_train {ctx.images.names[index]}")


@command("nn_step", group=TRAINING, default_selection=last_data_image, params=[TRAINER])
def nn_step(ctx, selection, trainer):
    """Run one training step using every pixel of the last selected image as the mini-batch
    (default: the last image that is not a weight, moment or trainer image)."""
    index = last_selected(ctx, selection, "mini-batch")
    train(ctx, ctx.images[index], trainer, 1, 0, "nn_step")


def default_output(network):
    losses = [m for m in network.modules.values() if m.layer.kind.startswith("loss")]
    if losses:
        return losses[-1].inputs[0]
    if network.latest is None:
        raise UserError(f"network '{network.name}' is empty")
    return network.latest


@command("nn_eval", group=TRAINING, default_selection=last_data_image, params=[
    LayerName("output", ".", help="layer to compute ('.' = what the latest loss compares)")])
def nn_eval(ctx, selection, output):
    """Run the network forward on every pixel of the selected images (default: the last image
    that is not a weight, moment or trainer image) and
    append, for each, an image of the same width, height and depth with one channel per
    output value, named after the output layer."""
    from nnpipe.nn import engine

    network = ctx.network()
    target = default_output(network) if output == "." else network.resolve(output)
    plan = network.plan(target)
    params = plan.gather(parameter_images(ctx, plan))
    for index in list(selection):
        image = ctx.images[index]
        samples = samples_matrix(image, plan, network, f"image [{index}]")
        result = engine.infer(plan, params, samples)
        _, depth, height, width = image.shape
        ctx.images.append(result.T.reshape(result.shape[1], depth, height, width), target)


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


@command("nn_plot", group=TRAINING, takes_selection=False, params=[Text("filename"), TRAINER])
def nn_plot(ctx, selection, filename, trainer):
    """Write the loss curve of a trainer (every iteration trained in this run) as a PNG."""
    history = find_trainer(ctx.network(), trainer).history
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
    axes.set_yscale("log" if np.all(losses > 0) else "linear")
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    io.atomic_write(filename, lambda tmp: figure.savefig(tmp, format="png"))
    pyplot.close(figure)
    ctx.notice(f"wrote {filename}")

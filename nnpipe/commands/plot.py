"""nn_plot: the loss curve of a training run, as a PNG (matplotlib)."""

import numpy as np

from nnpipe.commands.training import TRAINER, find_trainer
from nnpipe.errors import UserError
from nnpipe.images import atomic
from nnpipe.registry import TRAINING, Text, command


@command(
    "nn_plot",
    group=TRAINING,
    takes_selection=False,
    params=[Text("filename", help="PNG file to write"), TRAINER],
)
def nn_plot(ctx, selection, filename, trainer):
    """Write the loss curve of a trainer (every iteration trained in this run) as a PNG, with
    the validation loss of nn_train's validations beside it."""
    trainer = find_trainer(ctx.existing_network(), trainer)
    history = trainer.history
    if not history:
        raise UserError("no loss history yet: train first")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("the loss curve needs matplotlib: pip install 'nnpipe[plot]'") from None
    figure = Figure(figsize=(WIDTH / DPI, 4), dpi=DPI)
    axes = figure.subplots()
    losses = np.asarray(history, dtype=np.float64)
    iterations = np.arange(1, len(losses) + 1)
    if len(losses) > 2 * WIDTH:  # the band a line through every loss draws, at a tiny cost
        x, lowest, highest = envelope(iterations, losses, WIDTH)
        axes.fill_between(x, lowest, highest, linewidth=0, alpha=0.4, label="batch loss")
    else:
        axes.plot(iterations, losses, linewidth=0.6, alpha=0.4, label="batch loss")
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        step = max(1, len(smooth) // (2 * WIDTH))  # a smooth curve loses nothing drawn at 2 points a pixel
        axes.plot(iterations[window - 1 :: step], smooth[::step], linewidth=1.5, label=f"mean of {window}")
    if trainer.validation:
        points, values = zip(*trainer.validation)
        axes.plot(points, values, marker="o", markersize=3, linewidth=1.5, label="validation loss")
        losses = np.concatenate([losses, values])
    axes.set_yscale("log" if np.all(losses > 0) else "linear")
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    atomic.write_file(filename, lambda tmp: figure.savefig(tmp, format="png"))
    ctx.notice(f"wrote {filename}")


WIDTH, DPI = 700, 100  # the picture's width in pixels: more points than that draw nothing more


def envelope(x, values, columns):
    """(x, lowest, highest) of `values` in each of `columns` runs of them, in order."""
    starts = np.linspace(0, len(values), columns + 1).astype(np.int64)[:-1]
    middles = (x[starts] + x[np.append(starts[1:], len(x)) - 1]) / 2
    return middles, np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)

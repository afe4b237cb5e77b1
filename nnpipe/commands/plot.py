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

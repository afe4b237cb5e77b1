"""G'MIC's per-pixel math expressions (`fill`, `eval`, `input w,h,d,s,"expr"`) and nn_lib's
training macros inside them.

nn_lib trains by evaluating, at every pixel of a mini-batch image, an expression that sets the
network's inputs and ground truths and runs `$_nn_forward`, `$_nn_loss`, `$_nn_backward`,
`$_nn_update`. Here the expression runs over every pixel at once, so one evaluation is one
batch: the values assigned to the feeds (`IN = [i0,i1]; GT = [i2,i3,i4]`) become the sample
matrix of one compiled engine call; `$_nn_forward` makes the network's output (`OUT`) readable,
`$_nn_update` runs one training step (forward, loss, backward, optimizer) on the batch, after
which the loss (`LOSS`) reads as the batch mean.
"""

import math

import numpy as np

from nnpipe.commands.registry import IMAGES, NETWORK, Text, command
from nnpipe.errors import UserError
from nnpipe.lang import expr
from nnpipe.nn import optimizers, schedulers


class NetworkMacros:
    """The bridge between an expression's variables and the current network's engine."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.network = ctx.network()
        self.losses_seen = {}
        losses = [m for m in self.network.modules.values() if m.layer.kind.startswith("loss")]
        self.loss = losses[-1] if losses else None

    def output_name(self):
        from nnpipe.commands.training import default_output
        return default_output(self.network)

    def sizes(self):
        """The variables the macros define, and their sizes, for the compiler."""
        from nnpipe.nn.layers import count
        sizes = {}
        if self.network.modules:
            output = self.output_name()
            sizes[output] = count(self.network.modules[output].size)
        if self.loss is not None:
            sizes[self.loss.name] = None
        return sizes

    def losses(self):
        return set() if self.loss is None else {self.loss.name}

    def batch_loss(self, name):
        return self.losses_seen.get(name, math.nan)

    def samples(self, env, plan):
        """The (M, feed values) matrix from the variables named after the plan's feeds."""
        columns = []
        for name, _, length in plan.feeds:
            if name not in env.values:
                raise UserError(f"the network's feed '{name}' is not set: assign it first"
                                f" ({name} = [ … ]) before $_nn_forward")
            value = env.values[name]
            parts = [value] if value.ndim == 4 else list(value)
            if len(parts) != length:
                raise UserError(f"'{name}' has {len(parts)} value{'s' * (len(parts) != 1)} but the"
                                f" network's feed takes {length}")
            grid = env.grid.shape[1:]
            columns.extend(np.broadcast_to(p, (1,) + tuple(grid)).reshape(-1) for p in parts)
        return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.float32)

    def macro(self, name, env):
        if name == "__nn_forward":
            self.forward(env)
        elif name == "__nn_update":
            self.update(env)
        elif name in ("__nn_loss", "__nn_backward"):
            if self.loss is None:
                raise UserError("the network has no loss: add one with nn_loss_mse …")

    def forward(self, env):
        from nnpipe.commands.training import Inference
        inference = Inference(self.ctx, ".")
        rows = inference.rows(self.samples(env, inference.plan))
        grid = env.grid.shape[1:]
        output = self.output_name()
        env.values[output] = rows.T.reshape((rows.shape[1], 1) + tuple(grid)).astype(np.float64)

    def update(self, env):
        from nnpipe.commands.training import TrainingRun, find_trainer
        from nnpipe.nn import engine
        trainer = find_trainer(self.network, ".")
        run = TrainingRun(self.ctx, trainer)
        samples = self.samples(env, run.plan)
        losses = np.empty(1, dtype=np.float32)
        done = engine.train(run.plan, run.params, run.moments, run.state, samples, 1,
                            samples.shape[0], optimizers.NAMES.index(trainer.optimizer),
                            schedulers.NAMES.index(trainer.scheduler), losses)
        if done < 1:
            raise UserError("the loss is not finite: training step skipped, weights kept")
        run.write_back(losses)
        self.losses_seen[trainer.loss] = float(losses[0])
        env.values[trainer.loss] = expr._constant(float(losses[0]))


def _macros(ctx, text):
    """A bridge to the network when the expression uses nn_lib's macros."""
    return NetworkMacros(ctx) if "__nn_" in text else None


def _prepare(text):
    """G'MIC's prefixes: '*' (no parallel evaluation) means nothing to a vectorized run; '>' and
    '<' (pixels read while they are written, in order) cannot be vectorized."""
    text = text.strip()
    if text[:1] in "<>":
        raise UserError("expressions starting with '<' or '>' (ordered evaluation) are not supported")
    return text[1:] if text.startswith("*") else text


def evaluate_on(ctx, image, text, vector_mode=None):
    """Evaluate `text` at every pixel of `image`; set the variables its set() calls named."""
    text = _prepare(text)
    evaluation = expr.evaluate_grid(text, ctx.images, image, ctx.rng, vector_mode, ctx,
                                    _macros(ctx, text))
    for name, value in evaluation.variables.items():
        ctx.set_variable(name, expr.format_value(value))
    return evaluation


def fill_image(ctx, image, text):
    """The image filled by `text`: a scalar result per channel, or a vector per pixel."""
    evaluation = evaluate_on(ctx, image, text)
    result, size = evaluation.result, evaluation.size
    s = image.shape[0]
    if size is None:
        return np.broadcast_to(result, image.shape).astype(np.float32)
    filled = np.empty(image.shape, dtype=np.float32)
    for channel in range(s):  # G'MIC fills the channels a vector has, and repeats its last
        component = result[min(channel, size - 1)]
        filled[channel] = np.broadcast_to(component, (1,) + image.shape[1:])[0]
    return filled


def is_expression(text):
    """Values for `fill` that are not a plain list of numbers."""
    try:
        [float(v) for v in text.split(",")]
        return False
    except ValueError:
        return True


@command("eval", group=IMAGES, raw=True, params=[Text("expression", help=(
    "a G'MIC math expression; nn_lib's $_nn_forward, $_nn_loss, $_nn_backward and"
    " $_nn_update macros may appear in it"))])
def eval_command(ctx, selection, expression):
    """Evaluate a math expression: once, or at every pixel of each selected image (eval[0]).

    As in G'MIC, a vector result evaluates once per pixel, a scalar once per value; end(…)
    runs after the last pixel, set('name',value) sets a variable. With nn_lib's macros one
    evaluation over the pixels of a mini-batch image is one training step on that batch."""
    if selection and ctx.images:
        for index in selection:
            evaluate_on(ctx, ctx.images[index], expression)
        return
    text = _prepare(expression)
    result = expr.evaluate(text, ctx.images, ctx.rng, lambda name, value: ctx.set_variable(
        name, expr.format_value(value)))
    ctx.status = expr.format_value(result)


@command("nn_lib", group=NETWORK, takes_selection=False)
def nn_lib(ctx, selection):
    """Status: the prelude nn_lib's training expressions start with (`${-nn_lib}`).

    nnpipe needs none (the macros call the engine), so the status is empty."""
    ctx.status = ""

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
import re
import weakref

import numpy as np

from nnpipe import expr
from nnpipe.commands.inference import Inference, default_output
from nnpipe.commands.samples import command_runner
from nnpipe.commands.training import find_trainer, training_run
from nnpipe.errors import UserError
from nnpipe.nn import engine, schedulers
from nnpipe.nn.layers import count
from nnpipe.numbers import format_value
from nnpipe.registry import COMMANDS, IMAGES, NETWORK, Text, command

# nn_lib's macros: global variables whose text, inside an expression, calls the engine
COMMANDS.variables.update(
    {
        "_nn_forward": "__nn_forward();",
        "_nn_loss": "__nn_loss();",
        "_nn_backward": "__nn_backward();",
        "_nn_update": "__nn_update();",
    }
)


class NetworkMacros:
    """The bridge between an expression's variables and the current network's engine."""

    def __init__(self, ctx, text):
        self.ctx = ctx
        self.network = ctx.network()
        self.losses_seen = {}
        self.loss, self.output, self.output_read, self.variable_sizes = _reading(self.network, text)

    def sizes(self):
        """The variables the macros define, and their sizes, for the compiler."""
        return self.variable_sizes

    def losses(self):
        return set() if self.loss is None else {self.loss.name}

    def batch_loss(self, name):
        return self.losses_seen.get(name, math.nan)

    def samples(self, env, plan):
        """The (M, feed values) matrix from the variables named after the plan's feeds."""
        columns = []
        grid = (1,) + tuple(env.grid.shape[1:])
        count = int(np.prod(grid))
        for name, _, length in plan.feeds:
            if name not in env.values:
                raise UserError(
                    f"the network's feed '{name}' is not set: assign it first"
                    f" ({name} = [ … ]) before $_nn_forward"
                )
            value = env.values[name]
            parts = [value] if value.ndim == 4 else list(value)
            if len(parts) != length:
                raise UserError(
                    f"'{name}' has {len(parts)} value{'s' * (len(parts) != 1)} but the"
                    f" network's feed takes {length}"
                )
            columns.extend(parts)
        matrix = np.empty((len(columns), count), dtype=np.float32)
        for k, column in enumerate(columns):
            # a value may vary along some axes only (x alone, or nothing); one evaluated per
            # channel (it reads c, u or g) is taken at channel 0: a sample is a pixel
            matrix[k] = np.broadcast_to(column[:1], grid).reshape(-1)
        return np.ascontiguousarray(matrix.T)

    def macro(self, name, env):
        if name == "__nn_forward":
            if self.output_read:
                self.forward(env)
        elif name == "__nn_update":
            self.update(env)
        elif self.loss is None:
            raise UserError("the network has no loss: add one with nn_loss_mse …")

    def forward(self, env):
        plan = self.network.plan(self.output)
        run = (
            training_run(self.ctx, self.network, find_trainer(self.network, "."))
            if self.network.trainers
            else None
        )
        if run is not None and plan.parameters == run.plan.parameters:
            samples = self.samples(env, plan)
            with run.noticing("infer"):
                rows = engine.infer(plan, run.params, samples, command_runner(self.ctx, plan))
        else:
            inference = Inference(self.ctx, self.output)
            rows = inference.rows(self.samples(env, inference.plan))
        grid = tuple(env.grid.shape[1:])
        env.values[self.output] = rows.T.reshape((rows.shape[1], 1) + grid).astype(np.float64)

    def update(self, env):
        """One training step, the evaluation's pixels its mini-batch."""
        trainer = find_trainer(self.network, ".")
        run = training_run(self.ctx, self.network, trainer)
        samples = self.samples(env, run.plan)
        losses = np.empty(1, dtype=np.float32)
        with run.noticing("train"):
            trained = run.steps(samples, 1, samples.shape[0], losses)
        if trained.stopped:
            raise UserError(run.stopped(trained))
        run.watch_growth(losses, int(run.state[schedulers.ITERATION]) - 1)
        loss = float(losses[0])
        trainer.history.append(loss)
        self.losses_seen[trainer.loss] = loss
        env.values[trainer.loss] = expr.scalar(loss)


_READINGS = weakref.WeakKeyDictionary()  # network -> {text: (modules, reading)}


def _reading(network, text):
    """What an expression's macros need to know of the network: its latest loss, its output,
    whether the expression reads the output after a training step (else no separate forward
    pass is run), and the sizes of the variables the macros define. Kept while the network's
    modules stay the same."""
    modules = tuple(network.modules)
    known = _READINGS.setdefault(network, {}).get(text)
    if known is not None and known[0] == modules:
        return known[1]
    losses = [m for m in network.modules.values() if m.layer.is_loss]
    loss = losses[-1] if losses else None
    output = default_output(network) if network.modules else None
    output_read = "__nn_update" not in text or re.search(rf"\b{re.escape(output or '')}\b", text) is not None
    sizes = {} if output is None else {output: count(network.modules[output].size)}
    if loss is not None:
        sizes[loss.name] = None
    reading = (loss, output, output_read, sizes)
    _READINGS[network][text] = (modules, reading)
    return reading


def _macros(ctx, text):
    """A bridge to the network when the expression uses nn_lib's macros."""
    return NetworkMacros(ctx, text) if "__nn_" in text else None


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
    evaluation = expr.evaluate_grid(text, ctx.images, image, ctx.rng, vector_mode, ctx, _macros(ctx, text))
    for name, value in evaluation.variables.items():
        ctx.set_variable(name, format_value(value))
    return evaluation


def fill_image(ctx, image, text):
    """The image filled by `text`: a scalar result per channel, or a vector per pixel."""
    evaluation = evaluate_on(ctx, image, text)
    result, size = evaluation.result, evaluation.size
    s = image.shape[0]
    if size is None:
        return np.broadcast_to(result, image.shape).astype(np.float32)
    filled = image.copy()
    for channel in range(min(s, size)):  # G'MIC fills the channels the vector has, no others
        filled[channel] = result[channel]  # assignment broadcasts over the pixels
    return filled


def is_expression(text):
    """Values for `fill` that are not a plain list of numbers."""
    try:
        [float(v) for v in text.split(",")]
        return False
    except ValueError:
        return True


@command(
    "eval",
    group=IMAGES,
    raw=True,
    default_selection=lambda ctx: [],
    params=[
        Text(
            "expression",
            help=(
                "a G'MIC math expression; nn_lib's $_nn_forward, $_nn_loss, $_nn_backward and"
                " $_nn_update macros may appear in it"
            ),
        )
    ],
)
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
    result = expr.evaluate(
        text, ctx.images, ctx.rng, lambda name, value: ctx.set_variable(name, format_value(value))
    )
    ctx.status = format_value(result)


@command("nn_lib", group=NETWORK, takes_selection=False, api="2023")
def nn_lib(ctx, selection):
    """Status: the prelude nn_lib's training expressions start with (`${-nn_lib}`).

    nnpipe needs none (the macros call the engine), so the status is empty."""
    ctx.status = ""

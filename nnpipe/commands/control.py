"""Commands about the run itself rather than the images."""

import numpy as np

from nnpipe.commands.registry import CONTROL, Int, Text, command
from nnpipe.errors import UserError


@command("echo", "e", group=CONTROL, takes_selection=False, params=[
    Text("text", "", rest=True, help="the message, commas included (default: an empty line)")])
def echo(ctx, selection, text):
    """Print a message on standard output."""
    ctx.echo(text)


@command("error", group=CONTROL, takes_selection=False, params=[
    Text("message", rest=True, help="the error message, commas included")])
def error(ctx, selection, message):
    """Stop the run with an error message (exit status 1)."""
    raise UserError(message)


@command("srand", group=CONTROL, takes_selection=False, params=[Int("seed", low=0)])
def srand(ctx, selection, seed):
    """Seed the random generator used by noise, weight initialisation and mini-batches."""
    ctx.rng = np.random.default_rng(seed)

"""Commands about the run itself rather than the images."""

import re

import numpy as np

from nnpipe.errors import UserError
from nnpipe.registry import CONTROL, Int, Text, command


@command(
    "echo",
    "e",
    group=CONTROL,
    raw=True,
    params=[Text("text", help="the message, commas included: the next item, whatever it looks like")],
)
def echo(ctx, selection, text):
    """Print a message on standard output; C escapes (\\n, \\t, …) become their characters, as
    in G'MIC (a selection such as echo[] is accepted and prints the message too)."""
    ctx.echo(ESCAPE.sub(lambda match: ESCAPES[match.group(1)], text))


ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "r": "\r", "\\": "\\", "a": "\a", "f": "\f", "v": "\v"}
ESCAPE = re.compile(r"\\([ntbr\\afv])")


@command(
    "error", group=CONTROL, raw=True, params=[Text("message", help="the error message, commas included")]
)
def error(ctx, selection, message):
    """Stop the run with an error message (exit status 1)."""
    raise UserError(message)


@command("srand", group=CONTROL, takes_selection=False, params=[Int("seed", low=0)])
def srand(ctx, selection, seed):
    """Seed the random generator used by noise, weight initialisation and mini-batches."""
    ctx.rng = np.random.default_rng(seed)


@command(
    "status",
    "u",
    group=CONTROL,
    raw=True,
    takes_selection=False,
    params=[Text("value", help="the status text")],
)
def status(ctx, selection, value):
    """Set the status of the running command, which `${-command}` substitutes."""
    ctx.status = value

"""What a command works on: the image list, the networks, the random generator, the output,
the variables of the command that runs it, and a way to run commands of the language on an
image (nn_run's). Parsing and control flow stay in nnpipe.lang; a command cannot reach them."""

import os
import sys

import numpy as np

from nnpipe.errors import UserError, one_line
from nnpipe.images.imagelist import ImageList
from nnpipe.images.selection import select
from nnpipe.nn.network import DEFAULT_NAME, Network, owned_image_names
from nnpipe.numbers import format_number


class Variables:
    """G'MIC's scopes: each command call has its own variables; names starting with '_' are
    global. A name found nowhere reads the environment, then the empty text."""

    def __init__(self):
        self.globals = {}
        self.frames = [{}]

    def scope(self, name):
        return self.globals if name.startswith("_") else self.frames[-1]

    def get(self, name, default=None):
        scope = self.scope(name)
        if name in scope:
            return scope[name]
        if default is not None:
            return default
        return os.environ.get(name, "")

    def set(self, name, value):
        self.scope(name)[name] = value

    def push(self):
        self.frames.append({})

    def pop(self):
        self.frames.pop()


class Workspace:
    """`run_commands(text, image)`: runs commands of the language on a list holding only
    `image` and returns the last image they leave (the interpreter's, for nn_run layers)."""

    def __init__(
        self, seed=None, quiet=False, out=None, err=None, variables=None, run_commands=None, api="2023"
    ):
        self.images = ImageList()
        self.networks = {}
        self.current_network = None
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.variables = variables or Variables()
        self.location = "<command line>"
        self.status = ""
        self.run_commands = run_commands
        self.api = api  # the nn_lib API the run speaks (a network read from a file keeps its own)

    # --- output -------------------------------------------------------------------------
    def echo(self, text):
        print(text, file=self.out, flush=True)

    def warn(self, text):
        """A problem that does not stop the run: one line naming where and which command
        (names from files are shown with their line breaks escaped)."""
        print(one_line(f"nnpipe: warning: {self.location}: {text}"), file=self.err, flush=True)

    def notice(self, text):
        """Informational messages, hidden by --quiet; one line each, as warnings."""
        if not self.quiet:
            print(one_line(text), file=self.err, flush=True)

    # --- variables ----------------------------------------------------------------------
    def set_variable(self, name, value):
        self.variables.set(name, value if isinstance(value, str) else _short(value))

    def lookup(self, name, default=None):
        return self.variables.get(name, default)

    # --- images and networks ------------------------------------------------------------
    def select(self, text):
        """Indices named by a selection; without one (None), every image except those a
        network owns (weights, moments, trainer states), so `resize 64,64` after building a
        network leaves the network alone."""
        if text is None:
            owned = self.network_images() if self.networks else ()
            return [i for i in range(len(self.images)) if self.images.names[i] not in owned]
        return select(text, self.images.names)

    def network(self):
        """The current network; a first nn_* command without nn_init starts one (in nn_lib
        2023's API: G'MIC 3.6's names every network, so there it is an error)."""
        if self.current_network is None:
            if self.api == "3.6":
                raise UserError("no network: start one with nn_init NAME")
            self.networks[DEFAULT_NAME] = Network(DEFAULT_NAME)
            self.current_network = DEFAULT_NAME
        return self.networks[self.current_network]

    def existing_network(self):
        """The current network; an error (rather than a new, empty one) when there is none."""
        if self.current_network is None:
            raise UserError("no network: build one with nn_* commands or load one with nn_load")
        return self.networks[self.current_network]

    def network_images(self):
        return owned_image_names(self.networks.values())


def _short(value):
    """nnpipe's own numbers (losses, accuracies) in their shortest exact form."""
    if isinstance(value, (list, tuple)):
        return ",".join(_short(v) for v in value)
    return format_number(value)

"""Input: values fed from the samples (a loss's ground truth is an input too)."""

from nnpipe.nn.building import OUT_NAME, add, network_command
from nnpipe.nn.layers import Layer
from nnpipe.registry import Int


class Input(Layer):
    """options: size (w, h, d, s), and ground_truth_of (the loss that created it) for a
    ground truth."""

    kind = "input"
    inputs = 0

    def build(self, input_sizes):
        return self.options["size"]


SIZE = (Int("width", low=1), Int("height", 1, low=1), Int("depth", 1, low=1), Int("spectrum", 1, low=1))


@network_command("nn_input", OUT_NAME, *SIZE, api="3.6")
@network_command("nn_input", OUT_NAME, *SIZE)
def nn_input(ctx, selection, out, width, height, depth, spectrum):
    """Add an input of size width,height,depth,spectrum (fed from the samples)."""
    add(ctx, out, Input(size=(width, height, depth, spectrum)), [])

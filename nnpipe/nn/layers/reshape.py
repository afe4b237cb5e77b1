"""Reshape and split: layers whose output is a view of their input's values, so the plan gives
them no buffer and no kernel (aliases, like rename and clone). reshape keeps every value in
the same order under a new size; split's two parts are the first nb_channels0 channels and
the rest, which are contiguous since a sample's values are flattened channel after channel.
G'MIC 3.6's split also cuts along x, y or z: those parts are crops (SplitPart, in
nnpipe.nn.layers.crop, whose kernels they run)."""

import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import Layer, count
from nnpipe.nn.layers.crop import SplitPart
from nnpipe.numbers import size_text
from nnpipe.registry import Choice, Int, LayerName


class Reshape(Layer):
    """options: size (w, h, d, s)."""

    kind = "reshape"
    alias = True

    def build(self, input_sizes):
        size = self.options["size"]
        if count(size) != count(input_sizes[0]):
            raise UserError(
                f"cannot reshape input ({size_text(input_sizes[0])}) to output"
                f" ({size_text(size)}): not the same number of values"
            )
        return size

    def export_onnx(self, g, step):
        return g.to_5d(step.inputs[0], step.size, step.name)


class Split(Layer):
    """options: channels (nb_channels0), part (0: the first channels, 1: the rest); axis ("c",
    given by G'MIC 3.6's command, which shows it)."""

    kind = "split"
    alias = True

    def build(self, input_sizes):
        (w, h, d, s), channels = input_sizes[0], self.options["channels"]
        if channels >= s:
            raise UserError(f"nb_channels0 must be less than the input's {s} channels (got {channels})")
        return (w, h, d, s - channels if self.options["part"] else channels)

    def alias_offset(self, input_sizes):
        w, h, d, _ = input_sizes[0]
        return self.options["part"] * w * h * d * self.options["channels"]

    def properties(self):
        return f"axis={self.options['axis']}" if "axis" in self.options else ""

    def export_onnx(self, g, step):
        channels = self.options["channels"]
        start, end = (0, channels) if self.options["part"] == 0 else (channels, step.input_sizes[0][3])
        return g.node(
            "Slice",
            [
                step.inputs[0],
                g.constant([start], f"{step.name}_start", np.int64),
                g.constant([end], f"{step.name}_end", np.int64),
                g.constant([g.CHANNEL_AXIS], f"{step.name}_axes", np.int64),
            ],
            step.name,
        )


AXES = "xyzc"
AXIS = Choice("axis", choices=tuple(AXES), help="x, y, z or c")


@network_command(
    "nn_reshape",
    OUT_NAME,
    IN_NAME,
    Int("width", low=1),
    Int("height", 1, low=1),
    Int("depth", 1, low=1),
    Int("spectrum", 1, low=1),
    api="3.6",
)
@network_command(
    "nn_reshape",
    OUT_NAME,
    IN_NAME,
    Int("width", low=1),
    Int("height", low=1),
    Int("depth", low=1),
    Int("spectrum", low=1),
)
def nn_reshape(ctx, selection, out, source, width, height, depth, spectrum):
    """Add a layer holding its input's values, in the same order, under another size.

    The new size must hold the same number of values."""
    add(ctx, out, Reshape(size=(width, height, depth, spectrum)), [source])


@network_command(
    "nn_split",
    LayerName("name0", previous=False, help="name of the first part"),
    LayerName("name1", previous=False, help="name of the second part"),
    IN_NAME,
    Int("nb_channels0", low=1, help="channels of the first part (the rest go to the second)"),
)
def nn_split(ctx, selection, name0, name1, source, channels):
    """Add two layers: the first nb_channels0 channels of the input, and the others."""
    source = ctx.network().resolve(source)
    add(ctx, name0, Split(channels=channels, part=0), [source])
    add(ctx, name1, Split(channels=channels, part=1), [source])
    ctx.network().latest = name0


@network_command(
    "nn_split",
    LayerName("out0", previous=False, help="name of the first part"),
    LayerName("out1", previous=False, help="name of the second part"),
    IN_NAME,
    AXIS,
    Int("size0", low=1, help="columns, rows, slices or channels of the first part (the rest: the second)"),
    api="3.6",
)
def nn_split_36(ctx, selection, out0, out1, source, axis, size0):
    """Add two layers cutting the input along an axis: its first size0 columns (x), rows (y),
    slices (z) or channels (c), and the others."""
    network = ctx.network()
    source = network.resolve(source)
    length = network.modules[source].size[AXES.index(axis)]
    if size0 >= length:
        raise UserError(f"size0 must be less than the input's {length} along {axis} (got {size0})")
    for part, name in enumerate((out0, out1)):
        if axis == "c":
            layer = Split(channels=size0, part=part, axis=axis)
        else:
            layer = SplitPart(axis=AXES.index(axis), size0=size0, part=part)
        add(ctx, name, layer, [source])
    network.latest = out0

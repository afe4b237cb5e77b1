"""Rename and clone: modules passing their input through (aliases of its buffer, so the plan
gives them no buffer and no kernel; their gradients add up in the input's)."""

from nnpipe.nn.building import IN_NAME, IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import Layer
from nnpipe.registry import LayerName


class Rename(Layer):
    kind = "rename"
    alias = True

    def export_onnx(self, g, step):
        return step.inputs[0]


class Clone(Rename):
    kind = "clone"


SECOND_COPY = LayerName("out1", previous=False, help="name of the second copy")


@network_command("nn_rename", OUT_NAME, IN_NAME, api="3.6")
@network_command("nn_rename", OUT_NAME, IN_OR_PREVIOUS)
def nn_rename(ctx, selection, out, source):
    """Give a layer another name (a module passing its input through)."""
    add(ctx, out, Rename(), [source])


@network_command("nn_clone", OUT_NAME, SECOND_COPY, IN_NAME, api="3.6")
@network_command("nn_clone", OUT_NAME, SECOND_COPY, IN_OR_PREVIOUS)
def nn_clone(ctx, selection, out0, out1, source):
    """Add two layers that both pass their input through unchanged."""
    source = ctx.network().resolve(source)
    add(ctx, out0, Clone(), [source])
    add(ctx, out1, Clone(), [source])
    ctx.network().latest = out0

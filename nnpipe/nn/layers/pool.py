"""Pooling over p x p (2D) or p x p x p (3D) patches: nn_lib's maxpool and avgpool.

Both make the output (w/p, h/p, d, s), d/p too in 3D. Max pooling takes the largest value of
each patch (the columns, rows and slices past the last whole patch are dropped) and sends the
gradient to it (the first one met, x fastest, on ties); G'MIC 3.6's can take the value of
largest magnitude instead, its sign kept (is_maxabs). Average pooling is nn_lib's: CImg's
moving-average resize to that size, so when p does not divide the size every output averages
a fractional box and nothing is dropped; its backward pass is the exact adjoint (nn_lib's
copies the gradient back undivided, p^2 times too large).
"""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN_NAME, IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import (
    IN0,
    IN_D,
    IN_H,
    IN_W,
    OUT,
    OUT_D,
    OUT_H,
    OUT_LEN,
    OUT_W,
    Layer,
    column,
    copy_values,
    gather,
    resize,
)
from nnpipe.nn.layers.resize import AVERAGE, Resize
from nnpipe.numbers import size_text
from nnpipe.registry import Bool, Int


class Pooling(Layer):
    """options: patch_size, dimensions (2 or 3); is_maxabs (G'MIC 3.6's max pooling)."""

    operation = "max"

    def __init__(self, **options):
        super().__init__(**options)
        self.kind = f"{self.operation}pool{options['dimensions']}d"

    def depth_patch(self):
        return self.options["patch_size"] if self.options["dimensions"] == 3 else 1

    def build(self, input_sizes):
        (w, h, d, s), p = input_sizes[0], self.options["patch_size"]
        size = (w // p, h // p, d // self.depth_patch(), s)
        if 0 in size:
            raise UserError(
                f"{self.kind} patches of size {p} do not fit in an input of size {size_text(input_sizes[0])}"
            )
        return size

    def properties(self):
        text = "patch_size=" + "x".join([str(self.options["patch_size"])] * self.options["dimensions"])
        return text + (f", is_maxabs={int(self.options['is_maxabs'])}" if "is_maxabs" in self.options else "")


class MaxPool(Pooling):
    kernel_arguments = ("patch_size", "depth_patch", "maxabs")

    def arguments(self, input_sizes):
        return {
            "patch_size": self.options["patch_size"],
            "depth_patch": self.depth_patch(),
            "maxabs": int(self.options.get("is_maxabs", False)),
        }

    def export_onnx(self, g, step):
        p, pd = self.options["patch_size"], self.depth_patch()
        pool = dict(kernel_shape=[pd, p, p], strides=[pd, p, p])
        if not self.options.get("is_maxabs"):
            return g.node("MaxPool", [step.inputs[0]], step.name, **pool)
        # the value of largest magnitude: max(x) where max(x) >= -min(x), else min(x) (the
        # first maximum on ties of the two magnitudes is not told apart: equal values)
        x = step.inputs[0]
        top = g.node("MaxPool", [x], f"{step.name}_max", **pool)
        negated = g.node("Neg", [x], f"{step.name}_negated")
        bottom = g.node(
            "Neg", [g.node("MaxPool", [negated], f"{step.name}_negated_max", **pool)], f"{step.name}_min"
        )
        larger = g.node(
            "GreaterOrEqual", [top, g.node("Neg", [bottom], f"{step.name}_magnitude")], f"{step.name}_which"
        )
        return g.node("Where", [larger, top, bottom], step.name)


class AveragePool(Pooling, Resize):
    """Resize's kernels with the moving average, at the pooled size."""

    operation = "avg"
    kernel_file = resize.__name__

    def arguments(self, input_sizes):
        return {"interpolation": AVERAGE}


PATCH, DEPTH_PATCH, MAXABS = (column(MaxPool, name) for name in MaxPool.kernel_arguments)
PATCH_SIZE = Int("patch_size", 2, low=2)
IS_MAXABS = Bool("is_maxabs", False, help="0 the largest value, 1 the value of largest magnitude")


@network_command("nn_maxpool2d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_maxpool2d(ctx, selection, out, source, patch_size):
    """Add 2D max pooling: the largest value of each p x p patch; size w/p,h/p,d,s."""
    add(ctx, out, MaxPool(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_maxpool3d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_maxpool3d(ctx, selection, out, source, patch_size):
    """Add 3D max pooling over p x p x p patches; size w/p,h/p,d/p,s."""
    add(ctx, out, MaxPool(patch_size=patch_size, dimensions=3), [source])


def _declare_36(dimensions):
    patch = "x".join(["p"] * dimensions)
    size = "w/p,h/p,d/p,s" if dimensions == 3 else "w/p,h/p,d,s"

    @network_command(
        f"nn_maxpool{dimensions}d",
        OUT_NAME,
        IN_NAME,
        PATCH_SIZE,
        IS_MAXABS,
        api="3.6",
        help=f"""Add {dimensions}D max pooling: the largest value (or, with is_maxabs, the value of
        largest magnitude) of each {patch} patch; size {size}.""",
    )
    def maxpool(ctx, selection, out, source, patch_size, is_maxabs):
        add(ctx, out, MaxPool(patch_size=patch_size, dimensions=dimensions, is_maxabs=is_maxabs), [source])

    @network_command(
        f"nn_avgpool{dimensions}d",
        OUT_NAME,
        IN_NAME,
        PATCH_SIZE,
        api="3.6",
        help=f"""Add {dimensions}D average pooling: a moving-average resize to {size} (when p does
        not divide the size, each output averages a fractional box).""",
    )
    def avgpool(ctx, selection, out, source, patch_size):
        add(ctx, out, AveragePool(patch_size=patch_size, dimensions=dimensions), [source])


for _dimensions in (2, 3):
    _declare_36(_dimensions)


@network_command("nn_avgpool2d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_avgpool2d(ctx, selection, out, source, patch_size):
    """Add 2D average pooling, as nn_lib: a moving-average resize to w/p,h/p,d,s (when p does
    not divide the size, each output averages a fractional box)."""
    add(ctx, out, AveragePool(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_avgpool3d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_avgpool3d(ctx, selection, out, source, patch_size):
    """Add 3D average pooling: a moving-average resize to w/p,h/p,d/p,s."""
    add(ctx, out, AveragePool(patch_size=patch_size, dimensions=3), [source])


@numba.njit(cache=True)
def _patches(op):
    """Where each output value's patch starts in the input, and the offsets of the patch's
    values from there (x fastest)."""
    p, pd = op[PATCH], op[DEPTH_PATCH]
    w, h, d = op[IN_W], op[IN_H], op[IN_D]
    starts = np.empty(op[OUT_LEN], dtype=np.int64)
    for k in range(starts.size):
        x, y, z, c = gather.position(k, op[OUT_W], op[OUT_H], op[OUT_D])
        starts[k] = op[IN0] + gather.index(p * x, p * y, pd * z, c, w, h, d)
    offsets = np.empty(p * p * pd, dtype=np.int64)
    for j in range(offsets.size):
        offsets[j] = gather.index(j % p, j // p % p, j // (p * p), 0, w, h, d)
    return starts, offsets


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, width):
    starts, offsets = _patches(op)
    for k in range(starts.size):
        y = acts[(op[OUT] + k) * width : (op[OUT] + k + 1) * width]
        first = starts[k] * width
        copy_values(acts[first : first + width], y)
        for j in range(1, offsets.size):
            at = (starts[k] + offsets[j]) * width
            x = acts[at : at + width]
            if op[MAXABS]:  # the first value of largest magnitude
                for c in range(width):
                    y[c] = x[c] if abs(x[c]) > abs(y[c]) else y[c]
            else:
                for c in range(width):
                    y[c] = max(y[c], x[c])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, width):
    starts, offsets = _patches(op)
    winner = np.empty(width, dtype=np.int64)  # per sample: the offset of the patch's maximum
    for k in range(starts.size):
        y = acts[(op[OUT] + k) * width : (op[OUT] + k + 1) * width]
        for j in range(offsets.size - 1, -1, -1):  # backwards, so that the first maximum wins
            x = acts[(starts[k] + offsets[j]) * width : (starts[k] + offsets[j] + 1) * width]
            for c in range(width):
                winner[c] = offsets[j] if x[c] == y[c] else winner[c]
        gy = grad_acts[(op[OUT] + k) * width : (op[OUT] + k + 1) * width]
        for c in range(width):
            grad_acts[(starts[k] + winner[c]) * width + c] += gy[c]

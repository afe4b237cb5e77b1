"""Crop: the box between two corners (x0,y0,z0,c0) and (x1,y1,z1,c1) of the input, both
included; what lies outside the input follows the boundary conditions.

nn_lib sizes the output by the corners' difference but copies from the first corner, so a box
given with x1 < x0 would reach past it; here the box starts at the smaller coordinate of each
axis, as G'MIC's crop command does. The backward pass is the exact adjoint for every boundary
condition (nn_lib's treats them all as dirichlet)."""

import numba
import numpy as np

from nnpipe.nn import boundary
from nnpipe.nn.building import IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN_D, IN_H, IN_S, IN_W, OUT_D, OUT_H, OUT_LEN, OUT_W, Layer, column, gather
from nnpipe.registry import Choice, Int


class Crop(Layer):
    kind = "crop"
    kernel_arguments = ("x0", "y0", "z0", "c0", "boundary_conditions")

    def build(self, input_sizes):
        return tuple(abs(b - a) + 1 for a, b in zip(self.options["first"], self.options["last"]))

    def arguments(self, input_sizes):
        origin = tuple(min(a, b) for a, b in zip(self.options["first"], self.options["last"]))
        condition = boundary.NAMES.index(self.options["boundary_conditions"])
        return dict(zip(self.kernel_arguments, origin + (condition,)))

    def properties(self):
        first, last = (",".join(str(v) for v in self.options[k]) for k in ("first", "last"))
        return f"coordinates=({first})x({last})"

    def export_onnx(self, g, step):
        return g.gathered(step, sources(step.row))


class SplitPart(Crop):
    """A part of G'MIC 3.6's split along x, y or z: the first size0 columns, rows or slices,
    or the rest. options: axis, size0, part."""

    kind = "split"

    def __init__(self, **options):
        super().__init__(boundary_conditions="dirichlet", **options)

    def build(self, input_sizes):
        axis, size0, part = (self.options[k] for k in ("axis", "size0", "part"))
        last = [n - 1 for n in input_sizes[0]]
        first = [0, 0, 0, 0]
        if part:
            first[axis] = size0
        else:
            last[axis] = size0 - 1
        self.options.update(first=tuple(first), last=tuple(last))
        return super().build(input_sizes)

    def properties(self):
        return f"axis={'xyzc'[self.options['axis']]}"


X0, Y0, Z0, C0, CONDITION = (column(Crop, name) for name in Crop.kernel_arguments)
CORNERS = [Int(axis) for axis in ("x0", "y0", "z0", "c0", "x1", "y1", "z1", "c1")]


@network_command(
    "nn_crop",
    OUT_NAME,
    IN_NAME,
    *CORNERS,
    Choice(
        "boundary_conditions",
        "dirichlet",
        choices=boundary.NAMES,
        help="0 dirichlet (zeros outside), 1 neumann, 2 periodic, 3 mirror",
    ),
)
def nn_crop(ctx, selection, out, source, x0, y0, z0, c0, x1, y1, z1, c1, boundary_conditions):
    """Add a layer cropping the box (x0,y0,z0,c0)-(x1,y1,z1,c1), both corners included.

    Outside the input, values follow the boundary conditions."""
    add(
        ctx,
        out,
        Crop(first=(x0, y0, z0, c0), last=(x1, y1, z1, c1), boundary_conditions=boundary_conditions),
        [source],
    )


@network_command(
    "nn_crop",
    OUT_NAME,
    IN_NAME,
    *CORNERS,
    Int(
        "boundary_conditions",
        0,
        low=0,
        high=3,
        help="0 dirichlet (zeros outside), 1 neumann, 2 periodic, 3 mirror",
    ),
    api="3.6",
)
def nn_crop_36(ctx, selection, out, source, x0, y0, z0, c0, x1, y1, z1, c1, boundary_conditions):
    """Add a layer cropping the box (x0,y0,z0,c0)-(x1,y1,z1,c1), both corners included.

    Outside the input, values follow the boundary conditions."""
    nn_crop(ctx, selection, out, source, x0, y0, z0, c0, x1, y1, z1, c1, boundary.NAMES[boundary_conditions])


@numba.njit(cache=True)
def sources(op):
    condition = op[CONDITION]
    table = np.empty(op[OUT_LEN], dtype=np.int64)
    for k in range(table.size):
        x, y, z, c = gather.position(k, op[OUT_W], op[OUT_H], op[OUT_D])
        x = boundary.coordinate(x + op[X0], op[IN_W], condition)
        y = boundary.coordinate(y + op[Y0], op[IN_H], condition)
        z = boundary.coordinate(z + op[Z0], op[IN_D], condition)
        c = boundary.coordinate(c + op[C0], op[IN_S], condition)
        inside = x >= 0 and y >= 0 and z >= 0 and c >= 0
        table[k] = gather.index(x, y, z, c, op[IN_W], op[IN_H], op[IN_D]) if inside else -1
    return table


@numba.njit(cache=True)
def forward(op, acts, width):
    gather.forward(op, acts, width, sources(op))


@numba.njit(cache=True)
def backward(op, grad_acts, width):
    gather.backward(op, grad_acts, width, sources(op))

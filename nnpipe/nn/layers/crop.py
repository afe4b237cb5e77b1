"""Crop: the box between two corners (x0,y0,z0,c0) and (x1,y1,z1,c1) of the input, both
included; what lies outside the input follows the boundary conditions.

nn_lib sizes the output by the corners' difference but copies from the first corner, so a box
given with x1 < x0 would reach past it; here the box starts at the smaller coordinate of each
axis, as G'MIC's crop command does. The backward pass is the exact adjoint for every boundary
condition (nn_lib's treats them all as dirichlet)."""

import numba
import numpy as np

from nnpipe.nn import boundary
from nnpipe.nn.layers import (ARG0, ARG1, ARG2, ARG3, ARG4, IN_D, IN_H, IN_S, IN_W, OUT_D,
                              OUT_H, OUT_LEN, OUT_W, Layer, gather)

OPCODE = 11


class Crop(Layer):
    kind = "crop"
    opcode = OPCODE

    def output_size(self, input_sizes):
        return tuple(abs(b - a) + 1 for a, b in zip(self.options["first"], self.options["last"]))

    def arguments(self, input_sizes):
        origin = tuple(min(a, b) for a, b in zip(self.options["first"], self.options["last"]))
        return origin + (boundary.NAMES.index(self.options["boundary_conditions"]),), 0.0

    def properties(self):
        first, last = (",".join(str(v) for v in self.options[k]) for k in ("first", "last"))
        return f"coordinates=({first})x({last})"


@numba.njit(cache=True)
def sources(op):
    condition = op[ARG4]
    table = np.empty(op[OUT_LEN], dtype=np.int64)
    for k in range(table.size):
        x, y, z, c = gather.position(k, op[OUT_W], op[OUT_H], op[OUT_D])
        x = boundary.coordinate(x + op[ARG0], op[IN_W], condition)
        y = boundary.coordinate(y + op[ARG1], op[IN_H], condition)
        z = boundary.coordinate(z + op[ARG2], op[IN_D], condition)
        c = boundary.coordinate(c + op[ARG3], op[IN_S], condition)
        inside = x >= 0 and y >= 0 and z >= 0 and c >= 0
        table[k] = gather.index(x, y, z, c, op[IN_W], op[IN_H], op[IN_D]) if inside else -1
    return table


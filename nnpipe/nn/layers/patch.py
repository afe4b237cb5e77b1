"""Patchdown (space to depth) and patchup (depth to space), in 2D or 3D.

patchdown with patch size p turns each p x p (x p) patch of every channel into channels:
OUT[c*P + px + p*py + p*p*pz](x, y, z) = IN[c](p*x + px, p*y + py, p*z + pz), P = p^2 (p^3),
pz = 0 and no depth patches in 2D; the columns, rows (and slices) past the last whole patch
are dropped. patchup is its inverse. nn_lib's patchup kernels are broken at the reference
commit (a misspelt variable, an image read where the input vector was meant); this is the
inverse they were meant to be."""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN_NAME, IN_OR_PREVIOUS, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN_D, IN_H, IN_W, OUT_D, OUT_H, OUT_LEN, OUT_W, Layer, column, gather
from nnpipe.numbers import size_text
from nnpipe.registry import Int


class PatchDown(Layer):
    """options: patch_size, dimensions (2 or 3)."""

    kernel_arguments = ("patch_size", "depth_patch", "down")
    down = True

    def __init__(self, **options):
        super().__init__(**options)
        self.kind = f"patch{'down' if self.down else 'up'}{options['dimensions']}d"

    def depth_patch(self):
        return self.options["patch_size"] if self.options["dimensions"] == 3 else 1

    def build(self, input_sizes):
        (w, h, d, s), p, pd = input_sizes[0], self.options["patch_size"], self.depth_patch()
        size = (w // p, h // p, d // pd, s * p * p * pd)
        if 0 in size:
            raise UserError(
                f"patch size {self.patch_text()} is larger than the input ({size_text(input_sizes[0])})"
            )
        return size

    def arguments(self, input_sizes):
        return {
            "patch_size": self.options["patch_size"],
            "depth_patch": self.depth_patch(),
            "down": int(self.down),
        }

    def patch_text(self):
        return "x".join([str(self.options["patch_size"])] * self.options["dimensions"])

    def properties(self):
        return f"patch_size={self.patch_text()}"

    def export_onnx(self, g, step):
        return g.gathered(step, sources(step.row))


class PatchUp(PatchDown):
    down = False

    def build(self, input_sizes):
        (w, h, d, s), p, pd = input_sizes[0], self.options["patch_size"], self.depth_patch()
        if s % (p * p * pd):
            raise UserError(
                f"patch size {self.patch_text()} needs a number of channels divisible"
                f" by {p * p * pd} (got {s})"
            )
        return (w * p, h * p, d * pd, s // (p * p * pd))


PATCH, DEPTH_PATCH, DOWN = (column(PatchDown, name) for name in PatchDown.kernel_arguments)


@numba.njit(cache=True)
def sources(op):
    p, pd, down = op[PATCH], op[DEPTH_PATCH], op[DOWN]
    patch = p * p * pd
    table = np.empty(op[OUT_LEN], dtype=np.int64)
    for k in range(table.size):
        x, y, z, c = gather.position(k, op[OUT_W], op[OUT_H], op[OUT_D])
        if down:
            r = c % patch
            x, y, z, c = p * x + r % p, p * y + r // p % p, pd * z + r // (p * p), c // patch
        else:
            x, y, z, c = x // p, y // p, z // pd, c * patch + x % p + p * (y % p) + p * p * (z % pd)
        table[k] = gather.index(x, y, z, c, op[IN_W], op[IN_H], op[IN_D])
    return table


@numba.njit(cache=True)
def forward(op, acts, width):
    gather.forward(op, acts, width, sources(op))


@numba.njit(cache=True)
def backward(op, grad_acts, width):
    gather.backward(op, grad_acts, width, sources(op))


PATCH_SIZE = Int("patch_size", 2, low=2)


@network_command("nn_patchdown2d", OUT_NAME, IN_NAME, PATCH_SIZE, api="3.6")
@network_command("nn_patchdown2d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchdown2d(ctx, selection, out, source, patch_size):
    """Add a layer moving each p x p patch into channels (space to depth): size w/p,h/p,d,s*p^2."""
    add(ctx, out, PatchDown(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_patchdown3d", OUT_NAME, IN_NAME, PATCH_SIZE, api="3.6")
@network_command("nn_patchdown3d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchdown3d(ctx, selection, out, source, patch_size):
    """Add a layer moving each p x p x p patch into channels: size w/p,h/p,d/p,s*p^3."""
    add(ctx, out, PatchDown(patch_size=patch_size, dimensions=3), [source])


@network_command("nn_patchup2d", OUT_NAME, IN_NAME, PATCH_SIZE, api="3.6")
@network_command("nn_patchup2d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchup2d(ctx, selection, out, source, patch_size):
    """Add a layer undoing nn_patchdown2d (depth to space): size w*p,h*p,d,s/p^2."""
    add(ctx, out, PatchUp(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_patchup3d", OUT_NAME, IN_NAME, PATCH_SIZE, api="3.6")
@network_command("nn_patchup3d", OUT_NAME, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_patchup3d(ctx, selection, out, source, patch_size):
    """Add a layer undoing nn_patchdown3d: size w*p,h*p,d*p,s/p^3."""
    add(ctx, out, PatchUp(patch_size=patch_size, dimensions=3), [source])

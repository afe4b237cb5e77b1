"""Cutting an image into square patches and putting them back, as G'MIC 3.6.3's img2patches
and patches2img: the patches of a w x h image lie on a grid of step P - overlap, ceil(w/step)
across and ceil(h/step) down, row by row, stacked along z (a P,P,N,s image); the last ones
overhang the image (their outside pixels come from a boundary condition). Putting them back
averages where they overlap, with uniform or gaussian weights.

For the commands built on them, on float32 (s,d,h,w) arrays: img2patches(image, size, overlap,
boundary) -> (s,N,P,P), patches2img(patches, width, height, overlap, sigma) -> (s,1,h,w),
patch_weights(size, sigma), patch_size(patches). Both move whole grids of patches at once (no
loop over pixels)."""

import math

import numpy as np

from nnpipe.commands.images import BOUNDARIES, take_with_boundary
from nnpipe.errors import ImageError, UserError
from nnpipe.images.imagelist import check_size
from nnpipe.numbers import gmic_round, size_text
from nnpipe.registry import IMAGES, Amount, Choice, Int, command


def grid(width, height, step):
    """The number of patches across and down that cover width x height with this step."""
    return math.ceil(width / step), math.ceil(height / step)


def img2patches(image, size, overlap=0, boundary="dirichlet"):
    """The size x size patches of a 2D image, on the grid of step size - overlap (0 <= overlap <
    size), row by row, as one (s, N, size, size) array; pixels beyond the image come from the
    boundary condition (dirichlet 0, neumann, periodic, mirror)."""
    channels, depth, height, width = image.shape
    if depth > 1:
        raise ImageError(f"is not a 2D image (size {size_text(image.shape[::-1])})")
    step = size - overlap
    across, down = grid(width, height, step)
    check_size((size, size, across * down, channels), "the patches")
    covered = take_with_boundary(image[:, 0], 1, np.arange((down - 1) * step + size), boundary)
    covered = take_with_boundary(covered, 2, np.arange((across - 1) * step + size), boundary)
    windows = np.lib.stride_tricks.sliding_window_view(covered, (size, size), axis=(1, 2))
    return np.ascontiguousarray(windows[:, ::step, ::step].reshape(channels, across * down, size, size))


def patch_weights(size, sigma):
    """patches2img's weights for overlapping patches: a centred gaussian of standard deviation
    `sigma` (at least 1/3), scaled to [0, 1], then at least 0.01; float32 as G'MIC makes it (a
    sigma so large that the gaussian is flat in float32 gives 0.01 everywhere)."""
    rate = 1 / (2 * max(1 / 3, sigma) ** 2)
    squares = (np.arange(size) - (size - 1) / 2) ** 2
    exponent = (rate * squares[np.newaxis, :] + rate * squares[:, np.newaxis]).astype(np.float32)
    gaussian = np.exp(-exponent.astype(np.float64)).astype(np.float32)
    low, high = gaussian.min(), gaussian.max()
    scaled = np.zeros_like(gaussian) if high == low else (gaussian - low) / (high - low)
    return np.maximum(scaled, np.float32(0.01))


def patch_size(patches):
    """The width and height of the patches of a P,P,N,s image; an error if they differ."""
    size = patches.shape[2]
    if patches.shape[3] != size:
        raise ImageError(f"is not a patch image (size {size_text(patches.shape[::-1])}): not square")
    return size


def patches2img(patches, width, height, overlap=0, sigma=None):
    """The width x height image the patches (s, N, P, P) of img2patches' grid (step P - overlap)
    make. Without overlap each pixel is its patch's; with overlap the patches' weighted mean:
    sum(M patch) / (1e-5 + sum(M)), M = 1 (sigma None) or patch_weights(P, sigma). Patches
    beyond the grid are dropped; pixels no patch covers are 0."""
    channels, count = patches.shape[:2]
    size = patch_size(patches)
    step = size - overlap
    across, down = grid(width, height, step)
    check_size((width, height, 1, channels), "the image")
    check_size((size, size, across * down, channels), "the grid of patches")
    present = np.zeros(across * down, dtype=np.float32)
    present[: min(count, across * down)] = 1
    laid = np.zeros((channels, across * down, size, size), dtype=np.float32)
    laid[:, : min(count, across * down)] = patches[:, : across * down]
    if not overlap:  # a mosaic: each pixel from one patch
        mosaic = laid.reshape(channels, down, across, size, size).transpose(0, 1, 3, 2, 4)
        return mosaic.reshape(channels, 1, down * size, across * size)[:, :, :height, :width].copy()
    weights = np.ones((size, size), np.float32) if sigma is None else patch_weights(size, sigma)
    total = _overlay(laid * weights, across, down, step)
    weight = _overlay(present.reshape(1, -1, 1, 1) * weights, across, down, step)
    result = total / (np.float32(1e-5) + weight)
    return result[:, np.newaxis, :height, :width].astype(np.float32)


def _overlay(patches, across, down, step):
    """The sum (float64) of the patches (s, across*down, P, P) placed on the grid of `step`.
    Patches `stride` grid places apart do not overlap, so each of the stride x stride families of
    patches is laid out at once as one mosaic of P x P tiles in stride*step cells."""
    channels, _, size, _ = patches.shape
    stride = math.ceil(size / step)
    cell = stride * step
    placed = patches.reshape(channels, down, across, size, size)
    total = np.zeros((channels, (down + stride) * step + size, (across + stride) * step + size))
    for row in range(min(stride, down)):
        for column in range(min(stride, across)):
            family = placed[:, row::stride, column::stride]
            rows, columns = family.shape[1:3]
            mosaic = np.zeros((channels, rows, cell, columns, cell))
            mosaic[:, :, :size, :, :size] = family.transpose(0, 1, 3, 2, 4)
            top, left = row * step, column * step
            total[:, top : top + rows * cell, left : left + columns * cell] += mosaic.reshape(
                channels, rows * cell, columns * cell
            )
    return total


def overlap_pixels(overlap, size, text):
    """The overlap in pixels for patches of `size`; it must be less than the size."""
    value, percent = overlap
    pixels = gmic_round((size - 1) * value / 100) if percent else math.trunc(value)
    if pixels >= size:
        raise UserError(f"overlap {text} ({pixels} pixels) must be less than the patch size ({size})")
    return pixels


def _overlap_text(overlap):
    value, percent = overlap
    return f"{value:g}{'%' * percent}"


@command(
    "img2patches",
    group=IMAGES,
    each=True,
    params=[
        Int("patch_size", low=1, help="the patches' width and height"),
        Amount(
            "overlap", (0, False), low=0, help="pixels shared by neighbouring patches, or N% of patch_size-1"
        ),
        Choice(
            "boundary_conditions",
            "dirichlet",
            choices=BOUNDARIES,
            help="what the patches overhanging the image hold beyond it: 0 dirichlet (zeros), 1 neumann"
            " (the nearest edge), 2 periodic, 3 mirror (default: 0)",
        ),
    ],
)
def img2patches_command(ctx, image, patch_size, overlap, boundary_conditions):
    """Cut each 2D image into square patches stacked along z (G'MIC's img2patches): a
    patch_size,patch_size,N,s image. The patches lie on a grid of step patch_size - overlap
    from the top-left corner, row by row; patches2img puts them back."""
    pixels = overlap_pixels(overlap, patch_size, _overlap_text(overlap))
    return img2patches(image, patch_size, pixels, boundary_conditions)


class Sigma(Amount):
    """patches2img's overlap_std: -1 (uniform weights, parsed to None), or a number >= 0 or N%."""

    def describe(self):
        return "-1 (uniform weights), or a number >= 0 or N% (of the patch size)"

    def parse(self, text):
        value, percent = super().parse(text)
        if value == -1 and not percent:
            return None
        if value < 0:
            self.fail(text)
        return value, percent


@command(
    "patches2img",
    group=IMAGES,
    each=True,
    params=[
        Int("width", low=1, help="the width of the image to make"),
        Int("height", low=1, help="its height"),
        Amount("overlap", (0, False), low=0, help="the overlap the patches were cut with (pixels, or N%)"),
        Sigma(
            "overlap_std",
            None,
            low=-1,
            help="the standard deviation of the gaussian weights of overlapping patches (pixels, or N%"
            " of the patch size); -1: uniform weights (default: -1)",
        ),
    ],
)
def patches2img_command(ctx, image, width, height, overlap, overlap_std):
    """Put a stack of square patches (img2patches' P,P,N,s image) back into a width x height
    image (G'MIC's patches2img). Where patches overlap, their mean weighted by overlap_std's
    gaussian, which favours each patch's centre; each weight is at least 1% of the largest."""
    size = patch_size(image)
    pixels = overlap_pixels(overlap, size, _overlap_text(overlap))
    sigma = None
    if overlap_std is not None:
        value, percent = overlap_std
        sigma = value * size / 100 if percent else value
    return patches2img(image, width, height, pixels, sigma)

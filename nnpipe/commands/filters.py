"""The Laplacian and the noise estimate made from it, as G'MIC 3.6.3's laplacian and std_noise.

For the commands built on them: laplacian(image) (an array), std_noise(image) (a number) and
std_noise_of_slices(stack) (one number per slice, for patches).
Both compute in float32 as G'MIC does, so std_noise gives G'MIC's number to the last digits."""

import math

import numpy as np

from nnpipe.numbers import gmic_number
from nnpipe.registry import IMAGES, command


def laplacian(image, axes=None):
    """Per channel, the sum of the second differences I(x+1) + I(x-1) - 2 I(x) along x and y
    (and z when the image has depth; `axes` chooses others), the border value repeated beyond
    the edges (so a border difference is one-sided). float32, each term rounded in G'MIC's
    order: I(x+1) + (I(x-1) - 2 I(x)), then the axes summed x, y, z."""
    if axes is None:
        axes = (3, 2, 1) if image.shape[1] > 1 else (3, 2)
    padded = np.pad(image, [(0, 0), (1, 1), (1, 1), (1, 1)], mode="edge")
    twice = np.float32(2) * padded[:, 1:-1, 1:-1, 1:-1]
    inner = (slice(None), slice(1, -1), slice(1, -1), slice(1, -1))
    result = None
    for axis in axes:
        after, before = list(inner), list(inner)
        after[axis], before[axis] = slice(2, None), slice(None, -2)
        term = padded[tuple(after)] + (padded[tuple(before)] - twice)
        result = term if result is None else result + term
    return result


def medians(rows):
    """G'MIC's median of each row of float32 values: the middle one, or the float32 mean of the
    two middle ones for an even count."""
    half = rows.shape[1] // 2
    if rows.shape[1] % 2:
        return np.partition(rows, half, axis=1)[:, half]
    ordered = np.partition(rows, (half - 1, half), axis=1)
    return (ordered[:, half - 1] + ordered[:, half]) / np.float32(2)


def _noise(laplacians, kernel_norm):
    """The noise estimate of each row of Laplacian values (see std_noise)."""
    deviations = medians(np.abs(laplacians - medians(laplacians)[:, np.newaxis]))
    return 1.4826 * (deviations.astype(np.float64) / kernel_norm)  # G'MIC's order of operations


def std_noise(image):
    """The standard deviation of the noise in `image`, estimated as G'MIC does: the median
    absolute deviation of the Laplacian's values (all channels together), times 1.4826 (the
    MAD of a unit gaussian) over the norm of the Laplacian's kernel, sqrt(20) (sqrt(42) in
    3D)."""
    kernel_norm = math.sqrt(20 if image.shape[1] == 1 else 42)
    return float(_noise(laplacian(image).reshape(1, -1), kernel_norm)[0])


def std_noise_of_slices(stack):
    """std_noise of each slice z of `stack` (s,N,h,w) taken as a 2D image, all at once: the
    noise of each patch img2patches cut. An array of N numbers."""
    slices = laplacian(stack, axes=(3, 2)).transpose(1, 0, 2, 3)
    return _noise(slices.reshape(stack.shape[1], -1), math.sqrt(20))


@command("laplacian", group=IMAGES, each=True)
def laplacian_command(ctx, image):
    """Replace each image by its Laplacian (G'MIC's laplacian): per channel, the sum of the
    second differences along x, y (and z), the border values repeated beyond the edges."""
    return laplacian(image)


@command("std_noise", group=IMAGES, plus_on_copies=True)
def std_noise_command(ctx, selection):
    """Estimate the standard deviation of the noise in the last selected image, as G'MIC's
    std_noise: its status holds the number (0 without images), which ${-std_noise} substitutes.

    The estimate is the median absolute deviation of the image's Laplacian (all channels),
    scaled to a gaussian's standard deviation: 1.4826 MAD / sqrt(20) (sqrt(42) in 3D)."""
    ctx.status = gmic_number(std_noise(ctx.images[selection[-1]])) if selection else "0"

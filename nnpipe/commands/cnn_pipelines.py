"""The image side of G'MIC 3.6.3's trained networks denoise_cnn and scale2x_cnn: all each does to
an image before and after its network, the network left to the caller as a function that runs it
on a whole stack of patches at once (the patches stacked along z, the layout in which the engine
takes image-shaped samples). Each step is G'MIC's stdlib's, checked against G'MIC.

    denoise(image, denoiser, noise_level=0, patch_size=64)
        denoiser(patches, levels): patches (3,N,P,P) float32 on 0-1, levels (N,) float32 noise
        sigmas on the 0-255 scale -> the denoised patches (3,N,P,P), on 0-1 (layer OUT).
    scale2x(image, upscaler, sharpness=1.25)
        upscaler(patches): patches (1,N,32,32) float32 of luma (Y of YCbCr, 16-235) -> the
        detail (1,N,64,64) the network adds to its own bicubic upscale (layer RESIDUAL).

Checking the arguments (noise_level >= 0, patch_size an integer >= 1, sharpness >= 0) is the
commands' part, as their signatures."""

import numpy as np

from nnpipe.commands.axes import keep_range
from nnpipe.commands.colors import rgb2ycbcr, split_opacity, to_rgb, ycbcr2rgb
from nnpipe.commands.filters import std_noise_of_slices
from nnpipe.commands.images import appended, resized
from nnpipe.commands.patches import img2patches, patches2img
from nnpipe.registry import index_of

SCALE2X_PATCH = 32  # the input size scale2x's network was built for
SCALE2X_OVERLAP = 8


def denoise(image, denoiser, noise_level=0, patch_size=64):
    """G'MIC's denoise_cnn on one image of values 0-255 (G, GA, RGB or RGBA; of a 3D image, the
    middle slice): its colour cut into patch_size x patch_size patches overlapping by a quarter
    (mirrored beyond the edges), each denoised knowing its noise level (`noise_level`, or when 0
    the patch's own std_noise, at least 1), put back with gaussian weights of standard deviation
    patch_size/2, clipped to 0-255; the opacity kept as it was. A gray image goes through the
    network as RGB and keeps the red output."""
    color, *opacity = split_opacity(image)
    middle = index_of((50, True), color.shape[1])
    color = keep_range(color, 1, middle, middle)
    channels, _, height, width = color.shape
    overlap = patch_size // 4
    patches = img2patches(to_rgb(color), patch_size, overlap, "mirror")
    count = patches.shape[1]
    if noise_level:
        levels = np.full(count, noise_level, dtype=np.float32)
    else:
        levels = np.maximum(std_noise_of_slices(patches).astype(np.float32), np.float32(1))
    denoised = denoiser(patches / np.float32(255), levels)
    denoised = resized(denoised, (patch_size, patch_size, count, channels))  # nearest: R for G
    result = patches2img(denoised, width, height, overlap, patch_size / 2) * np.float32(255)
    return appended([np.clip(result, 0, 255), *opacity], "c")


def scale2x(image, upscaler, sharpness=1.25):
    """G'MIC's scale2x_cnn on one image of values 0-255: twice its width and height, RGB (RGBA
    with an opacity; a gray image comes out RGB). Its luma is cut into 32 x 32 patches overlapping
    by 8, whose network detail, put back with uniform weights and times `sharpness`, is added to
    a linear upscale of the YCbCr image; then one back-projection step makes the result's 2x2
    means match the luma again. Sharpness 0: the linear upscale alone, of any image."""
    channels, _, height, width = image.shape
    if not sharpness:
        return resized(image, (2 * width, 2 * height, 1, channels), "linear")
    ycbcr = rgb2ycbcr(image)
    _, _, height, width = ycbcr.shape  # a gray 3D image became 2D
    upscaled = resized(ycbcr, (2 * width, 2 * height, 1, ycbcr.shape[0]), "linear")
    luma = ycbcr[:1]
    patches = img2patches(luma, SCALE2X_PATCH, SCALE2X_OVERLAP, "mirror")
    detail = patches2img(upscaler(patches), 2 * width, 2 * height, 2 * SCALE2X_OVERLAP)
    sharp = detail * np.float32(sharpness) + upscaled[:1]
    error = luma - resized(sharp, (width, height, 1, 1), "average")
    sharp += resized(error, (2 * width, 2 * height, 1, 1), "linear")
    return ycbcr2rgb(np.concatenate([sharp, upscaled[1:]]))

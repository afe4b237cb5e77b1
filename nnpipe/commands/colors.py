"""Colour modes and colour spaces, as G'MIC 3.6.3 defines them: to_rgb, to_rgba, to_color,
split_opacity, mix_rgb, rgb2ycbcr, ycbcr2rgb. A colour image has 1 to 4 channels: G, GA, RGB or
RGBA (A the opacity); values are on G'MIC's 0-255 scale.

For the commands built on them, each takes and returns float32 (s,d,h,w) arrays: to_rgb,
to_rgba, to_color, split_opacity (a list of one or two), mix_rgb, rgb2ycbcr, ycbcr2rgb. The
arithmetic is float32 where G'MIC's is, so the values are G'MIC's to the last bit or nearly."""

import textwrap

import numpy as np

from nnpipe.errors import ImageError
from nnpipe.registry import IMAGES, Float, command


def _check_color(image):
    channels = image.shape[0]
    if not 1 <= channels <= 4:
        raise ImageError(f"is not a G, GA, RGB or RGBA image ({channels} channels)")


def _gray_to_rgb(image):
    return np.repeat(image[:1], 3, axis=0)


def to_rgb(image):
    """G -> GGG, GA -> GGG (the opacity dropped), RGB kept, RGBA -> RGB."""
    _check_color(image)
    return image[:3] if image.shape[0] >= 3 else _gray_to_rgb(image)


def to_rgba(image):
    """G -> GGG with opacity 255, GA -> GGGA, RGB -> RGB with opacity 255, RGBA kept."""
    _check_color(image)
    channels = image.shape[0]
    if channels == 4:
        return image
    opacity = image[1:2] if channels == 2 else np.full_like(image[:1], 255)
    return np.concatenate([to_rgb(image), opacity])


def to_color(image):
    """G -> GGG, GA -> GGGA, RGB and RGBA kept (what G'MIC's colour conversions start with).
    A G or GA image keeps its first slice only: G'MIC resizes it to depth 1 as it converts."""
    _check_color(image)
    if image.shape[0] >= 3:
        return image
    first = image[:, :1]
    return np.concatenate([_gray_to_rgb(first), first[1:2]])


def split_opacity(image):
    """[colour, opacity] of an RGBA or GA image ([RGB, A], [G, A]); [image] for any other."""
    channels = image.shape[0]
    if channels in (2, 4):
        return [image[: channels - 1], image[channels - 1 :]]
    return [image]


def mix_rgb(image, matrix):
    """to_color, then each pixel's RGB multiplied by the 3x3 `matrix` (rows: R', G', B'), the
    opacity kept. Coefficients are float32 and sums float64, as G'MIC's matrix product."""
    image = to_color(image)
    matrix = np.asarray(matrix, dtype=np.float32).astype(np.float64)
    rgb = image[:3].astype(np.float64)
    mixed = [row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2] for row in matrix]
    return np.concatenate([np.asarray(mixed, dtype=np.float32), image[3:]])


YCBCR = ((66, 129, 25), (-38, -74, 112), (112, -94, -18))
RGB = ((298, 0, 409), (298, -100, -208), (298, 516, 0))


def rgb2ycbcr(image):
    """RGB to YCbCr with G'MIC's integer BT.601 matrix, neither rounded nor clipped:
    Y = (66R + 129G + 25B + 128)/256 + 16, Cb = (-38R - 74G + 112B + 128)/256 + 128,
    Cr = (112R - 94G - 18B + 128)/256 + 128. A G or GA image is made colour first."""
    mixed = mix_rgb(image, YCBCR)
    ycbcr = (mixed[:3] + np.float32(128)) / np.float32(256)
    ycbcr += np.array([16, 128, 128], dtype=np.float32).reshape(3, 1, 1, 1)
    return np.concatenate([ycbcr, mixed[3:]])


def ycbcr2rgb(image):
    """YCbCr to RGB, G'MIC's inverse of rgb2ycbcr (to about 0.5, not exactly), clipped to
    [0, 255]: with Y' = Y-16, Cb' = Cb-128, Cr' = Cr-128, R = (298Y' + 409Cr' + 128)/256,
    G = (298Y' - 100Cb' - 208Cr' + 128)/256, B = (298Y' + 516Cb' + 128)/256. Channels after the
    third are kept."""
    if image.shape[0] < 3:
        raise ImageError(f"has {image.shape[0]} channel{'s' * (image.shape[0] != 1)}, not the 3 of YCbCr")
    centred = image[:3] - np.array([16, 128, 128], dtype=np.float32).reshape(3, 1, 1, 1)
    rgb = (mix_rgb(centred, RGB) + np.float32(128)) / np.float32(256)
    return np.concatenate([np.clip(rgb, 0, 255), image[3:]])


def _per_image(name, function, help):
    command(name, group=IMAGES, each=True, help=textwrap.fill(help, 95))(lambda ctx, image: function(image))


NOT_COLOR = "An image of more than 4 channels is an error."
_per_image(
    "to_rgb", to_rgb, f"Make each image RGB (G'MIC's to_rgb): G and GA become GGG, RGBA RGB. {NOT_COLOR}"
)
_per_image(
    "to_rgba",
    to_rgba,
    f"Make each image RGBA (G'MIC's to_rgba): G becomes GGG and RGB keeps its colours, both with"
    f" opacity 255; GA becomes GGGA. {NOT_COLOR}",
)
_per_image(
    "to_color",
    to_color,
    "Make each gray image colour, keeping its opacity (G'MIC's to_color): G becomes GGG, GA GGGA"
    f" (of a 3D image, the first slice only, as in G'MIC); RGB and RGBA stay. {NOT_COLOR}",
)
_per_image(
    "split_opacity",
    split_opacity,
    "Split each RGBA or GA image into its colour and its opacity (G'MIC's split_opacity): image"
    " `a` becomes `a` (RGB or G) and `a_c1` (A); other images stay whole.",
)
_per_image(
    "rgb2ycbcr",
    rgb2ycbcr,
    "Convert each image from RGB to YCbCr (G'MIC's rgb2ycbcr: the integer BT.601 matrix of 8-bit"
    " video, Y in 16-235, neither rounded nor clipped). G and GA images are made colour first; the"
    f" opacity stays. {NOT_COLOR}",
)
_per_image(
    "ycbcr2rgb",
    ycbcr2rgb,
    "Convert each image from YCbCr to RGB (G'MIC's ycbcr2rgb), clipped to 0-255; channels after the"
    " third stay. rgb2ycbcr then ycbcr2rgb gives the colours back to about 0.5. An image of fewer"
    " than 3 channels is an error.",
)

IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)


@command(
    "mix_rgb",
    group=IMAGES,
    each=True,
    params=[
        Float(f"a{row}{column}", IDENTITY[3 * (row - 1) + column - 1])
        for row in (1, 2, 3)
        for column in (1, 2, 3)
    ],
)
def mix_rgb_command(ctx, image, *coefficients):
    """Multiply each pixel's RGB by the 3x3 matrix a11…a33 (row by row: R' = a11 R + a12 G +
    a13 B…), as G'MIC's mix_rgb; G and GA images are made colour first, the opacity kept."""
    return mix_rgb(image, np.reshape(coefficients, (3, 3)))

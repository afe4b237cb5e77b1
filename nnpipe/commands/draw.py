"""Drawing one image onto another: G'MIC's `image` (`j`), with its opacity (-1 adds the sprite, as
G'MIC's scale2x_cnn uses it) and opacity mask. float32 as CImg's draw_image computes.

For the commands built on it: drawn(image, sprite, (x, y, z, c), opacity, mask, mask_max)."""

import numpy as np

from nnpipe.errors import UserError
from nnpipe.numbers import gmic_round, size_text
from nnpipe.registry import IMAGES, Amount, Float, Text, command


def drawn(image, sprite, position, opacity=1.0, mask=None, mask_max=1.0):
    """A copy of `image` with `sprite` drawn with its first pixel at `position` (x, y, z, c; the
    parts outside `image` dropped). Without a mask: opacity >= 1 replaces, otherwise
    |opacity| sprite + (1 - max(opacity, 0)) image (so -1 adds the sprite). With a mask of the
    sprite's width, height and depth (its channels cycled over the sprite's), the opacity is
    mask*opacity at each pixel, on a scale of mask_max."""
    result = image.copy()
    to, source = [], []
    for axis, start in zip((3, 2, 1, 0), position):
        low, high = max(start, 0), min(start + sprite.shape[axis], image.shape[axis])
        if low >= high:
            return result
        to.append(slice(low, high))
        source.append(slice(low - start, high - start))
    to, source = tuple(reversed(to)), tuple(reversed(source))
    drawing, under = sprite[source], result[to]
    if mask is None:
        if opacity >= 1:
            result[to] = drawing
        else:
            result[to] = np.float32(abs(opacity)) * drawing + under * np.float32(1 - max(opacity, 0))
        return result
    channels = np.arange(sprite.shape[0])[source[0]] % mask.shape[0]
    weight = mask[channels][(slice(None),) + source[1:]].astype(np.float32) * np.float32(opacity)
    keep = np.float32(mask_max) - np.maximum(weight, np.float32(0))
    with np.errstate(divide="ignore", invalid="ignore"):  # mask_max 0: inf or nan, as in G'MIC
        result[to] = (np.abs(weight) * drawing + under * keep) / np.float32(mask_max)
    return result


class Placement(Amount):
    """Where a sprite goes on one axis: a number, N% of the image's last index, or N~ of the room
    the image leaves the sprite (0~ at the start, 0.5~ centred, 1~ at the end); parsed to
    (value, kind) with kind '', '%' or '~'."""

    def describe(self):
        return "a number, N% (of the last index) or N~ (0~ at the start, 1~ at the end)"

    def parse(self, text):
        room = text.endswith("~")
        value, percent = super().parse(text[:-1] if room else text)
        if room and percent:
            self.fail(text)
        return value, "~" if room else "%" * percent


def _place(placement, size, sprite_size):
    value, kind = placement
    if kind == "%":
        value = value * (size - 1) / 100
    elif kind == "~":
        value = value * (size - sprite_size)
    return gmic_round(value)


def _one_image(ctx, text, what):
    if not (text.startswith("[") and text.endswith("]")) and set(text) != {"."}:
        raise UserError(f"{what} must be an image such as [1] (got '{text}')")
    found = ctx.select(text)
    if len(found) != 1:
        raise UserError(f"{what} {text} selects {len(found)} images, not one")
    return ctx.images[found[0]]


AT_START = (0.0, "")


@command(
    "image",
    "j",
    group=IMAGES,
    each=True,
    params=[
        Text("sprite", help="the image to draw: [k], or . .. ..."),
        *(
            Placement(axis, AT_START, help=f"where its first {what} goes: a number, N% or N~ (default: 0)")
            for axis, what in (("x", "column"), ("y", "row"), ("z", "slice"), ("c", "channel"))
        ),
        Float(
            "opacity", 1, help="1 (or more): replace; 0.5: half each; -1: add the sprite; -2: add it twice"
        ),
        Text(
            "opacity_mask",
            "",
            help="an image [k] the sprite's size: the opacity of each pixel, times opacity (default: none)",
        ),
        Float("max_opacity_mask", 1, help="the mask value of full opacity"),
    ],
)
def image_command(ctx, image, sprite, x, y, z, c, opacity, opacity_mask, max_opacity_mask):
    """Draw the image `sprite` onto each image, its first pixel at (x,y,z,c), as G'MIC's image
    (j); what falls outside the image is dropped, and so are the sprite's channels beyond it."""
    drawing = _one_image(ctx, sprite, "sprite")
    mask = _one_image(ctx, opacity_mask, "opacity_mask") if opacity_mask else None
    if mask is not None and mask.shape[1:] != drawing.shape[1:]:
        sizes = (size_text(array.shape[:0:-1]) for array in (mask, drawing))
        raise UserError(
            f"opacity_mask {opacity_mask} ({next(sizes)}) is not the size of the sprite ({next(sizes)})"
        )
    position = [
        _place(placement, image.shape[axis], drawing.shape[axis])
        for placement, axis in zip((x, y, z, c), (3, 2, 1, 0))
    ]
    return drawn(image, drawing, position, opacity, mask, max_opacity_mask)

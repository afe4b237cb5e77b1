"""Pictures of parameter images (nn_view)."""

import numpy as np
from PIL import Image

from nnpipe.images import atomic


def picture(image, min_size, layout=None):
    """An 8-bit picture of a parameter image: its values mapped from [min, max] to 0..255, laid out
    by `layout(image)` (a 2D array; default: the s x d slices of h x w as tiles, one row of tiles
    per channel, one column per depth, 1-pixel black gaps), scaled up by an integer factor with
    nearest neighbour until its longer side reaches `min_size`."""
    values = image.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    scaled = np.nan_to_num(
        (values - low) * (255 / (high - low)) if high > low else values * 0 + 127.5,
        nan=0,
        posinf=255,
        neginf=0,
    )
    canvas = layout(scaled) if layout else tiles(scaled)
    pixels = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    zoom = max(1, -(-min_size // max(pixels.shape)))
    return np.repeat(np.repeat(pixels, zoom, axis=0), zoom, axis=1)


def tiles(image, gap=1):
    s, d, h, w = image.shape
    if s * d == 1:
        return image[0, 0]
    canvas = np.zeros((s * h + (s - 1) * gap, d * w + (d - 1) * gap))
    for c in range(s):
        for z in range(d):
            canvas[c * (h + gap) : c * (h + gap) + h, z * (w + gap) : z * (w + gap) + w] = image[c, z]
    return canvas


def write_picture(path, pixels):
    atomic.write_file(path, lambda temporary: Image.fromarray(pixels).save(temporary, format="PNG"))

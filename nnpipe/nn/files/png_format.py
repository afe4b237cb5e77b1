"""The .png network format: a folder of 16-bit grayscale PNG files, lossy (see
nnpipe.nn.files)."""

import base64
import json
import os
import re

import numpy as np
from PIL import Image, PngImagePlugin

from nnpipe.errors import UserError
from nnpipe.images import atomic
from nnpipe.nn.files.manifest import (
    BadFile,
    Entry,
    as_plane,
    check_manifest,
    check_stored_bytes,
    crc,
    entry_item,
    from_manifest,
    manifest,
    parse_json,
)

EXACT_MAX = 64  # PNG stacks keep images this small exactly too (trainer states)
PNG_LEVEL = 1  # zlib level: weights are noisy, higher levels buy little and cost time
TOP = 65535


def write(path, saved):
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError(
            f"cannot write '{path}': a file is in the way (a .png network is a"
            " folder of PNG files); remove it or choose another name"
        )
    if os.path.isdir(path) and os.listdir(path) and not is_stack(path):
        raise UserError(
            f"cannot write '{path}': the folder exists and is not an nnpipe network; not replacing it"
        )
    width = max(3, len(str(len(saved.entries) - 1)))
    files = [f"{index:0{width}d}_{_file_part(entry.name)}.png" for index, entry in enumerate(saved.entries)]
    encoded, items = [], []
    for entry, file in zip(saved.entries, files):
        pixels, low, high = quantize(entry.image)
        item = entry_item(entry)
        item.update(file=file, min=low, max=high, crc32=crc(pixels.astype("<u2")))
        if entry.image.size <= EXACT_MAX:
            item["exact"] = base64.b64encode(as_plane(entry.image).tobytes()).decode("ascii")
        encoded.append(pixels)
        items.append(item)

    def fill(temporary):
        for index, (pixels, item) in enumerate(zip(encoded, items)):
            info = PngImagePlugin.PngInfo()
            info.add_itxt("nnpipe-image", json.dumps(item))
            if index == 0:
                info.add_itxt("nnpipe-network", json.dumps(manifest(saved, items)), zip=True)
            info.add_text("Software", "nnpipe")
            Image.fromarray(pixels).save(
                os.path.join(temporary, item["file"]), format="PNG", pnginfo=info, compress_level=PNG_LEVEL
            )

    atomic.write_folder(path, fill)


def _file_part(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "image"


def quantize(image):
    """A 16-bit plane of `image` and the range [low, high] mapped to 0..65535 (non-finite
    values go to the ends of the range)."""
    plane = as_plane(image).astype(np.float64)
    finite = plane[np.isfinite(plane)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    plane = np.nan_to_num(plane, nan=low, posinf=high, neginf=low)
    scale = TOP / (high - low) if high > low else 0.0
    pixels = np.clip(np.rint((plane - low) * scale), 0, TOP).astype(np.uint16)
    return pixels, low, high


def dequantize(pixels, low, high):
    return (low + pixels.astype(np.float64) * ((high - low) / TOP)).astype(np.float32)


def read(path):
    folder, first = (path, _first_file(path)) if os.path.isdir(path) else (os.path.dirname(path) or ".", path)
    with Image.open(first) as image:
        if image.format != "PNG":
            raise BadFile(f"'{first}' is not a PNG file")
        manifest = image.info.get("nnpipe-network")  # our text chunks come before the pixels
    if manifest is None:
        raise BadFile("not an nnpipe network (a PNG without a network description)")
    manifest = parse_json(manifest)
    items = check_manifest(manifest)
    entries = []
    for item in items:
        file = item.get("file")
        if not isinstance(file, str) or os.path.basename(file) != file or not file:
            raise BadFile("the description lists an image without a valid file name")
        entries.append(_read_png_image(os.path.join(folder, file), item))
    return from_manifest(manifest, entries)


def _first_file(folder):
    numbered = sorted(f for f in os.listdir(folder) if re.match(r"^\d+_.*\.png$", f))
    if not numbered:
        raise BadFile("the folder holds no network PNG files (000_NAME.png ...)")
    return os.path.join(folder, numbered[0])


def is_stack(folder):
    try:
        with Image.open(_first_file(folder)) as image:
            return "nnpipe-network" in image.info  # read with the header, before the pixels
    except Exception:
        return False


def _read_png_image(file, item):
    name = item["name"]
    if not os.path.isfile(file):
        raise BadFile(f"the stack is incomplete: '{os.path.basename(file)}' (image '{name}') is missing")
    with Image.open(file) as image:
        if image.format != "PNG" or image.mode not in ("I;16", "I;16B", "I"):
            raise BadFile(f"'{os.path.basename(file)}' is not a 16-bit grayscale PNG")
        own = parse_json(image.info.get("nnpipe-image"))
        if own != item:
            raise BadFile(
                f"'{os.path.basename(file)}' does not belong to this network (its"
                " description differs from the stack's)"
            )
        w, h, d, s = item["size"]
        if image.size != (w, s * d * h):
            raise BadFile(f"'{os.path.basename(file)}' has the wrong size for image '{name}'")
        check_stored_bytes(item, 2, os.path.getsize(file), uncompressed=False)
        pixels = np.asarray(image)
    if pixels.shape != (s * d * h, w) or pixels.min(initial=0) < 0 or pixels.max(initial=0) > TOP:
        raise BadFile(f"'{os.path.basename(file)}' has the wrong size or values for image '{name}'")
    pixels = pixels.astype("<u2")
    if crc(pixels) != item.get("crc32"):
        raise BadFile(f"image '{name}' is damaged (checksum mismatch)")
    low, high = item.get("min"), item.get("max")
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in (low, high)) or low > high:
        raise BadFile(f"image '{name}' has no valid value range")
    if "exact" in item:
        exact = np.frombuffer(base64.b64decode(item["exact"], validate=True), dtype="<f4")
        if exact.size != s * d * h * w:
            raise BadFile(f"image '{name}' has exact values of the wrong size")
        values = exact.astype(np.float32)
    else:
        values = dequantize(pixels, low, high)
    return Entry(name, item["role"], values.reshape(s, d, h, w))

"""Image commands: input/output and simple transforms of the shared image list."""

import glob
import re

import numpy as np

from nnpipe.commands.registry import IMAGES, Choice, Float, Int, Size, Text, command, unquote
from nnpipe.errors import UserError
from nnpipe.images import io
from nnpipe.images.imagelist import as_image, check_size, size_text
from nnpipe.lang.expr import format_number

SAME = (100.0, True)
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@command("input", "i", group=IMAGES, raw=True, params=[Text("source", help=(
    "a file name or glob (PNG, JPEG, BMP, GIF, TIFF, GMZ, NPY), inline values such as (1,2,3;4,5,6)"
    " (',' next x, ';' next y, '/' next z, '^' next channel), a blank image w,_h,_d,_s,_value,"
    " or [selection] to copy images"))])
def input_command(ctx, selection, source):
    """Append images from files, inline values, a blank size or copies of images."""
    source = unquote(source.strip())
    if source.startswith("("):
        ctx.images.append(parse_inline(source))
    elif source.startswith("[") and source.endswith("]"):
        for index in ctx.select(source):
            ctx.images.append(ctx.images[index].copy(), ctx.images.names[index])
    elif all(NUMBER.match(part) for part in source.split(",")):
        ctx.images.append(blank(source))
    else:
        for path in _expand(source):
            for name, image in io.read(path):
                ctx.images.append(image, name)


def _expand(pattern):
    if any(c in pattern for c in "*?["):
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise UserError(f"no file matches '{pattern}'")
        return paths
    return [pattern]


def parse_inline(text):
    if not text.endswith(")"):
        raise UserError(f"inline image '{text}' lacks its closing ')'")
    try:
        channels = [[[[float(v) for v in row.split(",")] for row in plane.split(";")]
                     for plane in channel.split("/")] for channel in text[1:-1].split("^")]
        return as_image(np.array(channels, dtype=np.float32))
    except ValueError:
        raise UserError(f"inline image '{text}' must hold numbers in rows of equal length") from None


def blank(text):
    values = [float(v) for v in text.split(",")]
    if len(values) > 5:
        raise UserError(f"a blank image takes w,_h,_d,_s,_value (got {len(values)} numbers)")
    sizes = values[:4] + [1.0] * (4 - len(values[:4]))
    if any(v < 1 or not v.is_integer() for v in sizes):
        raise UserError(f"blank image sizes must be integers >= 1 (got '{text}')")
    w, h, d, s = (int(v) for v in sizes)
    check_size((w, h, d, s), "a blank image")
    return np.full((s, d, h, w), values[4] if len(values) == 5 else 0, dtype=np.float32)


@command("output", "o", group=IMAGES, params=[
    Text("filename", help="file to write: .png .jpg .bmp .tif .gmz .npy"), Choice("bits", "8", choices=("8", "16"), help="bits per value for PNG: 8|16")])
def output(ctx, selection, filename, bits):
    """Write images to a file; the format comes from the extension.

    .tif/.tiff: every selected image into one multi-page float32 TIFF (names kept).
    .png/.jpg/.bmp: one 2D image of 1-4 channels, values clipped to 0..255 (0..65535 with
    bits 16, PNG only); several images give numbered files name_000.png, name_001.png ...
    .gmz: every selected image into one G'MIC image list with names (what G'MIC's output
    writes; G'MIC and nnpipe's input read it).
    .npy: the raw float32 (s,d,h,w) array, one file per image.
    Missing folders are created. Files are written under a temporary name and renamed, so a
    crash never leaves half a file.
    """
    if not selection:
        raise UserError("no image to write")
    images = [ctx.images[i] for i in selection]
    names = [ctx.images.names[i] for i in selection]
    written = io.write(filename, images, names, int(bits))
    ctx.notice(f"wrote {', '.join(written)}")


@command("remove", "rm", group=IMAGES)
def remove(ctx, selection):
    """Remove the selected images (default: all)."""
    ctx.images.remove(selection)


@command("keep", "k", group=IMAGES)
def keep(ctx, selection):
    """Keep only the selected images."""
    ctx.images.keep(selection)


@command("name", "nm", group=IMAGES, params=[
    Text("name", rest=True, help="the new name, commas included")])
def name_command(ctx, selection, name):
    """Name the selected images (default: all)."""
    for index in selection:
        ctx.images.names[index] = name


@command("print", "p", group=IMAGES)
def print_command(ctx, selection):
    """Print one line per selected image: index, name, size w,h,d,s, min/max/mean."""
    if not ctx.images:
        ctx.echo("(no images)")
    for index in selection:
        ctx.echo(describe(index, ctx.images.names[index], ctx.images[index]))


def describe(index, name, image):
    stats = "empty" if image.size == 0 else " ".join(
        f"{label}={format_number(round(float(f(image)), 6))}"
        for label, f in (("min", np.min), ("max", np.max), ("mean", np.mean)))
    return f"[{index}] {name or '(unnamed)'}: {size_text(image)} {stats}"


@command("resize", "r", group=IMAGES, each=True, params=[
    Size("width"), Size("height", SAME), Size("depth", SAME), Size("spectrum", SAME),
    Choice("interpolation", "linear", choices=("nearest", "linear", "cubic"))])
def resize(ctx, image, width, height, depth, spectrum, interpolation):
    """Resize images to width,height,depth,spectrum (pixels, or N% of the current size)."""
    axes = (3, 2, 1, 0)
    targets = [_target(size, image.shape[axis]) for axis, size in zip(axes, (width, height, depth, spectrum))]
    check_size(targets, "the resized image")
    for axis, target in zip(axes, targets):
        image = resample(image, axis, target, interpolation)
    return image


def _target(size, current):
    value, percent = size
    return max(1, int(round(current * value / 100))) if percent else int(value)


def resample(image, axis, size, interpolation):
    """Resample one axis; samples sit at pixel centres, borders repeat the edge value."""
    current = image.shape[axis]
    if size == current:
        return image
    position = (np.arange(size) + 0.5) * current / size - 0.5
    if interpolation == "nearest":
        index = np.clip(np.floor((np.arange(size) + 0.5) * current / size), 0, current - 1)
        return np.take(image, index.astype(np.intp), axis=axis)
    base = np.floor(position)
    t = (position - base).astype(np.float32)
    if interpolation == "linear":
        taps, weights = (0, 1), (1 - t, t)
    else:  # Catmull-Rom cubic
        taps = (-1, 0, 1, 2)
        weights = (((-0.5 * t + 1.0) * t - 0.5) * t, (1.5 * t - 2.5) * t * t + 1,
                   ((-1.5 * t + 2.0) * t + 0.5) * t, (0.5 * t - 0.5) * t * t)
    shape = [1] * image.ndim
    shape[axis] = size
    result = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1:], dtype=np.float32)
    for tap, weight in zip(taps, weights):
        index = np.clip(base + tap, 0, current - 1).astype(np.intp)
        result += np.take(image, index, axis=axis) * weight.reshape(shape)
    return result


@command("normalize", "n", group=IMAGES, each=True, params=[Float("min"), Float("max")])
def normalize(ctx, image, min, max):
    """Map values linearly to the range [min, max]."""
    low, high = float(image.min()), float(image.max())
    if high == low:
        return np.full_like(image, min)
    return (image - low) * ((max - min) / (high - low)) + min


@command("crop", group=IMAGES, each=True, params=[Int("x0"), Int("y0"), Int("x1"), Int("y1")])
def crop(ctx, image, x0, y0, x1, y1):
    """Crop to the rectangle (x0,y0)-(x1,y1), corners included; outside pixels become 0."""
    if x1 < x0 or y1 < y0:
        raise UserError(f"empty region ({x0},{y0})-({x1},{y1}): x1 >= x0 and y1 >= y0 needed")
    s, d, h, w = image.shape
    check_size((x1 - x0 + 1, y1 - y0 + 1, d, s), "the cropped image")
    result = np.zeros((s, d, y1 - y0 + 1, x1 - x0 + 1), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
    if sx0 <= sx1 and sy0 <= sy1:
        result[:, :, sy0 - y0:sy1 - y0 + 1, sx0 - x0:sx1 - x0 + 1] = image[:, :, sy0:sy1 + 1, sx0:sx1 + 1]
    return result


AXES = {"x": 3, "y": 2, "z": 1, "c": 0}


@command("append", group=IMAGES, params=[Choice("axis", choices=tuple(AXES))])
def append(ctx, selection, axis):
    """Join the selected images along axis x, y, z or c into one image at the first one's place.

    Images smaller than the largest on the other axes are padded with 0."""
    if not selection:
        return
    images = [ctx.images[i] for i in selection]
    dim = AXES[axis]
    largest = np.max([im.shape for im in images], axis=0)
    padded = []
    for image in images:
        pad = [(0, 0 if k == dim else int(largest[k] - image.shape[k])) for k in range(4)]
        padded.append(np.pad(image, pad))
    first = selection[0]
    ctx.images.replace(first, np.concatenate(padded, axis=dim))
    ctx.images.remove([i for i in selection if i != first])


@command("fill", group=IMAGES, each=True, params=[Text("values", rest=True, help=(
    "one value, or several repeated along x, then y, z and channels"))])
def fill(ctx, image, values):
    """Fill images with a value (or a repeated list of values)."""
    try:
        numbers = np.array([float(v) for v in values.split(",")], dtype=np.float32)
    except ValueError:
        raise UserError(f"values must be numbers (got '{values}')") from None
    flat = np.resize(numbers, image.size)
    return flat.reshape(image.shape)


@command("noise", group=IMAGES, each=True, params=[
    Float("amplitude", low=0), Choice("type", "gaussian", choices=("gaussian", "uniform"))])
def noise(ctx, image, amplitude, type):
    """Add random noise: gaussian of standard deviation `amplitude`, or uniform in +-amplitude."""
    if type == "gaussian":
        return image + ctx.rng.normal(0, amplitude, image.shape).astype(np.float32)
    return image + ctx.rng.uniform(-amplitude, amplitude, image.shape).astype(np.float32)


def _arithmetic(name, operation, help):
    @command(name, group=IMAGES, each=True, params=[Float("value")], help=help)
    def apply(ctx, image, value):
        return operation(image, np.float32(value))


def _divide(image, value):
    if value == 0:
        raise UserError("division by zero")
    return image / value


_arithmetic("add", np.add, "Add a number to every value.")
_arithmetic("sub", np.subtract, "Subtract a number from every value.")
_arithmetic("mul", np.multiply, "Multiply every value by a number.")
_arithmetic("div", _divide, "Divide every value by a number.")


@command("cut", group=IMAGES, each=True, params=[Float("min"), Float("max")])
def cut(ctx, image, min, max):
    """Clip values to the range [min, max]."""
    if max < min:
        raise UserError(f"max must be >= min (got {format_number(min)},{format_number(max)})")
    return np.clip(image, min, max)


@command("psnr", group=IMAGES, params=[Float("max_value", 255, positive=True)])
def psnr(ctx, selection, max_value):
    """Print the PSNR (dB) of the last selected image against the first, and set $psnr."""
    if len(selection) != 2:
        raise UserError(f"select exactly two images (got {len(selection)})")
    reference, other = (ctx.images[i] for i in selection)
    if reference.shape != other.shape:
        raise UserError(f"images differ in size ({size_text(reference)} and {size_text(other)})")
    error = float(np.mean((reference.astype(np.float64) - other) ** 2))
    value = float("inf") if error == 0 else 10 * np.log10(max_value ** 2 / error)
    ctx.set_variable("psnr", round(value, 4))
    ctx.echo(f"PSNR: {value:.2f} dB")

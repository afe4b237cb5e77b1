"""Image commands: input/output and simple transforms of the shared image list."""

import glob
import os
import re
import sys

import numpy as np

from nnpipe.commands.expressions import fill_image, is_expression
from nnpipe.errors import UserError
from nnpipe.images import io
from nnpipe.images.imagelist import beyond_float32, check_size
from nnpipe.naming import Unselected, copy_name
from nnpipe.numbers import INT_LIMIT, format_number, gmic_number, size_text
from nnpipe.quoting import unprotect
from nnpipe.registry import (
    IMAGES,
    SAME,
    Amount,
    Choice,
    Float,
    Int,
    Size,
    Text,
    command,
    index_of,
    split_arguments,
)

NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
COPIES = re.compile(r"^(\[.*\])(?:x([1-9]\d*))?$", re.S)  # [0], and [0]x3: three copies
BLANK = re.compile(r"^\d+(,\d+){0,3}(,.*)?$", re.S)


@command(
    "input",
    "i",
    group=IMAGES,
    raw=True,
    protected=True,
    params=[
        Text(
            "source",
            help=(
                "a file name or glob (PNG, JPEG, BMP, GIF, TIFF, GMZ, NPY), inline values such as"
                " (1,2,3;4,5,6)"
                " (',' next x, ';' next y, '/' next z, '^' next channel), a blank image w,_h,_d,_s,_value"
                " whose value may be a math expression evaluated at every pixel, or [selection] to copy"
                " images"
            ),
        )
    ],
    default_selection=lambda ctx: None,
    selects_positions=True,
    implicit=True,
)
def input_command(ctx, selection, source):
    """Append images from files, inline values, a blank size or copies of images; with a
    selection, insert them at those positions instead (i[0]: first), as G'MIC."""
    count = len(ctx.images)
    _read_input(ctx, source)
    if selection:
        added = [list(range(count, len(ctx.images)))]
        for _ in selection[1:]:  # each further position gets copies of its own
            start = len(ctx.images)
            for index in added[0]:
                ctx.images.append(ctx.images[index].copy(), ctx.images.names[index])
            added.append(list(range(start, len(ctx.images))))
        order, inserted = [], iter(added)
        for position in range(count + 1):
            if position in selection:
                order += next(inserted)
            if position < count:
                order.append(position)
        ctx.images.keep(order)


def _read_input(ctx, source):
    plain = unprotect(source).strip()
    if plain.startswith("("):
        ctx.images.append(parse_inline(plain), plain)
    elif COPIES.match(plain):
        selection, count = COPIES.match(plain).groups()
        indices = ctx.select(selection)
        names = [ctx.images.names[index] for index in indices]
        for _ in range(int(count or 1)):  # [0,1]x2: a_c1 b_c1 a_c2 b_c2, as G'MIC names them
            names = [copy_name(name) for name in names]
            for index, name in zip(indices, names):
                ctx.images.append(ctx.images[index].copy(), name)
    elif BLANK.match(plain) or all(NUMBER.match(part) for part in plain.split(",")):
        parts = split_arguments(source)
        image = blank(parts[:4])
        value = ",".join(parts[4:])
        if len(parts) > 4 and is_expression(value):
            ctx.images.append(fill_image(ctx, image, value), f"[{value}]")
        else:
            if len(parts) > 4:
                image = repeated_values(image, value)
            ctx.images.append(image, f"[{value}]" if len(parts) > 4 else "[unnamed]")
    else:  # every file read before any is appended: a damaged one leaves the list as it was
        loaded = [found for path in _expand(plain) for found in io.read(path)]
        for name, image in loaded:
            ctx.images.append(image, name)


def _expand(pattern):
    if any(c in pattern for c in "*?["):
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise UserError(f"no file matches '{pattern}'")
        return paths
    return [pattern]


def parse_inline(text):
    """(1,2;3,4^5,6;7,8): ',' next x, ';' next y, '/' next z, '^' next channel; shorter rows,
    planes or channels are padded with 0, as G'MIC pads them."""
    if not text.endswith(")"):
        raise UserError(f"inline image '{text}' lacks its closing ')'")
    try:
        channels = [
            [[[float(v) for v in row.split(",")] for row in plane.split(";")] for plane in channel.split("/")]
            for channel in text[1:-1].split("^")
        ]
    except ValueError:
        raise UserError(f"inline image '{text}' must hold numbers") from None
    s = len(channels)
    d = max(len(channel) for channel in channels)
    h = max(len(plane) for channel in channels for plane in channel)
    w = max(len(row) for channel in channels for plane in channel for row in plane)
    image = np.zeros((s, d, h, w), dtype=np.float32)
    for c, channel in enumerate(channels):
        for z, plane in enumerate(channel):
            for y, row in enumerate(plane):
                image[c, z, y, : len(row)] = within_float32(
                    np.array(row, dtype=np.float64), f"inline image '{text}'"
                )
    return image


def within_float32(values, what):
    """`values` if none is beyond float32's range (where it would become inf)."""
    where = beyond_float32(values)
    if where is not None:
        raise UserError(
            f"{what}: {float(np.asarray(values)[where]):g} is beyond float32's range (at most ±3.4e38)"
        )
    return values


def blank(sizes):
    """A black image of G'MIC size w,_h,_d,_s."""
    values = []
    for text in sizes:
        try:
            values.append(float(text))
        except ValueError:
            raise UserError(f"blank image sizes must be integers >= 1 (got '{text}')") from None
    values += [1.0] * (4 - len(values))
    if any(v < 1 or not v.is_integer() for v in values):
        raise UserError(f"blank image sizes must be integers >= 1 (got '{','.join(sizes)}')")
    w, h, d, s = (int(v) for v in values)
    check_size((w, h, d, s), "a blank image")
    return np.zeros((s, d, h, w), dtype=np.float32)


@command(
    "output",
    "o",
    group=IMAGES,
    params=[
        Text("filename", help="file to write: .png .jpg .bmp .tif .gmz .npy"),
        Choice("bits", "8", choices=("8", "16"), help="bits per value for PNG: 8|16"),
    ],
)
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


@command("keep", "k", group=IMAGES, plus_on_copies=True)
def keep(ctx, selection):
    """Keep only the selected images."""
    ctx.images.keep(selection)


@command(
    "name",
    "nm",
    group=IMAGES,
    raw=True,
    protected=True,
    params=[Text("names", rest=True, help="one name per image: name1,name2,… (quote a name holding commas)")],
    default_selection=lambda ctx: Unselected(range(len(ctx.images))),
)
def name_command(ctx, selection, names):
    """Name images, one name per argument: without a selection, the last images (`name a,b`
    names the last two); with one, the selected images in order, the names repeated in turn."""
    names = split_arguments(names)
    where = "the list" if isinstance(selection, Unselected) else "the selection"
    if len(names) > len(selection):
        raise UserError(
            f"{len(names)} names for {len(selection)} image{'s' * (len(selection) != 1)} in {where}"
        )
    targets = selection[len(selection) - len(names) :] if isinstance(selection, Unselected) else selection
    for position, index in enumerate(targets):
        ctx.images.names[index] = names[position % len(names)]


@command("print", "p", group=IMAGES)
def print_command(ctx, selection):
    """Print one line per selected image: index, name, size w,h,d,s, min/max/mean."""
    if not ctx.images:
        ctx.echo("(no images)")
    elif not selection:  # a notice on standard error: what is printed stays what G'MIC prints
        network_images = ctx.network_images()
        owned = sum(name in network_images for name in ctx.images.names)
        shown = f" (the {owned} network images are shown with print[...] or nn_print)" if owned else ""
        ctx.notice(f"print: no image selected{shown}")
    for index in selection:
        ctx.echo(describe(index, ctx.images.names[index], ctx.images[index]))


def describe(index, name, image):
    stats = (
        "empty"
        if image.size == 0
        else " ".join(
            f"{label}={format_number(round(float(f(image)), 6))}"
            for label, f in (("min", np.min), ("max", np.max), ("mean", np.mean))
        )
    )
    return f"[{index}] {name or '(unnamed)'}: {size_text(image.shape[::-1])} {stats}"


INTERPOLATIONS = ("none", "nearest", "average", "linear", "grid", "cubic", "lanczos")
BOUNDARIES = ("dirichlet", "neumann", "periodic", "mirror")


class SizeOrImage(Size):
    """A size, or [k]: the size image k has on that axis (`resize[1] [0]` takes all four)."""

    def parse(self, text):
        if text.startswith("[") and text.endswith("]"):
            return text
        return super().parse(text)


@command(
    "resize",
    "r",
    group=IMAGES,
    each=True,
    params=[
        SizeOrImage(
            "width",
            help="a size > 0 (pixels, or N% of the current size), or [k]: the size"
            " of image k (alone, all four of its sizes)",
        ),
        SizeOrImage("height", SAME),
        SizeOrImage("depth", SAME),
        SizeOrImage("spectrum", SAME),
        Choice(
            "interpolation",
            "nearest",
            choices=INTERPOLATIONS,
            help=(
                "G'MIC's code or name: 0 none (keep values, place them by centering), 1 nearest,"
                " 2 moving average, 3 linear, 4 grid, 5 cubic, 6 lanczos (default: 1)"
            ),
        ),
        Choice(
            "boundary_conditions",
            "dirichlet",
            choices=BOUNDARIES,
            help=(
                "0 dirichlet, 1 neumann, 2 periodic, 3 mirror: with interpolation 0, what lies outside"
                " the old extent; when linear, cubic or lanczos enlarge, other than 0 steps old/new"
                " from the first value instead of aligning both ends"
            ),
        ),
        Float("centering_x", 0, low=0, high=1),
        Float("centering_y", 0, low=0, high=1),
        Float("centering_z", 0, low=0, high=1),
        Float("centering_c", 0, low=0, high=1),
    ],
)
def resize(
    ctx,
    image,
    width,
    height,
    depth,
    spectrum,
    interpolation,
    boundary_conditions,
    centering_x,
    centering_y,
    centering_z,
    centering_c,
):
    """Resize images to width,height,depth,spectrum (pixels, or N% of the current size), with
    G'MIC's interpolations and sampling."""
    axes = (3, 2, 1, 0)
    sizes = [width, height, depth, spectrum]
    if isinstance(width, str) and all(size == SAME for size in sizes[1:]):
        sizes = [width] * 4
    targets = [
        _image_size(ctx, size, axis) if isinstance(size, str) else _target(size, image.shape[axis])
        for axis, size in zip(axes, sizes)
    ]
    check_size(targets, "the resized image")
    centerings = (centering_x, centering_y, centering_z, centering_c)
    return resized(image, targets, interpolation, boundary_conditions, centerings)


def resized(image, size, interpolation="nearest", boundary="dirichlet", centerings=(0, 0, 0, 0)):
    """`image` resized to `size` (w, h, d, s) as G'MIC's resize, axis by axis (x, y, z, c).
    One quirk of G'MIC's moving average is kept: an axis it enlarges restarts from the original
    image, resized by nearest value on that axis and those before it (what averaging did on
    them is lost)."""
    original = image
    for axis, target, centering in zip((3, 2, 1, 0), size, centerings):
        if interpolation == "none":
            image = place(image, axis, target, centering, boundary)
        elif interpolation == "average" and target > image.shape[axis]:
            image = original
            for earlier in range(3, axis - 1, -1):
                image = resample(image, earlier, size[3 - earlier], "nearest")
        else:
            image = resample(image, axis, target, interpolation, boundary, centering)
    return image


def place(image, axis, size, centering, boundary):
    """Interpolation 'none': values kept, the old extent placed in the new one by `centering`;
    what lies outside comes from the boundary condition."""
    current = image.shape[axis]
    if size == current:
        return image
    offset = int((size - current) * centering)
    return take_with_boundary(image, axis, np.arange(size) - offset, boundary)


def take_with_boundary(image, axis, source, boundary):
    """The values at positions `source` along `axis`, those outside the image given by the
    boundary condition: dirichlet 0, neumann the nearest edge, periodic, mirror."""
    current = image.shape[axis]
    if boundary == "periodic":
        index = source % current
    elif boundary == "mirror":
        period = source % (2 * current)
        index = np.where(period < current, period, 2 * current - 1 - period)
    else:
        index = np.clip(source, 0, current - 1)
    result = np.take(image, index, axis=axis)
    if boundary == "dirichlet":
        shape = [1] * image.ndim
        shape[axis] = len(source)
        result = np.where(((source >= 0) & (source < current)).reshape(shape), result, 0)
    return np.ascontiguousarray(result, dtype=np.float32)


def _image_size(ctx, selection, axis):
    found = ctx.select(selection)
    if len(found) != 1:
        raise UserError(f"{selection} selects {len(found)} images, not one")
    return ctx.images[found[0]].shape[axis]


def _target(size, current):
    """Pixels, or a percentage rounded as G'MIC rounds it (50% of 5 is 3)."""
    value, percent = size
    if not percent:
        return int(value)
    target = current * value / 100
    if target > INT_LIMIT:  # 1e308% is a size no image can have (and no integer holds inf)
        raise UserError(f"{format_number(value)}% of {current} pixels is too large (at most {INT_LIMIT})")
    return max(1, int(np.floor(target + 0.5)))


def resample(image, axis, size, interpolation, boundary="dirichlet", centering=0.0):
    """Resample one axis as G'MIC (CImg) does. Nearest takes floor(i*old/new). Shrinking with
    moving average, linear, cubic or lanczos averages the covered old values in proportion;
    enlarging with moving average takes the nearest value. Grid shrinks as nearest and
    enlarges by placing old value i at ceil(i*new/old) (shifted by the centering), zeros
    between. Linear, cubic and
    lanczos enlarge with the first and last samples on the first and last values, or, with a
    boundary condition other than dirichlet, with a step of old/new from the first one."""
    current = image.shape[axis]
    if size == current:
        return image
    shrinking = size < current
    if (
        interpolation == "nearest"
        or current == 1
        or (interpolation == "grid" and shrinking)
        or (interpolation == "average" and not shrinking)
    ):
        index = np.floor(np.arange(size) * current / size).astype(np.intp)
        return np.take(image, index, axis=axis)
    if shrinking:
        return _moving_average(image, axis, size)
    if interpolation == "grid":
        result = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1 :], dtype=np.float32)
        step = size / current
        # value i lands at ceil(i*step + centering*(step-1)); a hair below, so that exact
        # integers stay themselves
        places = np.ceil(np.arange(current) * step + centering * (step - 1) - 1e-9).astype(np.intp)
        np.moveaxis(result, axis, 0)[places] = np.moveaxis(image, axis, 0)
        return result
    if boundary == "dirichlet":
        position = np.arange(size) * (current - 1) / (size - 1)
    else:
        position = np.minimum(np.arange(size) * current / size, current - 1)
    base = np.floor(position)
    t = (position - base).astype(np.float32)
    if interpolation == "linear":
        taps, weights = (0, 1), (1 - t, t)
    elif interpolation == "cubic":  # Catmull-Rom
        taps = (-1, 0, 1, 2)
        weights = (
            ((-0.5 * t + 1.0) * t - 0.5) * t,
            (1.5 * t - 2.5) * t * t + 1,
            ((-1.5 * t + 2.0) * t + 0.5) * t,
            (0.5 * t - 0.5) * t * t,
        )
    else:  # lanczos: sinc(d)*sinc(d/2) over 4 taps, normalized
        taps = (-1, 0, 1, 2)
        weights = [np.sinc(t - tap) * np.sinc((t - tap) / 2) for tap in taps]
        total = sum(weights)
        weights = [w / total for w in weights]
    shape = [1] * image.ndim
    shape[axis] = size
    result = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1 :], dtype=np.float32)
    for tap, weight in zip(taps, weights):
        index = np.clip(base + tap, 0, current - 1).astype(np.intp)
        result += np.take(image, index, axis=axis) * weight.reshape(shape)
    return result


def _moving_average(image, axis, size):
    """Each new value is the mean of the old values its interval covers, in proportion (only
    those: a NaN spoils the new values it falls in, not the others)."""
    current = image.shape[axis]
    edges = np.arange(size + 1) * current / size
    moved = np.moveaxis(image, axis, -1).astype(np.float64)
    result = np.empty(moved.shape[:-1] + (size,), dtype=np.float64)
    for k in range(size):
        low, high = edges[k], edges[k + 1]
        # a hair inside, so that rounding never gives a border value a weight of 1e-16
        first, last = int(np.floor(low + 1e-9)), min(int(np.ceil(high - 1e-9)), current)
        covered = np.arange(first, last)
        weights = np.minimum(high, covered + 1) - np.maximum(low, covered)
        result[..., k] = moved[..., first:last] @ (weights / weights.sum())
    return np.ascontiguousarray(np.moveaxis(result, -1, axis), dtype=np.float32)


@command(
    "normalize",
    "n",
    group=IMAGES,
    each=True,
    params=[
        Text("min", help="a number, or N% of the image's range (0% its minimum, 100% its maximum)"),
        Text("max", help="a number or N%"),
        Text("constancy_value", "", help="what a constant image becomes (default: min)"),
    ],
)
def normalize(ctx, image, min, max, constancy_value):
    """Map values linearly to the range [min, max] (either order, as in G'MIC)."""
    low_target, high_target = sorted(
        (_value_or_percent(min, image, "min"), _value_or_percent(max, image, "max"))
    )
    low, high = float(np.nanmin(image)), float(np.nanmax(image))  # G'MIC skips NaN
    if high == low:
        constant = (
            _value_or_percent(constancy_value, image, "constancy_value") if constancy_value else low_target
        )
        return np.full_like(image, constant)
    with np.errstate(invalid="ignore"):  # infinite values give nan, as in G'MIC
        return (image - low) * ((high_target - low_target) / (high - low)) + low_target


CROP_FORMS = {2: "x", 4: "xy", 6: "xyz", 8: "xyzc"}
AXIS_OF = {"x": 3, "y": 2, "z": 1, "c": 0}


@command(
    "crop",
    group=IMAGES,
    each=True,
    params=[
        Text(
            "corners",
            rest=True,
            help=(
                "x0,x1 | x0,y0,x1,y1 | x0,y0,z0,x1,y1,z1 | x0,y0,z0,c0,x1,y1,z1,c1: the opposite corners,"
                " included, in either order (numbers round to the nearest index, N% is N% of the last);"
                " then optionally the boundary condition for what lies"
                " outside the image: 0 dirichlet (zeros, the default), 1 neumann, 2 periodic, 3 mirror"
            ),
        )
    ],
)
def crop(ctx, image, corners):
    """Crop to the region between two corners, as G'MIC's crop; axes not given are kept
    whole."""
    values = split_arguments(corners)
    boundary = "dirichlet"
    if len(values) - 1 in CROP_FORMS:
        boundary = Choice("boundary_conditions", choices=BOUNDARIES).parse(values.pop())
    if len(values) not in CROP_FORMS:
        raise UserError(f"corners must be 2, 4, 6 or 8 numbers (got '{corners}')")
    axes = CROP_FORMS[len(values)] * 2
    names = [f"{axis}{end}" for end in "01" for axis in axes[: len(axes) // 2]]
    numbers = [
        index_of(Amount(name).parse(value), image.shape[AXIS_OF[axis]])
        for name, value, axis in zip(names, values, axes)
    ]
    half = len(numbers) // 2
    regions = {axis: sorted((numbers[k], numbers[k + half])) for k, axis in enumerate(axes[:half])}
    check_size(
        tuple(
            high - low + 1 if axis in regions else image.shape[AXIS_OF[axis]]
            for axis, (low, high) in ((a, regions.get(a, (0, 0))) for a in "xyzc")
        ),
        "the cropped image",
    )
    for axis, (low, high) in regions.items():
        image = take_with_boundary(image, AXIS_OF[axis], np.arange(low, high + 1), boundary)
    return image


AXES = {"x": 3, "y": 2, "z": 1, "c": 0}


@command(
    "append",
    group=IMAGES,
    plus_on_copies=True,
    params=[Choice("axis", choices=tuple(AXES)), Float("centering", 0, low=0, high=1)],
)
def append(ctx, selection, axis, centering):
    """Join the selected images along axis x, y, z or c into one image at the first one's place.

    Images smaller than the largest on the other axes are padded with 0, placed at the start
    (centering 0), the middle (0.5) or the end (1), as G'MIC places them."""
    if not selection:
        return
    first = selection[0]
    ctx.images.replace(first, appended([ctx.images[i] for i in selection], axis, centering))
    ctx.images.remove([i for i in selection if i != first])


def appended(images, axis, centering=0.0):
    """The images joined along axis x, y, z or c, those smaller on the other axes padded with 0
    as G'MIC places them (centering 0: at the start, 0.5: in the middle, 1: at the end)."""
    dim = AXES[axis]
    largest = np.max([image.shape for image in images], axis=0)
    padded = []
    for image in images:
        margins = [0 if k == dim else int(largest[k] - image.shape[k]) for k in range(4)]
        pad = [(int(margin * centering), margin - int(margin * centering)) for margin in margins]
        padded.append(np.pad(image, pad))
    return np.concatenate(padded, axis=dim)


@command(
    "fill",
    "f",
    group=IMAGES,
    each=True,
    raw=True,
    params=[
        Text(
            "values",
            help=(
                "numbers repeated along x, then y, z and channels, or a math expression evaluated at every"
                " pixel (a scalar result per value, a vector result per pixel)"
            ),
        )
    ],
)
def fill(ctx, image, values):
    """Fill images with values, or with a math expression evaluated at every pixel."""
    if is_expression(values):
        return fill_image(ctx, image, values)
    return repeated_values(image, values)


def repeated_values(image, values):
    """`image` filled with the numbers `values` (a,b,c…) repeated along x, then y, z, c."""
    numbers = within_float32(
        np.array([float(v) for v in values.split(",")], dtype=np.float64), "the blank image's value"
    )
    return np.resize(numbers.astype(np.float32), image.size).reshape(image.shape)


@command(
    "noise",
    group=IMAGES,
    each=True,
    params=[Float("amplitude", low=0), Choice("type", "gaussian", choices=("gaussian", "uniform"))],
)
def noise(ctx, image, amplitude, type):
    """Add random noise: gaussian of standard deviation `amplitude`, or uniform in +-amplitude."""
    if type == "gaussian":
        return image + ctx.rng.normal(0, amplitude, image.shape).astype(np.float32)
    return image + ctx.rng.uniform(-amplitude, amplitude, image.shape).astype(np.float32)


def _arithmetic(name, operation, help):
    @command(
        name,
        group=IMAGES,
        each=True,
        params=[
            Text(
                "value", help=("a number, or an image [k] whose values are repeated along the image's buffer")
            )
        ],
        help=help,
    )
    def apply(ctx, image, value):
        with np.errstate(divide="ignore", invalid="ignore"):  # G'MIC: 1/0 is inf, 0/0 nan
            return operation(image, _operand(ctx, value, image)).astype(np.float32)


def _operand(ctx, text, image):
    """A number, or the values of image [k] cycled over `image`'s size, as G'MIC does."""
    if text.startswith("[") and text.endswith("]"):
        found = ctx.select(text)
        if len(found) != 1:
            raise UserError(f"{text} selects {len(found)} images, not one")
        values = ctx.images[found[0]]
        return values if values.shape == image.shape else np.resize(values, image.shape)
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"value must be a number or an image [k] (got '{text}')") from None
    if beyond_float32(np.float64(value)) is not None:
        raise UserError(f"value is beyond float32's range (got '{text}', at most ±3.4e38)")
    return np.float32(value)


_arithmetic("add", np.add, "Add a number, or an image, to every value.")
_arithmetic("sub", np.subtract, "Subtract a number, or an image, from every value.")
_arithmetic("mul", np.multiply, "Multiply every value by a number, or by an image.")
_arithmetic("div", np.true_divide, "Divide every value by a number, or by an image.")


@command(
    "cut",
    group=IMAGES,
    each=True,
    params=[
        Text("min", help="a number, or N% of the image's range (0% its minimum, 100% its maximum)"),
        Text("max", help="a number or N%"),
    ],
)
def cut(ctx, image, min, max):
    """Clip values to the range [min, max] (either order, as in G'MIC)."""
    low, high = sorted((_value_or_percent(min, image, "min"), _value_or_percent(max, image, "max")))
    return np.clip(image, low, high)


def _value_or_percent(text, image, what):
    """A number, or N% of the image's range of values, as G'MIC reads `cut 10%,90%`."""
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise UserError(f"{what} must be a number or N% (got '{text}')") from None
    if not percent:
        return value
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    return low + (high - low) * value / 100


@command(
    "psnr",
    group=IMAGES,
    params=[
        Text("reference", help="the reference image, as a selection: [0], [photo]"),
        Float("max_value", 255, positive=True),
    ],
)
def psnr(ctx, selection, reference, max_value):
    """The PSNR (dB) of each selected image against a reference, as G'MIC's psnr: its status
    holds the values; nnpipe also prints `PSNR: x dB` and sets $psnr (the last value)."""
    if not (reference.startswith("[") and reference.endswith("]")):
        raise UserError(f"reference must be an image selection such as [0] (got '{reference}')")
    found = ctx.select(reference)
    if len(found) != 1:
        raise UserError(f"reference {reference} selects {len(found)} images, not one")
    target = ctx.images[found[0]].astype(np.float64)
    values = []
    for index in selection:
        image = ctx.images[index]
        if image.shape != target.shape:
            raise UserError(
                f"image [{index}] ({size_text(image.shape[::-1])}) and the reference"
                f" ({size_text(target.shape[::-1])}) differ in size"
            )
        error = float(np.mean((target - image) ** 2))
        values.append(float("inf") if error == 0 else 10 * np.log10(max_value**2 / error))
        ctx.echo(f"PSNR: {values[-1]:.2f} dB")
    if values:
        ctx.set_variable("psnr", round(values[-1], 4))
    ctx.status = ",".join(gmic_number(v) for v in values)


SAMPLES_FOLDER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def sample_names():
    return sorted(f[:-4].rstrip("0123456789") for f in os.listdir(SAMPLES_FOLDER) if f.endswith(".png"))


@command(
    "sample",
    "sp",
    group=IMAGES,
    takes_selection=False,
    params=[
        Text("name", help="a sample image shipped with nnpipe: " + "astronaut"),
        Int("width", 0, low=0, help="resize to this width, keeping the aspect ratio (0: as shipped)"),
        Int("height", 0, low=0, help="and this height (0: keep the aspect ratio)"),
    ],
)
def sample(ctx, selection, name, width, height):
    """Append a sample image (G'MIC's `sp`). nnpipe ships the public-domain NASA astronaut
    photo (256x256 RGB); G'MIC's other samples are downloaded by G'MIC and are not here."""
    matches = [
        f for f in os.listdir(SAMPLES_FOLDER) if f.endswith(".png") and f[:-4].rstrip("0123456789") == name
    ]
    if not matches:
        raise UserError(f"no sample image '{name}' (nnpipe has: {', '.join(sample_names())})")
    ((_, image),) = io.read(os.path.join(SAMPLES_FOLDER, matches[0]))
    if width or height:
        s, d, h, w = image.shape
        width = width or max(1, round(w * height / h))
        height = height or max(1, round(h * width / w))
        for axis, size in ((3, width), (2, height)):
            image = resample(image, axis, size, "linear")
    ctx.images.append(image, name)


_display_warned = []


@command(
    "window",
    "w",
    group=IMAGES,
    raw=True,
    params=[Text("options", "", help="G'MIC's window options (width,height,normalization,…), accepted")],
)
def window(ctx, selection, options):
    """Show the selected images in a window; where no display exists, say so once and go on."""
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        if not _display_warned:
            _display_warned.append(True)
            ctx.notice("nnpipe: window: no display here, images are not shown (write them with output)")
        return
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        if not _display_warned:
            _display_warned.append(True)
            ctx.notice("nnpipe: window: showing images needs matplotlib (pip install 'nnpipe[plot]')")
        return
    for index in selection:
        image = ctx.images[index]
        plt.figure(ctx.images.names[index] or f"[{index}]")
        plt.imshow(
            np.clip(np.moveaxis(image[:3, 0], 0, -1) / max(float(image.max()), 1e-9), 0, 1)
            if image.shape[0] >= 3
            else image[0, 0],
            cmap="gray",
        )
        plt.pause(0.001)

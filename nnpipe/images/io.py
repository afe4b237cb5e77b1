"""Reading and writing image files.

Every file becomes (s, d, h, w) float32 images that keep their value range, as in G'MIC:
8-bit files give 0..255, 16-bit files 0..65535, float TIFF and NPY their own values.
"""

import contextlib
import logging
import os

import imageio.v3 as iio
import numpy as np
import png
import tifffile

from nnpipe.errors import UserError
from nnpipe.images import atomic, gmz
from nnpipe.images.imagelist import as_image, beyond_float32
from nnpipe.numbers import size_text

PLAIN_FORMATS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
TIFF_FORMATS = {".tif", ".tiff"}
READABLE = PLAIN_FORMATS | TIFF_FORMATS | {".npy", ".gmz"}


def extension(path):
    return atomic.extension(path)


# --- reading ------------------------------------------------------------------------------------


def read(path):
    """Return [(name, image)] for every image the file holds."""
    if not os.path.exists(path):
        raise UserError(f"file '{path}' not found")
    if os.path.isdir(path):
        raise UserError(f"'{path}' is a folder, not an image file")
    if not os.path.isfile(path):  # a device or a FIFO could be read forever
        raise UserError(f"cannot read '{path}': it is not a regular file")
    kind = extension(path)
    if kind not in READABLE:
        raise UserError(
            f"cannot read '{path}': unknown format '{kind or 'no extension'}'"
            f" (known: {', '.join(sorted(READABLE))})"
        )
    base = os.path.splitext(os.path.basename(path))[0]
    if kind == ".npy":
        array = read_npy(path)
        if array.size == 0:  # a 0-d array holds one value: a 1,1,1,1 image
            raise UserError(f"cannot read '{path}': it holds no values (an array of shape {array.shape})")
        return [(base, as_image(array))]
    if kind == ".gmz":
        return _read_gmz(path)
    return _decoding(
        path,
        kind,
        lambda: (
            read_tiff(path, base)
            if kind in TIFF_FORMATS
            else [(base, _from_hwc(_read_picture(path, kind), path))]
        ),
    )


def read_npy(path):
    """The array of a .npy file, with its own axes, checked to hold real numbers that fit float32."""
    return _decoding(path, ".npy", lambda: _checked(np.load(path, allow_pickle=False), path))


def _decoding(path, kind, decode):
    try:
        with quiet_tifffile():
            return decode()
    except UserError:
        raise
    except MemoryError:
        raise
    except Exception as error:  # every decoder has its own exceptions for a damaged file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "backend" in reason or "pickle" in reason or not reason:  # imageio's or numpy's way
            # of saying that the bytes are not an image of that kind
            reason = f"damaged or not a {kind[1:].upper()} file"
        raise UserError(f"cannot read '{path}': {reason}") from None


@contextlib.contextmanager
def quiet_tifffile():
    """tifffile logs warnings about damaged files to standard error; the reader reports what
    is wrong itself, in one line."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _checked(array, path):
    """`array` if its values are real numbers within float32's range (NaN and inf pass)."""
    if array.dtype.kind not in "biuf":
        raise UserError(f"cannot read '{path}': values of type {array.dtype} are not numbers")
    if array.ndim > 4:
        raise UserError(f"cannot read '{path}': {array.ndim} dimensions (at most 4)")
    where = beyond_float32(array) if array.dtype.kind == "f" and array.dtype.itemsize > 4 else None
    if where is not None:
        raise UserError(
            f"cannot read '{path}': value {float(array[where]):g} at index {where} is"
            " beyond float32's range (±3.4e38)"
        )
    return array


def _read_gmz(path):
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return [(name, as_image(image)) for name, image in gmz.decode(data) if image.size]
    except gmz.GmzError as error:
        raise UserError(f"cannot read '{path}': {error}") from None


def _read_picture(path, kind):
    if kind == ".png" and _png_bit_depth(path) == 16:  # Pillow reads 16-bit color as 8-bit
        width, height, rows, info = png.Reader(filename=path).asDirect()
        return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(
            height, width, info["planes"]
        )
    return iio.imread(path)


def _png_bit_depth(path):
    with open(path, "rb") as handle:
        header = handle.read(26)
    if len(header) < 26 or header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        return None
    return header[24]


def _from_hwc(array, path):
    """A decoded 2D picture (h, w) or (h, w, c) to (c, 1, h, w)."""
    array = _checked(np.asarray(array), path)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise UserError(f"cannot read '{path}': unexpected picture shape {array.shape}")
    return as_image(np.moveaxis(array, 2, 0)[:, np.newaxis])


def read_tiff(path, base):
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise UserError(f"cannot read '{path}': it holds no image (damaged or not a TIFF file)")
        metadata = tif.shaped_metadata or ()
        result = []
        for number, series in enumerate(tif.series):
            info = metadata[number] if number < len(metadata) else {}
            dimensions = sum(n > 1 for n in series.shape)
            if "nnpipe_shape" not in info and dimensions > 4:  # which axis is which is a guess
                raise UserError(
                    f"cannot read '{path}': a {dimensions}-D TIFF image (axes"
                    f" {series.axes}, shape {','.join(map(str, series.shape))}):"
                    " nnpipe reads at most 4 dimensions"
                )
            data = series.asarray()
            if "nnpipe_shape" in info:
                data = _checked(data, path).reshape(info["nnpipe_shape"])
                result.append((info.get("name", ""), as_image(data)))
            else:
                name = base if number == 0 else f"{base}_{number}"
                result.extend(_foreign_tiff(data, series.axes, name, path))
        return result


def _foreign_tiff(data, axes, name, path):
    """Pages of a TIFF written by another program: YX(S) planes, one image per leading page."""
    if "S" in axes:  # samples (channels), stored contiguous (YXS) or planar (SYX)
        data = np.moveaxis(data, axes.index("S"), -1)
        planes = data.reshape((-1,) + data.shape[-3:])
        return [(name, _from_hwc(plane, path)) for plane in planes]
    planes = data.reshape((-1,) + data.shape[-2:])
    return [(name, _from_hwc(plane, path)) for plane in planes]


# --- writing ------------------------------------------------------------------------------------


def write(path, images, names, bits=8):
    """Write images to `path`; the format comes from the extension.

    TIFF holds several float32 images in one file (one series each, with name and size kept).
    PNG/JPEG/BMP hold one 2D image of 1-4 channels, clipped to 8 bits (or 16 bits for PNG).
    NPY holds one image as its raw (s, d, h, w) float32 array.
    GMZ is G'MIC's list of named images, as `gmic ... output FILE.gmz` writes it.
    """
    kind = extension(path)
    if kind in TIFF_FORMATS:
        atomic.write_file(path, lambda tmp: _write_tiff(tmp, images, names))
        return [path]
    if kind == ".gmz":
        data = gmz.encode(images, names)
        atomic.write_file(path, lambda tmp: write_bytes(tmp, data))
        return [path]
    if kind not in PLAIN_FORMATS | {".npy"}:
        raise UserError(
            f"cannot write '{path}': unknown format '{kind or 'no extension'}'"
            f" (use .png, .jpg, .bmp, .tif, .gmz or .npy)"
        )
    targets = [path] if len(images) == 1 else _numbered(path, len(images))
    for target, image in zip(targets, images):
        if kind == ".npy":
            atomic.write_file(target, lambda tmp, image=image: _write_npy(tmp, image))
        else:
            pixels = _to_pixels(image, kind, bits)
            atomic.write_file(target, lambda tmp, pixels=pixels: _write_picture(tmp, pixels, kind))
    return targets


def _numbered(path, count):
    root, ext = os.path.splitext(path)
    return [f"{root}_{index:03d}{ext}" for index in range(count)]


def write_bytes(temporary, data):
    with open(temporary, "wb") as handle:
        handle.write(data)


def _write_npy(temporary, image):
    with open(temporary, "wb") as handle:
        np.save(handle, image)


def _write_picture(temporary, pixels, kind):
    if pixels.dtype == np.uint16:  # imageio/Pillow write 16-bit gray only; pypng any channel count
        height, width = pixels.shape[:2]
        planes = pixels.shape[2] if pixels.ndim == 3 else 1
        writer = png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16)
        with open(temporary, "wb") as handle:
            writer.write_array(handle, pixels.reshape(-1))
        return
    iio.imwrite(temporary, pixels, extension=kind)


def _write_tiff(temporary, images, names):
    with tifffile.TiffWriter(temporary) as tif:
        for image, name in zip(images, names):
            tif.write(
                np.ascontiguousarray(image, dtype=np.float32),
                photometric="minisblack",  # plain pages: never mistaken for RGB
                metadata={"name": name, "nnpipe_shape": list(image.shape)},
            )


def _to_pixels(image, kind, bits):
    s, d, h, w = image.shape
    if d != 1:
        raise UserError(
            f"{kind[1:].upper()} holds 2D images, this one is {size_text(image.shape[::-1])}"
            " (depth > 1): use .tif or .npy"
        )
    if s > 4 or (kind in {".jpg", ".jpeg", ".bmp"} and s not in (1, 3)):
        raise UserError(
            f"{kind[1:].upper()} cannot hold {s} channels ({size_text(image.shape[::-1])}): use .tif or .npy"
        )
    if bits == 16 and kind != ".png":
        raise UserError("16-bit output needs .png")
    top, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    pixels = np.clip(np.rint(np.nan_to_num(image[:, 0])), 0, top).astype(dtype)
    pixels = np.moveaxis(pixels, 0, 2)
    return pixels[:, :, 0] if s == 1 else pixels

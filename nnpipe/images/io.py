"""Reading and writing image files.

Every file becomes (s, d, h, w) float32 images that keep their value range, as in G'MIC:
8-bit files give 0..255, 16-bit files 0..65535, float TIFF and NPY their own values.
"""

import os
import tempfile

import imageio.v3 as iio
import numpy as np
import tifffile

from nnpipe.errors import UserError
from nnpipe.images import gmz
from nnpipe.images.imagelist import as_image, size_text

PLAIN_FORMATS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
TIFF_FORMATS = {".tif", ".tiff"}
READABLE = PLAIN_FORMATS | TIFF_FORMATS | {".npy", ".gmz"}


def extension(path):
    return os.path.splitext(path)[1].lower()


def atomic_write(path, write):
    """Call write(temporary_path) then rename it onto `path`: a crash never leaves half a file."""
    folder = make_folder(path)
    handle, temporary = tempfile.mkstemp(prefix=".nnpipe-", suffix=extension(path), dir=folder)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; give it a file's usual mode
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"cannot write '{path}': {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def make_folder(path):
    """Create the folder `path` goes in, if missing: a run's results must not be lost to a typo'd
    or not-yet-made output folder after hours of training. Returns the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write '{path}': cannot create folder '{folder}':"
                        f" {error.strerror or error}") from None
    return folder


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- reading ------------------------------------------------------------------------------------

def read(path):
    """Return [(name, image)] for every image the file holds."""
    if not os.path.exists(path):
        raise UserError(f"file '{path}' not found")
    if os.path.isdir(path):
        raise UserError(f"'{path}' is a folder, not an image file")
    kind = extension(path)
    if kind not in READABLE:
        raise UserError(f"cannot read '{path}': unknown format '{kind or 'no extension'}'"
                        f" (known: {', '.join(sorted(READABLE))})")
    base = os.path.splitext(os.path.basename(path))[0]
    try:
        if kind == ".npy":
            return [(base, _checked(np.load(path, allow_pickle=False), path))]
        if kind in TIFF_FORMATS:
            return read_tiff(path, base)
        if kind == ".gmz":
            return _read_gmz(path)
        return [(base, _from_hwc(iio.imread(path)))]
    except UserError:
        raise
    except Exception as error:  # every decoder has its own exceptions for a damaged file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "backend" in reason or "pickle" in reason:  # imageio's or numpy's way of saying
            # that the bytes are not an image of that kind
            reason = f"damaged or not a {kind[1:].upper()} file"
        raise UserError(f"cannot read '{path}': {reason}") from None


def _checked(array, path):
    if array.dtype.kind not in "biuf":
        raise UserError(f"cannot read '{path}': values of type {array.dtype} are not numbers")
    if array.ndim > 4:
        raise UserError(f"cannot read '{path}': {array.ndim} dimensions (at most 4)")
    return as_image(array)


def _read_gmz(path):
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return [(name, as_image(image)) for name, image in gmz.decode(data) if image.size]
    except gmz.GmzError as error:
        raise UserError(f"cannot read '{path}': {error}") from None


def _from_hwc(array):
    """A decoded 2D picture (h, w) or (h, w, c) to (c, 1, h, w)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise UserError(f"unexpected picture shape {array.shape}")
    return as_image(np.moveaxis(array, 2, 0)[:, np.newaxis])


def read_tiff(path, base):
    with tifffile.TiffFile(path) as tif:
        metadata = tif.shaped_metadata or ()
        result = []
        for number, series in enumerate(tif.series):
            data = series.asarray()
            info = metadata[number] if number < len(metadata) else {}
            if "nnpipe_shape" in info:
                result.append((info.get("name", ""), as_image(data.reshape(info["nnpipe_shape"]))))
            else:
                result.extend(_foreign_tiff(data, series.axes, f"{base}" if number == 0 else f"{base}_{number}"))
        return result


def _foreign_tiff(data, axes, name):
    """Pages of a TIFF written by another program: YX(S) planes, one image per leading page."""
    if "S" in axes:  # samples (channels), stored contiguous (YXS) or planar (SYX)
        data = np.moveaxis(data, axes.index("S"), -1)
        planes = data.reshape((-1,) + data.shape[-3:])
        return [(name, _from_hwc(plane)) for plane in planes]
    planes = data.reshape((-1,) + data.shape[-2:])
    return [(name, _from_hwc(plane)) for plane in planes]


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
        atomic_write(path, lambda tmp: _write_tiff(tmp, images, names))
        return [path]
    if kind == ".gmz":
        data = gmz.encode(images, names)
        atomic_write(path, lambda tmp: write_bytes(tmp, data))
        return [path]
    if kind not in PLAIN_FORMATS | {".npy"}:
        raise UserError(f"cannot write '{path}': unknown format '{kind or 'no extension'}'"
                        f" (use .png, .jpg, .bmp, .tif, .gmz or .npy)")
    targets = [path] if len(images) == 1 else _numbered(path, len(images))
    for target, image in zip(targets, images):
        if kind == ".npy":
            atomic_write(target, lambda tmp, image=image: _write_npy(tmp, image))
        else:
            pixels = _to_pixels(image, kind, bits)
            atomic_write(target, lambda tmp, pixels=pixels: iio.imwrite(tmp, pixels, extension=kind))
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


def _write_tiff(temporary, images, names):
    with tifffile.TiffWriter(temporary) as tif:
        for image, name in zip(images, names):
            tif.write(np.ascontiguousarray(image, dtype=np.float32),
                      photometric="minisblack",  # plain pages: never mistaken for RGB
                      metadata={"name": name, "nnpipe_shape": list(image.shape)})


def _to_pixels(image, kind, bits):
    s, d, h, w = image.shape
    if d != 1:
        raise UserError(f"{kind[1:].upper()} holds 2D images, this one is {size_text(image)}"
                        " (depth > 1): use .tif or .npy")
    if s > 4 or (kind in {".jpg", ".jpeg", ".bmp"} and s not in (1, 3)):
        raise UserError(f"{kind[1:].upper()} cannot hold {s} channels ({size_text(image)}):"
                        " use .tif or .npy")
    if bits == 16 and kind != ".png":
        raise UserError("16-bit output needs .png")
    top, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    pixels = np.clip(np.rint(np.nan_to_num(image[:, 0])), 0, top).astype(dtype)
    pixels = np.moveaxis(pixels, 0, 2)
    return pixels[:, :, 0] if s == 1 else pixels



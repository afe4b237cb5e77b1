"""Network files: what nn_save writes and nn_load reads, and the pictures of nn_view.

A network file holds the network's name, the commands that rebuild it (Network.commands) and
its images: the parameter images and, with the trainer data, the optimizer moments and the
trainer states. Three formats, chosen by the extension:

.gmz        nn_lib's own format (its nn_save): G'MIC's compressed image list with names (see
            nnpipe.images.gmz), exactly what `gmic ... output FILE.gmz` writes. In nn_lib's
            order: the parameter images (named as their modules) in module order, the trainer
            states, the optimizer moments, then `_nn_init`, a text image (one character a value along
            x) of the commands that rebuild the network, separated by spaces: "nn_init nn_input
            IN,2 nn_fc OUT,IN,3 ...". nnpipe writes "nn_init NAME" for a network not named
            'nn', and its losses and trainers too (nn_lib declares those again after loading).
            No roles are stored: a load replays the commands to tell weights from trainer
            data, and keeps trainer data no trainer claims (an nn_lib file's), for the nn_trainer
            that follows. zlib's checksums catch damaged data.
.tif/.tiff  One multi-page float32 TIFF, lossless: page i is image i, stored as a 2D plane of
            (s*d*h) rows by w columns. Every page's ImageDescription is tifffile's JSON
            {"shape", "name", "nnpipe_shape": [s,d,h,w], "size": [w,h,d,s], "role"} and its
            PageName tag is the image name; the first page's description also holds the
            manifest under "nnpipe_network". Any TIFF reader opens it page by page, and
            `input net.tif` gives back the named images.
.png        A folder NAME.png/ of 16-bit grayscale PNG files 000_IMAGE.png, 001_...; each image
            is the same 2D plane mapped linearly from its [min, max] to 0..65535 (lossy: values
            come back within 1/65535 of the image's range; images of at most EXACT_MAX values,
            such as trainer states, also keep their exact float32 values). Each file carries
            its entry of the manifest in an iTXt chunk "nnpipe-image"; the first file carries
            the manifest in a zipped iTXt chunk "nnpipe-network".

The manifest (JSON):
    {"format": "nnpipe-network", "version": 1, "network": NAME, "commands": [TEXT...],
     "images": [{"name", "role", "size": [w,h,d,s], "crc32", ... }],
     "input_magnitudes": {INPUT: the largest |value| it was trained on, ...}}
The CRC-32 of each image's data lets a load tell a damaged file from a good one. The input
magnitudes (absent before any training, and from files of earlier nnpipe versions) let nn_eval
warn about inputs of another range after nn_load; a .gmz file has no place for them.

Writing is atomic (nnpipe.images.atomic): a TIFF is written to a temporary file beside the
target then renamed; a PNG stack is written to a temporary folder beside the target, then
swapped with the old folder in one step (renameat2 RENAME_EXCHANGE where the system has it) and
the old folder removed.
Reading checks everything before it returns, so a caller can refuse a bad file untouched.
"""

import base64
import contextlib
import dataclasses
import io as bytes_io
import os

import numpy as np
from PIL import Image

from nnpipe.errors import UserError
from nnpipe.images import atomic, io
from nnpipe.nn import optimizers, schedulers
from nnpipe.nn.files import gmz_format, png_format, tiff_format
from nnpipe.nn.files.manifest import MOMENT, PARAMETER, TRAINER, BadFile, Entry, NetworkFile
from nnpipe.numbers import size_text

TIFF_FORMATS, PNG_FORMATS, GMZ_FORMATS = {".tif", ".tiff"}, {".png"}, {".gmz"}
STORED_PREFIX = "nnpipe-network:tiff;base64,"  # a network kept in a variable (nn_store)


MOMENTS_36 = ("_m", "_m2")  # G'MIC 3.6's optimizer moments of a parameter image P: P_m, P_m2


def gather(network, images, include_trainer_data):
    """The network's images in the list (checked), in module order, then per trainer its
    moments and its state; a G'MIC 3.6 network's as its nn_save takes them: each parameter
    image with, for the trainer data, its moments where they exist, and the trainer states,
    all in the order of the list."""
    entries, taken = [], set()

    def take(name, role, shape):
        image = images.get(name)
        if image is None:
            raise UserError(f"image '{name}' of network '{network.name}' is missing from the list")
        if shape is not None and image.shape != tuple(shape):
            raise UserError(
                f"image '{name}' has size {size_text(image.shape[::-1])}, network"
                f" '{network.name}' needs {size_text(shape[::-1])}"
            )
        if role == PARAMETER and not np.all(np.isfinite(image)):
            raise UserError(
                f"the weights '{name}' of network '{network.name}' are not all finite (a diverged"
                " training?): not saving them"
            )
        if name not in taken:
            taken.add(name)
            entries.append(Entry(name, role, image))

    for module in network.parameter_modules():
        take(network.image_name(module.name), PARAMETER, module.parameter_shape(network))
    if network.api == "3.6":
        for module in network.parameter_modules():
            image = network.image_name(module.name)
            for suffix in MOMENTS_36 if include_trainer_data else ():
                if images.get(image + suffix) is not None:
                    take(image + suffix, MOMENT, module.parameter_shape(network))
        for trainer in network.trainers:
            take(network.image_name(trainer), TRAINER, None)
        entries.sort(key=lambda entry: images.names.index(entry.name))
    elif include_trainer_data:
        for trainer in network.trainers.values():
            for name in network.trained_modules():
                shape = network.modules[name].parameter_shape(network)
                for suffix in optimizers.MOMENTS[trainer.optimizer] if shape is not None else ():
                    take(network.image_name(name) + suffix, MOMENT, shape)
            take(network.image_name(trainer.name), TRAINER, schedulers.STATE_SHAPE)
    if not entries:
        raise UserError(f"network '{network.name}' has no parameters to save")
    return NetworkFile(
        network.name,
        list(network.commands),
        entries,
        api=network.api,
        input_magnitudes=dict(network.input_magnitudes),
    )


def kind(path):
    extension = io.extension(path)
    if extension in TIFF_FORMATS:
        return "tiff"
    if extension in PNG_FORMATS:
        return "png"
    if extension in GMZ_FORMATS:
        return "gmz"
    raise UserError(
        f"'{path}': a network file ends with .gmz (nn_lib's), .tif, .tiff (lossless)"
        f" or .png (16-bit PNG stack, lossy), not '{extension or 'no extension'}'"
    )


def write(path, saved):
    """Write `saved` to `path` (format from the extension), atomically; return a summary."""
    path = _without_slash(path)
    if kind(path) == "tiff":
        atomic.write_file(path, lambda temporary: tiff_format.write(temporary, saved))
        return f"{len(saved.entries)} pages"
    if kind(path) == "gmz":
        data = gmz_format.encode(saved)
        atomic.write_file(path, lambda temporary: io.write_bytes(temporary, data))
        return f"{len(saved.entries) + 1} images"
    png_format.write(path, saved)
    return f"folder of {len(saved.entries)} PNG files"


def to_text(saved):
    buffer = bytes_io.BytesIO()
    tiff_format.write(buffer, saved)
    return STORED_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def is_stored(text):
    return text.startswith(STORED_PREFIX)


def from_text(text, label):
    try:
        data = base64.b64decode(text[len(STORED_PREFIX) :], validate=True)
    except ValueError:
        raise UserError(f"cannot load {label}: the stored network is damaged") from None
    return _reading(label, lambda: tiff_format.read(bytes_io.BytesIO(data), len(data)))


def read(path):
    """The NetworkFile at `path`, fully checked; a UserError says what is wrong.

    The last file read is kept in memory and read again only once it changes (size or
    modification time): a process running a script once per file (a worker of `nnpipe map`)
    loads its network once. Each caller gets its own copy of the images."""
    global _last_read
    key = _file_key(_without_slash(path))
    if key is None or _last_read[0] != key:
        _last_read = (key, _read(path))
    saved = _last_read[1]
    return dataclasses.replace(
        saved,
        commands=list(saved.commands),
        entries=[Entry(e.name, e.role, e.image.copy()) for e in saved.entries],
        input_magnitudes=dict(saved.input_magnitudes),
    )


_last_read = (None, None)


def _file_key(path):
    """What identifies a version of a file or PNG folder (None if it is missing)."""
    try:
        stats = [os.stat(path)] + (
            [os.stat(os.path.join(path, f)) for f in sorted(os.listdir(path))] if os.path.isdir(path) else []
        )
    except OSError:
        return None
    return os.path.abspath(path), tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def _read(path):
    label = f"'{path}'"
    path = _without_slash(path)
    if kind(path) == "gmz":
        if not os.path.isfile(path):
            raise UserError(
                f"cannot load {label}: "
                + (
                    "it is a folder, not a .gmz file"
                    if os.path.isdir(path)
                    else "it is not a regular file"
                    if os.path.exists(path)
                    else "no such file"
                )
            )
        return _reading(label, lambda: gmz_format.read(path))
    if kind(path) == "png":
        if not os.path.exists(path):
            raise UserError(f"cannot load {label}: no such file or folder")
        return _reading(label, lambda: png_format.read(path))
    if not os.path.exists(path):
        raise UserError(f"cannot load {label}: no such file")
    if os.path.isdir(path):
        raise UserError(f"cannot load {label}: it is a folder, not a TIFF file")
    if not os.path.isfile(path):  # a device or a FIFO could be read forever
        raise UserError(f"cannot load {label}: it is not a regular file")
    return _reading(label, lambda: tiff_format.read(path, os.path.getsize(path)))


def _without_slash(path):
    """`net.png/` (as shells complete a folder) is the stack `net.png`."""
    return path.rstrip("/" + os.sep) or path


def _reading(label, read_it):
    try:
        with io.quiet_tifffile(), _large_pictures():
            return read_it()
    except BadFile as error:
        raise UserError(f"cannot load {label}: {error}") from None
    except UserError:
        raise
    except Exception as error:  # each decoder has its own exceptions for a damaged file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"cannot load {label}: damaged or not a network file ({reason})") from None


@contextlib.contextmanager
def _large_pictures():
    """A big fc layer makes a PNG larger than Pillow's guard against decompression bombs."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit

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
     "images": [{"name", "role", "size": [w,h,d,s], "crc32", ... }]}
The CRC-32 of each image's data lets a load tell a damaged file from a good one.

Writing is atomic (nnpipe.images.atomic): a TIFF is written to a temporary file beside the
target then renamed; a PNG stack is written to a temporary folder beside the target, then
swapped with the old folder in one step (renameat2 RENAME_EXCHANGE where the system has it) and
the old folder removed.
Reading checks everything before it returns, so a caller can refuse a bad file untouched.
"""

import base64
import contextlib
import io as bytes_io
import json
import os
import re
import zlib
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image, PngImagePlugin

from nnpipe.nn.building import builds_network
from nnpipe.registry import lookup
from nnpipe.errors import UserError
from nnpipe.images import atomic, gmz, io
from nnpipe.nn import optimizers, schedulers
from nnpipe.nn.network import DEFAULT_NAME
from nnpipe.numbers import size_text

FORMAT, VERSION = "nnpipe-network", 1
PARAMETER, MOMENT, TRAINER = "parameter", "moment", "trainer"
ROLES = (PARAMETER, MOMENT, TRAINER)
TIFF_FORMATS, PNG_FORMATS, GMZ_FORMATS = {".tif", ".tiff"}, {".png"}, {".gmz"}
INIT_IMAGE = "_nn_init"     # nn_lib's text image of the commands that build the network
LATER_INIT_SUFFIX = "__init__"  # the later nn_lib's (G'MIC 3.6): NET__init__
STORED_PREFIX = "nnpipe-network:tiff;base64,"   # a network kept in a variable (nn_store)
EXACT_MAX = 64          # PNG stacks keep images this small exactly too (trainer states)
PNG_LEVEL = 1           # zlib level: weights are noisy, higher levels buy little and cost time
TOP = 65535


class BadFile(Exception):
    """What is wrong with a file being read (turned into a UserError naming the file)."""


@dataclass
class Entry:
    name: str
    role: str
    image: np.ndarray


@dataclass
class NetworkFile:
    network: str
    commands: list
    entries: list
    # a .gmz file names no roles (entries have role None until a replay tells them), and its
    # trainer data may belong to trainers declared only after loading, as nn_lib does
    loose_trainer_data: bool = False


# --- from a network to a NetworkFile --------------------------------------------------------------

def gather(network, images, include_trainer_data):
    """The network's images in the list (checked), in module order, then per trainer its
    moments and its state."""
    entries, taken = [], set()

    def take(name, role, shape):
        image = images.get(name)
        if image is None:
            raise UserError(f"image '{name}' of network '{network.name}' is missing from the list")
        if image.shape != tuple(shape):
            raise UserError(f"image '{name}' has size {size_text(image.shape[::-1])}, network"
                            f" '{network.name}' needs {size_text(shape[::-1])}")
        if name not in taken:
            taken.add(name)
            entries.append(Entry(name, role, image))

    for module in network.parameter_modules():
        take(module.name, PARAMETER, module.parameter_shape(network))
    if include_trainer_data:
        for trainer in network.trainers.values():
            for name in network.trained_modules():
                shape = network.modules[name].parameter_shape(network)
                for suffix in optimizers.MOMENTS[trainer.optimizer] if shape is not None else ():
                    take(name + suffix, MOMENT, shape)
            take(trainer.name, TRAINER, schedulers.STATE_SHAPE)
    if not entries:
        raise UserError(f"network '{network.name}' has no parameters to save")
    return NetworkFile(network.name, list(network.commands), entries)


def _plane(image):
    """An (s, d, h, w) image as the 2D plane (s*d*h, w) that both formats store."""
    s, d, h, w = image.shape
    return np.ascontiguousarray(image.reshape(s * d * h, w), dtype="<f4")


def _crc(array):
    return zlib.crc32(np.ascontiguousarray(array).data) & 0xFFFFFFFF


def _manifest(saved, items):
    return {"format": FORMAT, "version": VERSION, "network": saved.network,
            "commands": list(saved.commands), "images": items}


def _item(entry):
    s, d, h, w = entry.image.shape
    return {"name": entry.name, "role": entry.role, "size": [w, h, d, s]}


# --- writing ----------------------------------------------------------------------------------------

def kind(path):
    extension = io.extension(path)
    if extension in TIFF_FORMATS:
        return "tiff"
    if extension in PNG_FORMATS:
        return "png"
    if extension in GMZ_FORMATS:
        return "gmz"
    raise UserError(f"'{path}': a network file ends with .gmz (nn_lib's), .tif, .tiff (lossless)"
                    f" or .png (16-bit PNG stack, lossy), not '{extension or 'no extension'}'")


def write(path, saved):
    """Write `saved` to `path` (format from the extension), atomically; return a summary."""
    path = _without_slash(path)
    if kind(path) == "tiff":
        atomic.write_file(path, lambda temporary: _write_tiff(temporary, saved))
        return f"{len(saved.entries)} pages"
    if kind(path) == "gmz":
        data = _gmz_bytes(saved)
        atomic.write_file(path, lambda temporary: io.write_bytes(temporary, data))
        return f"{len(saved.entries) + 1} images"
    _write_png_stack(path, saved)
    return f"folder of {len(saved.entries)} PNG files"


def _write_tiff(target, saved):
    items = []
    for entry in saved.entries:
        item = _item(entry)
        item["crc32"] = _crc(_plane(entry.image))
        items.append(item)
    total = sum(entry.image.nbytes for entry in saved.entries)
    with tifffile.TiffWriter(target, bigtiff=total > 2**31) as tif:
        for index, (entry, item) in enumerate(zip(saved.entries, items)):
            metadata = {"name": entry.name, "nnpipe_shape": list(entry.image.shape),
                        "size": item["size"], "role": entry.role}
            extratags = [(285, "s", 0, _ascii(entry.name), True)]            # PageName
            if index == 0:
                metadata["nnpipe_network"] = _manifest(saved, items)
                extratags.append((269, "s", 0, _ascii(saved.network), True))  # DocumentName
            tif.write(_plane(entry.image), photometric="minisblack", software="nnpipe",
                      metadata=metadata, extratags=extratags)


def _gmz_bytes(saved):
    """nn_lib's layout, its images in the order nn_lib creates them: weights, trainer states,
    moments, then `_nn_init`."""
    ordered = sorted(saved.entries, key=lambda entry: (PARAMETER, TRAINER, MOMENT).index(entry.role))
    return gmz.encode([entry.image for entry in ordered] + [gmz.text_image(init_text(saved))],
                      [entry.name for entry in ordered] + [INIT_IMAGE])


def init_text(saved):
    """The `_nn_init` text: nn_init, then each command, its arguments quoted if they hold spaces."""
    words = ["nn_init"] + ([saved.network] if saved.network != DEFAULT_NAME else [])
    for text in saved.commands:
        name, _, arguments = text.partition(" ")
        words.append(name)
        if arguments:
            words.append(f'"{arguments}"' if re.search(r"\s", arguments) and '"' not in arguments
                         else arguments)
    return " ".join(words)


def _ascii(text):
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _write_png_stack(path, saved):
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError(f"cannot write '{path}': a file is in the way (a .png network is a"
                        " folder of PNG files); remove it or choose another name")
    if os.path.isdir(path) and os.listdir(path) and not _is_stack(path):
        raise UserError(f"cannot write '{path}': the folder exists and is not an nnpipe network;"
                        " not replacing it")
    width = max(3, len(str(len(saved.entries) - 1)))
    files = [f"{index:0{width}d}_{_file_part(entry.name)}.png" for index, entry in enumerate(saved.entries)]
    encoded, items = [], []
    for entry, file in zip(saved.entries, files):
        pixels, low, high = quantize(entry.image)
        item = _item(entry)
        item.update(file=file, min=low, max=high, crc32=_crc(pixels.astype("<u2")))
        if entry.image.size <= EXACT_MAX:
            item["exact"] = base64.b64encode(_plane(entry.image).tobytes()).decode("ascii")
        encoded.append(pixels)
        items.append(item)

    def fill(temporary):
        for index, (pixels, item) in enumerate(zip(encoded, items)):
            info = PngImagePlugin.PngInfo()
            info.add_itxt("nnpipe-image", json.dumps(item))
            if index == 0:
                info.add_itxt("nnpipe-network", json.dumps(_manifest(saved, items)), zip=True)
            info.add_text("Software", "nnpipe")
            Image.fromarray(pixels).save(os.path.join(temporary, item["file"]), format="PNG",
                                         pnginfo=info, compress_level=PNG_LEVEL)

    atomic.write_folder(path, fill)


def _file_part(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "image"


def quantize(image):
    """A 16-bit plane of `image` and the range [low, high] mapped to 0..65535 (non-finite
    values go to the ends of the range)."""
    plane = _plane(image).astype(np.float64)
    finite = plane[np.isfinite(plane)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    plane = np.nan_to_num(plane, nan=low, posinf=high, neginf=low)
    scale = TOP / (high - low) if high > low else 0.0
    pixels = np.clip(np.rint((plane - low) * scale), 0, TOP).astype(np.uint16)
    return pixels, low, high


def dequantize(pixels, low, high):
    return (low + pixels.astype(np.float64) * ((high - low) / TOP)).astype(np.float32)


# --- in a variable (nn_store) ---------------------------------------------------------------------

def to_text(saved):
    buffer = bytes_io.BytesIO()
    _write_tiff(buffer, saved)
    return STORED_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def is_stored(text):
    return text.startswith(STORED_PREFIX)


def from_text(text, label):
    try:
        data = base64.b64decode(text[len(STORED_PREFIX):], validate=True)
    except ValueError:
        raise UserError(f"cannot load {label}: the stored network is damaged") from None
    return _reading(label, lambda: _read_tiff(bytes_io.BytesIO(data), len(data)))


# --- reading ----------------------------------------------------------------------------------------

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
    return NetworkFile(saved.network, list(saved.commands),
                       [Entry(e.name, e.role, e.image.copy()) for e in saved.entries],
                       saved.loose_trainer_data)


_last_read = (None, None)


def _file_key(path):
    """What identifies a version of a file or PNG folder (None if it is missing)."""
    try:
        stats = [os.stat(path)] + ([os.stat(os.path.join(path, f)) for f in sorted(os.listdir(path))]
                                   if os.path.isdir(path) else [])
    except OSError:
        return None
    return os.path.abspath(path), tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def _read(path):
    label = f"'{path}'"
    path = _without_slash(path)
    if kind(path) == "gmz":
        if not os.path.isfile(path):
            raise UserError(f"cannot load {label}: " + ("it is a folder, not a .gmz file"
                            if os.path.isdir(path) else "it is not a regular file"
                            if os.path.exists(path) else "no such file"))
        return _reading(label, lambda: _read_gmz(path))
    if kind(path) == "png":
        if not os.path.exists(path):
            raise UserError(f"cannot load {label}: no such file or folder")
        return _reading(label, lambda: _read_png_stack(path))
    if not os.path.exists(path):
        raise UserError(f"cannot load {label}: no such file")
    if os.path.isdir(path):
        raise UserError(f"cannot load {label}: it is a folder, not a TIFF file")
    if not os.path.isfile(path):  # a device or a FIFO could be read forever
        raise UserError(f"cannot load {label}: it is not a regular file")
    return _reading(label, lambda: _read_tiff(path, os.path.getsize(path)))


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


def _read_tiff(source, file_size):
    with tifffile.TiffFile(source) as tif:
        first = tif.pages[0]
        description = _json(first.description)
        manifest = description.get("nnpipe_network") if description else None
        if manifest is None:
            if description and "nnpipe_shape" in description:
                raise BadFile("it holds images but no network (written by 'output'?): load it"
                              " with 'input'")
            raise BadFile("not an nnpipe network file (a TIFF without a network description)")
        items = _check_manifest(manifest)
        pages = []
        for page in tif.pages:  # a truncated file loses its last pages: counted below
            pages.append(page)
            if len(pages) > len(items):
                break
        if len(pages) != len(items):
            raise BadFile(f"{len(pages)} page{'s' * (len(pages) != 1)} where the description lists"
                          f" {len(items)}: the file is truncated or damaged")
        entries = []
        for page, item in zip(pages, items):
            w, h, d, s = item["size"]
            if page.shape != (s * d * h, w) or page.dtype.kind != "f" or page.dtype.itemsize != 4:
                raise BadFile(f"page of image '{item['name']}' is {page.dtype} {page.shape[::-1]},"
                              f" expected float32 ({w}, {s * d * h})")
            for offset, length in zip(page.dataoffsets, page.databytecounts):
                if offset + length > file_size:
                    raise BadFile(f"the file is truncated (image '{item['name']}' is incomplete)")
            _check_stored_bytes(item, 4, sum(page.databytecounts), page.compression == 1)
            plane = np.ascontiguousarray(page.asarray(), dtype="<f4")
            if _crc(plane) != item.get("crc32"):
                raise BadFile(f"image '{item['name']}' is damaged (checksum mismatch)")
            entries.append(Entry(item["name"], item["role"], plane.reshape(s, d, h, w).astype(np.float32)))
        return NetworkFile(manifest["network"], manifest["commands"], entries)


ZLIB_MAX_RATIO = gmz.ZLIB_MAX_RATIO  # deflate never shrinks data by more than about 1032:1


def _check_stored_bytes(item, value_bytes, stored, uncompressed):
    """Refuse an image whose declared size needs more data than the file holds for it, before
    anything of that size is allocated."""
    w, h, d, s = item["size"]
    needed = w * h * d * s * value_bytes
    if stored < needed if uncompressed else stored * ZLIB_MAX_RATIO < needed:
        raise BadFile(f"image '{item['name']}' is declared of size {w},{h},{d},{s} ({needed:,} bytes)"
                      f" but the file holds only {stored:,} bytes for it")


def _read_gmz(path):
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        named = gmz.decode(data)
    except gmz.GmzError as error:
        raise BadFile(str(error)) from None
    names = [name for name, _ in named]
    later = [name for name in names if name.endswith(LATER_INIT_SUFFIX)]
    if INIT_IMAGE not in names and later:
        return _read_later_gmz(named, later[0])
    if INIT_IMAGE not in names:
        raise BadFile(f"not a network file: it holds no {INIT_IMAGE} image (load its images"
                      " with 'input')")
    text = gmz.image_text(named[names.index(INIT_IMAGE)][1])
    if text is None:
        raise BadFile(f"its {INIT_IMAGE} image is not text")
    network, commands = parse_init_text(text)
    return NetworkFile(network, commands, _entries(named), loose_trainer_data=True)


def _entries(named, renamed=None):
    """Entries (roles unknown) of the images but the text image; with `renamed` (file name ->
    name), only the images it names, under their new names."""
    entries, seen = [], set()
    for name, image in named:
        if name == INIT_IMAGE or name.endswith(LATER_INIT_SUFFIX):
            continue
        if renamed is not None:
            if name not in renamed:
                continue
            name = renamed[name]
        if not name.isidentifier():
            raise BadFile(f"it holds an image named {name!r}, not a layer name")
        if name in seen:
            raise BadFile(f"it holds two images named '{name}'")
        seen.add(name)
        entries.append(Entry(name, None, image))
    return entries


def _read_later_gmz(named, init_name):
    """A network saved by the later nn_lib of current G'MIC (3.6): `NET__init__` holds its
    commands ("nn_init NET nn_input IN,2,1,1,1 nn_fc OUT,IN,5,3,0,3 nn_nl A,OUT,tanh") and
    `NET_LAYER` the weights of layer LAYER. Its nn_input, nn_fc and nn_nl are the 2023 ones
    (fc weights laid out alike; the extra fc arguments, weight decay and initialisation, do
    not change what the layer computes): they are read as such, weights only. Any other
    command is refused."""
    text = gmz.image_text(dict(named)[init_name])
    words = text.split() if text is not None else []
    if len(words) < 2 or len(words) % 2 or words[0] != "nn_init":
        raise BadFile(f"its {init_name} image is not the text of a later nn_lib network")
    network = words[1]
    commands, renamed = [], {}
    for name, arguments in zip(words[2::2], words[3::2]):
        parts = arguments.split(",")
        if name in ("nn_input", "nn_nl"):
            commands.append(f"{name} {arguments}")
        elif name == "nn_fc" and len(parts) >= 3:
            commands.append(f"nn_fc {','.join(parts[:3] + parts[3:4])}")
            renamed[f"{network}_{parts[0]}"] = f"{parts[0]}_fc"
        else:
            raise BadFile(f"it is a network of a later nn_lib (as in G'MIC 3.6) with '{name}',"
                          " which nnpipe does not read (it reads nn_input, nn_fc and nn_nl of"
                          " that nn_lib, and nn_lib 2023's files)")
    return NetworkFile(network, commands, _entries(named, renamed), loose_trainer_data=True)


def parse_init_text(text):
    """(network name, ["command arguments", ...]) from an `_nn_init` text. A command takes the
    next word as its arguments unless that word is a command (nn_lib's nn_init takes none)."""
    words = re.findall(r'"[^"]*"|\S+', text)
    if not words or words[0] != "nn_init":
        raise BadFile(f"its {INIT_IMAGE} text does not start with nn_init")
    network, commands, index = DEFAULT_NAME, [], 1
    if index < len(words) and lookup(words[index]) is None:
        network, index = words[index], index + 1
        if not network.isidentifier():
            raise BadFile(f"its {INIT_IMAGE} text names the network {network!r}, not a valid name")
    while index < len(words):
        name, index = words[index], index + 1
        entry = lookup(name)
        if not builds_network(entry):
            raise BadFile(f"'{name}' in its {INIT_IMAGE} text is not a network-building command")
        if entry.takes_arguments and index < len(words) and lookup(words[index]) is None:
            arguments, index = words[index], index + 1
            if re.search(r"\s", arguments):
                arguments = arguments[1:-1]
            commands.append(f"{name} {arguments}")
        else:
            commands.append(name)
    return network, commands


def _json(text):
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _check_manifest(manifest):
    """The manifest's image list after checking its structure."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadFile("not an nnpipe network file (unknown description)")
    if manifest.get("version") != VERSION:
        raise BadFile(f"network file version {manifest.get('version')!r} is not supported"
                      f" (this nnpipe reads version {VERSION})")
    name, commands, items = manifest.get("network"), manifest.get("commands"), manifest.get("images")
    if not isinstance(name, str) or not name.isidentifier():
        raise BadFile("the description has no valid network name")
    if not isinstance(commands, list) or not all(isinstance(c, str) and c for c in commands):
        raise BadFile("the description has no valid list of commands")
    if not isinstance(items, list) or not items:
        raise BadFile("the description lists no images")
    names = set()
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]
                and item.get("role") in ROLES and isinstance(item.get("size"), list)
                and len(item["size"]) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in item["size"])):
            raise BadFile("the description lists an image without a valid name, role or size")
        if item["name"] in names:
            raise BadFile(f"the description lists image '{item['name']}' twice")
        names.add(item["name"])
    return items


def _read_png_stack(path):
    folder, first = (path, _first_file(path)) if os.path.isdir(path) else (os.path.dirname(path) or ".", path)
    with Image.open(first) as image:
        if image.format != "PNG":
            raise BadFile(f"'{first}' is not a PNG file")
        manifest = image.info.get("nnpipe-network")  # our text chunks come before the pixels
    if manifest is None:
        raise BadFile("not an nnpipe network (a PNG without a network description)")
    manifest = _json(manifest)
    items = _check_manifest(manifest)
    entries = []
    for item in items:
        file = item.get("file")
        if not isinstance(file, str) or os.path.basename(file) != file or not file:
            raise BadFile("the description lists an image without a valid file name")
        entries.append(_read_png_image(os.path.join(folder, file), item))
    return NetworkFile(manifest["network"], manifest["commands"], entries)


def _first_file(folder):
    numbered = sorted(f for f in os.listdir(folder) if re.match(r"^\d+_.*\.png$", f))
    if not numbered:
        raise BadFile("the folder holds no network PNG files (000_NAME.png ...)")
    return os.path.join(folder, numbered[0])


def _is_stack(folder):
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
        own = _json(image.info.get("nnpipe-image"))
        if own != item:
            raise BadFile(f"'{os.path.basename(file)}' does not belong to this network (its"
                          " description differs from the stack's)")
        w, h, d, s = item["size"]
        if image.size != (w, s * d * h):
            raise BadFile(f"'{os.path.basename(file)}' has the wrong size for image '{name}'")
        _check_stored_bytes(item, 2, os.path.getsize(file), uncompressed=False)
        pixels = np.asarray(image)
    if pixels.shape != (s * d * h, w) or pixels.min(initial=0) < 0 or pixels.max(initial=0) > TOP:
        raise BadFile(f"'{os.path.basename(file)}' has the wrong size or values for image '{name}'")
    pixels = pixels.astype("<u2")
    if _crc(pixels) != item.get("crc32"):
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


# --- pictures (nn_view) ----------------------------------------------------------------------------

def picture(image, min_size, layout=None):
    """An 8-bit picture of a parameter image: its values mapped from [min, max] to 0..255, laid out
    by `layout(image)` (a 2D array; default: the s x d slices of h x w as tiles, one row of tiles
    per channel, one column per depth, 1-pixel black gaps), scaled up by an integer factor with
    nearest neighbour until its longer side reaches `min_size`."""
    values = image.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    scaled = np.nan_to_num((values - low) * (255 / (high - low)) if high > low else values * 0 + 127.5,
                           nan=0, posinf=255, neginf=0)
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
            canvas[c * (h + gap):c * (h + gap) + h, z * (w + gap):z * (w + gap) + w] = image[c, z]
    return canvas


def write_picture(path, pixels):
    atomic.write_file(path, lambda temporary: Image.fromarray(pixels).save(temporary, format="PNG"))

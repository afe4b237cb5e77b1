"""G'MIC's .gmz files: a list of named images, as `gmic ... output FILE.gmz` writes it.

A .gmz file is CImg's compressed list format (.cimgz) with one more image holding the names:

    N TYPE ENDIANNESS\\n                 e.g. "3 float32 little_endian"
    W H D S #BYTES\\n  zlib data         one per image, values in CImg's order (x fastest, then
    ...                                 y, z, c: a (s, d, h, w) C-order array); "0 0 0 0" for
                                        an empty image, no "#BYTES" for uncompressed data
    1 L 1 1 #BYTES\\n  zlib data         the names: "GMZ\\0name0\\0name1\\0..." one character a value

Every image of a file shares TYPE. G'MIC picks the smallest type that holds every value of the
list exactly (uint8, int8, uint16, int16, uint32, int32, else float32) and compresses with zlib's
default level; writing the same way gives the very bytes G'MIC writes. Reading takes any CImg
type and either endianness."""

import re
import zlib

import numpy as np

from nnpipe.images.imagelist import MAX_VALUES

NAMES_MAGIC = b"GMZ\0"
# CImg's pixel type names (recent, then older spellings) -> numpy dtype (without byte order)
TYPES = {
    "bool": "u1",
    "uint8": "u1",
    "uchar": "u1",
    "unsigned_char": "u1",
    "int8": "i1",
    "char": "i1",
    "signed_char": "i1",
    "uint16": "u2",
    "ushort": "u2",
    "unsigned_short": "u2",
    "int16": "i2",
    "short": "i2",
    "uint32": "u4",
    "uint": "u4",
    "unsigned_int": "u4",
    "int32": "i4",
    "int": "i4",
    "uint64": "u8",
    "ulong": "u8",
    "unsigned_int64": "u8",
    "int64": "i8",
    "long": "i8",
    "float32": "f4",
    "float": "f4",
    "float64": "f8",
    "double": "f8",
}
# the integer types G'MIC chooses from, smallest first: (name, dtype, low, high)
INTEGER_TYPES = [
    ("uint8", "u1", 0, 255),
    ("int8", "i1", -128, 127),
    ("uint16", "u2", 0, 65535),
    ("int16", "i2", -32768, 32767),
    ("uint32", "u4", 0, 2**31 - 1),
    ("int32", "i4", -(2**31), 2**31 - 1),
]
HEADER = re.compile(rb"(\d+) ([A-Za-z0-9_]+) (little_endian|big_endian)")
IMAGE_LINE = re.compile(rb"(\d+) (\d+) (\d+) (\d+)(?: #(\d+))?")
ZLIB_MAX_RATIO = 1100  # deflate never shrinks data by more than about 1032:1


class GmzError(Exception):
    """What is wrong with the bytes being read."""


def encode(images, names):
    """The bytes of a .gmz file holding `images` ((s, d, h, w) arrays) under `names`."""
    text = NAMES_MAGIC + b"".join(name.encode("utf-8") + b"\0" for name in names)
    name_image = np.frombuffer(text, dtype=np.uint8).reshape(1, 1, len(text), 1)
    everything = list(images) + [name_image]
    type_name, dtype = _list_type(everything)
    parts = [f"{len(everything)} {type_name} little_endian\n".encode("ascii")]
    for image in everything:
        s, d, h, w = image.shape
        if image.size == 0:
            parts.append(b"0 0 0 0\n")
            continue
        data = zlib.compress(np.ascontiguousarray(image).astype("<" + dtype).tobytes())
        parts.append(f"{w} {h} {d} {s} #{len(data)}\n".encode("ascii"))
        parts.append(data)
    return b"".join(parts)


def _list_type(images):
    """G'MIC's choice: the smallest integer type holding every value, else float32."""
    values = [np.asarray(image, dtype=np.float32).ravel() for image in images if image.size]
    if not values:
        return "uint8", "u1"
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    integral = np.isfinite(low) and np.isfinite(high) and all(np.array_equal(v, np.floor(v)) for v in values)
    if integral:
        for name, dtype, smallest, largest in INTEGER_TYPES:
            if smallest <= low and high <= largest:
                return name, dtype
    return "float32", "f4"


def decode(data):
    """[(name, (s, d, h, w) float32 array)] from the bytes of a .gmz (or .cimgz) file; images
    without a stored name get an empty one. Raises GmzError when the bytes are not such a file."""
    end = data.find(b"\n")
    header = HEADER.fullmatch(data[:end].rstrip(b" \r")) if end > 0 else None
    if header is None:
        raise GmzError("not a G'MIC/CImg image list (no 'N type endianness' header line)")
    count, type_name, endianness = int(header[1]), header[2].decode(), header[3]
    if type_name not in TYPES:
        raise GmzError(f"unknown value type '{type_name}'")
    dtype = np.dtype(("<" if endianness == b"little_endian" else ">") + TYPES[type_name])
    position, images = end + 1, []
    for number in range(count):
        end = data.find(b"\n", position)
        line = IMAGE_LINE.fullmatch(data[position:end].rstrip(b" \r")) if end > 0 else None
        if line is None:
            raise GmzError(
                f"image {number} of {count}: missing or damaged size line (the file is truncated or damaged)"
            )
        w, h, d, s = (int(v) for v in line.groups()[:4])
        position = end + 1
        size = w * h * d * s
        if size == 0:
            images.append(np.zeros((0, 0, 0, 0), dtype=np.float32))
            continue
        if size > MAX_VALUES:
            raise GmzError(
                f"image {number} of {count} is declared of size {w},{h},{d},{s}: too"
                f" large ({size:.3g} values; at most 2^31)"
            )
        if line[5] is None:  # stored uncompressed
            stored = data[position : position + size * dtype.itemsize]
            position += size * dtype.itemsize
        else:
            length = int(line[5])
            compressed = data[position : position + length]
            position += length
            if len(compressed) < length:
                raise GmzError(f"image {number} of {count} is incomplete: the file is truncated")
            stored = _inflate(
                compressed, size * dtype.itemsize, f"image {number} of {count}", f"{w},{h},{d},{s}"
            )
        if len(stored) != size * dtype.itemsize:
            raise GmzError(
                f"image {number} of {count} holds {len(stored)} bytes where its size"
                f" {w},{h},{d},{s} needs {size * dtype.itemsize}: the file is damaged"
            )
        values = np.frombuffer(stored, dtype=dtype).astype(np.float32)
        images.append(values.reshape(s, d, h, w))
    if position != len(data):
        raise GmzError("unexpected bytes after the last image: the file is damaged")
    return _named(images)


def _inflate(compressed, expected, what, size):
    """The bytes `compressed` inflates to, refused as soon as they exceed the `expected` bytes
    the image's declared size needs: a small file never grows into gigabytes in memory."""
    if len(compressed) * ZLIB_MAX_RATIO < expected:
        raise GmzError(
            f"{what} is declared of size {size} ({expected:,} bytes) but the file holds"
            f" only {len(compressed):,} compressed bytes for it: the file is damaged"
        )
    inflater = zlib.decompressobj()
    try:
        stored = inflater.decompress(compressed, expected + 1)
    except zlib.error:
        stored = None
    if stored is not None and len(stored) > expected:
        raise GmzError(
            f"{what} inflates to more than the {expected:,} bytes its size {size} needs: the file is damaged"
        )
    if stored is None or not inflater.eof:
        raise GmzError(f"{what} is damaged (its compressed data does not decompress)")
    return stored


def _named(images):
    """Split off the last image when it holds G'MIC's names."""
    if images and images[-1].size >= len(NAMES_MAGIC):
        codes = images[-1].ravel()
        if np.array_equal(codes[: len(NAMES_MAGIC)], np.frombuffer(NAMES_MAGIC, np.uint8)):
            if np.all((codes >= 0) & (codes <= 255) & (codes == np.floor(codes))):
                text = codes.astype(np.uint8).tobytes()[len(NAMES_MAGIC) :]
                names = text.split(b"\0")[: len(images) - 1]
                names += [b""] * (len(images) - 1 - len(names))
                try:
                    return [(n.decode("utf-8"), i) for n, i in zip(names, images[:-1])]
                except UnicodeDecodeError:
                    raise GmzError("the names image is not UTF-8 text: the file is damaged") from None
    return [("", image) for image in images]


def text_image(text):
    """A string as G'MIC's `('text')` makes it: one value per byte along x."""
    codes = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.float32)
    return codes.reshape(1, 1, 1, -1)


def image_text(image):
    """The string held by a text image (any orientation: one value per byte), or None if its
    values are not bytes of UTF-8 text."""
    codes = image.ravel()
    if not np.all((codes >= 0) & (codes <= 255) & (codes == np.floor(codes))):
        return None
    try:
        return codes.astype(np.uint8).tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return None

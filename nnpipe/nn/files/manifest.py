"""What a network file holds (its NetworkFile: the network's name, the commands that rebuild
it, its images as entries with their roles) and the manifest nnpipe's own formats describe it
with (see nnpipe.nn.files)."""

import json
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from nnpipe.images import gmz

FORMAT, VERSION = "nnpipe-network", 1
# a network of G'MIC 3.6's nn_lib is written as version 2 (its "nnlib": "3.6"), which a reader
# of version 1 refuses rather than rebuilding it with the 2023 API's meaning
VERSIONS = {"2023": 1, "3.6": 2}
PARAMETER, MOMENT, TRAINER = "parameter", "moment", "trainer"
ROLES = (PARAMETER, MOMENT, TRAINER)


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
    api: str = "2023"  # the nn_lib API of its commands
    # the largest magnitude each input was trained on (nn_eval warns about inputs of another
    # range); nnpipe's formats keep it, a .gmz has no place for it
    input_magnitudes: dict = field(default_factory=dict)


def as_plane(image):
    """An (s, d, h, w) image as the 2D plane (s*d*h, w) that both formats store."""
    s, d, h, w = image.shape
    return np.ascontiguousarray(image.reshape(s * d * h, w), dtype="<f4")


def crc(array):
    return zlib.crc32(np.ascontiguousarray(array).data) & 0xFFFFFFFF


def manifest(saved, items):
    described = {
        "format": FORMAT,
        "version": VERSIONS[saved.api],
        "network": saved.network,
        "commands": list(saved.commands),
        "images": items,
    }
    if saved.input_magnitudes:
        described["input_magnitudes"] = dict(saved.input_magnitudes)
    return described | ({"nnlib": saved.api} if saved.api != "2023" else {})


def api_of(manifest):
    """The nn_lib API of a checked manifest's commands."""
    return manifest.get("nnlib", "2023")


def from_manifest(manifest, entries):
    """The NetworkFile a checked manifest describes, holding `entries`."""
    magnitudes = manifest.get("input_magnitudes", {})  # absent from files of earlier versions
    if not isinstance(magnitudes, dict) or not all(
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
        for value in magnitudes.values()
    ):
        raise BadFile("the description's input magnitudes are not numbers >= 0")
    return NetworkFile(
        manifest["network"], manifest["commands"], entries, api=api_of(manifest), input_magnitudes=magnitudes
    )


def entry_item(entry):
    s, d, h, w = entry.image.shape
    return {"name": entry.name, "role": entry.role, "size": [w, h, d, s]}


def parse_json(text):
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def check_manifest(manifest):
    """The manifest's image list after checking its structure."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadFile("not an nnpipe network file (unknown description)")
    if manifest.get("version") not in VERSIONS.values() or VERSIONS.get(api_of(manifest)) != manifest.get(
        "version"
    ):
        raise BadFile(
            f"network file version {manifest.get('version')!r} is not supported"
            f" (this nnpipe reads versions {', '.join(map(str, VERSIONS.values()))})"
        )
    name, commands, items = manifest.get("network"), manifest.get("commands"), manifest.get("images")
    if not isinstance(name, str) or not name.isidentifier():
        raise BadFile("the description has no valid network name")
    if not isinstance(commands, list) or not all(isinstance(c, str) and c for c in commands):
        raise BadFile("the description has no valid list of commands")
    if not isinstance(items, list) or not items:
        raise BadFile("the description lists no images")
    names = set()
    for item in items:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and item["name"]
            and item.get("role") in ROLES
            and isinstance(item.get("size"), list)
            and len(item["size"]) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in item["size"])
        ):
            raise BadFile("the description lists an image without a valid name, role or size")
        if item["name"] in names:
            raise BadFile(f"the description lists image '{item['name']}' twice")
        names.add(item["name"])
    return items


ZLIB_MAX_RATIO = gmz.ZLIB_MAX_RATIO  # deflate never shrinks data by more than about 1032:1


def check_stored_bytes(item, value_bytes, stored, uncompressed):
    """Refuse an image whose declared size needs more data than the file holds for it, before
    anything of that size is allocated."""
    w, h, d, s = item["size"]
    needed = w * h * d * s * value_bytes
    if stored < needed if uncompressed else stored * ZLIB_MAX_RATIO < needed:
        raise BadFile(
            f"image '{item['name']}' is declared of size {w},{h},{d},{s} ({needed:,} bytes)"
            f" but the file holds only {stored:,} bytes for it"
        )

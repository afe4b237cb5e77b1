"""The .tif network format: one multi-page float32 TIFF, lossless (see nnpipe.nn.files)."""

import numpy as np
import tifffile

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


def write(target, saved):
    items = []
    for entry in saved.entries:
        item = entry_item(entry)
        item["crc32"] = crc(as_plane(entry.image))
        items.append(item)
    total = sum(entry.image.nbytes for entry in saved.entries)
    with tifffile.TiffWriter(target, bigtiff=total > 2**31) as tif:
        for index, (entry, item) in enumerate(zip(saved.entries, items)):
            metadata = {
                "name": entry.name,
                "nnpipe_shape": list(entry.image.shape),
                "size": item["size"],
                "role": entry.role,
            }
            extratags = [(285, "s", 0, ascii_text(entry.name), True)]  # PageName
            if index == 0:
                metadata["nnpipe_network"] = manifest(saved, items)
                extratags.append((269, "s", 0, ascii_text(saved.network), True))  # DocumentName
            tif.write(
                as_plane(entry.image),
                photometric="minisblack",
                software="nnpipe",
                metadata=metadata,
                extratags=extratags,
            )


def ascii_text(text):
    return text.encode("ascii", "backslashreplace").decode("ascii")


def read(source, file_size):
    with tifffile.TiffFile(source) as tif:
        first = tif.pages[0]
        description = parse_json(first.description)
        manifest = description.get("nnpipe_network") if description else None
        if manifest is None:
            if description and "nnpipe_shape" in description:
                raise BadFile("it holds images but no network (written by 'output'?): load it with 'input'")
            raise BadFile("not an nnpipe network file (a TIFF without a network description)")
        items = check_manifest(manifest)
        pages = []
        for page in tif.pages:  # a truncated file loses its last pages: counted below
            pages.append(page)
            if len(pages) > len(items):
                break
        if len(pages) != len(items):
            raise BadFile(
                f"{len(pages)} page{'s' * (len(pages) != 1)} where the description lists"
                f" {len(items)}: the file is truncated or damaged"
            )
        entries = []
        for page, item in zip(pages, items):
            w, h, d, s = item["size"]
            if page.shape != (s * d * h, w) or page.dtype.kind != "f" or page.dtype.itemsize != 4:
                raise BadFile(
                    f"page of image '{item['name']}' is {page.dtype} {page.shape[::-1]},"
                    f" expected float32 ({w}, {s * d * h})"
                )
            for offset, length in zip(page.dataoffsets, page.databytecounts):
                if offset + length > file_size:
                    raise BadFile(f"the file is truncated (image '{item['name']}' is incomplete)")
            check_stored_bytes(item, 4, sum(page.databytecounts), page.compression == 1)
            plane = np.ascontiguousarray(page.asarray(), dtype="<f4")
            if crc(plane) != item.get("crc32"):
                raise BadFile(f"image '{item['name']}' is damaged (checksum mismatch)")
            entries.append(Entry(item["name"], item["role"], plane.reshape(s, d, h, w).astype(np.float32)))
        return from_manifest(manifest, entries)

"""G'MIC's selections: `[0,2]`, `[1-3]`, `[-2--1]`, `[0-8:2]`, `[0-50%]`, `[^0]`, `[name]`, `.` `..`
`...`.

The indices come back sorted and without repeats, as G'MIC gives them: `add[0,0]` adds once and
`keep[2,0]` keeps the two images in list order."""

import re

import numpy as np

from nnpipe.errors import UserError

INDEX = r"-?\d+(?:\.\d*)?%|-?\d+"
RANGE = re.compile(rf"^({INDEX})?-({INDEX})?(?::(\d+))?$")


def _index(text, count, part):
    """An index, or N% of the list (0% the first image, 100% the last), as G'MIC reads it."""
    if text.endswith("%"):
        value = int(np.floor(float(text[:-1]) * (count - 1) / 100 + 0.5))
    else:
        value = int(text)
    if not -count <= value < count:
        raise UserError(f"selection [{part}] is out of range ({count} image{'s' * (count != 1)})")
    return value % count


def _part(part, names):
    count = len(names)
    if part in (".", "..", "..."):
        return [_index(str(-len(part)), count, part)]
    if re.fullmatch(INDEX, part):
        return [_index(part, count, part)]
    match = RANGE.match(part)
    if match and (match.group(1) or match.group(2)):
        first = _index(match.group(1) or "0", count, part)
        last = _index(match.group(2) or "-1", count, part)
        step = int(match.group(3) or 1)
        low, high = min(first, last), max(first, last)
        return list(range(low, high + 1, max(step, 1)))
    found = [i for i, name in enumerate(names) if name == part]
    if not found:
        raise UserError(f"selection [{part}]: no image named '{part}'")
    return found


def split_parts(text):
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def select(text, names):
    """The sorted indices of selection `text` (`[…]` or a dot shortcut) among `names`."""
    if text.startswith(".") and set(text) == {"."}:
        text = f"[{text}]"
    inner = text[1:-1]
    invert = inner.startswith("^")
    if invert:
        inner = inner[1:]
    indices = set()
    for part in split_parts(inner):
        indices.update(_part(part, names))
    if invert:
        indices = set(range(len(names))) - indices
    return sorted(indices)

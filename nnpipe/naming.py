"""Names G'MIC gives to images it makes."""

import re

COPY = re.compile(r"^(.*)_c(\d+)$", re.S)


def copy_name(name):
    """A copy of image `a` is `a_c1`, a copy of `a_c1` is `a_c2`, so `[a]` selects neither."""
    if not name:
        return name
    match = COPY.match(name)
    if match and not match.group(2).startswith("0"):
        return f"{match.group(1)}_c{int(match.group(2)) + 1}"
    return f"{name}_c1"


def part_names(name, count):
    """The names of the `count` images an image called `name` is split into, as G'MIC's split
    names them: `a`, `a_c1`, `a_c2`…"""
    names = [name]
    while len(names) < count:
        names.append(copy_name(names[-1]))
    return names


class Unselected(list):
    """The images a command works on when no selection was written (G'MIC's default)."""

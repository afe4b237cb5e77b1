"""Size limits on text, so that a tiny script cannot eat the machine's memory.

One limit, MAX_TEXT characters (64 Mi by default), applies to each of:
- a variable's value set by the script (`x=...`, `x.=...`),
- an item after substitution (`$x$x`, `{...}`),
- a script or command file, or a script read from standard input.
The environment variable NNPIPE_MAX_TEXT raises (or lowers) it: a number of characters,
optionally with the suffix k, M or G (binary: 256M is 256 x 2^20). Networks kept with nn_store
are not limited (nn_load VARIABLE reads them by name, without substitution).
Images have their own limit: MAX_VALUES values each (nnpipe.images.imagelist). A vector made
by size in a math expression (`vector30(0)`, `vector(#30)`) has at most MAX_VECTOR values
(16 Mi: 128 MiB of float64 for each pixel it is computed at).
"""

import os
import re

from nnpipe.errors import UsageError, UserError

DEFAULT_MAX_TEXT = 64 * 2**20
MAX_VECTOR = 2**24
ENVIRONMENT = "NNPIPE_MAX_TEXT"
_SIZE = re.compile(r"\s*(\d+)\s*([kKmMgG]?)[iI]?[bB]?\s*")
_max_text = None  # read from the environment once


def max_text():
    """The limit in characters (NNPIPE_MAX_TEXT, read once)."""
    global _max_text
    if _max_text is None:
        _max_text = parse_size(os.environ.get(ENVIRONMENT, ""), DEFAULT_MAX_TEXT)
    return _max_text


def parse_size(text, default):
    if not text.strip():
        return default
    match = _SIZE.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise UsageError(f"{ENVIRONMENT} must be a size such as 256M (got '{text}')")
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


def size_text(count):
    for unit, power in (("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if count >= 1024**power and count % 1024**power == 0:
            return f"{count // 1024**power} {unit}"
    return f"{count:,}"


def too_long(what):
    """The UserError for `what` going beyond the limit."""
    return UserError(
        f"{what} is longer than {size_text(max_text())} characters, nnpipe's limit"
        f" on text (set {ENVIRONMENT}, e.g. {ENVIRONMENT}=1G, to raise it)"
    )


def check_text(length, what):
    if length > max_text():
        raise too_long(what)


def read_text(handle, what):
    """All of a text file, or an error once it goes beyond the limit (a device such as
    /dev/zero is read no further than that)."""
    text = handle.read(max_text() + 1)
    check_text(len(text), what)
    return text

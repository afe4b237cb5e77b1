"""Networks, layers and the Numba engine.

Numba's on-disk cache only notices changes to the file of a cached function, not to the
helpers and constants it takes from other files; so a stamp of every source file of this
package decides whether the cached machine code is still valid (after an upgrade or an edit),
and clears it if not."""

import hashlib
import os
from pathlib import Path

HERE = Path(os.path.abspath(__file__)).parent  # as Numba names it (see numba_cache_folders)


def numba_cache_folders(sources):
    """(the folders where Numba caches the functions of `sources`, the stamp file's path):
    __pycache__ beside each file, or under $NUMBA_CACHE_DIR a folder per source folder, which
    Numba names after it: its name, '_', the SHA-1 of its path."""
    folders = sorted({path.parent for path in sources})
    root = os.environ.get("NUMBA_CACHE_DIR")
    if not root:
        return [folder / "__pycache__" for folder in folders], HERE / "__pycache__" / "kernels.stamp"
    root = Path(root).resolve()
    return (
        [root / f"{folder.name}_{hashlib.sha1(str(folder).encode()).hexdigest()}" for folder in folders],
        root / "nnpipe-kernels.stamp",
    )


def _refresh_compile_cache(sources, digest):
    folders, stamp = numba_cache_folders(sources)
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for folder in folders:
            for cached in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
                cached.unlink()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba then keeps its cache elsewhere
        pass


SOURCES = sorted(HERE.rglob("*.py"))
# a stamp of every source file of this package: also part of the generated engine modules' names
SOURCES_DIGEST = hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES)).hexdigest()
_refresh_compile_cache(SOURCES, SOURCES_DIGEST)

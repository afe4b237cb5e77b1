"""Networks, layers and the Numba engine.

Numba's on-disk cache only notices changes to the file of a cached function, not to the layer
kernels it inlines from other files; so a stamp of every source file of this package decides
whether the cached machine code is still valid (after an upgrade or an edit), and clears it
if not."""

import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _refresh_compile_cache(digest):
    sources = sorted(HERE.rglob("*.py"))
    stamp = HERE / "__pycache__" / "kernels.stamp"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for folder in {p.parent / "__pycache__" for p in sources}:
            for cached in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
                cached.unlink()
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba then keeps its cache elsewhere
        pass


# a stamp of every source file of this package: also part of the generated engine modules' names
SOURCES_DIGEST = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(HERE.rglob("*.py")))).hexdigest()
_refresh_compile_cache(SOURCES_DIGEST)

"""nnpipe: a command-pipeline neural-network workbench mirroring G'MIC's nn_lib."""

import os

__version__ = "0.1.0"

# Numba's OpenMP threads spin between parallel regions by default: when another process holds
# one of the cores, a training step waits for a descheduled spinner (measured on 2 cores with a
# second job running: 32 it/s instead of 1,640 at batch 256). Passive waiting sleeps instead.
# Set before libgomp loads (at the engine's first parallel step), unless the user chose.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

"""nnpipe: a command-pipeline neural-network workbench mirroring G'MIC's nn_lib."""

import os

__version__ = "0.1.0"

# The engine runs its matrix products (nnpipe.nn.blas) inside its own threads, one chunk of
# samples each: BLAS threads on top would only compete with them.
for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

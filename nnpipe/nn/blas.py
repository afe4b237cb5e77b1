"""Matrix products for the kernels, through the BLAS that SciPy ships, by Numba's own binding
(a function resolved by name when the compiled code is linked, so kernels calling it keep
their place in Numba's disk cache). BLAS is column-major: a row-major (rows x columns) block
of a feature-major buffer is, to it, the transposed (columns x rows) matrix."""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import numpy as np
from numba.extending import overload, register_jitable
from numba.np.linalg import _BLAS, ensure_blas, get_blas_kind

CYTHON_BLAS = "scipy.linalg.cython_blas"


def load():  # noqa: F811 (it replaces itself once loaded)
    """Load SciPy's BLAS and keep every BLAS of the process on the calling thread: the engine
    calls BLAS inside its own threads, one chunk of samples each, where BLAS threads on top
    would only compete with them (and a threaded OpenBLAS called from several threads at once
    is not safe). The engine calls this before it runs kernels."""
    global load
    from threadpoolctl import threadpool_limits

    _load_cython_blas()
    threadpool_limits(limits=1, user_api="blas")
    load = _loaded


def _load_cython_blas():
    """Load the module through which compiled code finds BLAS's functions (Numba's binding
    looks them up in sys.modules[CYTHON_BLAS] at the first call). Importing it the usual way
    runs scipy.linalg's __init__ first: 0.2 s of every run, for a module that takes 3 ms on its
    own; so it is loaded from its file, found as an import would find it, and imported the
    usual way where that fails."""
    if CYTHON_BLAS in sys.modules:
        return
    try:
        scipy = importlib.util.find_spec("scipy")
        spec = importlib.machinery.PathFinder.find_spec(
            CYTHON_BLAS, [str(Path(scipy.origin).parent / "linalg")]
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (AttributeError, ImportError, OSError, TypeError):  # no such file, or no scipy
        ensure_blas()
        return
    sys.modules[CYTHON_BLAS] = module


def _loaded():
    pass


def gemm(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc):
    """C (m x n) += op(A) op(B), column-major, op transposing where asked; a, b, c: 1-d arrays
    whose first element is the matrix's first. Compiled code only (see _gemm)."""
    raise TypeError("blas.gemm is called from compiled kernels only")


@register_jitable
def _keep_alive(arrays):
    return arrays[0]


@overload(gemm)
def _gemm(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc):
    ensure_blas()
    xxgemm = _BLAS().numba_xxgemm(c.dtype)
    kind = ord(get_blas_kind(c.dtype, "gemm"))
    dtype = np.float32 if kind == ord("s") else np.float64

    def impl(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc):
        one = np.ones(1, dtype=dtype)  # alpha and beta
        xxgemm(
            kind,
            ord("T") if transpose_a else ord("N"),
            ord("T") if transpose_b else ord("N"),
            m,
            n,
            k,
            one.ctypes,
            a.ctypes,
            lda,
            b.ctypes,
            ldb,
            one.ctypes,
            c.ctypes,
            ldc,
        )
        _keep_alive([one.size, a.size, b.size, c.size])

    return impl

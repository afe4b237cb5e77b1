"""Boundary conditions: what an image-shaped layer reads outside its input, as CImg's
`boundary_conditions` (the same numbers and names as nn_lib's arguments)."""

import numba

NAMES = ("dirichlet", "neumann", "periodic", "mirror")
DIRICHLET, NEUMANN, PERIODIC, MIRROR = range(len(NAMES))


@numba.njit(cache=True, inline="always")
def coordinate(i, n, condition):
    """The coordinate in [0, n) that coordinate i reads, or -1 for zero (dirichlet outside)."""
    if 0 <= i < n:
        return i
    if condition == NEUMANN:
        return 0 if i < 0 else n - 1
    if condition == PERIODIC:
        return i % n
    if condition == MIRROR:
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m
    return -1

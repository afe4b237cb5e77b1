"""Keep a range of columns, rows, slices or channels, as G'MIC's commands of these names: each is
its crop along one axis (`channels 0,2` is `crop 0,0,0,0,100%,100%,100%,2`), the indices outside
the image taken by a boundary condition.

For the commands built on them: keep_range(image, axis, first, last, boundary)."""

import numpy as np

from nnpipe.commands.images import BOUNDARIES, take_with_boundary
from nnpipe.images.imagelist import check_size
from nnpipe.registry import IMAGES, Amount, Choice, command, index_of


def keep_range(image, axis, first, last, boundary="dirichlet"):
    """The part of `image` (s,d,h,w) from index `first` to `last` (both included, in either
    order) along `axis`; indices outside the image take values by the boundary condition
    (dirichlet 0, neumann the nearest edge, periodic, mirror)."""
    low, high = sorted((first, last))
    size = list(image.shape)
    size[axis] = high - low + 1
    check_size(size[::-1], "the result")
    return take_with_boundary(image, axis, np.arange(low, high + 1), boundary)


def _range_command(name, axis, plural, letter):
    @command(
        name,
        group=IMAGES,
        each=True,
        params=[
            Amount(
                f"{letter}0", help=f"the first {plural[:-1]}: an index, or N% (0% the first, 100% the last)"
            ),
            Amount(f"{letter}1", None, help=f"the last one, included (default: {letter}0)"),
            Choice(
                "boundary_conditions",
                "dirichlet",
                choices=BOUNDARIES,
                help=f"what {plural} outside the image hold: 0 dirichlet (zeros), 1 neumann (the nearest"
                " edge), 2 periodic, 3 mirror (default: 0)",
            ),
        ],
        help=f"""Keep only {plural} {letter}0 to {letter}1 of each image, as G'MIC's {name}.

        Indices may lie outside the image: `{name} -1,2` adds one {plural[:-1]} before the first.
        Numbers round to the nearest index; N% is N% of the last index.""",
    )
    def keep(ctx, image, first, last, boundary_conditions):
        size = image.shape[axis]
        start = index_of(first, size)
        end = start if last is None else index_of(last, size)
        return keep_range(image, axis, start, end, boundary_conditions)


_range_command("columns", 3, "columns", "x")
_range_command("rows", 2, "rows", "y")
_range_command("slices", 1, "slices", "z")
_range_command("channels", 0, "channels", "c")

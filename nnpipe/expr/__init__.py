"""G'MIC's math expressions, our own evaluator (never Python's eval), vectorized over pixels.

An expression is parsed once (cached by its text) into a tree (nnpipe.expr.parse), then
compiled into closures for one type environment (nnpipe.expr.compiler, with the functions of
nnpipe.expr.functions). A compiled expression runs over every pixel of an image at once
(nnpipe.expr.runtime): a scalar is a float64 array of 4 dimensions (s, d, h, w) that
broadcasts over the pixel grid, a vector of n components adds a leading axis of length n.
`{expression}` in an item is the same evaluation on a grid of one pixel, (0,0,0,0) of the
last image.
"""

from nnpipe.expr.functions import FUNCTIONS
from nnpipe.expr.parse import ExpressionError
from nnpipe.expr.runtime import evaluate, evaluate_grid
from nnpipe.expr.values import scalar

__all__ = ["FUNCTIONS", "ExpressionError", "evaluate", "evaluate_grid", "scalar"]

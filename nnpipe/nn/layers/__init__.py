"""Layer types. Each file holds one layer: its shape rule and parameter creation, then its
Numba forward/backward kernels. The engine calls the kernels through one dispatch table."""

import numpy as np

from nnpipe.errors import UserError

# Columns of a plan row (int64) read by every kernel; see nnpipe.nn.engine. Besides offsets and
# lengths, a row holds the sizes (w,h,d,s) of its first input and of its output, which the
# kernels of image-shaped layers index with, and up to eight integer arguments of its layer.
(OPCODE, IN0, IN0_LEN, IN1, IN1_LEN, OUT, OUT_LEN, PARAM, PARAM_LEN, ARG0, ARG1, ARG2,
 ARG3, ARG4, ARG5, ARG6, ARG7, IN_W, IN_H, IN_D, IN_S, OUT_W, OUT_H, OUT_D, OUT_S) = range(25)
ROW_WIDTH = 25
NO_OP = -1


def count(size):
    w, h, d, s = size
    return w * h * d * s


def size_text(size):
    return ",".join(str(v) for v in size)


class Layer:
    """A module type: its output size, its parameter image, and what the kernels need."""

    kind = ""
    opcode = NO_OP     # NO_OP: computes nothing (inputs) or shares its input's buffer (aliases)
    alias = False      # output is (a slice of) the input's buffer: no copy, gradients add up
    inputs = 1

    def __init__(self, **options):
        self.options = options

    def output_size(self, input_sizes):
        return input_sizes[0]

    def parameter_shape(self, input_sizes):
        """Shape (s, d, h, w) of the parameter image, or None for a layer without parameters."""
        return None

    def initialize(self, input_sizes, rng):
        return np.zeros(self.parameter_shape(input_sizes), dtype=np.float32)

    def trainable(self, input_sizes):
        """1 where the optimizer may change the flattened parameter image, 0 elsewhere."""
        return np.ones(int(np.prod(self.parameter_shape(input_sizes))), dtype=np.float32)

    def alias_offset(self, input_sizes):
        """Where an alias's values start in its input's buffer (split's second part: not 0)."""
        return 0

    def arguments(self, input_sizes):
        """Up to eight integers and one float the kernels read from the plan."""
        return (), 0.0

    def properties(self):
        """The 'Properties' line of nn_print, or ''."""
        return ""


class Input(Layer):
    """Values fed from the samples; a loss's ground truth is an input too."""
    kind = "input"
    inputs = 0

    def output_size(self, input_sizes):
        return self.options["size"]


class Rename(Layer):
    kind = "rename"
    alias = True


class Clone(Layer):
    kind = "clone"
    alias = True


def same_sizes(kind, input_sizes):
    first = input_sizes[0]
    for other in input_sizes[1:]:
        if other != first:
            raise UserError(f"{kind} needs inputs of the same size (got {size_text(first)}"
                            f" and {size_text(other)})")
    return first


def learning_mask(width, height, learning_mode):
    """Trainable mask of a (height x width) weight image whose last column holds biases:
    learning_mode 1 trains weights only, 2 biases only, 3 both, 0 nothing."""
    mask = np.zeros((height, width), dtype=np.float32)
    if learning_mode & 1:
        mask[:, :-1] = 1
    if learning_mode & 2:
        mask[:, -1] = 1
    return mask.ravel()


def weights_and_biases(shape, fan_in, learning_mode, rng):
    """nn_lib's initialization of a weights image whose last column holds biases: every value
    drawn from N(0, 1) * 4 / fan_in; biases that are not learnt start at 0."""
    weights = (rng.standard_normal(shape) * (4.0 / fan_in)).astype(np.float32)
    if not learning_mode & 2:
        weights[..., -1] = 0
    return weights

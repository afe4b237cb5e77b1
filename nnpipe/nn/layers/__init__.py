"""Layer types. Each file declares a layer type in one place: its class (the shape rule and
validation in `build`, the parameter image, the named integers its kernels read, its ONNX
export in `export_onnx`), the commands that add it to a network (declared with
nnpipe.nn.building), and its Numba kernels: `forward`, `backward`, and the optional hooks
`loss` (a loss layer) and `after_step` (once per training step, e.g. running statistics).
Listing the file in nnpipe.nn.layers.registry registers its commands and gives its kernels an
opcode; the engine generates its dispatch from the registry for the layer types a network
uses (nnpipe.nn.compiled).

A kernel names what it needs by its parameters, from: op (the layer's plan row), real (its one
float argument), acts, grad_acts, params, grads, width (samples in the chunk), valid (the real
ones among them), training, seed (the step's), stats (the step's per-thread statistics),
losses, scale (1 / batch), batch."""

import contextvars

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.numbers import size_text

# Columns of a plan row (int64) read by every kernel; see nnpipe.nn.engine. Besides offsets and
# lengths, a row holds where its layer's statistics go, the sizes (w,h,d,s) of its first input
# and of its output (which image-shaped layers index with), whether a backward pass must give
# the gradients of its inputs (0 where no parameter lies upstream, as for a first layer reading
# the samples: a kernel may then skip that work), then its layer's kernel arguments, named by
# the layer class: column(LayerClass, name) is where a kernel reads one.
(
    OPCODE,
    IN0,
    IN0_LEN,
    IN1,
    IN1_LEN,
    OUT,
    OUT_LEN,
    PARAM,
    PARAM_LEN,
    STATS,
    IN_W,
    IN_H,
    IN_D,
    IN_S,
    OUT_W,
    OUT_H,
    OUT_D,
    OUT_S,
    INPUT_GRADIENTS,
) = range(19)
FIRST_ARGUMENT, MAX_ARGUMENTS = 19, 8
ROW_WIDTH = FIRST_ARGUMENT + MAX_ARGUMENTS
NO_OP = -1
# what runs commands of the language for a layer computed by one (nn_run): a function
# (command, image) -> image, set by the engine around the plans that have such layers
COMMAND_RUNNER = contextvars.ContextVar("command_runner", default=None)


@numba.njit(cache=True, inline="always")
def copy_values(source, target):
    """target[:] = source in compiled code, value by value: a slice assigned from an array
    makes Numba compile the formatting of its shape-mismatch message, a second or more of a
    network's first compile."""
    for i in range(target.size):
        target[i] = source[i]


def column(layer_class, name):
    """The plan-row column holding the kernel argument `name` of `layer_class`."""
    return FIRST_ARGUMENT + layer_class.kernel_arguments.index(name)


def count(size):
    w, h, d, s = size
    return w * h * d * s


class Layer:
    """A module type: its output size, its parameter image, and what its kernels need."""

    kind = ""
    alias = False  # output is (a slice of) the input's buffer: no copy, gradients add up
    inputs = 1
    is_loss = False  # computed after the forward pass by its `loss` kernel; feeds no layer
    calls_back = False  # its forward kernel calls Python (COMMAND_RUNNER): one thread only
    takes_losses = False  # a loss made of losses (G'MIC 3.6's loss_add)
    kernel_arguments = ()  # names of the integers `arguments` gives the kernels
    # the module holding the kernels: the class's own unless it says otherwise
    kernel_file = None

    def __init_subclass__(cls, **options):
        super().__init_subclass__(**options)
        if "kernel_file" not in cls.__dict__:
            cls.kernel_file = cls.__module__

    def __init__(self, **options):
        self.options = options

    @property
    def computes(self):
        """False for inputs (fed from the samples) and aliases (views of their input)."""
        return self.inputs > 0 and not self.alias

    def build(self, input_sizes):
        """Check the options against the input sizes, once, when the module is added; return
        the output size (w,h,d,s)."""
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
        """{name: integer} for each name of `kernel_arguments`."""
        return {}

    def real(self, input_sizes):
        """The one float argument the kernels read as `real`."""
        return 0.0

    def statistics(self, input_sizes):
        """How many values the layer gathers per training step in `stats` (from the row's STATS
        column on), for its `after_step` hook."""
        return 0

    def properties(self):
        """The 'Properties' line of nn_print, or ''."""
        return ""

    # export_onnx(self, g, step): the tensor computing the layer in an ONNX graph g from
    # step.inputs (see nnpipe.nn.onnx_export); a layer without it cannot be exported.


def same_sizes(kind, input_sizes):
    first = input_sizes[0]
    for other in input_sizes[1:]:
        if other != first:
            raise UserError(
                f"{kind} needs inputs of the same size (got {size_text(first)} and {size_text(other)})"
            )
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


INITIALIZATIONS = ("zero", "identity", "lecun", "he")  # G'MIC 3.6's, by number


def initialized(shape, fan_in, initialization, identity, rng):
    """G'MIC 3.6's initialisation of a weights image whose last column holds biases, which
    start at 0: 0 zeros, 1 `identity(rows, columns)` (a 0/1 matrix of the weights), 2 LeCun
    N(0, 1) sqrt(1 / fan_in), 3 He N(0, 1) sqrt(2 / fan_in), drawn row after row."""
    _, _, rows, width = shape
    values = np.zeros((rows, width), dtype=np.float64)
    if INITIALIZATIONS[initialization] == "identity":
        values[:, :-1] = identity(rows, width - 1)
    elif INITIALIZATIONS[initialization] == "lecun":
        values[:, :-1] = rng.standard_normal((rows, width - 1)) * np.sqrt(1 / fan_in)
    elif INITIALIZATIONS[initialization] == "he":
        values[:, :-1] = rng.standard_normal((rows, width - 1)) * np.sqrt(2 / fan_in)
    return values.astype(np.float32).reshape(shape)

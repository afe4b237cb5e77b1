"""Run (nn_lib's nn_run): a layer computed by a command of the language. Each sample's input
is an image of the input's size; the command runs on a list holding only that image, and its
last image, resized to the layer's size (CImg's linear resize, nn_lib's `r w,h,d,s,3`), is the
output. As in nn_lib, the gradient passes straight through: the output's gradient, resized
linearly to the input's size, is added to the input's.

The forward kernel calls back into Python (Numba's object mode) to run the command sample by
sample, as nn_lib does, through the runner the engine sets (COMMAND_RUNNER); so a plan with
this layer runs on one thread. The backward pass is compiled like any other."""

import itertools
import weakref

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn.building import IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import (
    COMMAND_RUNNER,
    IN0,
    IN0_LEN,
    IN_D,
    IN_H,
    IN_S,
    IN_W,
    OUT,
    OUT_D,
    OUT_H,
    OUT_LEN,
    OUT_S,
    OUT_W,
    Layer,
    column,
    gather,
)
from nnpipe.nn.layers.resize import LINEAR, axis_weights, sized
from nnpipe.registry import SAME, Size, Text

_LAYERS = weakref.WeakValueDictionary()  # key: the RunCommand layer whose plan rows hold it
_KEYS = itertools.count()


class RunCommand(Layer):
    """options: command (text), size: four (value, is_percent) pairs (w, h, d, s)."""

    kind = "run"
    kernel_arguments = ("key",)
    calls_back = True

    def __init__(self, **options):
        super().__init__(**options)
        self.key = next(_KEYS)
        _LAYERS[self.key] = self

    def arguments(self, input_sizes):
        return {"key": self.key}

    def build(self, input_sizes):
        return sized(input_sizes[0], self.options["size"])

    def properties(self):
        return f"command='{self.options['command']}'"


RUN_PARAMS = (
    OUT_NAME,
    IN_NAME,
    Text("command", help="the command run on each sample's input image (quoted when it holds spaces)"),
    Size("width", SAME),
    Size("height", SAME),
    Size("depth", SAME),
    Size("spectrum", SAME),
)


@network_command("nn_run", *RUN_PARAMS, api="3.6")
@network_command("nn_run", *RUN_PARAMS)
def nn_run(ctx, selection, out, source, command, width, height, depth, spectrum):
    """Add a layer computed by a command, as nn_lib's nn_run: for each sample, the command runs
    on a list holding only the input (an image of the input's size), and its last image,
    resized linearly to width,height,depth,spectrum (values, or N% of the input's), is the
    output. The gradient passes straight through, resized linearly to the input's size.

    The command runs sample by sample, in Python: a network with an nn_run layer trains and
    evaluates much more slowly than one without."""
    add(ctx, out, RunCommand(command=command, size=(width, height, depth, spectrum)), [source])


def resized(image, size):
    """`image` (s, d, h, w) resized to size (w, h, d, s) as CImg's linear resize does it."""
    result = np.asarray(image, dtype=np.float32)
    for axis, n_out in zip((3, 2, 1, 0), size):
        sources, weights = axis_weights(result.shape[axis], n_out, LINEAR)
        shape = [1, 1, 1, 1]
        shape[axis] = n_out
        total = np.zeros(result.shape[:axis] + (n_out,) + result.shape[axis + 1 :], dtype=np.float32)
        for j in range(weights.shape[1]):
            total += np.take(result, sources[:, j], axis=axis) * weights[:, j].reshape(shape)
        result = total
    return result


KEY = column(RunCommand, "key")


def run_commands(op, acts, width, valid):
    """Fill the layer's output for the chunk's `valid` samples with the image the command
    leaves last, run by the engine's COMMAND_RUNNER on each sample's input image."""
    command = _LAYERS[int(op[KEY])].options["command"]
    runner = COMMAND_RUNNER.get()
    w, h, d, s = op[IN_W : IN_S + 1]
    size = tuple(op[OUT_W : OUT_S + 1])
    inputs = acts[op[IN0] * width : (op[IN0] + op[IN0_LEN]) * width].reshape(op[IN0_LEN], width)
    outputs = acts[op[OUT] * width : (op[OUT] + op[OUT_LEN]) * width].reshape(op[OUT_LEN], width)
    for c in range(valid):
        result = np.asarray(runner(command, inputs[:, c].reshape(s, d, h, w).copy()))
        if result.ndim != 4 or not result.size:
            raise UserError(f"nn_run: command '{command}' left no image")
        outputs[:, c] = resized(result, size).ravel()
    outputs[:, valid:] = 0


@numba.njit(cache=True)
def forward(op, acts, width, valid):
    with numba.objmode():
        run_commands(op, acts, width, valid)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, grad_acts, width):
    """The input's gradient += the output's, resized linearly to the input's size."""
    fx, wx = axis_weights(op[OUT_W], op[IN_W], LINEAR)
    fy, wy = axis_weights(op[OUT_H], op[IN_H], LINEAR)
    fz, wz = axis_weights(op[OUT_D], op[IN_D], LINEAR)
    fc, wc = axis_weights(op[OUT_S], op[IN_S], LINEAR)
    for k in range(op[IN0_LEN]):
        x, y, z, c = gather.position(k, op[IN_W], op[IN_H], op[IN_D])
        target = (op[IN0] + k) * width
        for jc in range(wc.shape[1]):
            for jz in range(wz.shape[1]):
                for jy in range(wy.shape[1]):
                    for jx in range(wx.shape[1]):
                        weight = wc[c, jc] * wz[z, jz] * wy[y, jy] * wx[x, jx]
                        if weight == 0:
                            continue
                        source = gather.index(
                            fx[x, jx], fy[y, jy], fz[z, jz], fc[c, jc], op[OUT_W], op[OUT_H], op[OUT_D]
                        )
                        at = (op[OUT] + source) * width
                        for sample in range(width):
                            grad_acts[target + sample] += weight * grad_acts[at + sample]

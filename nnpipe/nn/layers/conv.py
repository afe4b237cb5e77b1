"""Convolution (nn_lib's conv2d and conv3d) and its transpose (tconv2d).

The weights image has one row per output channel o: the kernels of every input channel i
(k x k, or k x k x k in 3D, x fastest), then the bias. As nn_lib (CImg's `convolve`), a true
convolution, kernel flipped, starting `shrink` pixels into the input:

  OUT[o](x,y,z) = b[o] + sum_i sum_{p,q,r} W[o][i](p,q,r) IN_bc[i](X(x,p), Y(y,q), Z(z,r))
  X(x,p) = shrink + stride x - dilation (p - centre),  centre = k - 1 - floor(k/2)

(the same along y, and along z in 3D; in 2D, Z = z and r = 0). IN_bc reads outside the
input by the boundary conditions. The output is (w/stride - 2 shrink, h/stride - 2 shrink,
d, channels), d too shrinks and strides in 3D. G'MIC 3.6 samples as CImg 3.6 does (option
sampling="3.6"): the shrink counts output pixels (X = stride (x + shrink) - ...), and with
neumann boundaries, stride 1 and small kernels (2D up to 5, 3D up to 3) CImg pads an even
kernel to an odd one, whose centre is floor(k/2): the kernel reads one dilation further.

The transposed convolution is the adjoint of the stride-s convolution (zeros outside, no
shrink) plus a bias: it spreads each input value over the output, s times larger; a tconv2d
of stride s undoes the geometry of a conv2d of stride s.

Both are computed the same way, as matrix products through BLAS (nnpipe.nn.blas). A
chunk's buffers are feature-major, so a module's values are a row-major (channels x pixels
samples) matrix. Each axis reads through a table of input coordinates per output coordinate
and tap (`sources`: the boundary conditions, stride, dilation, shrink, or the transposed
rule); along x, consecutive sources make runs (`runs`), moved as slices of run length x
samples values. Two ways, the one that moves fewer values (`shifting`), forward and backward
apart:

- im2col (`columns`): for a block of output pixels, COLS (input channels x taps, pixels
  samples) holds what each tap reads, zero where it reads nothing; OUT += W COLS, and
  backward dW += dOUT COLS^T, dCOLS = W^T dOUT added back into the input's gradient (col2im).
  It moves input channels x taps values per output pixel.
- tap products (kn2row, `shifted`): for a block of input rows, P = W_r IN (output channels x
  taps, pixels samples: what each input value gives each output channel through each tap,
  W_r the weights regrouped by tap), and each output value adds the products its taps read;
  backward, dP gathers the output gradients reading each product (an im2col by the inverse
  tables where no input value is read twice through a tap, else a scatter), then
  dW_r += dP IN^T and dIN += W_r^T dP, products on the buffers themselves. It moves output
  channels x taps values per input pixel: the cheaper way when the output has fewer channels
  (the last layer of an image-to-image net), and for the backward pass of equal channels.

Where rows of the output and of the input are as long (stride 1, no shrink), a tap's runs
on consecutive rows reading consecutive rows are copied as one (`_stretch`).

The blocks keep their values within a core's L2 cache, and the products are cut into pieces
small enough for BLAS's small-matrix kernels (SMALL_PRODUCT), twice as fast as its packed
path for these shapes.
"""

import numba
import numpy as np

from nnpipe.errors import UserError
from nnpipe.nn import boundary
from nnpipe.nn.blas import gemm
from nnpipe.nn.building import (
    ACTIVATION,
    IN_NAME,
    IN_OR_PREVIOUS,
    INITIALIZATION,
    LEARNING_MODE,
    OUT_NAME,
    WEIGHT_DECAY,
    add,
    learning_mode,
    network_command,
)
from nnpipe.nn.layers import (
    IN0,
    IN_D,
    IN_H,
    IN_S,
    IN_W,
    INPUT_GRADIENTS,
    OUT,
    OUT_D,
    OUT_H,
    OUT_S,
    OUT_W,
    PARAM,
    Layer,
    column,
    initialized,
    learning_mask,
    weights_and_biases,
)
from nnpipe.nn.layers.elementwise import residual
from nnpipe.nn.layers.nonlinearity import Nonlinearity
from nnpipe.nn.layers.normalize import Normalize
from nnpipe.nn.layers.rename import Rename
from nnpipe.numbers import size_text
from nnpipe.registry import Choice, Int


class Convolution(Layer):
    """options: channels, kernel_size, stride, dilation, shrink, boundary_conditions,
    learning_mode, dimensions (2 or 3), transposed; G'MIC 3.6's also sampling ("3.6"),
    weight_decay (kept for training), initialization (see nnpipe.nn.layers.initialized)."""

    kernel_arguments = (
        "kernel_size",
        "stride",
        "dilation",
        "start",
        "centre",
        "boundary_conditions",
        "dimensions",
        "transposed",
    )

    def __init__(self, **options):
        options.setdefault("transposed", False)
        super().__init__(**options)
        self.kind = f"{'t' if options['transposed'] else ''}conv{options['dimensions']}d"

    def kernel_volume(self):
        return self.options["kernel_size"] ** self.options["dimensions"]

    def build(self, input_sizes):
        (w, h, d, _), o = input_sizes[0], self.options
        strided_axes = 3 if o["dimensions"] == 3 else 2
        if o.get("sampling") == "3.6" and any(n % o["stride"] for n in (w, h, d)[:strided_axes]):
            raise UserError(
                f"{self.kind} of stride {o['stride']} needs an input whose"
                f" {'width, height and depth' if strided_axes == 3 else 'width and height'} it"
                f" divides (got {size_text(input_sizes[0])})"
            )
        if o["transposed"]:
            size = [n * o["stride"] for n in (w, h, d)[:strided_axes]]
        else:
            size = [n // o["stride"] - 2 * o["shrink"] for n in (w, h, d)[:strided_axes]]
        size = tuple(size) + (d,) * (3 - strided_axes) + (o["channels"],)
        if min(size) < 1:
            raise UserError(
                f"{self.kind} of stride {o['stride']} and border shrink {o['shrink']}"
                f" leaves nothing of an input of size {size_text(input_sizes[0])}"
            )
        return size

    def parameter_shape(self, input_sizes):
        return (1, 1, self.options["channels"], input_sizes[0][3] * self.kernel_volume() + 1)

    def initialize(self, input_sizes, rng):
        shape, volume = self.parameter_shape(input_sizes), self.kernel_volume()
        fan_in, channels = input_sizes[0][3] * volume, input_sizes[0][3]
        if "initialization" in self.options:

            def identity(rows, columns):
                """1 where the kernel of input channel row % channels has its middle tap."""
                row, column = np.indices((rows, columns))
                return (column // volume == row % channels) & (column % volume == volume // 2)

            return initialized(shape, fan_in, self.options["initialization"], identity, rng)
        return weights_and_biases(shape, fan_in, self.options["learning_mode"], rng)

    def trainable(self, input_sizes):
        _, _, height, width = self.parameter_shape(input_sizes)
        return learning_mask(width, height, self.options["learning_mode"])

    def arguments(self, input_sizes):
        o = self.options
        named = ("kernel_size", "stride", "dilation", "boundary_conditions", "dimensions", "transposed")
        return {name: int(o[name]) for name in named} | {"start": self.start(), "centre": self.centre()}

    def start(self):
        """The input coordinate output 0 reads at the kernel's centre: `shrink` (2023), or
        `stride` x `shrink` (G'MIC 3.6's, the shrink counted in output pixels)."""
        o = self.options
        return o["shrink"] * (o["stride"] if o.get("sampling") == "3.6" else 1)

    def centre(self):
        """The tap (along each axis) reading the output pixel's own position: k - 1 -
        floor(k/2); floor(k/2) where G'MIC 3.6's CImg pads an even kernel (neumann, stride 1,
        kernel at most 5 in 2D, 3 in 3D)."""
        o, k = self.options, self.options["kernel_size"]
        padded = (
            o.get("sampling") == "3.6"
            and o["boundary_conditions"] == boundary.NEUMANN
            and o["stride"] == 1
            and 1 < k <= (5 if o["dimensions"] == 2 else 3)
        )
        return k // 2 if padded else k - 1 - k // 2

    def picture(self, weights, gap=1):
        """nn_view's layout of a weights image: a grid of kernel tiles, one row per output
        channel, one column per input channel (a 3D kernel: its k slices side by side), then
        the bias, 1-pixel black gaps between them."""
        k, dimensions = self.options["kernel_size"], self.options["dimensions"]
        rows = weights.reshape(weights.shape[2], -1)
        channels = (rows.shape[1] - 1) // k**dimensions
        kernels = rows[:, :-1].reshape(rows.shape[0], channels, -1, k, k)  # (o, i, slice, q, p)
        tile_w = kernels.shape[2] * k
        canvas = np.zeros((rows.shape[0] * (k + gap) - gap, channels * (tile_w + gap) + 1))
        for o in range(rows.shape[0]):
            top = o * (k + gap)
            for i in range(channels):
                left = i * (tile_w + gap)
                canvas[top : top + k, left : left + tile_w] = np.hstack(list(kernels[o, i]))
            canvas[top, -1] = rows[o, -1]
        return canvas

    def properties(self):
        o = self.options
        kernel = "x".join([str(o["kernel_size"])] * o["dimensions"])
        text = f"kernel={kernel}, stride={o['stride']}, dilation={o['dilation']}"
        if not o["transposed"]:
            text += (
                f", {'shrink' if 'weight_decay' in o else 'border_shrink'}={o['shrink']},"
                f" boundary_conditions={boundary.NAMES[o['boundary_conditions']]}"
            )
        text += f", learning_mode={o['learning_mode']}"
        return text + (f", weight_decay={o['weight_decay']}" if "weight_decay" in o else "")

    def export_onnx(self, g, step):
        return (
            self._export_transposed(g, step)
            if self.options["transposed"]
            else self._export_convolution(g, step)
        )

    def _export_convolution(self, g, step):
        """A true convolution (nnpipe's) is a cross-correlation with the kernel flipped; the
        values it reads, boundary conditions included, are gathered first."""
        o, name = step.options, step.name
        k, stride, dilation = o["kernel_size"], o["stride"], o["dilation"]
        three_d = o["dimensions"] == 3
        w, h, d, s = step.input_sizes[0]
        x = step.inputs[0]
        axes = [(g.X_AXIS, w, step.size[0]), (g.Y_AXIS, h, step.size[1])] + (
            [(g.Z_AXIS, d, step.size[2])] if three_d else []
        )
        for axis, length, out_length in axes:
            reads = _reads(
                out_length, length, k, stride, dilation, self.start(), self.centre(), o["boundary_conditions"]
            )
            x = g.take(x, axis, reads, length, f"{name}_reads{axis}")
        kz = k if three_d else 1
        rows = step.weights.reshape(o["channels"], -1)
        kernels = rows[:, :-1].reshape(o["channels"], s, kz, k, k)[:, :, ::-1, ::-1, ::-1]
        spatial = [kz if three_d else 1, k, k]
        return g.node(
            "Conv",
            [x, g.constant(kernels, f"{name}_kernels"), g.constant(rows[:, -1], f"{name}_biases")],
            name,
            kernel_shape=spatial,
            strides=[stride if three_d else 1, stride, stride],
            dilations=[dilation if three_d else 1, dilation, dilation],
        )

    def _export_transposed(self, g, step):
        """The adjoint of a stride-s convolution: ConvTranspose with the kernel flipped, no
        padding, then the output window the engine computes (zeros past the full output), then
        the biases."""
        o, name = step.options, step.name
        k, stride, dilation = o["kernel_size"], o["stride"], o["dilation"]
        w, h, d, s = step.input_sizes[0]
        rows = step.weights.reshape(o["channels"], -1)
        kernels = (
            rows[:, :-1].reshape(o["channels"], s, 1, k, k)[:, :, :, ::-1, ::-1].transpose(1, 0, 2, 3, 4)
        )
        x = g.node(
            "ConvTranspose",
            [step.inputs[0], g.constant(kernels, f"{name}_kernels")],
            f"{name}_full",
            kernel_shape=[1, k, k],
            strides=[1, stride, stride],
            dilations=[1, dilation, dilation],
        )
        offset = dilation * (k // 2)
        for axis, length in ((g.X_AXIS, w), (g.Y_AXIS, h)):
            full = stride * (length - 1) + dilation * (k - 1) + 1
            window = [j if j < full else -1 for j in range(offset, offset + stride * length)]
            x = g.take(x, axis, window, full, f"{name}_window{axis}")
        biases = g.constant(rows[:, -1].reshape(1, -1, 1, 1, 1), f"{name}_biases")
        return g.node("Add", [x, biases], name)


def _reads(out_length, in_length, k, stride, dilation, start, centre, condition):
    """The input coordinates (-1: zero) a convolution reads along one axis, in order: output
    x with kernel tap p' (the kernel flipped) reads entry stride x + dilation p' of them."""
    first = start - dilation * (k - 1 - centre)
    last = first + stride * (out_length - 1) + dilation * (k - 1)
    return [boundary.coordinate(i, in_length, condition) for i in range(first, last + 1)]


CHANNELS = Int("nb_channels", low=1, help="output channels")
KERNEL_SIZE_ARGUMENT = Int("kernel_size", 3, low=1)
STRIDE_ARGUMENT = Int("stride", 1, low=1)
DILATION_ARGUMENT = Int("dilation", 1, low=1)
SHRINK_ARGUMENT = Int("border_shrink", 0, low=0, help="output pixels dropped at each border")
BOUNDARY_ARGUMENT = Choice(
    "boundary_conditions",
    "neumann",
    choices=boundary.NAMES,
    help="what the kernels read outside the input: 0 dirichlet (zeros),"
    " 1 neumann (nearest edge), 2 periodic, 3 mirror",
)


def convolution(
    dimensions, channels, kernel_size, stride, dilation, shrink, boundary_conditions, learning_mode
):
    return Convolution(
        channels=channels,
        kernel_size=kernel_size,
        stride=stride,
        dilation=dilation,
        shrink=shrink,
        boundary_conditions=boundary.NAMES.index(boundary_conditions),
        learning_mode=learning_mode,
        dimensions=dimensions,
    )


# nn_lib's convolution commands, 2D and 3D: nn_conv{2,3}d[nl|nnl] and nn_resconv{2,3}d[nl|nnl].
# The suffix adds a nonlinearity (nl), or a channel-by-channel normalize then one (nnl).
VARIANTS = {
    "": "",
    "nl": " then a nonlinearity",
    "nnl": ", a channel-by-channel normalize and a nonlinearity",
}


def _declare_convolution(dimensions, suffix):
    conv = f"OUT_conv{dimensions}d"
    names = {
        "": f"{conv} (weights image: one row per output channel, the kernels of every input"
        " channel then the bias) and OUT",
        "nl": f"{conv}, OUT",
        "nnl": f"{conv}, OUT_normalize, OUT",
    }
    output = (
        "w/stride - 2 border_shrink, h/stride - 2 border_shrink, "
        + ("d/stride - 2 border_shrink" if dimensions == 3 else "d")
        + ", nb_channels"
    )
    tail = (ACTIVATION,) if suffix else ()

    @network_command(
        f"nn_conv{dimensions}d{suffix}",
        OUT_NAME,
        IN_NAME,
        CHANNELS,
        KERNEL_SIZE_ARGUMENT,
        STRIDE_ARGUMENT,
        DILATION_ARGUMENT,
        SHRINK_ARGUMENT,
        BOUNDARY_ARGUMENT,
        *tail,
        LEARNING_MODE,
        help=f"""
        Add a {dimensions}D convolution{VARIANTS[suffix]}: {names[suffix]}.

        Output size: ({output}).""",
    )
    def declared(ctx, selection, out, source, *arguments):
        *geometry, learning_mode = arguments
        activation = geometry.pop() if suffix else None
        name = add(
            ctx, f"{out}_conv{dimensions}d", convolution(dimensions, *geometry, learning_mode), [source]
        )
        if suffix == "nnl":
            name = add(ctx, f"{out}_normalize", Normalize(channelwise=True, learning_mode=3), [name])
        add(ctx, out, Nonlinearity.of(activation, "2023") if activation else Rename(), [name])


def _declare_residual(dimensions, suffix):
    parts = {"": "", "nl": "_add, OUT", "nnl": "_normalize, OUT_add, OUT"}
    # nn_lib 2023 declares nn_resconv3dnl's learning mode 1 (weights only, biases at 0), unlike
    # its siblings' 3: a network saved by nn_lib rebuilds the same
    mode = learning_mode(1) if (dimensions, suffix) == (3, "nl") else LEARNING_MODE
    tail = (ACTIVATION,) if suffix else ()
    listed = f"OUT_clone0/1, OUT_conv{dimensions}d, " + (f"OUT{parts[suffix]}" if suffix else "OUT")

    @network_command(
        f"nn_resconv{dimensions}d{suffix}",
        OUT_NAME,
        IN_OR_PREVIOUS,
        KERNEL_SIZE_ARGUMENT,
        DILATION_ARGUMENT,
        BOUNDARY_ARGUMENT,
        *tail,
        mode,
        help=f"""
        Add a residual {dimensions}D convolution{VARIANTS[suffix]}, OUT = IN + conv(IN) (same
        channels, stride 1): {listed}.""",
    )
    def declared(ctx, selection, out, source, kernel_size, dilation, boundary_conditions, *arguments):
        *activation, learning_mode = arguments

        def branch(size):
            return (
                f"conv{dimensions}d",
                convolution(
                    dimensions, size[3], kernel_size, 1, dilation, 0, boundary_conditions, learning_mode
                ),
            )

        residual(
            ctx,
            out,
            source,
            branch,
            "channelwise" if suffix == "nnl" else None,
            activation[0] if activation else None,
        )


for _dimensions in (2, 3):
    for _suffix in VARIANTS:
        _declare_convolution(_dimensions, _suffix)
        _declare_residual(_dimensions, _suffix)


STRIDED_SIZES = {2: "width and height", 3: "width, height and depth"}


def _declare_convolution_36(dimensions):
    @network_command(
        f"nn_conv{dimensions}d",
        OUT_NAME,
        IN_NAME,
        CHANNELS,
        KERNEL_SIZE_ARGUMENT,
        STRIDE_ARGUMENT,
        Int("dilation", 1),
        Int("shrink", 0, low=0, help="output pixels dropped at each border"),
        Int("boundary_conditions", boundary.NEUMANN, low=0, high=3, help=BOUNDARY_ARGUMENT.help),
        LEARNING_MODE,
        WEIGHT_DECAY,
        INITIALIZATION,
        api="3.6",
        help=f"""
        Add a {dimensions}D convolution OUT, its weights the image NET_OUT (one row per output
        channel: the kernels of every input channel, then the bias), as G'MIC 3.6 computes it
        (CImg's convolution, kernel flipped). Weights start as `initialization` says, biases
        at 0. The stride must divide the input's {STRIDED_SIZES[dimensions]}.

        Output size: (w/stride - 2 shrink, h/stride - 2 shrink, """
        + ("d/stride - 2 shrink" if dimensions == 3 else "d")
        + ", nb_channels).",
    )
    def declared(ctx, selection, out, source, channels, kernel_size, stride, dilation, shrink, *rest):
        boundary_conditions, learning_mode, weight_decay, initialization = rest
        layer = Convolution(
            channels=channels,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
            shrink=shrink,
            boundary_conditions=boundary_conditions,
            learning_mode=learning_mode,
            dimensions=dimensions,
            sampling="3.6",
            weight_decay=weight_decay,
            initialization=initialization,
        )
        add(ctx, out, layer, [source])


for _dimensions in (2, 3):
    _declare_convolution_36(_dimensions)


@network_command(
    "nn_tconv2d",
    OUT_NAME,
    IN_NAME,
    CHANNELS,
    KERNEL_SIZE_ARGUMENT,
    Int("stride", 2, low=1),
    DILATION_ARGUMENT,
    LEARNING_MODE,
)
def nn_tconv2d(ctx, selection, out, source, channels, kernel_size, stride, dilation, learning_mode):
    """Add a transposed 2D convolution, the adjoint of a conv2d of the same stride (zeros
    outside) plus biases: modules OUT_tconv2d (weights image, laid out as conv2d's) and OUT.

    Output size: (w * stride, h * stride, d, nb_channels); upsamples what a strided conv2d
    downsampled."""
    layer = Convolution(
        channels=channels,
        kernel_size=kernel_size,
        stride=stride,
        dilation=dilation,
        shrink=0,
        boundary_conditions=boundary.DIRICHLET,
        learning_mode=learning_mode,
        dimensions=2,
        transposed=True,
    )
    add(ctx, out, Rename(), [add(ctx, f"{out}_tconv2d", layer, [source])])


(KERNEL_SIZE, STRIDE, DILATION, START, CENTRE, CONDITION, DIMENSIONS, TRANSPOSED) = (
    column(Convolution, name) for name in Convolution.kernel_arguments
)

# values of a block of columns (im2col) or of tap products (shifted) the kernels aim at: 512 KB
# in float32, within a core's L2 cache between their writing and the products reading them
# (measured: 2^16 and 2^17 equal, 2^18 2-5% slower, 2^19 slower still)
BLOCK_VALUES = 1 << 17

# what _row does with the values of a run and those it reads
COPY, GATHER_ADD, SCATTER_ADD = 0, 1, 2
# multiply-adds of the largest product OpenBLAS computes by its small-matrix kernels, without
# packing the operands (SkylakeX and Zen builds: 100^3): a product of 16 channels and 144 taps
# over 384 columns runs at ~110 GFLOP/s where 448 columns take the packed path at ~52
SMALL_PRODUCT = 1_000_000
# columns a piece of a product keeps at least: fewer, and the packed path is the faster
SMALL_PIECE = 64


@numba.njit(cache=True, inline="always")
def _source(out, tap, n_in, stride, dilation, start, centre, condition, transposed):
    """The input coordinate that output coordinate `out` reads through kernel tap `tap`
    along one axis, or -1 for none."""
    offset = dilation * (tap - centre)
    if transposed:
        position = out + offset
        if position % stride:
            return -1
        position //= stride
        return position if 0 <= position < n_in else -1
    return boundary.coordinate(start + stride * out - offset, n_in, condition)


@numba.njit(cache=True, inline="always")
def sources(op, axis):
    """(taps, n_out) table of the input coordinate (-1: none) each output coordinate reads
    through each kernel tap along `axis` (0: x, 1: y, 2: z). A 2D convolution has one tap
    along z, and reads its own slice."""
    n_out, n_in = op[OUT_W + axis], op[IN_W + axis]
    k = op[KERNEL_SIZE]
    if axis == 2 and op[DIMENSIONS] != 3:
        table = np.empty((1, n_out), dtype=np.int64)
        for z in range(n_out):
            table[0, z] = z
        return table
    table = np.empty((k, n_out), dtype=np.int64)
    for tap in range(k):
        for x in range(n_out):
            table[tap, x] = _source(
                x, tap, n_in, op[STRIDE], op[DILATION], op[START], op[CENTRE], op[CONDITION], op[TRANSPOSED]
            )
    return table


@numba.njit(cache=True)
def runs(xs):
    """The runs of an output row for each x tap: (first column, columns, source column or -1)
    of the longest stretches whose sources are consecutive (or all none); the tap's run count
    in `counts`; in `mains`, its longest run that reads (-1 for none). At stride 1 the
    interior of a row is one run."""
    taps, n = xs.shape
    table = np.empty((taps, n, 3), dtype=np.int64)
    counts = np.zeros(taps, dtype=np.int64)
    for tap in range(taps):
        x = 0
        while x < n:
            source, length = xs[tap, x], 1
            while x + length < n and xs[tap, x + length] == (source + length if source >= 0 else -1):
                length += 1
            j = counts[tap]
            table[tap, j, 0], table[tap, j, 1], table[tap, j, 2] = x, length, source
            counts[tap] += 1
            x += length
    mains = np.full(taps, -1, dtype=np.int64)
    for tap in range(taps):
        for j in range(counts[tap]):
            if table[tap, j, 2] >= 0 and (mains[tap] < 0 or table[tap, j, 1] > table[tap, mains[tap], 1]):
                mains[tap] = j
    return table, counts, mains


@numba.njit(cache=True)
def source_rows(op):
    """(taps along z and y, output rows) table of the input row (z h + y) each output row
    (z out_h + y) reads through taps (r, q), at r k + q; -1 for none."""
    ys, zs = sources(op, 1), sources(op, 2)
    k, oh = ys.shape[0], op[OUT_H]
    table = np.empty((zs.shape[0] * k, op[OUT_D] * oh), dtype=np.int64)
    for r in range(zs.shape[0]):
        for q in range(k):
            for z in range(op[OUT_D]):
                for y in range(oh):
                    yy, zz = ys[q, y], zs[r, z]
                    table[r * k + q, z * oh + y] = zz * op[IN_H] + yy if yy >= 0 and zz >= 0 else -1
    return table


@numba.njit(cache=True)
def readers(rows, n_in):
    """The output rows sorted by the input row they read through each (r, q): (order, start),
    the rows reading input rows [u0, u1) being order[rq, start[rq, u0]:start[rq, u1]]."""
    taps, n_out = rows.shape
    order = np.empty((taps, n_out), dtype=np.int64)
    start = np.zeros((taps, n_in + 2), dtype=np.int64)
    for rq in range(taps):
        for row in range(n_out):  # a counting sort, rows reading none first
            start[rq, rows[rq, row] + 2] += 1
        for u in range(2, n_in + 2):
            start[rq, u] += start[rq, u - 1]
        for row in range(n_out):
            order[rq, start[rq, rows[rq, row] + 1]] = row
            start[rq, rows[rq, row] + 1] += 1
    return order, start[:, : n_in + 1]


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _row(mode, outs, at, ins, line, lo, hi, table, p, count, skip, width):
    """Output pixels [lo, hi) of a row through x tap p (its `count` runs in `table`, but run
    `skip`): their values from outs[at] on, the input row they read from ins[line] on. COPY:
    the values become what they read (zero for none); GATHER_ADD: they add what they read;
    SCATTER_ADD: the values they read add them. Slices are indexed from 0: the loops
    vectorize."""
    for j in range(count):
        if j == skip:
            continue
        x0, length, source = table[p, j, 0], table[p, j, 1], table[p, j, 2]
        a, b = max(x0, lo), min(x0 + length, hi)
        if a >= b:
            continue
        n = (b - a) * width
        into = at + (a - lo) * width
        if source < 0:
            if mode == COPY:
                outs[into : into + n] = 0
            continue
        start = line + (source + a - x0) * width
        values, read = outs[into : into + n], ins[start : start + n]
        if mode == COPY:
            for c in range(n):
                values[c] = read[c]
        elif mode == GATHER_ADD:
            for c in range(n):
                values[c] += read[c]
        else:
            for c in range(n):
                read[c] += values[c]


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _stretch(outs, at, ins, line, lo, hi, rows, ow, table, p, count, main, width):
    """_row's COPY over `rows` consecutive rows reading consecutive input rows, rows of the
    output and of the input being as long (ow): row r's values from outs[at + r ow width] on
    (the first row's from pixel lo on, `at` being where its pixel 0 would be), its input row
    from ins[line + r ow width] on, the last row up to pixel hi. Tap p's main run (the
    longest that reads) is then one stretch of consecutive values on both sides, from the
    first row's to the last row's, copied at once; that copies the input rows' neighbours
    into the other runs' pixels between, which each row's other runs then overwrite. At one
    sample, one copy for all the rows instead of one of a few dozen values per row."""
    x0, length, source = table[p, main, 0], table[p, main, 1], table[p, main, 2]
    end = (rows - 1) * ow
    a, b = max(lo, x0), min(end + hi, end + x0 + length)
    values = outs[at + a * width : at + b * width]
    read = ins[line + (a - x0 + source) * width : line + (b - x0 + source) * width]
    for c in range(values.size):
        values[c] = read[c]
    for r in range(rows):
        first, last = lo if r == 0 else 0, hi if r == rows - 1 else ow
        _row(
            COPY,
            outs,
            at + (r * ow + first) * width,
            ins,
            line + r * ow * width,
            first,
            last,
            table,
            p,
            count,
            main,
            width,
        )


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _gather(
    mode,
    buffer,
    origin,
    channels,
    plane,
    row_length,
    k,
    width,
    first,
    last,
    ow,
    cols,
    ld,
    table,
    counts,
    mains,
    rows,
):
    """im2col over any grid: row c volume + tap (p, q, r) of `cols` (rows `ld` apart) gets,
    for pixels [first, last) of a grid of rows of `ow` pixels (x fastest) and every sample of
    the chunk, the value of channel c < `channels` that tap reads in `buffer` (the module
    at `origin`, planes of `plane` pixels, rows of `row_length`), zero where it reads none:
    row `rows[r k + q, grid row]`, column by the runs of tap p. SCATTER_ADD, its transpose:
    each row of `cols` adds into the values it was read from."""
    volume = k * rows.shape[0]
    top, bottom = first // ow, (last - 1) // ow
    for c in range(channels):
        for rq in range(rows.shape[0]):
            for p in range(k):
                base = (c * volume + p + k * rq) * ld
                row = top
                while row <= bottom:
                    lo, hi = max(first - row * ow, 0), min(last - row * ow, ow)
                    at = base + (row * ow + lo - first) * width
                    u = rows[rq, row]
                    if u < 0:
                        if mode == COPY:
                            cols[at : at + (hi - lo) * width] = 0
                        row += 1
                        continue
                    line = (origin + c * plane + u * row_length) * width
                    end = row + 1
                    if mode == COPY and ow == row_length and mains[p] >= 0:
                        while end <= bottom and rows[rq, end] == u + end - row:
                            end += 1
                    if end - row > 1:
                        _stretch(
                            cols,
                            at - lo * width,
                            buffer,
                            line,
                            lo,
                            min(last - (end - 1) * ow, ow),
                            end - row,
                            ow,
                            table,
                            p,
                            counts[p],
                            mains[p],
                            width,
                        )
                    else:
                        _row(mode, cols, at, buffer, line, lo, hi, table, p, counts[p], -1, width)
                    row = end


@numba.njit(cache=True, inline="always")
def columns(op, mode, buffer, width, first, last, cols, ld, table, counts, mains, rows):
    """im2col (COPY): row i volume + tap of `cols` (rows `ld` apart) gets, for the output
    pixels [first, last) of a plane (x fastest, then y, then z) and every sample of the chunk,
    the input values kernel tap (p, q, r) of input channel i reads, zero where it reads none.
    SCATTER_ADD, its transpose (col2im): each row of `cols` adds into the input values it
    was read from."""
    _gather(
        mode,
        buffer,
        op[IN0],
        op[IN_S],
        op[IN_W] * op[IN_H] * op[IN_D],
        op[IN_W],
        op[KERNEL_SIZE],
        width,
        first,
        last,
        op[OUT_W],
        cols,
        ld,
        table,
        counts,
        mains,
        rows,
    )


@numba.njit(cache=True)
def inverse(table, n_in):
    """(taps, n_in): the output coordinate (or row) reading each input one through each tap
    of `table` (-1: none), and whether none is read twice through a tap (else the table
    holds the last reader)."""
    taps, n_out = table.shape
    readers_ = np.full((taps, n_in), -1, dtype=np.int64)
    once = True
    for tap in range(taps):
        for x in range(n_out):
            u = table[tap, x]
            if u >= 0:
                once = once and readers_[tap, u] < 0
                readers_[tap, u] = x
    return readers_, once


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def shifted(op, mode, outs, width, u0, u1, products, ld, table, counts, rows, order, start):
    """Tap products (kn2row): row o volume + tap of `products` (rows `ld` apart) holds, for the
    input rows [u0, u1) and every sample, what output channel o gets from each input value
    through that tap. GATHER_ADD: each output value of `outs` adds the product its tap reads;
    SCATTER_ADD, the transpose: each product adds the output values (gradients) reading it."""
    k, ow, w = op[KERNEL_SIZE], op[OUT_W], op[IN_W]
    plane = ow * op[OUT_H] * op[OUT_D]
    volume = k * rows.shape[0]
    for o in range(op[OUT_S]):
        for rq in range(rows.shape[0]):
            for p in range(k):
                base = (o * volume + p + k * rq) * ld - u0 * w * width
                for j in range(start[rq, u0], start[rq, u1]):
                    row = order[rq, j]
                    _row(
                        mode,
                        outs,
                        (op[OUT] + o * plane + row * ow) * width,
                        products,
                        base + rows[rq, row] * w * width,
                        0,
                        ow,
                        table,
                        p,
                        counts[p],
                        -1,
                        width,
                    )


@numba.njit(cache=True)
def shifting(op, width, backward):
    """Whether the tap products (kn2row) cost less than im2col: both do the same matrix
    products (on the input's pixels for the one, the output's for the other), but im2col
    moves taps x input channels values per pixel (the forward pass: one gather; the backward
    pass: a gather, a clear, a scatter), the tap products taps x output channels (forward: a
    clear, the product, a gather; backward: a clear, a scatter). Counted in multiply-adds, a
    value moved costing 2.5; never when one input row of products would exceed 4 blocks."""
    volume = op[KERNEL_SIZE] ** op[DIMENSIONS]
    c_in, c_out = op[IN_S], op[OUT_S]
    if c_out * volume * op[IN_W] * width > 4 * BLOCK_VALUES:
        return False
    products = op[IN_W] * op[IN_H] * op[IN_D]
    columns_ = op[OUT_W] * op[OUT_H] * op[OUT_D]
    macs = c_in * volume * c_out
    if backward:
        return products * (4 * macs + 10 * c_out * volume) < columns_ * (4 * macs + 15 * c_in * volume)
    return products * (2 * macs + 15 * c_out * volume) < columns_ * (2 * macs + 5 * c_in * volume)


@numba.njit(cache=True)
def _transposed_weights(op, weights, out):
    """W_r^T: out[i + c_in (o volume + tap)] = W[o][i volume + tap], the (input channels x
    output channels taps) column-major matrix of the tap products."""
    c_in, c_out = op[IN_S], op[OUT_S]
    volume = op[KERNEL_SIZE] ** op[DIMENSIONS]
    row_length = c_in * volume + 1
    for o in range(c_out):
        for i in range(c_in):
            for tap in range(volume):
                out[i + c_in * (o * volume + tap)] = weights[o * row_length + i * volume + tap]


@numba.njit(cache=True)
def _product(transpose_b, m, n, k, a, lda, b, ldb, c, ldc):
    """C (m x n) += A op(B), as gemm, in pieces of rows of A and C small enough for BLAS's
    small-matrix kernels (see SMALL_PRODUCT) when they keep SMALL_PIECE rows."""
    piece = SMALL_PRODUCT // max(1, n * k)
    if piece < SMALL_PIECE:
        piece = m
    for first in range(0, m, piece):
        gemm(False, transpose_b, min(piece, m - first), n, k, a[first:], lda, b, ldb, c[first:], ldc)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _transpose(a, lda, m, k, out):
    """out[j m + i] = a[i lda + j] for i < m, j < k: m rows of k values (pixels x samples),
    made pixel-major, 64 pixels at a time."""
    for first in range(0, k, 64):
        last = min(first + 64, k)
        for i in range(m):
            row = a[i * lda + first : i * lda + last]
            for j in range(last - first):
                out[(first + j) * m + i] = row[j]


@numba.njit(cache=True)
def _gradient_product(m, n, k, a, lda, b, ldb, c, ldc, scratch):
    """C (m x n) += A B^T, a weight gradient: A the m rows (channels) of k values (a block's
    pixels x samples) `lda` apart, B stored as the column-major (k x n) matrix (n rows of k
    values, ldb apart). In pieces along k small enough for BLAS's small-matrix kernels when
    they keep SMALL_PIECE values. OpenBLAS takes a transposed product to those kernels only
    for m n <= 1200 (84 GFLOP/s for 16 x 9 in pieces, 18 unsplit); beyond, A is first made
    pixel-major in `scratch` (m x k values) and the product is non-transposed: ~110 GFLOP/s
    for 16 x 144, where the transposed one runs at ~67."""
    piece = SMALL_PRODUCT // max(1, m * n)
    if piece < SMALL_PIECE:
        piece = k
    if m * n > 1200:
        _transpose(a, lda, m, k, scratch)
        for first in range(0, k, piece):
            gemm(False, False, m, n, min(piece, k - first), scratch[first * m :], m, b[first:], ldb, c, ldc)
    else:
        for first in range(0, k, piece):
            gemm(True, False, m, n, min(piece, k - first), a[first:], lda, b[first:], ldb, c, ldc)


@numba.njit(cache=True)
def _block(values_per_unit, units):
    """Units (pixels, input rows) per block of about BLOCK_VALUES values, at least 1."""
    return min(units, max(1, BLOCK_VALUES // values_per_unit))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, acts, params, width):
    plane = op[OUT_W] * op[OUT_H] * op[OUT_D]
    c_in, c_out = op[IN_S], op[OUT_S]
    volume = op[KERNEL_SIZE] ** op[DIMENSIONS]
    taps, row_length = c_in * volume, c_in * volume + 1
    out, weights = op[OUT] * width, params[op[PARAM] :]
    for o in range(c_out):
        acts[out + o * plane * width : out + (o + 1) * plane * width] = weights[o * row_length + taps]
    table, counts, mains = runs(sources(op, 0))
    rows = source_rows(op)
    if shifting(op, width, False):
        w, n_rows = op[IN_W], op[IN_H] * op[IN_D]
        order, start = readers(rows, n_rows)
        transposed = np.empty(taps * c_out, dtype=acts.dtype)
        _transposed_weights(op, weights, transposed)
        step = _block(c_out * volume * w * width, n_rows)
        products = np.empty(c_out * volume * step * w * width, dtype=acts.dtype)
        for u0 in range(0, n_rows, step):
            u1 = min(u0 + step, n_rows)
            n = (u1 - u0) * w * width
            products[: c_out * volume * n] = 0
            # P^T (n x c_out volume) += IN^T (n x c_in) W_r^T (c_in x c_out volume)
            _product(
                False,
                n,
                c_out * volume,
                c_in,
                acts[(op[IN0] + u0 * w) * width :],
                n_rows * w * width,
                transposed,
                c_in,
                products,
                n,
            )
            shifted(op, GATHER_ADD, acts, width, u0, u1, products, n, table, counts, rows, order, start)
        return
    step = _block(taps * width, plane)
    cols = np.empty(taps * step * width, dtype=acts.dtype)
    for first in range(0, plane, step):
        last = min(first + step, plane)
        n = (last - first) * width
        columns(op, COPY, acts, width, first, last, cols, n, table, counts, mains, rows)
        # OUT^T (n x c_out) += COLS^T (n x taps) W^T (taps x c_out)
        _product(
            False, n, c_out, taps, cols, n, weights, row_length, acts[out + first * width :], plane * width
        )


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, acts, grad_acts, params, grads, width):
    plane = op[OUT_W] * op[OUT_H] * op[OUT_D]
    c_in, c_out = op[IN_S], op[OUT_S]
    volume = op[KERNEL_SIZE] ** op[DIMENSIONS]
    taps, row_length = c_in * volume, c_in * volume + 1
    out, weights, weight_grads = op[OUT] * width, params[op[PARAM] :], grads[op[PARAM] :]
    for o in range(c_out):
        weight_grads[o * row_length + taps] += grad_acts[
            out + o * plane * width : out + (o + 1) * plane * width
        ].sum()
    table, counts, mains = runs(sources(op, 0))
    rows = source_rows(op)
    if shifting(op, width, True):
        w, n_rows = op[IN_W], op[IN_H] * op[IN_D]
        order, start = readers(rows, n_rows)
        # where no input value is read twice through a tap (no folding boundary conditions),
        # the scatter of the output gradient is a gather (im2col) by the inverse tables: no
        # clearing, no adding, and long runs
        readers_x, once_x = inverse(sources(op, 0), w)
        readers_rows, once_rows = inverse(rows, n_rows)
        gathering = once_x and once_rows
        inverse_table, inverse_counts, inverse_mains = runs(readers_x)
        transposed = np.empty(taps * c_out if op[INPUT_GRADIENTS] else 0, dtype=acts.dtype)
        if op[INPUT_GRADIENTS]:
            _transposed_weights(op, weights, transposed)
        transposed_grads = np.zeros(taps * c_out, dtype=acts.dtype)
        step = _block(c_out * volume * w * width, n_rows)
        products = np.empty(c_out * volume * step * w * width, dtype=acts.dtype)
        scratch = np.empty(c_in * step * w * width, dtype=acts.dtype)
        for u0 in range(0, n_rows, step):
            u1 = min(u0 + step, n_rows)
            n = (u1 - u0) * w * width
            at = (op[IN0] + u0 * w) * width
            if gathering:
                _gather(
                    COPY,
                    grad_acts,
                    op[OUT],
                    c_out,
                    plane,
                    op[OUT_W],
                    op[KERNEL_SIZE],
                    width,
                    u0 * w,
                    u1 * w,
                    w,
                    products,
                    n,
                    inverse_table,
                    inverse_counts,
                    inverse_mains,
                    readers_rows,
                )
            else:
                products[: c_out * volume * n] = 0
                shifted(
                    op, SCATTER_ADD, grad_acts, width, u0, u1, products, n, table, counts, rows, order, start
                )
            # dW_r^T (c_in x c_out volume) += IN (c_in x n) dP^T (n x c_out volume)
            _gradient_product(
                c_in,
                c_out * volume,
                n,
                acts[at:],
                n_rows * w * width,
                products,
                n,
                transposed_grads,
                c_in,
                scratch,
            )
            if op[INPUT_GRADIENTS]:
                # dIN^T (n x c_in) += dP^T (n x c_out volume) W_r (c_out volume x c_in)
                _product(
                    True,
                    n,
                    c_in,
                    c_out * volume,
                    products,
                    n,
                    transposed,
                    c_in,
                    grad_acts[at:],
                    n_rows * w * width,
                )
        for o in range(c_out):
            for i in range(c_in):
                for tap in range(volume):
                    weight_grads[o * row_length + i * volume + tap] += transposed_grads[
                        i + c_in * (o * volume + tap)
                    ]
        return
    step = _block(taps * width, plane)
    cols = np.empty(taps * step * width, dtype=acts.dtype)
    grad_cols = np.empty(cols.size if op[INPUT_GRADIENTS] else 0, dtype=acts.dtype)
    grad_weights = np.zeros(c_out * taps, dtype=acts.dtype)
    scratch = np.empty(c_out * step * width, dtype=acts.dtype)
    for first in range(0, plane, step):
        last = min(first + step, plane)
        n = (last - first) * width
        grad_out = grad_acts[out + first * width :]
        columns(op, COPY, acts, width, first, last, cols, n, table, counts, mains, rows)
        # dW (c_out x taps) += dOUT (c_out x n) COLS^T (n x taps)
        _gradient_product(c_out, taps, n, grad_out, plane * width, cols, n, grad_weights, c_out, scratch)
        if op[INPUT_GRADIENTS]:
            # dCOLS^T (n x taps) = dOUT^T (n x c_out) W (c_out x taps), then added back
            grad_cols[: taps * n] = 0
            _product(True, n, taps, c_out, grad_out, plane * width, weights, row_length, grad_cols, n)
            columns(op, SCATTER_ADD, grad_acts, width, first, last, grad_cols, n, table, counts, mains, rows)
    for o in range(c_out):
        for tap in range(taps):
            weight_grads[o * row_length + tap] += grad_weights[o + c_out * tap]

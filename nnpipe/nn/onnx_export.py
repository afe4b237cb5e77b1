"""ONNX export: a network's forward pass, from its inputs to one layer, as an ONNX model.

Inside the graph every module's value is a 5D tensor (N, s, d, h, w): the batch, then
nnpipe's own (s, d, h, w) order, so a sample's values flatten in the order the engine keeps
them and reshape, split, append and fc need no transposition. The model's inputs and output
are NCHW, (N, s, h, w), when the depth d is 1 and NCDHW, (N, s, d, h, w), otherwise: a
vector input `nn_input IN,n` is (N, 1, 1, n) and an fc output of n values (N, n, 1, 1).

Each layer type has one function below, found by the layer's kind in EXPORTERS; a layer
type missing from it cannot be exported. Image-shaped layers reuse the layer's own geometry
(the sources tables of crop and patch layers, resize's per-axis weights, the boundary
conditions' coordinate rule), so the exported model reads the input exactly as the engine
does; what a convolution reads outside its input becomes an explicit Gather of the input's
columns, rows and slices, which handles the four boundary conditions, any dilation and the
border shrink alike. normalize is its inference-time affine map (running statistics).
"""

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnpipe.errors import UserError
from nnpipe.nn import boundary
from nnpipe.nn.layers import crop, patch
from nnpipe.nn.layers.normalize import EPSILON
from nnpipe.nn.layers.resize import axis_weights

OPSET = 17
X_AXIS, Y_AXIS, Z_AXIS, CHANNEL_AXIS = 4, 3, 2, 1


def dims(size):
    """The per-sample dimensions (s, d, h, w) of a module of size (w, h, d, s)."""
    w, h, d, s = size
    return [s, d, h, w]


def outside_dims(size):
    """The model's input/output dimensions: (s, h, w) when the depth is 1, else (s, d, h, w)."""
    w, h, d, s = size
    return [s, h, w] if d == 1 else [s, d, h, w]


class Graph:
    """The nodes and constant tensors of the model under construction."""

    def __init__(self):
        self.nodes, self.initializers, self.used = [], [], set()

    def fresh(self, hint):
        name, n = hint, 1
        while name in self.used:
            n += 1
            name = f"{hint}_{n}"
        self.used.add(name)
        return name

    def constant(self, array, hint, dtype=np.float32):
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, hint, **attributes):
        output = self.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [output], **attributes))
        return output

    def reshape(self, x, shape, hint):
        return self.node("Reshape", [x, self.constant(shape, f"{hint}_shape", np.int64)], hint)

    def to_5d(self, x, size, hint):
        return self.reshape(x, [-1] + dims(size), hint)

    def flat(self, x, hint):
        """(N, values): each sample's values in nnpipe's order."""
        return self.node("Flatten", [x], hint, axis=1)

    def take(self, x, axis, indices, length, hint, rank=5):
        """x's entries `indices` along `axis` (of `length` entries); -1 reads zero."""
        indices = np.asarray(indices, dtype=np.int64)
        if np.array_equal(indices, np.arange(length)):
            return x
        if (indices < 0).any():   # a zero slot after the last entry
            pads = np.zeros(2 * rank, dtype=np.int64)
            pads[rank + axis] = 1
            x = self.node("Pad", [x, self.constant(pads, f"{hint}_pads", np.int64)], f"{hint}_padded")
            indices = np.where(indices < 0, length, indices)
        return self.node("Gather", [x, self.constant(indices, f"{hint}_indices", np.int64)], hint,
                         axis=axis)

    def linear_axis(self, x, axis, matrix, hint):
        """Each line of x along `axis` replaced by matrix @ line."""
        if matrix.shape[0] == matrix.shape[1] and np.array_equal(matrix, np.eye(matrix.shape[0])):
            return x
        if axis == X_AXIS:
            return self.node("MatMul", [x, self.constant(matrix.T, f"{hint}_matrix")], hint)
        order = list(range(5))
        order[axis], order[X_AXIS] = X_AXIS, axis    # a swap: its own inverse
        moved = self.node("Transpose", [x], f"{hint}_moved", perm=order)
        mixed = self.node("MatMul", [moved, self.constant(matrix.T, f"{hint}_matrix")], f"{hint}_mixed")
        return self.node("Transpose", [mixed], hint, perm=order)


@dataclass
class Step:
    """One module to export: its inputs' tensors and sizes, its weights, its plan row."""
    name: str
    layer: object
    size: tuple
    inputs: list
    input_sizes: list
    weights: np.ndarray = None
    row: np.ndarray = None

    @property
    def options(self):
        return self.layer.options


# --- activations: (graph, tensor, size, hint) -> tensor ----------------------------------------

def _softmax(g, x, size, hint):
    """Over all the values of a sample."""
    scores = g.node("Softmax", [g.flat(x, f"{hint}_flat")], f"{hint}_softmax", axis=1)
    return g.to_5d(scores, size, hint)


def _gelu(g, x, size, hint):
    scaled = g.node("Mul", [x, g.constant(np.sqrt(0.5), f"{hint}_sqrt_half")], f"{hint}_scaled")
    erf = g.node("Erf", [scaled], f"{hint}_erf")
    one_plus = g.node("Add", [erf, g.constant(1.0, f"{hint}_one")], f"{hint}_one_plus")
    half = g.node("Mul", [x, g.constant(0.5, f"{hint}_half")], f"{hint}_half_x")
    return g.node("Mul", [half, one_plus], hint)


def _sinc(g, x, size, hint):
    ratio = g.node("Div", [g.node("Sin", [x], f"{hint}_sin"), x], f"{hint}_ratio")
    zero = g.node("Equal", [x, g.constant(0.0, f"{hint}_zero")], f"{hint}_at_zero")
    return g.node("Where", [zero, g.constant(1.0, f"{hint}_one"), ratio], hint)


def _single(op, **attributes):
    return lambda g, x, size, hint: g.node(op, [x], hint, **attributes)


ACTIVATIONS = {
    "elu": _single("Elu", alpha=1.0),
    "gelu": _gelu,
    "leakyrelu": _single("LeakyRelu", alpha=0.05),
    "linear": lambda g, x, size, hint: x,
    "relu": _single("Relu"),
    "sigmoid": _single("Sigmoid"),
    "sin": _single("Sin"),
    "sinc": _sinc,
    "softmax": _softmax,
    "sqr": lambda g, x, size, hint: g.node("Mul", [x, x], hint),
    "sqrt": lambda g, x, size, hint: g.node("Sqrt", [g.node("Abs", [x], f"{hint}_magnitude")], hint),
    "swish": lambda g, x, size, hint: g.node("Mul", [x, g.node("Sigmoid", [x], f"{hint}_sigmoid")], hint),
    "tanh": _single("Tanh"),
}


# --- layers: (graph, step) -> tensor ----------------------------------------------------------

def _alias(g, step):
    return step.inputs[0]


def _nonlinearity(g, step):
    return ACTIVATIONS[step.options["activation"]](g, step.inputs[0], step.size, step.name)


def _fc(g, step):
    weights = step.weights.reshape(step.weights.shape[2], -1)
    product = g.node("Gemm", [g.flat(step.inputs[0], f"{step.name}_flat"),
                              g.constant(weights[:, :-1], f"{step.name}_weights"),
                              g.constant(weights[:, -1], f"{step.name}_biases")],
                     f"{step.name}_gemm", transB=1)
    return g.to_5d(product, step.size, step.name)


def _nlfc(g, step):
    """y_i = sum_j act(W_ij x_j + B_ij): an (N, outputs, inputs) tensor summed over inputs.
    The engine applies softmax there value by value, where it is the identity."""
    name, weights = step.name, step.weights.reshape(step.weights.shape[2], -1)
    n_in = weights.shape[1] // 2
    x = g.node("Unsqueeze", [g.flat(step.inputs[0], f"{name}_flat"),
                             g.constant([1], f"{name}_axis", np.int64)], f"{name}_row")
    z = g.node("Add", [g.node("Mul", [x, g.constant(weights[:, :n_in], f"{name}_weights")], f"{name}_wx"),
                       g.constant(weights[:, n_in:], f"{name}_biases")], f"{name}_z")
    activation = step.options["activation"]
    a = ACTIVATIONS["linear" if activation == "softmax" else activation](g, z, None, f"{name}_act")
    total = g.node("ReduceSum", [a, g.constant([2], f"{name}_sum_axis", np.int64)], f"{name}_sum", keepdims=0)
    return g.to_5d(total, step.size, name)


def _normalize(g, step):
    """y = alpha (x - running mean) / (sqrt(running variance) + 1e-8) + beta = scale x + shift,
    one (scale, shift) for the input or one per channel."""
    rows = step.weights.reshape(-1, 4).astype(np.float64)
    alpha, beta, mean, variance = rows.T
    scale = alpha / (np.sqrt(variance) + EPSILON)
    shift = beta - mean * scale
    shape = [1, -1, 1, 1, 1] if rows.shape[0] > 1 else [1, 1, 1, 1, 1]
    scaled = g.node("Mul", [step.inputs[0], g.constant(scale.reshape(shape), f"{step.name}_scale")],
                    f"{step.name}_scaled")
    return g.node("Add", [scaled, g.constant(shift.reshape(shape), f"{step.name}_shift")], step.name)


def _binary(op):
    return lambda g, step: g.node(op, step.inputs, step.name)


def _append(g, step):
    return g.node("Concat", step.inputs, step.name, axis=CHANNEL_AXIS)


def _split(g, step):
    channels = step.options["channels"]
    start, end = (0, channels) if step.options["part"] == 0 else (channels, step.input_sizes[0][3])
    return g.node("Slice", [step.inputs[0], g.constant([start], f"{step.name}_start", np.int64),
                            g.constant([end], f"{step.name}_end", np.int64),
                            g.constant([CHANNEL_AXIS], f"{step.name}_axes", np.int64)], step.name)


def _reshape(g, step):
    return g.to_5d(step.inputs[0], step.size, step.name)


def _gathered(sources):
    """A layer whose every output value is an input value (or zero), by the layer's own
    table: one Gather over each sample's values."""
    def export(g, step):
        table = sources(step.row)
        flat = g.flat(step.inputs[0], f"{step.name}_flat")
        moved = g.take(flat, 1, table, int(np.prod(step.input_sizes[0])), f"{step.name}_gather", rank=2)
        return g.to_5d(moved, step.size, step.name)
    return export


def _conv_reads(out_length, in_length, k, stride, dilation, shrink, condition):
    """The input coordinates (-1: zero) a convolution reads along one axis, in order: output
    x with kernel tap p' (the kernel flipped) reads entry stride x + dilation p' of them."""
    first = shrink - dilation * (k // 2)
    last = first + stride * (out_length - 1) + dilation * (k - 1)
    return [boundary.coordinate(i, in_length, condition) for i in range(first, last + 1)]


def _conv(g, step):
    """A true convolution (nnpipe's) is a cross-correlation with the kernel flipped; the
    values it reads, boundary conditions included, are gathered first."""
    o, name = step.options, step.name
    k, stride, dilation = o["kernel_size"], o["stride"], o["dilation"]
    three_d = o["dimensions"] == 3
    w, h, d, s = step.input_sizes[0]
    x = step.inputs[0]
    axes = [(X_AXIS, w, step.size[0]), (Y_AXIS, h, step.size[1])] + ([(Z_AXIS, d, step.size[2])] if three_d else [])
    for axis, length, out_length in axes:
        reads = _conv_reads(out_length, length, k, stride, dilation, o["shrink"], o["boundary_conditions"])
        x = g.take(x, axis, reads, length, f"{name}_reads{axis}")
    kz = k if three_d else 1
    rows = step.weights.reshape(o["channels"], -1)
    kernels = rows[:, :-1].reshape(o["channels"], s, kz, k, k)[:, :, ::-1, ::-1, ::-1]
    spatial = [kz if three_d else 1, k, k]
    return g.node("Conv", [x, g.constant(kernels, f"{name}_kernels"), g.constant(rows[:, -1], f"{name}_biases")],
                  name, kernel_shape=spatial, strides=[stride if three_d else 1, stride, stride],
                  dilations=[dilation if three_d else 1, dilation, dilation])


def _tconv(g, step):
    """The adjoint of a stride-s convolution: ConvTranspose with the kernel flipped, no
    padding, then the output window the engine computes (zeros past the full output), then
    the biases."""
    o, name = step.options, step.name
    k, stride, dilation = o["kernel_size"], o["stride"], o["dilation"]
    w, h, d, s = step.input_sizes[0]
    rows = step.weights.reshape(o["channels"], -1)
    kernels = rows[:, :-1].reshape(o["channels"], s, 1, k, k)[:, :, :, ::-1, ::-1].transpose(1, 0, 2, 3, 4)
    x = g.node("ConvTranspose", [step.inputs[0], g.constant(kernels, f"{name}_kernels")], f"{name}_full",
               kernel_shape=[1, k, k], strides=[1, stride, stride], dilations=[1, dilation, dilation])
    offset = dilation * (k // 2)
    for axis, length in ((X_AXIS, w), (Y_AXIS, h)):
        full = stride * (length - 1) + dilation * (k - 1) + 1
        window = [j if j < full else -1 for j in range(offset, offset + stride * length)]
        x = g.take(x, axis, window, full, f"{name}_window{axis}")
    biases = g.constant(rows[:, -1].reshape(1, -1, 1, 1, 1), f"{name}_biases")
    return g.node("Add", [x, biases], name)


def _maxpool(g, step):
    p = step.options["patch_size"]
    pd = p if step.options["dimensions"] == 3 else 1
    return g.node("MaxPool", [step.inputs[0]], step.name, kernel_shape=[pd, p, p], strides=[pd, p, p])


def _resample(g, step):
    """resize and avgpool: linear along each axis, by the layer's own per-axis weights."""
    mode = step.layer.arguments(step.input_sizes)["interpolation"]
    x = step.inputs[0]
    for axis, n_in, n_out in zip((X_AXIS, Y_AXIS, Z_AXIS, CHANNEL_AXIS), step.input_sizes[0], step.size):
        first, weights = axis_weights(n_in, n_out, mode)
        matrix = np.zeros((n_out, n_in))
        for out in range(n_out):
            for j, weight in enumerate(weights[out]):
                if weight:
                    matrix[out, first[out] + j] += weight
        x = g.linear_axis(x, axis, matrix, f"{step.name}_axis{axis}")
    return x


def _distance(g, step):
    name, metric = step.name, step.options["metric"]
    difference = g.flat(g.node("Sub", step.inputs, f"{name}_difference"), f"{name}_flat")
    axes = g.constant([1], f"{name}_axes", np.int64)
    if metric == 0:
        total = g.node("ReduceSum", [g.node("Mul", [difference, difference], f"{name}_squares"), axes],
                       f"{name}_sum")
    else:
        powered = g.node("Pow", [g.node("Abs", [difference], f"{name}_abs"), g.constant(metric, f"{name}_p")],
                         f"{name}_powered")
        total = g.node("Pow", [g.node("ReduceSum", [powered, axes], f"{name}_sum"),
                               g.constant(1 / metric, f"{name}_inverse_p")], f"{name}_norm")
    return g.to_5d(total, step.size, name)


EXPORTERS = {
    "rename": _alias, "clone": _alias, "dropout": _alias,     # dropout does nothing at inference
    "fc": _fc, "nlfc": _nlfc, "nl": _nonlinearity, "normalize": _normalize,
    "add": _binary("Add"), "mul": _binary("Mul"), "append": _append, "split": _split,
    "reshape": _reshape, "crop": _gathered(crop.sources),
    "patchdown2d": _gathered(patch.sources), "patchdown3d": _gathered(patch.sources),
    "patchup2d": _gathered(patch.sources), "patchup3d": _gathered(patch.sources),
    "conv2d": _conv, "conv3d": _conv, "tconv2d": _tconv,
    "maxpool2d": _maxpool, "maxpool3d": _maxpool,
    "avgpool2d": _resample, "avgpool3d": _resample, "resize": _resample,
    "distance": _distance,
}


def _exporter(layer):
    """EXPORTERS' function for the layer's kind, or the layer's own `export_onnx`."""
    return EXPORTERS.get(layer.kind) or getattr(layer, "export_onnx", None)


def build(network, target, weights):
    """The ONNX model computing module `target` of `network`; `weights` maps each parameter
    module to its image. Raises UserError naming the first layer that cannot be exported."""
    modules = [network.modules[name] for name in network.ancestors(target)]
    for module in modules:
        if module.layer.inputs and not _exporter(module.layer):
            raise UserError(f"layer '{module.name}' ({module.layer.kind}) cannot be exported to ONNX"
                            " (losses are for training: export what they compare)")
    rows = iter(network.plan(target).ops)   # one row per module that computes, in this order
    g, tensors, inputs = Graph(), {}, []
    # the model's inputs and output carry the modules' names
    g.used.update([target] + [m.name for m in modules if m.layer.inputs == 0])
    for module in modules:
        layer = module.layer
        if layer.inputs == 0:
            inputs.append(helper.make_tensor_value_info(module.name, TensorProto.FLOAT,
                                                        ["N"] + outside_dims(module.size)))
            tensors[module.name] = g.to_5d(module.name, module.size, f"{module.name}_5d")
            continue
        input_sizes = [network.modules[i].size for i in module.inputs]
        step = Step(module.name, layer, module.size, [tensors[i] for i in module.inputs], input_sizes,
                    weights.get(module.name), None if layer.alias else next(rows))
        tensors[module.name] = _exporter(layer)(g, step)
    size = network.modules[target].size
    g.nodes.append(helper.make_node("Reshape", [tensors[target], g.constant([-1] + outside_dims(size),
                                                                            "output_shape", np.int64)],
                                    [target]))
    output = helper.make_tensor_value_info(target, TensorProto.FLOAT, ["N"] + outside_dims(size))
    graph = helper.make_graph(g.nodes, network.name, inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nnpipe")
    model.ir_version = 8   # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(model, full_check=True)
    return model

"""ONNX export: a network's forward pass, from its inputs to one layer, as an ONNX model.

Inside the graph every module's value is a 5D tensor (N, s, d, h, w): the batch, then
nnpipe's own (s, d, h, w) order, so a sample's values flatten in the order the engine keeps
them and reshape, split, append and fc need no transposition. The model's inputs and output
are NCHW, (N, s, h, w), when the depth d is 1 and NCDHW, (N, s, d, h, w), otherwise: a
vector input `nn_input IN,n` is (N, 1, 1, n) and an fc output of n values (N, n, 1, 1).

Each layer type exports itself (its class's `export_onnx(g, step)`, in its layer file, with
the helpers of Graph below); a layer type without it cannot be exported. Image-shaped layers
reuse the layer's own geometry (the sources tables of crop and patch layers, resize's
per-axis weights, the boundary conditions' coordinate rule), so the exported model reads the
input exactly as the engine does; what a convolution reads outside its input becomes an
explicit Gather of the input's columns, rows and slices, which handles the four boundary
conditions, any dilation and the border shrink alike. normalize is its inference-time affine
map (running statistics).
"""

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnpipe.errors import UserError

OPSET = 17


def dims(size):
    """The per-sample dimensions (s, d, h, w) of a module of size (w, h, d, s)."""
    w, h, d, s = size
    return [s, d, h, w]


def outside_dims(size):
    """The model's input/output dimensions: (s, h, w) when the depth is 1, else (s, d, h, w)."""
    w, h, d, s = size
    return [s, h, w] if d == 1 else [s, d, h, w]


class Graph:
    """The nodes and constant tensors of the model under construction, and the operations
    layers export themselves with."""

    X_AXIS, Y_AXIS, Z_AXIS, CHANNEL_AXIS = 4, 3, 2, 1
    AXES = (X_AXIS, Y_AXIS, Z_AXIS, CHANNEL_AXIS)  # in the order of a size (w, h, d, s)

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
        if (indices < 0).any():  # a zero slot after the last entry
            pads = np.zeros(2 * rank, dtype=np.int64)
            pads[rank + axis] = 1
            x = self.node("Pad", [x, self.constant(pads, f"{hint}_pads", np.int64)], f"{hint}_padded")
            indices = np.where(indices < 0, length, indices)
        return self.node("Gather", [x, self.constant(indices, f"{hint}_indices", np.int64)], hint, axis=axis)

    def linear_axis(self, x, axis, matrix, hint):
        """Each line of x along `axis` replaced by matrix @ line."""
        if matrix.shape[0] == matrix.shape[1] and np.array_equal(matrix, np.eye(matrix.shape[0])):
            return x
        if axis == self.X_AXIS:
            return self.node("MatMul", [x, self.constant(matrix.T, f"{hint}_matrix")], hint)
        order = list(range(5))
        order[axis], order[self.X_AXIS] = self.X_AXIS, axis  # a swap: its own inverse
        moved = self.node("Transpose", [x], f"{hint}_moved", perm=order)
        mixed = self.node("MatMul", [moved, self.constant(matrix.T, f"{hint}_matrix")], f"{hint}_mixed")
        return self.node("Transpose", [mixed], hint, perm=order)

    def gathered(self, step, table):
        """A layer whose every output value is an input value (or zero), by the layer's own
        table: one Gather over each sample's values."""
        flat = self.flat(step.inputs[0], f"{step.name}_flat")
        moved = self.take(flat, 1, table, int(np.prod(step.input_sizes[0])), f"{step.name}_gather", rank=2)
        return self.to_5d(moved, step.size, step.name)


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


def build(network, target, weights):
    """The ONNX model computing module `target` of `network`; `weights` maps each parameter
    module to its image. Raises UserError naming the first layer that cannot be exported."""
    modules = [network.modules[name] for name in network.ancestors(target)]
    for module in modules:
        if module.layer.inputs and not hasattr(module.layer, "export_onnx"):
            raise UserError(
                f"layer '{module.name}' ({module.layer.kind}) cannot be exported to ONNX"
                " (losses are for training: export what they compare)"
            )
    rows = iter(network.plan(target).ops)  # one row per module that computes, in this order
    g, tensors, inputs = Graph(), {}, []
    # the model's inputs and output carry the modules' names
    g.used.update([target] + [m.name for m in modules if m.layer.inputs == 0])
    for module in modules:
        layer = module.layer
        if layer.inputs == 0:
            inputs.append(
                helper.make_tensor_value_info(
                    module.name, TensorProto.FLOAT, ["N"] + outside_dims(module.size)
                )
            )
            tensors[module.name] = g.to_5d(module.name, module.size, f"{module.name}_5d")
            continue
        input_sizes = [network.modules[i].size for i in module.inputs]
        step = Step(
            module.name,
            layer,
            module.size,
            [tensors[i] for i in module.inputs],
            input_sizes,
            weights.get(module.name),
            None if layer.alias else next(rows),
        )
        tensors[module.name] = layer.export_onnx(g, step)
    size = network.modules[target].size
    g.nodes.append(
        helper.make_node(
            "Reshape",
            [tensors[target], g.constant([-1] + outside_dims(size), "output_shape", np.int64)],
            [target],
        )
    )
    output = helper.make_tensor_value_info(target, TensorProto.FLOAT, ["N"] + outside_dims(size))
    graph = helper.make_graph(g.nodes, network.name, inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnpipe")
    model.ir_version = 8  # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(model, full_check=True)
    return model

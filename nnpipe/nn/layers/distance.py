"""Distance between two inputs of the same size, one value per sample: metric 0 is the
squared L2 norm sum((a - b)^2), metric p > 0 the Lp norm (sum |a - b|^p)^(1/p).

The backward pass is the chain rule through that value (nn_lib's ignores the gradient coming
from above, and misspells the metric it tests). Where the norm's derivative is undefined
(a = b, or a zero difference with p < 1) it uses 0."""

import numba
import numpy as np

from nnpipe.nn.building import IN0_NAME, IN1_NAME, IN_NAME, OUT_NAME, add, network_command
from nnpipe.nn.layers import IN0, IN0_LEN, IN1, OUT, Layer, same_sizes
from nnpipe.registry import Float, Int, LayerName


class Distance(Layer):
    kind = "distance"
    inputs = 2

    def build(self, input_sizes):
        same_sizes(self.kind, input_sizes)
        return (1, 1, 1, 1)

    def real(self, input_sizes):
        return self.options["metric"]

    def properties(self):
        metric = self.options["metric"]
        return f"metric={'squared-L2 norm' if metric == 0 else f'L{metric}'}"

    def export_onnx(self, g, step):
        name, metric = step.name, step.options["metric"]
        difference = g.flat(g.node("Sub", step.inputs, f"{name}_difference"), f"{name}_flat")
        axes = g.constant([1], f"{name}_axes", np.int64)
        if metric == 0:
            total = g.node(
                "ReduceSum", [g.node("Mul", [difference, difference], f"{name}_squares"), axes], f"{name}_sum"
            )
        else:
            powered = g.node(
                "Pow",
                [g.node("Abs", [difference], f"{name}_abs"), g.constant(metric, f"{name}_p")],
                f"{name}_powered",
            )
            total = g.node(
                "Pow",
                [
                    g.node("ReduceSum", [powered, axes], f"{name}_sum"),
                    g.constant(1 / metric, f"{name}_inverse_p"),
                ],
                f"{name}_norm",
            )
        return g.to_5d(total, step.size, name)


@network_command(
    "nn_distance",
    OUT_NAME,
    IN0_NAME,
    IN1_NAME,
    Float("metric", 0, low=0, help="0 squared L2 norm, p > 0 the Lp norm"),
)
def nn_distance(ctx, selection, out, first, second, metric):
    """Add a layer computing the distance between two inputs of the same size (one value)."""
    add(ctx, out, Distance(metric=metric), [first, second])


@network_command(
    "nn_distance",
    OUT_NAME,
    IN_NAME,
    LayerName("in1", help="second input ('.' = previous layer)"),
    Int("metric", 2, low=0, help="0 squared L2 norm, p > 0 the Lp norm"),
    api="3.6",
)
def nn_distance_36(ctx, selection, out, first, second, metric):
    """Add a layer computing the distance between two inputs of the same size (one value)."""
    add(ctx, out, Distance(metric=metric), [first, second])


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, width):
    metric = real
    out, n = op[OUT] * width, op[IN0_LEN]
    acts[out : out + width] = 0
    for k in range(n):
        a, b = (op[IN0] + k) * width, (op[IN1] + k) * width
        for c in range(width):
            d = acts[a + c] - acts[b + c]
            acts[out + c] += d * d if metric == 0 else abs(d) ** metric
    if metric > 0:
        for c in range(width):
            acts[out + c] = acts[out + c] ** (1 / metric)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def backward(op, real, acts, grad_acts, width):
    metric = real
    out, n = op[OUT] * width, op[IN0_LEN]
    for k in range(n):
        a, b = (op[IN0] + k) * width, (op[IN1] + k) * width
        for c in range(width):
            d, norm, g = acts[a + c] - acts[b + c], acts[out + c], grad_acts[out + c]
            if metric == 0:
                g *= 2 * d
            elif d == 0 or norm == 0:
                g = 0
            else:
                g *= (abs(d) / norm) ** (metric - 1) * (1 if d > 0 else -1)
            grad_acts[a + c] += g
            grad_acts[b + c] -= g

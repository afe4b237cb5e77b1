"""Distance between two inputs of the same size, one value per sample: metric 0 is the
squared L2 norm sum((a - b)^2), metric p > 0 the Lp norm (sum |a - b|^p)^(1/p).

The backward pass is the chain rule through that value (nn_lib's ignores the gradient coming
from above, and misspells the metric it tests). Where the norm's derivative is undefined
(a = b, or a zero difference with p < 1) it uses 0."""

import numba

from nnpipe.nn.layers import IN0, IN0_LEN, IN1, OUT, Layer, same_sizes


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


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def forward(op, real, acts, width):
    metric = real
    out, n = op[OUT] * width, op[IN0_LEN]
    acts[out:out + width] = 0
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

"""Cross-check: bench_conv.py's LeNet-like net gives the same numbers in nnpipe and PyTorch.

PyTorch starts from nnpipe's initial weights; both run the forward pass on a few samples, then
5 full-batch Adam steps (nn_step). Prints the largest relative difference of every layer's
output, of the loss at each step and of the final weights, and exits 1 when one exceeds
1e-5 (float32 rounding is ~1e-7). Needs PyTorch (pip install torch==2.13.0).

--write FILE stores the samples, the initial weights and PyTorch's numbers in FILE: that is how
tests/data/crosscheck_conv.npz was made, so that tests/test_crosscheck_conv.py checks nnpipe
against PyTorch without PyTorch installed.

    python scripts/crosscheck_conv.py [--write tests/data/crosscheck_conv.npz]
"""

import argparse
import sys

import numpy as np
from bench_conv import dataset, nnpipe_network, torch_network

SAMPLES, STEPS, TOLERANCE = 4, 5, 1e-5
# nnpipe weight image -> index of the PyTorch module; nn_lib's convolution is a true
# convolution, PyTorch's a correlation: kernels are flipped on both axes between the two
WEIGHTS = {"C1_conv2d": 0, "C2_conv2d": 3, "OUT_fc": 7}
OUTPUTS = {"C1": 1, "P1": 2, "C2": 4, "P2": 5, "OUT": 7}
INSTALL_HINT = (
    "crosscheck_conv.py compares with PyTorch, which is not installed: pip install"
    " torch==2.13.0 (tests/test_crosscheck_conv.py checks nnpipe against PyTorch's"
    " stored numbers without it)"
)


def starting_point():
    """The samples, their classes and nnpipe's initial weights, by weight image name."""
    pictures, labels = (part[:SAMPLES] for part in dataset())
    ctx = nnpipe_network(pictures, labels)
    return pictures, labels, {name: ctx.workspace.images.get(name).copy() for name in WEIGHTS}


def nnpipe_results(pictures, labels, weights):
    """Every layer's output (in PyTorch's layout), the loss at each step, the final weights."""
    ctx = nnpipe_network(pictures, labels)
    for name, image in weights.items():
        ctx.workspace.images.set(name, image)
    results = {}
    for name in OUTPUTS:
        ctx.run_items(["nn_eval[samples]", name])
        image = ctx.workspace.images[len(ctx.workspace.images) - 1]
        # nn_eval stacks the samples along z: (channels, samples, height, width)
        results[f"output_{name}"] = image.reshape(image.shape[0], len(pictures), *image.shape[2:]).swapaxes(
            0, 1
        )
    losses = []
    for _ in range(STEPS):
        ctx.run_items(["nn_step[samples,labels]"])
        losses.append(float(ctx.lookup("loss")))
    results["losses"] = np.array(losses)
    for name in WEIGHTS:
        results[f"final_{name}"] = ctx.workspace.images.get(name)
    return results


def to_torch(image, module):
    matrix = image[0, 0]
    weight = matrix[:, :-1].reshape(module.weight.shape)
    if weight.ndim == 4:
        weight = weight[:, :, ::-1, ::-1]
    return weight.copy(), matrix[:, -1].copy()


def from_torch(module):
    weight = module.weight.detach().numpy()
    if weight.ndim == 4:
        weight = weight[:, :, ::-1, ::-1]
    bias = module.bias.detach().numpy()
    return np.hstack([weight.reshape(len(bias), -1), bias[:, None]])[None, None]


def torch_results(pictures, labels, weights):
    """What nnpipe_results computes, computed by PyTorch from the same weights."""
    import torch

    model = torch_network()
    with torch.no_grad():
        for name, index in WEIGHTS.items():
            weight, bias = to_torch(weights[name], model[index])
            model[index].weight.copy_(torch.from_numpy(weight))
            model[index].bias.copy_(torch.from_numpy(bias))
    data, targets = torch.from_numpy(pictures[:, None]), torch.from_numpy(labels)
    results = {}
    with torch.no_grad():
        output = data
        for index, module in enumerate(model):
            output = module(output)
            for name in (name for name, at in OUTPUTS.items() if at == index):
                results[f"output_{name}"] = output.numpy().reshape(len(pictures), -1, *output.shape[2:])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    results["losses"] = np.array(losses)
    for name, index in WEIGHTS.items():
        results[f"final_{name}"] = from_torch(model[index])
    return results


def differences(ours, theirs):
    """The largest relative difference of each result (relative to PyTorch's largest value)."""
    result = {}
    for what, reference in theirs.items():
        reference = np.asarray(reference, np.float64)
        mine = np.asarray(ours[what], np.float64).reshape(reference.shape)
        result[what] = float(np.abs(mine - reference).max() / np.abs(reference).max())
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="FILE", help="store PyTorch's numbers in FILE (.npz)")
    args = parser.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(2)
    pictures, labels, weights = starting_point()
    theirs = torch_results(pictures, labels, weights)
    if args.write:
        np.savez_compressed(
            args.write,
            pictures=pictures,
            labels=labels,
            **theirs,
            **{f"initial_{name}": image for name, image in weights.items()},
        )
    found = differences(nnpipe_results(pictures, labels, weights), theirs)
    for what, difference in found.items():
        print(f"{what:22s} relative difference {difference:.1e}")
    worst = max(found.values())
    print(f"{'agree' if worst <= TOLERANCE else 'DISAGREE'}: worst {worst:.1e} (tolerance {TOLERANCE:g})")
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()

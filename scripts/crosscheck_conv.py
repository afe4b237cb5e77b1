"""Cross-check: bench_conv.py's LeNet-like net gives the same numbers in nnpipe and PyTorch.

PyTorch starts from nnpipe's initial weights; both run the forward pass on 16 samples, then
5 full-batch Adam steps (nn_step). Prints the largest relative difference of every layer's
output, of the loss at each step and of the final weights, and exits 1 when one exceeds
1e-5 (float32 rounding is ~1e-7). Needs PyTorch (pip install torch==2.13.0).

    python scripts/crosscheck_conv.py
"""

import sys

import numpy as np
import torch

from bench_conv import dataset, nnpipe_network, torch_network

SAMPLES, STEPS, TOLERANCE = 16, 5, 1e-5
# nnpipe weight image -> index of the PyTorch module; nn_lib's convolution is a true
# convolution, PyTorch's a correlation: kernels are flipped on both axes between the two
WEIGHTS = {"C1_conv2d": 0, "C2_conv2d": 3, "OUT_fc": 7}
OUTPUTS = {"C1": 1, "P1": 2, "C2": 4, "P2": 5, "OUT": 7}


def to_torch(image, module):
    matrix = image[0, 0]
    weight = matrix[:, :-1].reshape(module.weight.shape)
    if weight.ndim == 4:
        weight = weight[:, :, ::-1, ::-1]
    return torch.from_numpy(weight.copy()), torch.from_numpy(matrix[:, -1].copy())


def relative(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    return float(np.abs(np.asarray(ours, np.float64) - theirs).max() / np.abs(theirs).max())


def main():
    pictures, labels = (part[:SAMPLES] for part in dataset())
    ctx = nnpipe_network(pictures, labels)
    model = torch_network()
    with torch.no_grad():
        for name, index in WEIGHTS.items():
            weight, bias = to_torch(ctx.images.get(name), model[index])
            model[index].weight.copy_(weight)
            model[index].bias.copy_(bias)
    data, targets = torch.from_numpy(pictures[:, None]), torch.from_numpy(labels)
    differences = {}

    with torch.no_grad():
        activations = [data]
        for module in model:
            activations.append(module(activations[-1]))
    for name, index in OUTPUTS.items():
        ctx.run_items(["nn_eval[samples]", name])
        theirs = activations[index + 1].numpy()
        ours = ctx.images[len(ctx.images) - 1].reshape(-1, SAMPLES, *theirs.shape[2:]).swapaxes(0, 1)
        differences[f"output {name}"] = relative(ours.reshape(theirs.shape), theirs)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(1, STEPS + 1):
        ctx.run_items(["nn_step[samples,labels]"])
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data), targets)
        loss.backward()
        optimizer.step()
        differences[f"loss at step {step}"] = relative(float(ctx.variables()["loss"]), loss.item())
    for name, index in WEIGHTS.items():
        weight, bias = to_torch(ctx.images.get(name), model[index])
        differences[f"final {name}"] = max(relative(weight, model[index].weight.detach()),
                                           relative(bias, model[index].bias.detach()))

    for what, difference in differences.items():
        print(f"{what:22s} relative difference {difference:.1e}")
    worst = max(differences.values())
    print(f"{'agree' if worst <= TOLERANCE else 'DISAGREE'}: worst {worst:.1e} (tolerance {TOLERANCE:g})")
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()

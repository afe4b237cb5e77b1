"""Benchmark: a LeNet-like classifier trained in nnpipe and, when installed, in PyTorch (CPU).

Both train the same architecture on the same 28x28 one-channel samples: conv 8@5x5 (valid)
and ReLU, maxpool 2, conv 16@3x3 (valid) and ReLU, maxpool 2, fully connected 400->10,
softmax cross-entropy, Adam 1e-3, random mini-batches of 64. The samples are random pictures
of 10 classes (a bright square at a class-dependent place, with noise): speed does not
depend on the data. Prints it/s for both and the ratio nnpipe/PyTorch.

    python scripts/bench_conv.py [--quick]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
THREADS = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))
BATCH, CLASSES, SIZE, COUNT = 64, 10, 28, 4096
# border_shrink 2 (5x5) and 1 (3x3) make nn_lib's convolutions 'valid', as PyTorch's default
NET = ("nn_init nn_input IN,28,28,1,1 nn_conv2dnl C1,IN,8,5,1,1,2,dirichlet,relu nn_maxpool2d P1"
       " nn_conv2dnl C2,P1,16,3,1,1,1,dirichlet,relu nn_maxpool2d P2 nn_fc OUT,P2,10"
       " nn_loss_softmax_crossentropy LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam")


def dataset():
    """(COUNT, 28, 28) pictures and their (COUNT,) classes."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, COUNT)
    pictures = rng.normal(0, 0.2, (COUNT, SIZE, SIZE)).astype(np.float32)
    for picture, label in zip(pictures, labels):
        x, y = 2 + 5 * (label % 5), 4 + 12 * (label // 5)
        picture[y:y + 8, x:x + 5] += 1
    return pictures, labels


def nnpipe_network(pictures, labels):
    """An interpreter holding NET and the images `samples` (28,28,M,1) and `labels` (1,1,M,10)."""
    from nnpipe.cli import load_all  # noqa: F401  (fills the command registry)
    from nnpipe.lang.interpreter import Interpreter

    ctx = Interpreter(seed=0, quiet=True)
    ctx.images.append(pictures[None], "samples")
    ctx.images.append(np.eye(CLASSES, dtype=np.float32)[labels].T[:, :, None, None], "labels")
    ctx.run_items(NET.split())
    return ctx


def torch_network():
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(400, CLASSES))


def nnpipe_rate(pictures, labels, iterations):
    ctx = nnpipe_network(pictures, labels)
    ctx.run_items(["nn_train[samples,labels]", f"5,{BATCH}"])       # compile, warm up
    start = time.perf_counter()
    ctx.run_items(["nn_train[samples,labels]", f"{iterations},{BATCH}"])
    return iterations / (time.perf_counter() - start), float(ctx.variables()["loss"])


def torch_rate(pictures, labels, iterations):
    import torch

    torch.manual_seed(0)
    model = torch_network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(pictures[:, None])
    targets = torch.from_numpy(labels)

    def step():
        rows = torch.randint(0, COUNT, (BATCH,))
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(data[rows]), targets[rows])
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        loss = step()
    return iterations / (time.perf_counter() - start), loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    iterations = 100 if args.quick else 600
    try:
        import torch
        torch.set_num_threads(THREADS)
        peer = f"PyTorch {torch.__version__}"
    except ImportError:
        torch = None
        peer = None
    pictures, labels = dataset()
    print(f"LeNet-like net, batch {BATCH}, {THREADS} threads, peer: "
          f"{peer or 'none (pip install torch==2.13.0)'}")
    ours, our_loss = nnpipe_rate(pictures, labels, iterations)
    print(f"nnpipe   {ours:8.1f} it/s  (last batch loss {our_loss:.3f})")
    if torch:
        theirs, their_loss = torch_rate(pictures, labels, iterations)
        print(f"PyTorch  {theirs:8.1f} it/s  (last batch loss {their_loss:.3f})")
        print(f"ratio nnpipe/PyTorch: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()

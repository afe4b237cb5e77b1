"""Benchmark: a LeNet-like classifier trained in nnpipe and its peers (PyTorch eager, JAX jit,
JAX lax.scan) when installed, each measurement in a process of its own, median of repeats.

All train the same architecture on the same 28x28 one-channel samples: conv 8@5x5 (valid)
and ReLU, maxpool 2, conv 16@3x3 (valid) and ReLU, maxpool 2, fully connected 400->10,
softmax cross-entropy, Adam 1e-3, random mini-batches of 64. The samples are random pictures
of 10 classes (a bright square at a class-dependent place, with noise): speed does not
depend on the data. Also prints the time a fresh process takes to reach its first iteration,
from an empty compile cache and a warm one.

    python scripts/bench_conv.py [--quick] [--repeats 3]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import bench_common as common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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


RATES = [("nnpipe", "nnpipe"), ("PyTorch eager", "torch"), ("JAX jit", "jax-jit"),
         ("JAX lax.scan", "jax-scan")]


def nnpipe_rate(iterations):
    ctx = nnpipe_network(*dataset())
    ctx.run_items(["nn_train[samples,labels]", f"5,{BATCH}"])       # compile (or load), warm up
    return iterations / common.seconds(lambda: ctx.run_items(["nn_train[samples,labels]",
                                                               f"{iterations},{BATCH}"]))


def first_iteration():
    nnpipe_network(*dataset()).run_items(["nn_train[samples,labels]", f"1,{BATCH}"])
    return 0


def torch_rate(iterations):
    import torch

    torch.set_num_threads(common.THREADS)
    torch.manual_seed(0)
    pictures, labels = dataset()
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
    return common.timed_steps(step, iterations)


def jax_rate(iterations, scan):
    import jax
    import jax.numpy as jnp
    import optax

    pictures, labels = dataset()
    # a row: the picture's 784 values, then its class
    data = np.hstack([pictures.reshape(COUNT, -1), labels[:, None].astype(np.float32)])
    keys = jax.random.split(jax.random.PRNGKey(0), 3)

    def he(key, shape, fan_in):
        return jax.random.normal(key, shape) * np.sqrt(2 / fan_in)
    params = [(he(keys[0], (8, 1, 5, 5), 25), jnp.zeros(8)), (he(keys[1], (16, 8, 3, 3), 72), jnp.zeros(16)),
              (he(keys[2], (400, CLASSES), 400), jnp.zeros(CLASSES))]

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def conv(x, weight, bias):
        y = jax.lax.conv_general_dilated(x, weight, (1, 1), "VALID")
        return jax.nn.relu(y + bias[None, :, None, None])

    def loss(params, rows):
        x = rows[:, :-1].reshape(-1, 1, SIZE, SIZE)
        x = pool(conv(x, *params[0]))
        x = pool(conv(x, *params[1]))
        scores = x.reshape(x.shape[0], -1) @ params[2][0] + params[2][1]
        return optax.softmax_cross_entropy_with_integer_labels(scores, rows[:, -1].astype(jnp.int32)).mean()
    return common.jax_rate(loss, params, data, BATCH, iterations, scan)


def worker(entry, _batch, iterations):
    if entry == "nnpipe":
        return nnpipe_rate(iterations)
    if entry == "torch":
        return torch_rate(iterations)
    if entry.startswith("jax-"):
        return jax_rate(iterations, entry == "jax-scan")
    return first_iteration()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--repeats", type=int, default=3, help="processes per measurement")
    args = parser.parse_args()
    iterations = 100 if args.quick else 600
    print(f"LeNet-like net, batch {BATCH}, {common.THREADS} threads, {args.repeats} processes per line"
          f" (median ±spread); peers: {common.peers_line()}")
    for label, entry in RATES:
        if common.available(entry):
            rates = common.measure(__file__, entry, BATCH, iterations, args.repeats)
            print(f"{label:14s} {common.summary(rates)}", flush=True)
    cold, warm = common.cold_and_warm_start([sys.executable, __file__, "--worker", "first-iteration", "0", "0"],
                                            ROOT)
    print(f"cold start, LeNet: fresh process to its first iteration {cold:.1f} s with an empty"
          f" compile cache, {warm:.2f} s with a warm one")


if __name__ == "__main__":
    arguments = common.worker_arguments()
    if arguments:
        print(worker(*arguments))
    else:
        main()

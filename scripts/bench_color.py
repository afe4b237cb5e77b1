"""Benchmark: the color-mapping tutorial net in nnpipe and, when installed, in PyTorch (CPU).

Both train the same architecture on the same [x,y,R,G,B] samples of the astronaut image:
Linear 2->64, LeakyReLU 0.05, six residual blocks x + Linear(x) then LeakyReLU, Linear 64->3,
MSE, Adam 1e-3; random mini-batches drawn from the 65,536 samples. Prints it/s for each batch
size and the ratio nnpipe/PyTorch, the time to the first iteration of a fresh process with a
cold and a warm compile cache, and the time to run the net on all 65,536 pixels.

    python scripts/bench_color.py [--quick]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGE = ROOT / "examples" / "data" / "astronaut256.png"
NET = ("nn_init nn_input IN,2 nn_fcnl L1,IN,64 "
       + " ".join(f"nn_resfcnl L{k}" for k in range(2, 8))
       + " nn_fc OUT,.,3 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam")
THREADS = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))


def nnpipe_setup():
    from nnpipe.cli import load_all  # noqa: F401  (fills the command registry)
    from nnpipe.lang.interpreter import Interpreter

    ctx = Interpreter(seed=0, quiet=True)
    ctx.run_items(["input", str(IMAGE), "nn_samples"] + NET.split())
    return ctx


def nnpipe_rate(ctx, batch, iterations):
    ctx.run_items(["nn_train[0]", f"2,{batch}"])  # warm up
    start = time.perf_counter()
    ctx.run_items(["nn_train[0]", f"{iterations},{batch}"])
    return iterations / (time.perf_counter() - start)


def nnpipe_inference(ctx):
    ctx.run_items(["input", str(IMAGE), "nn_coords", "nn_eval", "rm[-2,-1]"])
    timings = []
    for _ in range(5):
        ctx.run_items(["input", str(IMAGE), "nn_coords"])
        start = time.perf_counter()
        ctx.run_items(["nn_eval"])
        timings.append(time.perf_counter() - start)
        ctx.run_items(["rm[-2,-1]"])
    return min(timings)


def torch_model():
    import torch

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 64)

        def forward(self, x):
            return torch.nn.functional.leaky_relu(x + self.fc(x), 0.05)

    return torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.LeakyReLU(0.05),
                               *[Residual() for _ in range(6)], torch.nn.Linear(64, 3))


def torch_rate(samples, batch, iterations):
    import torch

    torch.manual_seed(0)
    model = torch_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(samples)

    def step():
        rows = data[torch.randint(0, data.shape[0], (batch,))]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(rows[:, :2]), rows[:, 2:])
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return iterations / (time.perf_counter() - start)


def torch_inference(samples):
    import torch

    model = torch_model()
    coords = torch.from_numpy(np.ascontiguousarray(samples[:, :2]))
    timings = []
    with torch.no_grad():
        for _ in range(5):
            start = time.perf_counter()
            model(coords)
            timings.append(time.perf_counter() - start)
    return min(timings)


def first_iteration(cache_dir):
    """Seconds for a fresh `nnpipe` process to build the net and finish one iteration."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    command = [sys.executable, "-m", "nnpipe", "--quiet", "input", str(IMAGE), "nn_samples",
               *NET.split(), "nn_train", "1"]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    plan = [(32, int(3000 * scale)), (256, int(800 * scale)), (1024, int(250 * scale))]
    try:
        import torch
        torch.set_num_threads(THREADS)
        peer = f"PyTorch {torch.__version__}"
    except ImportError:
        torch = None
        peer = None

    ctx = nnpipe_setup()
    samples = np.ascontiguousarray(ctx.images[0].reshape(5, -1).T)
    print(f"color-mapping net, {THREADS} threads, peer: {peer or 'none (pip install torch==2.13.0)'}")
    print(f"{'batch':>6} {'nnpipe it/s':>12} {'PyTorch it/s':>13} {'ratio':>7}")
    for batch, iterations in plan:
        ours = nnpipe_rate(ctx, batch, iterations)
        theirs = torch_rate(samples, batch, iterations) if torch else None
        ratio = f"{ours / theirs:6.2f}x" if theirs else "    -"
        print(f"{batch:>6} {ours:>12.0f} {theirs or float('nan'):>13.0f} {ratio:>7}")
    ours = nnpipe_inference(ctx)
    theirs = torch_inference(samples) if torch else None
    line = f"inference on 65,536 pixels: nnpipe {ours:.3f} s"
    if theirs:
        line += f", PyTorch {theirs:.3f} s, speed ratio nnpipe/PyTorch {theirs / ours:.2f}x"
    print(line)
    with tempfile.TemporaryDirectory() as cache:
        cold = first_iteration(cache)
        warm = first_iteration(cache)
    print(f"fresh process to first iteration: cold cache {cold:.2f} s, warm cache {warm:.2f} s")


if __name__ == "__main__":
    main()

"""Benchmark: the color-mapping tutorial net in nnpipe and its peers (PyTorch eager, JAX jit,
JAX lax.scan) when installed, each measurement in a process of its own, median of repeats.

The tutorial net (examples/color_mapping.nnp): nn_fcnnl 2->64 (fc, normalize, LeakyReLU 0.05),
six residual blocks x + Linear(x) then LeakyReLU, Linear 64->3, MSE, Adam 1e-3, on random
mini-batches of the 65,536 [x,y,R,G,B] samples of the astronaut image. nnpipe trains it as
the tutorial defines it; the peers have no nn_lib normalize layer, so all of them, nnpipe
included, also train the normalize-free variant (nn_fcnl: fc then LeakyReLU), the fair
comparison. Also prints the time to run the net on all 65,536 pixels and the time the
`nnpipe` command line of the tutorial, up to its first iteration, takes in a fresh process,
from an empty compile cache and a warm one.

    python scripts/bench_color.py [--quick] [--repeats 3]
"""

import argparse
import statistics
import sys
from pathlib import Path

import bench_common as common
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGE = ROOT / "examples" / "data" / "astronaut256.png"
BLOCKS = " ".join(f"nn_resfcnl L{k}" for k in range(2, 8))
TAIL = " nn_fc OUT,.,3 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam"
NETS = {
    "tutorial": f"nn_init nn_input IN,2 nn_fcnnl L1,IN,64 {BLOCKS}{TAIL}",
    "plain": f"nn_init nn_input IN,2 nn_fcnl L1,IN,64 {BLOCKS}{TAIL}",
}
# (label, worker entry): what is trained, and by whom
RATES = [
    ("nnpipe, tutorial net (normalize)", "nnpipe-tutorial"),
    ("nnpipe, normalize-free", "nnpipe-plain"),
    ("PyTorch eager, normalize-free", "torch"),
    ("JAX jit, normalize-free", "jax-jit"),
    ("JAX lax.scan, normalize-free", "jax-scan"),
]
INFERENCE = [("nnpipe, tutorial net", "infer-nnpipe"), ("PyTorch, normalize-free", "infer-torch")]
# the tutorial up to its first iteration, as a user types it
FIRST_ITERATION = [
    sys.executable,
    "-m",
    "nnpipe",
    "-q",
    "input",
    str(IMAGE),
    "nn_samples",
    *NETS["tutorial"].split(),
    "nn_train[0]",
    "1",
]
BATCHES = {32: 3000, 256: 800, 1024: 250}  # batch: iterations timed


def nnpipe_setup(net):
    from nnpipe.cli import load_all  # noqa: F401  (fills the command registry)
    from nnpipe.lang.interpreter import Interpreter

    ctx = Interpreter(load_all(), seed=0, quiet=True)
    ctx.run_items(["input", str(IMAGE), "nn_samples"] + NETS[net].split())
    return ctx


def samples():
    """The (65536, 5) samples [x, y, R, G, B] as nnpipe's nn_samples makes them."""
    return np.ascontiguousarray(nnpipe_setup("plain").images[0].reshape(5, -1).T)


def nnpipe_rate(net, batch, iterations):
    ctx = nnpipe_setup(net)
    ctx.run_items(["nn_train[0]", f"10,{batch}"])  # compile (or load), warm up
    return iterations / common.seconds(lambda: ctx.run_items(["nn_train[0]", f"{iterations},{batch}"]))


def nnpipe_inference():
    ctx = nnpipe_setup("tutorial")
    ctx.run_items(["input", str(IMAGE), "nn_coords", "nn_eval", "rm[-2,-1]"])
    timings = []
    for _ in range(5):
        ctx.run_items(["input", str(IMAGE), "nn_coords"])
        timings.append(common.seconds(lambda: ctx.run_items(["nn_eval"])))
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

    torch.set_num_threads(common.THREADS)
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(2, 64),
        torch.nn.LeakyReLU(0.05),
        *[Residual() for _ in range(6)],
        torch.nn.Linear(64, 3),
    )


def torch_rate(batch, iterations):
    import torch  # first: its OpenMP reads the environment as it loads, before samples()
    # imports nnpipe, which sets OMP_WAIT_POLICY for its own threads

    model = torch_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(samples())

    def step():
        rows = data[torch.randint(0, data.shape[0], (batch,))]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(rows[:, :2]), rows[:, 2:])
        loss.backward()
        optimizer.step()

    return common.timed_steps(step, iterations)


def torch_inference():
    import torch

    model = torch_model()
    coords = torch.from_numpy(np.ascontiguousarray(samples()[:, :2]))
    with torch.no_grad():
        model(coords)
        return min(common.seconds(lambda: model(coords)) for _ in range(5))


def jax_rate(batch, iterations, scan):
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    sizes = [(2, 64)] + [(64, 64)] * 6 + [(64, 3)]
    params = [
        (jax.random.normal(key, size) * jnp.sqrt(2 / size[0]), jnp.zeros(size[1]))
        for key, size in zip(keys, sizes)
    ]

    def loss(params, rows):
        x = jax.nn.leaky_relu(rows[:, :2] @ params[0][0] + params[0][1], 0.05)
        for weight, bias in params[1:-1]:
            x = jax.nn.leaky_relu(x + x @ weight + bias, 0.05)
        weight, bias = params[-1]
        return jnp.mean((x @ weight + bias - rows[:, 2:]) ** 2)

    return common.jax_rate(loss, params, samples(), batch, iterations, scan)


def worker(entry, batch, iterations):
    if entry.startswith("nnpipe-"):
        return nnpipe_rate(entry.split("-")[1], batch, iterations)
    if entry == "torch":
        return torch_rate(batch, iterations)
    if entry.startswith("jax-"):
        return jax_rate(batch, iterations, entry == "jax-scan")
    return {"infer-nnpipe": nnpipe_inference, "infer-torch": torch_inference}[entry]()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--repeats", type=int, default=3, help="processes per measurement")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    print(
        f"color-mapping net, {common.THREADS} threads, {args.repeats} processes per line"
        f" (median ±spread); peers: {common.peers_line()}"
    )
    for batch, iterations in BATCHES.items():
        medians = {}
        for label, entry in RATES:
            if common.available(entry):
                rates = common.measure(__file__, entry, batch, int(iterations * scale), args.repeats)
                medians[entry] = statistics.median(rates)
                print(f"batch {batch:>4}  {label:34s} {common.summary(rates)}", flush=True)
        ratios = [
            f"{medians['nnpipe-plain'] / medians[peer]:.2f}x {name}"
            for peer, name in (("jax-scan", "JAX lax.scan"), ("jax-jit", "JAX jit"), ("torch", "PyTorch"))
            if peer in medians
        ]
        if ratios:
            print(f"batch {batch:>4}  nnpipe normalize-free vs peers: {', '.join(ratios)}", flush=True)
    for label, entry in INFERENCE:
        if common.available(entry):
            seconds = common.measure(__file__, entry, 0, 0, args.repeats)
            print(f"inference on 65,536 pixels  {label:26s} {common.summary(seconds, 's')}", flush=True)
    print(
        common.start_up_line(
            "tutorial net, nnpipe's command line", *common.cold_and_warm_start(FIRST_ITERATION, ROOT)
        ),
        flush=True,
    )


if __name__ == "__main__":
    arguments = common.worker_arguments()
    if arguments:
        print(worker(*arguments))
    else:
        main()

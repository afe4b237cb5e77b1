"""Benchmark: a LeNet and an image-to-image conv net, trained by nnpipe and its peers.

The peers are PyTorch eager, JAX jit and JAX lax.scan when installed; each measurement runs
in a process of its own, and the median of repeats is shown.

LeNet: all train the same architecture on the same 28x28 one-channel samples: conv 8@5x5
(valid) and ReLU, maxpool 2, conv 16@3x3 (valid) and ReLU, maxpool 2, fully connected
400->10, softmax cross-entropy, Adam 1e-3, random mini-batches of 64. The samples are random
pictures of 10 classes (a bright square at a class-dependent place, with noise): speed does
not depend on the data. Also prints the time a fresh process takes to reach its first
iteration, from an empty compile cache and a warm one.

Image-to-image conv net (convnet): four 3x3 convolutions with zero padding ('same' size:
nn_conv2d's border_shrink 0 and dirichlet boundary conditions, PyTorch's padding=1, JAX's
"SAME"), conv 1->16 and ReLU, conv 16->16 and ReLU, conv 16->16 and ReLU, conv 16->1
(linear), MSE against the target image, Adam 1e-3, on 64x64 one-channel images (a denoising
task: 256 random smooth images, the input the target plus noise), at batches 1 to 32, with
the nnpipe/PyTorch, nnpipe/JAX-scan and nnpipe/JAX-jit ratios of the medians for each batch.
All have 4,945 parameters (printed). On CPU, JAX's lax.scan is many times slower than its jit
for this net (with jax 0.10.2, about 10-20x at batches 8 and 32): XLA:CPU runs the
gradient's convolutions far slower inside a loop body (the forward ones are not affected;
NHWC layouts, the thunk runtime off and XNNPACK off do not help; compare
github.com/jax-ml/jax/issues/12868), so its scan is timed as one call of all the timed steps.

    python scripts/bench_conv.py [--quick] [--repeats 3] [--only lenet|convnet]
"""

import argparse
import statistics
import sys
from pathlib import Path

import bench_common as common
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH, CLASSES, SIZE, COUNT = 64, 10, 28, 4096
# border_shrink 2 (5x5) and 1 (3x3) make nn_lib's convolutions 'valid', as PyTorch's default
NET = (
    "nn_init nn_input IN,28,28,1,1 nn_conv2dnl C1,IN,8,5,1,1,2,dirichlet,relu nn_maxpool2d P1"
    " nn_conv2dnl C2,P1,16,3,1,1,1,dirichlet,relu nn_maxpool2d P2 nn_fc OUT,P2,10"
    " nn_loss_softmax_crossentropy LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam"
)
# the image-to-image conv net: border_shrink 0 and dirichlet (zeros outside) make 'same'
# convolutions, as PyTorch's padding=1 and JAX's "SAME"
CONV_SIZE, CONV_WIDTH, CONV_COUNT = 64, 16, 256
CONV_NET = (
    f"nn_init nn_input IN,{CONV_SIZE},{CONV_SIZE},1,1"
    f" nn_conv2dnl C1,IN,{CONV_WIDTH},3,1,1,0,dirichlet,relu"
    f" nn_conv2dnl C2,C1,{CONV_WIDTH},3,1,1,0,dirichlet,relu"
    f" nn_conv2dnl C3,C2,{CONV_WIDTH},3,1,1,0,dirichlet,relu"
    " nn_conv2d OUT,C3,1,3,1,1,0,dirichlet nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-3,adam"
)
# iterations timed per (worker entry, batch): about 2 s each on 2 cores (--quick: a fifth)
CONV_ITERATIONS = {
    "nnpipe": {1: 70, 2: 70, 4: 70, 8: 60, 32: 25},
    "torch": {1: 800, 2: 500, 4: 300, 8: 160, 32: 20},
    "jax-jit": {1: 250, 2: 200, 4: 150, 8: 120, 32: 25},
    "jax-scan": {1: 100, 2: 50, 4: 25, 8: 10, 32: 3},
}


def dataset():
    """(COUNT, 28, 28) pictures and their (COUNT,) classes."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, COUNT)
    pictures = rng.normal(0, 0.2, (COUNT, SIZE, SIZE)).astype(np.float32)
    for picture, label in zip(pictures, labels):
        x, y = 2 + 5 * (label % 5), 4 + 12 * (label // 5)
        picture[y : y + 8, x : x + 5] += 1
    return pictures, labels


def nnpipe_network(pictures, labels):
    """An interpreter holding NET and the images `samples` (28,28,M,1) and `labels` (1,1,M,10)."""
    from nnpipe.cli import load_all  # noqa: F401  (fills the command registry)
    from nnpipe.lang.interpreter import Interpreter

    ctx = Interpreter(load_all(), seed=0, quiet=True)
    ctx.workspace.images.append(pictures[None], "samples")
    ctx.workspace.images.append(np.eye(CLASSES, dtype=np.float32)[labels].T[:, :, None, None], "labels")
    ctx.run_items(NET.split())
    return ctx


def torch_network():
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, CLASSES),
    )


RATES = [
    ("nnpipe", "nnpipe"),
    ("PyTorch eager", "torch"),
    ("JAX jit", "jax-jit"),
    ("JAX lax.scan", "jax-scan"),
]


def nnpipe_rate(iterations):
    ctx = nnpipe_network(*dataset())
    ctx.run_items(["nn_train[samples,labels]", f"5,{BATCH}"])  # compile (or load), warm up
    return iterations / common.seconds(
        lambda: ctx.run_items(["nn_train[samples,labels]", f"{iterations},{BATCH}"])
    )


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

    params = [
        (he(keys[0], (8, 1, 5, 5), 25), jnp.zeros(8)),
        (he(keys[1], (16, 8, 3, 3), 72), jnp.zeros(16)),
        (he(keys[2], (400, CLASSES), 400), jnp.zeros(CLASSES)),
    ]

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


def conv_dataset():
    """(inputs, targets): CONV_COUNT random smooth (CONV_SIZE, CONV_SIZE) images of unit
    deviation, the targets, and the same with Gaussian noise, the inputs."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (CONV_COUNT, CONV_SIZE, CONV_SIZE))
    fy, fx = np.fft.fftfreq(CONV_SIZE)[:, None], np.fft.rfftfreq(CONV_SIZE)[None]
    lowpass = np.exp(-(fx**2 + fy**2) / (2 * 0.05**2))  # a Gaussian blur, sigma ~3 px
    targets = np.fft.irfft2(np.fft.rfft2(noise) * lowpass, s=(CONV_SIZE, CONV_SIZE))
    targets /= targets.std(axis=(1, 2), keepdims=True)
    inputs = targets + rng.normal(0, 0.3, targets.shape)
    return inputs.astype(np.float32), targets.astype(np.float32)


def conv_nnpipe_network():
    """An interpreter holding CONV_NET and the stacks `samples` and `truth`, images of size
    (CONV_SIZE, CONV_SIZE, CONV_COUNT, 1): one sample per depth slice."""
    from nnpipe.cli import load_all  # noqa: F401  (fills the command registry)
    from nnpipe.lang.interpreter import Interpreter

    inputs, targets = conv_dataset()
    ctx = Interpreter(load_all(), seed=0, quiet=True)
    ctx.workspace.images.append(inputs[None], "samples")
    ctx.workspace.images.append(targets[None], "truth")
    ctx.run_items(CONV_NET.split())
    return ctx


def conv_nnpipe_rate(batch, iterations):
    ctx = conv_nnpipe_network()
    ctx.run_items(["nn_train[samples,truth]", f"5,{batch}"])  # compile (or load), warm up
    return iterations / common.seconds(
        lambda: ctx.run_items(["nn_train[samples,truth]", f"{iterations},{batch}"])
    )


def conv_torch_network():
    import torch

    layers = []
    for channels_in, channels_out in [(1, CONV_WIDTH), (CONV_WIDTH, CONV_WIDTH), (CONV_WIDTH, CONV_WIDTH)]:
        layers += [torch.nn.Conv2d(channels_in, channels_out, 3, padding=1), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Conv2d(CONV_WIDTH, 1, 3, padding=1))


def conv_torch_rate(batch, iterations):
    import torch

    torch.set_num_threads(common.THREADS)
    torch.manual_seed(0)
    inputs, targets = (torch.from_numpy(images[:, None]) for images in conv_dataset())
    model = conv_torch_network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        rows = torch.randint(0, CONV_COUNT, (batch,))
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(inputs[rows]), targets[rows])
        loss.backward()
        optimizer.step()

    return common.timed_steps(step, iterations)


def conv_jax_parameters():
    """The conv net's (kernel, bias) pairs, kernels OIHW as PyTorch's."""
    import jax
    import jax.numpy as jnp

    shapes = [(CONV_WIDTH, 1), (CONV_WIDTH, CONV_WIDTH), (CONV_WIDTH, CONV_WIDTH), (1, CONV_WIDTH)]
    keys = jax.random.split(jax.random.PRNGKey(0), len(shapes))
    return [
        (jax.random.normal(key, (out, into, 3, 3)) * np.sqrt(2 / (9 * into)), jnp.zeros(out))
        for key, (out, into) in zip(keys, shapes)
    ]


def conv_jax_rate(batch, iterations, scan):
    import jax
    import jax.numpy as jnp

    # a row: channel 0 the input image, channel 1 its target
    data = np.stack(conv_dataset(), axis=1)

    def loss(params, rows):
        x = rows[:, :1]
        for k, (weight, bias) in enumerate(params):
            x = jax.lax.conv_general_dilated(x, weight, (1, 1), "SAME") + bias[None, :, None, None]
            if k < len(params) - 1:
                x = jax.nn.relu(x)
        return jnp.mean((x - rows[:, 1:]) ** 2)

    # the scan: one call of all the timed steps (at batch 32 a step takes about a second, see
    # the module's docstring)
    return common.jax_rate(loss, conv_jax_parameters(), data, batch, iterations, scan, scan_length=iterations)


def conv_parameter_counts():
    """{framework: trained parameters} of the conv net, for those installed."""
    counts = {"nnpipe": conv_nnpipe_network().network().size()}
    if common.available("torch"):
        counts["PyTorch"] = sum(p.numel() for p in conv_torch_network().parameters())
    if common.available("jax-jit"):
        counts["JAX"] = sum(int(np.prod(a.shape)) for layer in conv_jax_parameters() for a in layer)
    return counts


def worker(entry, batch, iterations):
    if entry.startswith("convnet-"):
        entry = entry[len("convnet-") :]
        if entry == "nnpipe":
            return conv_nnpipe_rate(batch, iterations)
        if entry == "torch":
            return conv_torch_rate(batch, iterations)
        return conv_jax_rate(batch, iterations, entry == "jax-scan")
    if entry == "nnpipe":
        return nnpipe_rate(iterations)
    if entry == "torch":
        return torch_rate(iterations)
    if entry.startswith("jax-"):
        return jax_rate(iterations, entry == "jax-scan")
    return first_iteration()


def lenet(args):
    iterations = 100 if args.quick else 600
    print(
        f"LeNet-like net, batch {BATCH}, {common.THREADS} threads, {args.repeats} processes per line"
        f" (median ±spread); peers: {common.peers_line()}"
    )
    for label, entry in RATES:
        if common.available(entry):
            rates = common.measure(__file__, entry, BATCH, iterations, args.repeats)
            print(f"{label:14s} {common.summary(rates)}", flush=True)
    print(
        common.start_up_line(
            "LeNet",
            *common.cold_and_warm_start(
                [sys.executable, __file__, "--worker", "first-iteration", "0", "0"], ROOT
            ),
        ),
        flush=True,
    )


def ratio(numerator, denominator):
    return f"{numerator / denominator:.2f}x" if numerator and denominator else "-"


def convnet(args):
    scale = 0.2 if args.quick else 1.0
    counts = conv_parameter_counts()
    print(
        f"image-to-image conv net (4 conv 3x3 'same', {CONV_WIDTH} channels, {CONV_SIZE}x{CONV_SIZE}x1,"
        f" MSE, Adam 1e-3), {common.THREADS} threads, {args.repeats} processes per line (median ±spread);"
        f" peers: {common.peers_line()}"
    )
    print(
        "parameters: "
        + ", ".join(f"{name} {count}" for name, count in counts.items())
        + ("" if len(set(counts.values())) == 1 else "  -- MISMATCH"),
        flush=True,
    )
    for batch in CONV_ITERATIONS["nnpipe"]:
        medians = {}
        for label, entry in RATES:
            if common.available(entry):
                iterations = max(1, int(CONV_ITERATIONS[entry][batch] * scale))
                rates = common.measure(__file__, f"convnet-{entry}", batch, iterations, args.repeats)
                medians[entry] = statistics.median(rates)
                print(f"batch {batch:>2}  {label:14s} {common.summary(rates)}", flush=True)
        ratios = [f"nnpipe/PyTorch {ratio(medians.get('nnpipe'), medians.get('torch'))}"]
        for label, entry in [("JAX scan", "jax-scan"), ("JAX jit", "jax-jit")]:
            if entry in medians:
                ratios.append(f"nnpipe/{label} {ratio(medians['nnpipe'], medians[entry])}")
        print(f"batch {batch:>2}  ratio          {', '.join(ratios)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--repeats", type=int, default=3, help="processes per measurement")
    parser.add_argument("--only", choices=["lenet", "convnet"], help="run one benchmark only (default: both)")
    args = parser.parse_args()
    if args.only in (None, "lenet"):
        lenet(args)
    if args.only in (None, "convnet"):
        convnet(args)


if __name__ == "__main__":
    arguments = common.worker_arguments()
    if arguments:
        print(worker(*arguments))
    else:
        main()

"""A G'MIC 3.6 network run forward by the real G'MIC 3.6.3 (the gmic package) and by nnpipe,
from the same weights and inputs: the differential tests of nn_lib's 3.6 API.

A network is given as the text of its layer commands (after `nn_init N`), its weights as images
named N_LAYER (made before the layers, which 3.6.3 keeps, as nnpipe does) and its inputs as
arrays in nnpipe's (s, d, h, w) layout; each side gives the values of the layers asked for, in
G'MIC's order (x fastest, then y, z, c: nnpipe's flattened layout)."""

import io

import gmic
import numpy as np

from nnpipe.commands import load_all
from nnpipe.lang.interpreter import Interpreter

NETWORK = "N"


def to_gmic(array):
    """An (s, d, h, w) array as a G'MIC image (gmic.Image takes [x, y, z, c])."""
    return gmic.Image(np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(3, 2, 1, 0)))


def from_gmic(image):
    return np.array(np.asarray(image).transpose(3, 2, 1, 0), dtype=np.float32)


def interpreter():
    return Interpreter(load_all(), seed=0, quiet=True, out=io.StringIO(), err=io.StringIO(), api="3.6")


def built(layers, weights=None):
    """An nnpipe interpreter that has built network N from `layers` (commands), the images of
    `weights` ({name: array}) put in the list first."""
    interp = interpreter()
    for name, array in (weights or {}).items():
        interp.workspace.images.append(np.asarray(array, dtype=np.float32), name)
    interp.run_source(f"nn_init {NETWORK} {layers}", "network.nnp")
    return interp


def random_weights(layers, seed=1, scale=0.5, statistics=True):
    """Weights for every parametric layer of `layers`: normal values times `scale` (a layer's
    inputs count: fc and conv weights divided by the square root of their fan-in); normalize
    rows (alpha, beta, mean, variance) near (1, 0, 0, 1), or with the variance -1 (no
    statistics yet) unless `statistics`."""
    interp = built(layers)
    network = interp.workspace.network()
    rng = np.random.default_rng(seed)
    weights = {}
    for module in network.parameter_modules():
        name = network.image_name(module.name)
        shape = interp.workspace.images.get(name).shape
        if module.layer.kind == "normalize":
            rows = np.column_stack(
                [
                    rng.uniform(0.5, 1.5, shape[2]),
                    rng.uniform(-0.5, 0.5, shape[2]),
                    rng.uniform(-0.3, 0.3, shape[2]),
                    rng.uniform(0.5, 2.0, shape[2]) if statistics else -np.ones(shape[2]),
                ]
            )
            weights[name] = rows.reshape(shape).astype(np.float32)
        else:
            fan_in = shape[3] - 1
            weights[name] = (rng.standard_normal(shape) * scale / np.sqrt(fan_in)).astype(np.float32)
    return weights


def gmic_forward(layers, weights, inputs, outputs, network=NETWORK, setup=None):
    """{layer: values} of the layers `outputs` after G'MIC 3.6.3 ran `network` forward on one
    sample (`inputs`: {input layer: array}); the network is N built from `layers` or what the
    commands `setup` build."""
    names = list(weights) + [f"input_{name}" for name in inputs]
    images = gmic.ImageList([to_gmic(array) for array in list(weights.values()) + list(inputs.values())])
    first = len(weights)
    feed = "".join(f"{name}=crop(#{first + k});" for k, name in enumerate(inputs))
    exported = "".join(f"set('out{k}',v2s({network}_{name},17));" for k, name in enumerate(outputs))
    script = (
        f"_vt100=0 {setup or f'nn_init {NETWORK} {layers}'} lib=${{-nn_lib}} "
        f'1,1,1,1,${{lib}}"{feed}"${{_{network}_forward}}"end({exported})" rm. '
        + " ".join(f"($out{k})" for k in range(len(outputs)))
    )
    gmic.Gmic().run(script, images, gmic.StringList(names))
    return {name: from_gmic(images[len(images) - len(outputs) + k]).ravel() for k, name in enumerate(outputs)}


def nnpipe_forward(layers, weights, inputs, outputs, setup=None):
    """The same as gmic_forward, by nnpipe's nn_eval."""
    if setup is None:
        interp = built(layers, weights)
    else:
        interp = interpreter()
        interp.run_source(setup, "network.nnp")
    images, network = interp.workspace.images, interp.workspace.network()
    results = {}
    for output in outputs:
        kept = len(images)
        plan = network.plan(output)
        feeds = [name for name, _, _ in plan.feeds]
        if all(_is_vector(network.modules[name].size) for name in feeds):  # pixel mode: one 1x1 image
            values = np.concatenate([np.asarray(inputs[name], np.float32).ravel() for name in feeds])
            images.append(values.reshape(-1, 1, 1, 1), "samples")
            selection = "[samples]"
        else:  # stack mode: one stack of one sample per input
            for name in feeds:
                images.append(np.asarray(inputs[name], np.float32), f"input_{name}")
            selection = "[" + ",".join(f"input_{name}" for name in feeds) + "]"
        interp.run_items([f"nn_eval{selection}", output])
        results[output] = images[-1].ravel().copy()
        images.remove(range(kept, len(images)))
    return results


def _is_vector(size):
    return sum(v > 1 for v in size) <= 1

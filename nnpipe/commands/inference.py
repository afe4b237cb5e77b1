"""Running a network forward on images: nn_eval, with tiling for images larger than a fully
convolutional network's input, and the check that the inputs have the range it was trained on."""

import numpy as np

from nnpipe.commands.samples import (
    command_runner,
    feed_sizes,
    is_vector,
    last_data_image,
    parameter_images,
    pixel_mode,
    samples_matrix,
    to_stack,
)
from nnpipe.errors import UserError
from nnpipe.nn import engine
from nnpipe.numbers import size_text
from nnpipe.progress import StatusLine
from nnpipe.registry import TRAINING, Int, LayerName, command

TRAINED_SMALL, GIVEN_LARGE = 2.0, 20.0  # inputs within ±1 at training, 0..255 at evaluation


def warn_about_input_range(ctx, network, plan, selection):
    """Warn (once) when the network was trained on inputs within about ±1 and is evaluated on
    values such as 0..255: most likely the images were not divided by 255 this time."""
    magnitudes = network.input_magnitudes
    trained = [magnitudes[name] for name, _, _ in plan.feeds if name in magnitudes]
    if network.warned_range or not trained or max(trained) > TRAINED_SMALL:
        return
    given = max(float(np.max(np.abs(ctx.images[index]), initial=0)) for index in selection)
    if given > GIVEN_LARGE:
        ctx.warn(
            f"the input holds values up to {given:.4g}, but network '{network.name}' was trained"
            f" on inputs within ±{max(trained):.3g}: divide by the same value as for training"
            " (e.g. 255)?"
        )
        network.warned_range = True


def default_output(network):
    losses = [m for m in network.modules.values() if m.layer.is_loss]
    if losses:
        return losses[-1].inputs[0]
    if network.latest is None:
        raise UserError(f"network '{network.name}' is empty")
    return network.latest


class Inference:
    """The plan computing one layer, its parameters read from the image list."""

    def __init__(self, ctx, output):
        network = ctx.existing_network()
        self.target = default_output(network) if output == "." else network.resolve(output)
        self.plan = network.plan(self.target)
        self.params = self.plan.gather(parameter_images(ctx, self.plan))
        self.runner = command_runner(ctx, self.plan)
        self.status = StatusLine(ctx)
        module = network.modules[self.target]
        prediction = module.inputs[0] if self.plan.is_loss else self.target
        self.size = network.modules[prediction].size

    def rows(self, samples):
        with engine.compile_notice(self.status):
            return engine.infer(self.plan, self.params, samples, self.runner)

    def evaluate(self, ctx, selection, tile_margin=-1):
        """The output image for the selected images: pixel mode gives an image of their
        width, height and depth, stack mode a stack."""
        plan = self.plan
        if len(selection) == 1 and len(plan.feeds) == 1 and self.tiles(ctx.images[selection[0]]):
            return self.tiled(ctx.images[selection[0]], tile_margin)
        rows = self.rows(samples_matrix(ctx, selection, plan))
        if pixel_mode(plan, selection):
            return rows.T.reshape((rows.shape[1],) + ctx.images[selection[0]].shape[1:])
        return to_stack(rows, self.size)

    def tiles(self, image):
        """Whether `image` is larger than the input of a network with one image-shaped input,
        so it is evaluated tile by tile."""
        w, h, d, s = feed_sizes(self.plan)[0][1]
        channels, depth, height, width = image.shape
        return not is_vector((w, h, d, s)) and channels == s and depth % d == 0 and (height, width) != (h, w)

    def tiled(self, image, margin):
        """Run a fully convolutional network over an image larger than its input: overlapping
        tiles of the input's size, each keeping its inner part (`margin` pixels dropped at
        inner edges, where the network saw the tile's border instead of the image) stitched."""
        w, h, d, s = feed_sizes(self.plan)[0][1]
        ow, oh, od, os = self.size
        if (ow, oh) != (w, h):
            raise UserError(
                f"the image ({size_text(image.shape[::-1])}) differs in size from the"
                f" input ({size_text((w, h, d, s))}), and tiling it needs an output of"
                f" the input's width and height (got {size_text(self.size)})"
            )
        margin = min(w, h) // 4 if margin < 0 else margin
        _, depth, height, width = image.shape
        count = depth // d
        rows_at, row_owner, row_offset = tile_layout(height, h, margin)
        cols_at, col_owner, col_offset = tile_layout(width, w, margin)
        rows = rows_at[:, None] + np.arange(h)
        cols = cols_at[:, None] + np.arange(w)
        tiles = image.reshape(s, count, d, height, width)[
            :, :, :, rows[:, None, :, None], cols[None, :, None, :]
        ]  # (s, M, d, ny, nx, h, w)
        samples = tiles.transpose(1, 3, 4, 0, 2, 5, 6).reshape(count * rows.shape[0] * cols.shape[0], -1)
        result = (
            self.rows(np.ascontiguousarray(samples))
            .reshape(count, rows.shape[0], cols.shape[0], os, od, h, w)
            .transpose(3, 0, 4, 1, 5, 2, 6)
        )
        stitched = result[
            :, :, :, row_owner[:, None], row_offset[:, None], col_owner[None, :], col_offset[None, :]
        ]  # (os, M, od, height, width)
        return stitched.reshape(os, count * od, height, width)


def tile_layout(length, tile, margin):
    """Tiles along one axis: their starts, and for each pixel the tile whose inner part (its
    margins dropped, except at the image's borders) holds it and its offset in that tile."""
    if length < tile:
        raise UserError(
            f"the image is smaller ({length}) than the network's input ({tile}):"
            " resize it or evaluate it whole"
        )
    step = tile - 2 * margin
    if step < 1:
        raise UserError(f"a tile margin of {margin} leaves nothing of a {tile}-pixel tile")
    starts = np.append(np.arange(0, length - tile, step), length - tile)
    inner = starts + margin
    inner[0] = 0
    owner = np.searchsorted(inner, np.arange(length), side="right") - 1
    return starts, owner, np.arange(length) - starts[owner]


@command(
    "nn_eval",
    group=TRAINING,
    default_selection=last_data_image,
    params=[
        LayerName("output", ".", help="layer to compute ('.' = what the latest loss compares)"),
        Int(
            "tile_margin",
            -1,
            low=-1,
            help="when tiling: pixels dropped at inner tile edges, at least the"
            " network's receptive-field radius (-1: a quarter of the input's width or height)",
        ),
    ],
)
def nn_eval(ctx, selection, output, tile_margin):
    """Run the network forward on the selected images (default: the last image that is not a
    weight, moment or trainer image) and append the output, named after the output layer.

    Pixel mode (one image, every input a vector): the output is an image of the same width,
    height and depth with one channel per output value. Stack mode (image-shaped inputs):
    each selected image is a stack of M samples along depth (w,h,d*M,s for an input w,h,d,s;
    with several inputs, select one stack per input) and the output is a stack of the same
    M. An image larger than the one image-shaped input of a fully convolutional network
    (output width and height those of the input) is evaluated in overlapping tiles of the
    input's size, each keeping its inner part, and the output has the image's width and
    height."""
    inference = Inference(ctx, output)
    plan = inference.plan
    if selection:
        warn_about_input_range(ctx, ctx.network(), plan, selection)
    separately = len(plan.feeds) == 1 or all(is_vector(size) for _, size in feed_sizes(plan))
    groups = [[index] for index in selection] if separately else [list(selection)]
    outputs = [inference.evaluate(ctx, group, tile_margin) for group in groups]
    for image in outputs:  # appended once all are made: a failure leaves the list as it was
        ctx.images.append(image, inference.target)

"""Between the image list and the engine: the samples matrix a network is fed from images
(pixel mode and stack mode), the parameter vectors read from the parameter images, the images
commands use by default, and the commands that make samples of an image."""

import numpy as np

from nnpipe.errors import UserError
from nnpipe.numbers import size_text
from nnpipe.registry import TRAINING, Float, command


def last_data_image(ctx):
    """The default selection of training commands: the last image not owned by a network."""
    return last_data_images(ctx, 1)


def last_data_images(ctx, count):
    """The last `count` images not owned by a network, in list order."""
    owned = ctx.network_images()
    found = [i for i in range(len(ctx.images)) if ctx.images.names[i] not in owned]
    return found[-count:]


def one_stack_per_feed(ctx):
    """nn_train's default selection: the last data images, one per feed of the network, if
    they are stacks of its feeds or the feeds are image-shaped; else the last data image
    (pixel mode)."""
    network = ctx.networks.get(ctx.current_network)
    sizes = [m.size for m in network.modules.values() if m.layer.inputs == 0] if network else []
    found = last_data_images(ctx, len(sizes))
    stacks = len(found) == len(sizes) > 1 and all(
        stack_layout(ctx.images[index], size) is not None for index, size in zip(found, sizes)
    )
    return found if stacks or not all(map(is_vector, sizes)) else found[-1:]


# --- samples: images to the engine's (M, S) matrix and back --------------------------------------
# Pixel mode: one image whose every pixel is a sample, its channels the values of every feed
# (the seed's layout). Stack mode: one image per feed, the M samples stacked along depth, so a
# feed of size w,h,d,s is fed from an image of size w,h,d*M,s, i.e. the array (s, d*M, h, w).


def is_vector(size):
    """At most one of w,h,d,s above 1: the feed is a plain vector of values."""
    return sum(v > 1 for v in size) <= 1


def feed_sizes(plan):
    return [(name, plan.network.modules[name].size) for name, _, _ in plan.feeds]


def feeds_text(plan):
    return ", ".join(f"{name} {size_text(size)}" for name, size in feed_sizes(plan))


def image_label(ctx, index):
    name = ctx.images.names[index]
    return f"[{index}] '{name}'" if name else f"[{index}]"


def stack_layout(image, size):
    """(feed size, M) if `image` is a stack of M samples of a feed of size `size`, else None.
    A vector feed also takes its n values as channels (1,1,M,n), the layout of label stacks
    and loaded CSV files, whichever axis it was declared along: the values are the same."""
    channels, depth, height, width = image.shape
    layouts = [size] + ([(1, 1, 1, size[0] * size[1] * size[2] * size[3])] if is_vector(size) else [])
    for w, h, d, s in layouts:
        if (channels, height, width) == (s, h, w) and depth % d == 0:
            return (w, h, d, s), depth // d
    return None


def from_stack(image, size, count):
    """(s, d*M, h, w) stack -> (M, s*d*h*w) rows, each a sample's values in (s,d,h,w) order."""
    w, h, d, s = size
    return image.reshape(s, count, d * h * w).transpose(1, 0, 2).reshape(count, -1)


def to_stack(rows, size):
    """The inverse of from_stack: (M, s*d*h*w) rows -> (s, d*M, h, w) stack."""
    w, h, d, s = size
    count = rows.shape[0]
    return np.ascontiguousarray(rows.reshape(count, s, d * h * w).transpose(1, 0, 2)).reshape(
        s, d * count, h, w
    )


def pixel_mode(plan, selection):
    return len(selection) == 1 and all(is_vector(size) for _, size in feed_sizes(plan))


def samples_matrix(ctx, selection, plan):
    """The (M, S) matrix the plan is fed from the selected images (pixel or stack mode)."""
    if pixel_mode(plan, selection):
        image = ctx.images[selection[0]]
        channels = image.shape[0]
        if channels != plan.feed_width:
            raise UserError(
                f"image {image_label(ctx, selection[0])} has {channels}"
                f" channel{'s' * (channels != 1)} but the network takes"
                f" {plan.feed_width} values per sample ({feeds_text(plan)})"
            )
        return np.ascontiguousarray(image.reshape(channels, -1).T)
    feeds = feed_sizes(plan)
    if len(selection) != len(feeds):
        raise UserError(
            f"{len(selection)} image{'s' * (len(selection) != 1)} selected but the network"
            f" is fed {len(feeds)} stack{'s' * (len(feeds) != 1)} ({feeds_text(plan)}):"
            " select one per feed, inputs then ground truths"
        )
    blocks, counts = [], []
    for index, (name, size) in zip(selection, feeds):
        image = ctx.images[index]
        layout = stack_layout(image, size)
        if layout is None:
            w, h, d, s = size
            depth = "M" if d == 1 else f"{d}*M"
            vector = f" or 1,1,M,{w * h * d * s}" if is_vector(size) and s == 1 else ""
            raise UserError(
                f"image {image_label(ctx, index)} ({size_text(image.shape[::-1])}) is"
                f" not a stack of {name} samples: it needs size {w},{h},{depth},{s}"
                f"{vector} (M samples along depth)"
            )
        count = layout[1]
        blocks.append(from_stack(image, *layout))
        counts.append((count, index))
    if len({count for count, _ in counts}) > 1:
        raise UserError(
            "the stacks hold different numbers of samples: "
            + ", ".join(f"{image_label(ctx, index)} {count}" for count, index in counts)
        )
    return np.ascontiguousarray(np.concatenate(blocks, axis=1))


def parameter_images(ctx, plan, suffix=""):
    """{module: image} of the plan's parameter images (or their moments), checked."""
    images = {}
    for name, _, shape in plan.parameters:
        label = plan.network.image_name(name) + suffix
        image = ctx.images.get(label)
        if image is None:
            raise UserError(f"parameter image '{label}' is missing from the list")
        if image.shape != tuple(shape):
            raise UserError(
                f"parameter image '{label}' has size "
                f"{','.join(map(str, image.shape[::-1]))}, expected"
                f" {','.join(map(str, shape[::-1]))}"
            )
        images[name] = image
    return images


def command_runner(ctx, plan):
    """What runs the commands of a plan's nn_run layers: the workspace's run_commands(command,
    image), which runs `command` on a list holding only `image` and returns the last image it
    leaves."""
    return ctx.run_commands if plan.calls_back else None


@command("nn_coords", group=TRAINING, each=True, default_selection=last_data_image)
def nn_coords(ctx, image):
    """Replace an image (default: the last data image) by its pixel coordinates: 2 channels
    x,y in [-1,1], the input of a coordinate network."""
    _, _, height, width = image.shape
    return coordinates(width, height)


def coordinates(width, height):
    x = np.linspace(-1, 1, width, dtype=np.float32) if width > 1 else np.zeros(1, np.float32)
    y = np.linspace(-1, 1, height, dtype=np.float32) if height > 1 else np.zeros(1, np.float32)
    grid = np.empty((2, 1, height, width), dtype=np.float32)
    grid[0, 0] = x[np.newaxis, :]
    grid[1, 0] = y[:, np.newaxis]
    return grid


@command(
    "nn_samples",
    group=TRAINING,
    each=True,
    default_selection=last_data_image,
    params=[Float("max_value", 255, positive=True, help="value mapped to 1 (255 for 8-bit images)")],
)
def nn_samples(ctx, image, max_value):
    """Replace a 2D image (default: the last data image) by a training set: one sample per
    pixel with channels [x, y, values / max_value...], x,y in [-1,1] (size 1,M,1,2+s: the
    seed's layout)."""
    channels, depth, height, width = image.shape
    if depth != 1:
        raise UserError("nn_samples needs a 2D image (depth 1)")
    coords = coordinates(width, height).reshape(2, -1)
    values = image.reshape(channels, -1) / np.float32(max_value)
    return np.concatenate([coords, values]).reshape(channels + 2, 1, height * width, 1)

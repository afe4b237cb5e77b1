"""Data commands: samples from labelled folders, CSV and NPY files, random patches, train/test
splits, and the report of a classifier on a labelled stack.

They make the stacks nn_train and nn_eval read in stack mode (see nnpipe.commands.training):
M samples along depth, a feed of size w,h,d,s taking an image of size w,h,d*M,s, labels as
one-hot vectors (K channels, depth M, 1x1). Class names go to the variable $classes."""

import csv
import os

import numpy as np

from nnpipe.commands.images import resample
from nnpipe.commands.inference import Inference
from nnpipe.commands.samples import image_label, last_data_image, last_data_images, samples_matrix
from nnpipe.errors import UserError
from nnpipe.images import io
from nnpipe.images.imagelist import check_size
from nnpipe.numbers import FLOAT32_MAX, format_number, size_text
from nnpipe.registry import DATA, TRAINING, Float, Int, LayerName, Text, command

MAX_VALUE = Float("max_value", 255, positive=True, help="value mapped to 1 (255 for 8-bit images)")


def one_hot(indices, count):
    """Class indices (M,) -> one-hot label stack (K, M, 1, 1)."""
    labels = np.zeros((count, len(indices)), dtype=np.float32)
    labels[indices, np.arange(len(indices))] = 1
    return labels.reshape(count, len(indices), 1, 1)


def append_labelled(ctx, name, samples, indices, classes):
    """Append a samples stack, its one-hot labels NAME_labels, and set $classes."""
    ctx.images.append(samples, name)
    if classes is not None:
        ctx.images.append(one_hot(indices, len(classes)), f"{name}_labels")
        ctx.set_variable("classes", ",".join(classes))
        ctx.notice(f"{name}: {len(indices)} samples of {len(classes)} classes ({', '.join(classes)})")


def base_name(path):
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


# --- labelled folders ---------------------------------------------------------------------------


@command(
    "nn_load_folder",
    group=DATA,
    takes_selection=False,
    params=[
        Text("folder", help="a folder with one sub-folder of pictures per class: FOLDER/CLASS/*.png"),
        Int("width", 0, low=0, help="width of the samples (0: the first picture's)"),
        Int("height", 0, low=0, help="height of the samples (0: the first picture's)"),
        MAX_VALUE,
    ],
)
def nn_load_folder(ctx, selection, folder, width, height, max_value):
    """Load a labelled folder tree FOLDER/CLASS/*.png (or .jpg .bmp .gif) as a samples stack
    NAME (NAME: the folder's name) and its one-hot labels NAME_labels.

    Classes are the sub-folders in alphabetical order; $classes is set to their names, comma
    separated. Pictures are resized (linear) to width x height, take the first picture's
    number of channels (gray to color by copying, color to gray by the mean of R,G,B, alpha
    dropped) and their values are divided by max_value, so 8-bit pictures give 0..1.
    Samples come class after class: nn_train draws them at random, nn_split_samples shuffles.
    The stack has size width,height,M,channels; the labels 1,1,M,K."""
    if not os.path.isdir(folder):
        raise UserError(f"folder '{folder}' not found")
    classes = sorted(
        entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")
    )
    files = {
        name: sorted(
            entry.path
            for entry in os.scandir(os.path.join(folder, name))
            if entry.is_file() and io.extension(entry.name) in io.PLAIN_FORMATS
        )
        for name in classes
    }
    empty = [name for name in classes if not files[name]]
    if not classes or empty:
        raise UserError(
            f"'{folder}' needs one sub-folder of pictures per class"
            + (f" (no pictures in {', '.join(empty)})" if empty else " (found none)")
        )
    pictures, indices = [], []
    for number, name in enumerate(classes):
        for path in files[name]:
            picture = io.read(path)[0][1]
            if picture.shape[0] in (2, 4):  # gray or color with alpha
                picture = picture[:-1]
            if not pictures:
                width, height = width or picture.shape[3], height or picture.shape[2]
                channels = picture.shape[0]
                check_size((width, height, sum(map(len, files.values())), channels), "the samples stack")
            picture = resample(resample(picture, 3, width, "linear"), 2, height, "linear")
            pictures.append(with_channels(picture, channels, path))
            indices.append(number)
    samples = np.concatenate(pictures, axis=1) / np.float32(max_value)
    append_labelled(ctx, base_name(folder), samples, np.array(indices), classes)


def with_channels(picture, channels, path):
    """`picture` (alpha already dropped) with `channels` channels: gray copied to color,
    color averaged to gray."""
    have = picture.shape[0]
    if have == channels:
        return picture
    if channels == 1:
        return picture.mean(axis=0, keepdims=True)
    if have == 1:
        return np.repeat(picture, channels, axis=0)
    raise UserError(f"'{path}' has {have} channels where the first picture has {channels}")


# --- CSV and NPY --------------------------------------------------------------------------------


@command(
    "nn_load_csv",
    group=DATA,
    takes_selection=False,
    params=[
        Text("file", help="CSV file: one sample per row, values separated by commas"),
        Text(
            "label_column",
            "",
            help="column holding class labels, by number (0 = first, -1 = last)"
            " or header name; they become one-hot labels NAME_labels (default: none)",
        ),
    ],
)
def nn_load_csv(ctx, selection, file, label_column):
    """Load samples from a CSV file, one sample per row, as the image NAME (NAME: the file's
    name) of size 1,1,M,F: F values per sample along the channels, the samples along depth,
    which feeds a vector input of F values in pixel mode and in stack mode alike.

    A first row holding a non-number is a header. With a label column, its values (words or
    finite numbers; an empty, NaN or infinite label is refused) are the classes, sorted, set
    in $classes, and NAME_labels holds their one-hot vectors (size 1,1,M,K); the other columns
    must hold at least one value per sample."""
    lines, rows = read_csv(file)
    header = rows[0] if any(not is_number(v) for v in rows[0]) else None
    if header is not None:
        lines, rows = lines[1:], rows[1:]
    if not rows:
        raise UserError(f"'{file}' holds no samples")
    width = len(header or rows[0])
    for line, row in zip(lines, rows):
        if len(row) != width:
            raise UserError(
                f"'{file}' line {line}: {len(row)} value{'s' * (len(row) != 1)}"
                f" where the first row has {width}"
            )
    column = column_index(label_column, header, width, file) if label_column else None
    if column is not None and width == 1:
        raise UserError(f"'{file}' holds no values beside its label column")
    labels = [row[column] for row in rows] if column is not None else None
    for line, label in zip(lines, labels or ()):
        if not label:
            raise UserError(f"'{file}' line {line}, value {column + 1}: the label is empty")
        if is_number(label) and not np.isfinite(float(label)):
            raise UserError(
                f"'{file}' line {line}, value {column + 1}: label '{label}' is not a"
                " finite number (class labels are words or finite numbers)"
            )
    features = [row[:column] + row[column + 1 :] for row in rows] if column is not None else rows
    try:
        values = np.array(features, dtype=np.float64).reshape(len(rows), -1)
    except ValueError:
        line, text = next(
            (line, text) for line, row in zip(lines, features) for text in row if not is_number(text)
        )
        raise UserError(f"'{file}' line {line}: '{text}' is not a number") from None
    bad = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
    if bad.any():
        row, feature = (int(i) for i in np.argwhere(bad)[0])
        place = feature + (column is not None and feature >= column)  # the file's column
        raise UserError(
            f"'{file}' line {lines[row]}, value {place + 1}: '{rows[row][place]}' is not a"
            " finite number within float32's range (±3.4e38)"
        )
    values = values.astype(np.float32)
    samples = values.T.reshape(values.shape[1], len(rows), 1, 1)
    if labels is None:
        return append_labelled(ctx, base_name(file), samples, None, None)
    classes = sorted(set(labels), key=lambda v: (0, float(v), v) if is_number(v) else (1, 0, v))
    number = {name: index for index, name in enumerate(classes)}
    append_labelled(ctx, base_name(file), samples, np.array([number[v] for v in labels]), classes)


def read_csv(file):
    """The line numbers and the values of the rows that are not blank."""
    if not os.path.isfile(file):
        raise UserError(f"file '{file}' not found")
    lines, rows = [], []
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for row in reader:
                if any(v.strip() for v in row):
                    lines.append(reader.line_num)
                    rows.append([v.strip() for v in row])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot read '{file}': {error}") from None
    if not rows:
        raise UserError(f"'{file}' is empty")
    return lines, rows


def is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def column_index(text, header, count, file):
    if header is not None and text in header:
        return header.index(text)
    if text.lstrip("-").isdigit() and -count <= int(text) < count:
        return int(text) % count
    known = f" (columns: {', '.join(header)})" if header else f" ({count} columns)"
    raise UserError(f"'{file}' has no column '{text}'{known}")


@command(
    "nn_load_npy",
    group=DATA,
    takes_selection=False,
    params=[
        Text("file", help="NumPy .npy file whose first axis counts the samples"),
        Int(
            "one_hot",
            0,
            low=0,
            high=1,
            help="1: the file holds class numbers 0..K-1, one per sample,"
            " loaded as one-hot labels (size 1,1,M,K)",
        ),
    ],
)
def nn_load_npy(ctx, selection, file, class_numbers):
    """Load samples from a NumPy .npy file whose first axis counts the samples, as the image
    NAME (NAME: the file's name) stacked along depth: (M,) and (M, F) arrays give size
    1,1,M,F (F values per sample along the channels); (M, h, w) gives w,h,M,1; (M, c, h, w),
    the order of other frameworks, gives w,h,M,c.

    With one_hot 1 it holds class numbers and gives one-hot labels; $classes is set to 0..K-1.
    (`input FILE.npy` reads an array as one image instead.)"""
    if not os.path.isfile(file):
        raise UserError(f"file '{file}' not found")
    array = io.read_npy(file)
    if array.ndim == 0:
        raise UserError(f"'{file}' holds a single number: samples need an array, samples first")
    count = array.shape[0]
    if array.size == 0:
        raise UserError(f"'{file}' holds no samples (its array has shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise UserError(
            f"'{file}': sample {where[0]} holds {array[where]} (at index {where}), not a finite number"
        )
    array = array.astype(np.float32)
    if class_numbers:
        if array.ndim != 1 or np.any(array < 0) or np.any(array != np.round(array)):
            raise UserError(f"'{file}' must hold one class number (an integer >= 0) per sample")
        check_size((1, 1, count, int(array.max()) + 1), "the one-hot labels")
        classes = [str(k) for k in range(int(array.max()) + 1)]
        ctx.images.append(one_hot(array.astype(np.int64), len(classes)), base_name(file))
        ctx.set_variable("classes", ",".join(classes))
        return
    if array.ndim <= 2:
        samples = array.reshape(count, -1).T.reshape(-1, count, 1, 1)
    elif array.ndim == 3:
        samples = array[np.newaxis]
    else:
        samples = array.transpose(1, 0, 2, 3)
    ctx.images.append(samples, base_name(file))


# --- patches and splits -------------------------------------------------------------------------


@command(
    "nn_patches",
    group=DATA,
    default_selection=last_data_image,
    params=[
        Int("count", low=1, help="number of patches"),
        Int("size", low=1, help="patch width and height"),
        Float(
            "sigma",
            0,
            low=0,
            help="standard deviation of the gaussian noise added to the input"
            " patches, in the images' values (25 on a 0..255 image)",
        ),
        MAX_VALUE,
    ],
)
def nn_patches(ctx, selection, count, size, sigma, max_value):
    """Draw random square patches from the selected 2D images (default: the last data image),
    for image-to-image training: append the input stack `patches` (with gaussian noise
    when sigma > 0) and its clean ground truth `patches_clean`, both of size
    size,size,count,s with values divided by max_value.

    Each patch lies wholly inside one image, drawn with a probability proportional to its
    number of patch positions; the images must have the same number of channels."""
    if not selection:
        raise UserError("no image to draw patches from")
    images = [ctx.images[i] for i in selection]
    for index, image in zip(selection, images):
        channels, depth, height, width = image.shape
        problem = (
            "is not 2D"
            if depth != 1
            else f"is smaller than the patches ({size}x{size})"
            if height < size or width < size
            else f"has {channels} channels, the first {images[0].shape[0]}"
            if channels != images[0].shape[0]
            else None
        )
        if problem:
            raise UserError(
                f"image {image_label(ctx, index)} of size {size_text(image.shape[::-1])} {problem}"
            )
    check_size((size, size, count, images[0].shape[0]), "the patches stack")
    positions = np.array(
        [(i.shape[2] - size + 1) * (i.shape[3] - size + 1) for i in images], dtype=np.float64
    )
    source = ctx.rng.choice(len(images), size=count, p=positions / positions.sum())
    patches = np.empty((images[0].shape[0], count, size, size), dtype=np.float32)
    offsets = np.arange(size)
    for number, image in enumerate(images):
        chosen = np.flatnonzero(source == number)
        ys = ctx.rng.integers(0, image.shape[2] - size + 1, chosen.size)
        xs = ctx.rng.integers(0, image.shape[3] - size + 1, chosen.size)
        patches[:, chosen] = image[:, 0][
            :, ys[:, None, None] + offsets[None, :, None], xs[:, None, None] + offsets[None, None, :]
        ]
    noisy = patches + ctx.rng.normal(0, sigma, patches.shape).astype(np.float32) if sigma else patches
    ctx.images.append(noisy / np.float32(max_value), "patches")
    ctx.images.append(patches / np.float32(max_value), "patches_clean")


@command(
    "nn_split_samples",
    group=DATA,
    params=[Float("fraction", low=0, high=1, help="part of the samples held out, in [0, 1]")],
)
def nn_split_samples(ctx, selection, fraction):
    """Split the selected images (default: all; select a stack and its labels) into training
    and held-out parts along the same random permutation of their samples: each image keeps
    its training part in place and NAME_test, its held-out part, is appended.

    The images hold the same number M of samples along depth (M = the smallest depth; a
    deeper image holds depth/M slices per sample). A single image of depth 1 is a pixel-mode
    samples image: its pixels are split, each part a column (size 1,n,1,s)."""
    if not selection:
        raise UserError("no image to split")
    images = [ctx.images[i] for i in selection]
    pixels = len(images) == 1 and images[0].shape[1] == 1
    if pixels:  # one sample per pixel: split as a stack of 1x1 samples, then back to a column
        images = [images[0].reshape(images[0].shape[0], -1, 1, 1)]
    count = min(image.shape[1] for image in images)
    for index, image in zip(selection, images):
        if image.shape[1] % count:
            raise UserError(
                f"image {image_label(ctx, index)} has depth {image.shape[1]}, not a"
                f" multiple of the {count} samples of the shallowest image"
            )
    held_out = int(round(count * fraction))
    if not 0 < held_out < count:
        raise UserError(
            f"holding out {format_number(fraction)} of {count} samples leaves"
            f" {'no held-out' if held_out == 0 else 'no training'} samples"
        )
    order = ctx.rng.permutation(count)
    for index, image in zip(selection, images):
        channels, depth, height, width = image.shape
        samples = image.reshape(channels, count, depth // count, height, width)
        parts = [samples[:, order[held_out:]], samples[:, order[:held_out]]]
        shape = (channels, 1, -1, 1) if pixels else (channels, -1, height, width)
        train, test = (part.reshape(shape) for part in parts)
        ctx.images.replace(index, train)
        name = ctx.images.names[index]
        ctx.images.append(test, f"{name}_test" if name else "test")


# --- classification -----------------------------------------------------------------------------


def last_two_data_images(ctx):
    return last_data_images(ctx, 2)


@command(
    "nn_classify",
    group=TRAINING,
    default_selection=last_two_data_images,
    params=[
        LayerName(
            "output", ".", help="layer giving one score per class ('.' = what the latest loss compares)"
        ),
        Text(
            "classes",
            "",
            rest=True,
            help="class names, comma separated (default: $classes when it"
            " names as many classes as the output has values, else 0,1,...)",
        ),
    ],
)
def nn_classify(ctx, selection, output, classes):
    """Evaluate a classifier on labelled samples: the selected images are the input stacks then
    the one-hot label stack (default: the last two data images, a stack and its labels).

    The predicted class of a sample is the output value that is largest (argmax), its true
    class the largest label value. Prints the accuracy and the confusion matrix (rows: true
    class, columns: predicted; class names shown), sets $accuracy (a fraction, 0..1) and
    appends the predicted class numbers `predicted` (size 1,1,M,1) and the confusion matrix
    `confusion` (K x K: y the true class, x the predicted one)."""
    if len(selection) < 2:
        raise UserError("select the input stack(s) then the label stack")
    inference = Inference(ctx, output)
    *inputs, label_index = selection
    scores = inference.rows(samples_matrix(ctx, inputs, inference.plan))
    count, classes_count = scores.shape
    labels = ctx.images[label_index]
    if labels.shape[0] != classes_count or labels.size != labels.shape[0] * count:
        raise UserError(
            f"image {image_label(ctx, label_index)} ({labels.shape[-1]},{labels.shape[-2]},"
            f"{labels.shape[1]},{labels.shape[0]}) is not a stack of {count} labels of"
            f" {classes_count} classes (size 1,1,{count},{classes_count})"
        )
    predicted = scores.argmax(axis=1)
    truth = labels.reshape(classes_count, count).argmax(axis=0)
    confusion = np.zeros((classes_count, classes_count), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    correct = int(np.trace(confusion))
    ctx.set_variable("accuracy", round(correct / count, 6))
    ctx.echo(f"accuracy: {100 * correct / count:.2f}% ({correct} of {count})")
    ctx.echo(confusion_text(confusion, class_names(ctx, classes, classes_count)))
    ctx.images.append(predicted.astype(np.float32).reshape(1, count, 1, 1), "predicted")
    ctx.images.append(confusion.astype(np.float32).reshape(1, 1, classes_count, classes_count), "confusion")


def class_names(ctx, text, count):
    names = [name.strip() for name in (text or ctx.lookup("classes", "")).split(",")]
    if len(names) == count and all(names):
        return names
    if text:
        raise UserError(f"{len(names)} class names given for {count} classes")
    return [str(k) for k in range(count)]


def confusion_text(confusion, names):
    width = max(max(len(n) for n in names), len(str(confusion.max()))) + 2
    lines = [
        "confusion matrix (rows: true class, columns: predicted):",
        " " * width + "".join(name.rjust(width) for name in names),
    ]
    for name, row in zip(names, confusion):
        lines.append(name.rjust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)

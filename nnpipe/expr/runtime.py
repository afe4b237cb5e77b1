"""Running a compiled expression over a grid of pixels: the grid and what it may read
(`#k` images, coordinates), the variables of one run, `end(…)` after the last pixel, and the
`{expression}` of an item (a grid of one pixel)."""

import math

import numpy as np

from nnpipe.errors import UserError
from nnpipe.expr.compiler import TypeEnvironment, compile_expression
from nnpipe.expr.parse import NUMBER_POWER, fail
from nnpipe.expr.values import SCALAR, image_position, scalar
from nnpipe.numbers import gmic_number


class Grid:
    """The pixels an expression runs over, and what it may read besides them.

    `images` is the list (for `#k`), `current` the image being filled or evaluated (or None),
    `shape` the (s, d, h, w) grid: s is 1 when every evaluation fills a whole pixel (vector
    results, `eval`). A one-pixel grid stands for the pixel at `origin` (c, z, y, x): (0,0,0,0)
    for `{…}`, the image's last pixel for `end(…)`, as in G'MIC."""

    def __init__(self, images, current, shape, rng, workspace=None, origin=(0, 0, 0, 0)):
        self.images = images
        self.current = current
        self.shape = shape
        self.rng = rng
        self.workspace = workspace
        self.origin = origin
        self.coordinates = _Coordinates(shape, origin)

    def image(self, index, text):
        """Image `#index` (G'MIC's wrap-around reading, see image_position), the current one
        when index is None; None when the list is empty."""
        if index is None:
            if self.current is None:
                if not len(self.images):
                    return None
                return self.images[-1]
            return self.current
        if math.isnan(index):
            fail(text, f"image index #{gmic_number(index)} is NaN")
        position = image_position(index, len(self.images))
        return None if position is None else self.images[position]


class _Coordinates(dict):
    """x, y, z, c of every pixel of a grid, each made when first read."""

    AXES = {"x": 3, "y": 2, "z": 1, "c": 0}

    def __init__(self, shape, origin):
        super().__init__()
        self.shape = shape
        self.origin = origin

    def __missing__(self, name):
        axis = self.AXES[name]
        form = [1, 1, 1, 1]
        form[axis] = self.shape[axis]
        value = np.arange(self.shape[axis], dtype=np.float64).reshape(form) + self.origin[axis]
        self[name] = value
        return value


class Environment:
    """One run of a compiled expression: the grid, the values of its local variables."""

    def __init__(self, grid, vector_mode, workspace, nn_hook=None):
        self._pixels = None
        self.grid = grid
        self.vector_mode = vector_mode
        self.workspace = workspace
        self.values = {}
        self.nn_hook = nn_hook
        self.pending_variables = {}
        self.mask = None  # the pixels the running branch is taken by (None: all of them)

    def current_image(self):
        image = self.grid.image(None, "")
        if image is None:
            return np.zeros((1, 1, 1, 1), np.float32)
        return image

    def pixel_values(self):
        """The current image's values at the grid's pixels, as float64 (made once per run)."""
        if self._pixels is None:
            image = self.current_image()
            if image.shape[1:] != tuple(self.grid.shape[1:]):  # one pixel: the grid's origin
                _, z, y, x = self.grid.origin
                image = image[:, z : z + 1, y : y + 1, x : x + 1]
            self._pixels = image.astype(np.float64)
        return self._pixels

    def channel(self, k):
        values = self.pixel_values()
        if k >= values.shape[0]:
            return scalar(0.0)
        return values[k : k + 1]

    def pixel_vector(self):
        values = self.pixel_values()
        return values[:, None]  # (s, 1, d, h, w): one vector of s values per pixel

    def read(self, image, coordinates, is_vector, relative):
        here = [self.grid.coordinates[a] for a in ("x", "y", "z", "c")]
        count = 3 if is_vector else 4
        coordinates = [
            coordinates[k] if k < len(coordinates) else (scalar(0.0) if relative else here[k])
            for k in range(count)
        ]
        if relative:
            coordinates = [value + here[k] for k, value in enumerate(coordinates)]
        s, d, h, w = image.shape
        # index arrays broadcast against each other: no copies to the full grid needed
        px, py, pz = (np.floor(c).astype(np.int64) for c in coordinates[:3])
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h) & (pz >= 0) & (pz < d)
        qx, qy, qz = _within(px, w), _within(py, h), _within(pz, d)
        if is_vector:
            return np.where(inside, image[:, qz, qy, qx], 0.0)
        pc = np.floor(coordinates[3]).astype(np.int64)
        inside = inside & (pc >= 0) & (pc < s)
        return np.where(inside, image[_within(pc, s), qz, qy, qx], 0.0)

    def value(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise UserError(f"'{name}' is read before $_nn_forward computes it") from None

    def nn_macro(self, name):
        if self.nn_hook is None:
            raise UserError(f"{name.lstrip('_').replace('nn_', '$_nn_')} needs a network (nn_init …)")
        self.nn_hook.macro(name, self)
        return scalar(0.0)

    def set_variable(self, name, value, size):
        """set(): the variable ends as the last pixel that ran it set it."""
        written = self.mask
        if written is not None and name in self.pending_variables:
            old_value, old_size, old_written = self.pending_variables[name]
            if old_size == size:
                value = np.where(written if size is SCALAR else written[None], value, old_value)
                written = None if old_written is None else written | old_written
        self.pending_variables[name] = (value, size, written)

    def masked(self, mask, function):
        """Run `function` for the pixels of `mask` (within those already running) only."""
        outer = self.mask
        self.mask = mask if outer is None else outer & mask
        try:
            return function(self)
        finally:
            self.mask = outer

    def store(self, name, value):
        """A variable's new value; in a branch some pixels only take, the others keep theirs."""
        old = self.values.get(name) if self.mask is not None else None
        if old is not None and old.shape[: old.ndim - 4] == value.shape[: value.ndim - 4]:
            value = np.where(self.mask if value.ndim == 4 else self.mask[None], value, old)
        self.values[name] = value


def _within(positions, length):
    """Integer positions clamped into 0..length-1 (np.clip costs more on small arrays)."""
    return np.minimum(np.maximum(positions, 0), length - 1)


def _last_pixel(value, size):
    if size is SCALAR:
        return float(np.ravel(value)[-1])
    return [float(np.ravel(component)[-1]) for component in value]


def _last_written(value, size, written):
    """The value set() gave at the last pixel that ran it (`written`: those pixels, None for
    all), or None when none did."""
    if written is None:
        return _last_pixel(value, size)
    components = value[None] if size is SCALAR else value
    shape = np.broadcast_shapes(written.shape, components.shape[1:])
    pixels = np.flatnonzero(np.broadcast_to(written, shape))
    if not pixels.size:
        return None
    picked = np.broadcast_to(components, components.shape[:1] + shape).reshape(len(components), -1)
    values = [float(v) for v in picked[:, pixels[-1]]]
    return values[0] if size is SCALAR else values


class Evaluation:
    """The outcome of evaluating over a grid: the per-pixel result and the variables set."""

    def __init__(self, result, size, variables):
        self.result = result
        self.size = size
        self.variables = variables


def evaluate_grid(
    text, images, current, rng, vector_mode=None, workspace=None, nn_hook=None, one_pixel=False
):
    """Evaluate `text` at every pixel of `current` (None: one pixel of the last image), or at
    its first pixel only (`one_pixel`).

    `vector_mode` None decides as G'MIC does: a vector result fills whole pixels; a scalar
    result depending on the channel is evaluated once per channel."""
    types = TypeEnvironment(images, current, nn_hook.sizes() if nn_hook else None)
    program, constants = compile_expression(text, types)
    if current is None or one_pixel:
        shape = (1, 1, 1, 1)
        vector_mode = True
    else:
        s, d, h, w = current.shape
        if vector_mode is None:
            vector_mode = program.size is not SCALAR or not program.uses_channel
        shape = (1, d, h, w) if vector_mode else (s, d, h, w)
    grid = Grid(images, current, shape, rng, workspace)
    env = Environment(grid, vector_mode, workspace, nn_hook)
    env.constants = [scalar(value) for value in constants]
    env.text = text  # the compiled form may be another text's: errors name this one
    with np.errstate(all="ignore"):
        result = program.run(env)
        if program.end is not None:
            for name in program.end_names & env.values.keys():  # what end() reads, at the end
                size = program.variables.get(name, SCALAR)
                env.values[name] = _reduce_for_end(name, env.values[name], size, nn_hook)
            last = env.current_image()  # end() runs at its last pixel, as G'MIC's does
            env.grid = Grid(
                images, current, (1, 1, 1, 1), rng, workspace, tuple(max(n - 1, 0) for n in last.shape)
            )
            env.vector_mode = True
            env._pixels = None  # the values read at that pixel, not the main pass's
            program.end(env)
    variables = {}
    for name, (value, size, written) in env.pending_variables.items():
        last = _last_written(value, size, written)
        if last is not None:
            variables[name] = last
    return Evaluation(result, program.size, variables)


def _reduce_for_end(name, value, size, nn_hook):
    if nn_hook is not None and name in nn_hook.losses():
        return scalar(nn_hook.batch_loss(name))
    last = _last_pixel(value, size)
    if size is SCALAR:
        return scalar(last)
    return np.array(last, dtype=np.float64).reshape(-1, 1, 1, 1, 1)


def evaluate(text, images=(), rng=None, set_variable=None, image=None):
    """`{text}`: a number, or a list of numbers for a vector; variables set with set() are
    passed to `set_variable(name, value)`. It reads `image` (default: the last one) as its
    own, at its first pixel."""
    power = NUMBER_POWER.match(text)
    if power:
        with np.errstate(all="ignore"):
            return float(np.power(float(power.group(1)), float(power.group(2))))
    rng = rng if rng is not None else np.random.default_rng()
    evaluation = evaluate_grid(text, images, image, rng, one_pixel=True)
    if set_variable is not None:
        for name, value in evaluation.variables.items():
            set_variable(name, value)
    return _last_pixel(evaluation.result, evaluation.size)

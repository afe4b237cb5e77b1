"""Expressions compiled into closures for one *type environment* (the spectra of the images
they read, the sizes of the network's modules), so the compiler knows, as G'MIC's does, which
values are scalars and which are vectors."""

import math
import os
import re

import numpy as np

from nnpipe.expr.functions import CONSTANTS, FUNCTIONS, IMAGE_STATISTICS, OPERATORS, bitwise_not
from nnpipe.expr.parse import ExpressionError, fail, forget, names_read, parse, template, uses_channel
from nnpipe.expr.values import SCALAR, components, image_position, scalar, truth
from nnpipe.limits import MAX_VECTOR
from nnpipe.numbers import gmic_number

LOOPS = {"while": (2, 2), "do": (2, 2), "for": (4, 4), "repeat": (2, 3)}  # least, most args
NN_MACROS = ("__nn_forward", "__nn_loss", "__nn_backward", "__nn_update")


class Compiler:
    def __init__(self, text, types):
        self.text = text
        self.types = types  # image spectra and network sizes, see TypeEnvironment
        self.variables = {}  # name -> size, in statement order

    def fail(self, message, position=None):
        fail(self.text, message, position)

    def sequence(self, nodes):
        compiled = [self.node(n) for n in nodes]
        if not compiled:
            return (lambda env: scalar(0.0)), SCALAR
        functions = [f for f, _ in compiled]
        last_size = compiled[-1][1]

        def run(env):
            value = None
            for function in functions:
                value = function(env)
            return value

        return (functions[0] if len(functions) == 1 else run), last_size

    def node(self, node):
        return getattr(self, "node_" + node[0])(*node[1:])

    def node_seq(self, statements):
        return self.sequence(statements)

    def node_num(self, value):
        constant = scalar(value)
        return (lambda env: constant), SCALAR

    def node_slot(self, index):
        return (lambda env: env.constants[index]), SCALAR

    def node_str(self, value):
        codes = np.array([ord(ch) for ch in value], dtype=np.float64).reshape(-1, 1, 1, 1, 1)
        return (lambda env: codes), len(value)

    def node_vector(self, items):
        if not items:
            self.fail("an empty vector [] has no value")
        compiled = [self.node(item) for item in items]
        size = sum(1 if s is SCALAR else s for _, s in compiled)
        sizes = [s for _, s in compiled]

        functions = [f for f, _ in compiled]

        def run(env):
            parts = []
            for function, part_size in zip(functions, sizes):
                parts.extend(components(function(env), part_size))
            first = parts[0].shape
            shape = (
                first
                if all(p.shape == first for p in parts)
                else np.broadcast_shapes(*(p.shape for p in parts))
            )
            vector = np.empty((len(parts),) + shape)
            for k, part in enumerate(parts):  # assignment broadcasts each part
                vector[k] = part
            return vector

        return run, size

    def node_image(self, index):
        self.fail("'#k' is an image only as the first argument of i(), I(), j(), J() (vector(#n): n values)")

    def node_name(self, name, position):
        if name in self.variables:
            size = self.variables[name]
            return (lambda env: env.value(name)), size
        if name in CONSTANTS:
            return self.node_num(CONSTANTS[name])
        if name in ("x", "y", "z", "c"):
            return (lambda env: env.grid.coordinates[name]), SCALAR
        if name == "i":
            return (
                lambda env: env.pixel_values()[env.grid.origin[0]] if env.vector_mode else env.pixel_values()
            ), SCALAR
        if re.fullmatch(r"i[0-9]", name):
            channel = int(name[1])
            return (lambda env: env.channel(channel)), SCALAR
        if name == "I":
            return (lambda env: env.pixel_vector()), self.types.spectrum()
        if name == "u":  # a random value in [0,1], as u()
            return self.call_random(name, [], position)
        if name == "g":  # a random value of the standard normal distribution
            return (lambda env: env.grid.rng.standard_normal(env.grid.shape)), SCALAR
        self.fail(f"unknown name '{name}'", position)

    def node_attr(self, name, index, position):
        if index is None and name in self.variables:  # w=3;w: a local variable named w
            return self.node_name(name, position)
        index_function = None
        if index is not None:
            index_function, _ = self.node(index)

        def run(env):
            image = env.grid.image(_image_index(index_function, env, env.text), env.text)
            if image is None:
                return scalar(0.0)
            s, d, h, w = image.shape
            if name in IMAGE_STATISTICS:
                values = image.astype(np.float64).ravel()  # in double precision, as G'MIC
                return scalar(float(IMAGE_STATISTICS[name](values)) if image.size else 0.0)
            return scalar(
                {"w": w, "h": h, "d": d, "s": s, "wh": w * h, "whd": w * h * d, "whds": w * h * d * s}[name]
            )

        return run, SCALAR

    def node_index(self, target, index):
        index_function, _ = self.node(index)
        if target[0] == "name" and target[1] == "i" and "i" not in self.variables:
            return self.image_offset(index_function)
        target_function, size = self.node(target)
        if size is SCALAR:
            self.fail("only a vector can be indexed with [k]")

        def run(env):
            vector = target_function(env)
            k = index_function(env)
            if k.size == 1:
                position = _index(k, env.text)
                if not 0 <= position < size:
                    fail(env.text, f"index {position} is outside the vector (of size {size})")
                return vector[position]
            positions = np.clip(k.astype(np.int64), 0, size - 1)
            shape = np.broadcast_shapes(vector.shape[1:], positions.shape)
            return np.take_along_axis(
                np.broadcast_to(vector, (size,) + shape), np.broadcast_to(positions, shape)[None], 0
            )[0]

        return run, SCALAR

    def node_slice(self, target, start, length):
        """V[start,length]: the vector of V's `length` components from `start`."""
        if length[0] != "num" or length[1] < 1 or not float(length[1]).is_integer():
            self.fail("the length in V[start,length] must be a number >= 1")
        return self.node_vector(
            [("index", target, ("op", "+", start, ("num", float(k)))) for k in range(int(length[1]))]
        )

    def image_offset(self, index_function):
        """i[k]: the k-th value of the image's buffer (x fastest, then y, z, c); 0 outside."""

        def run(env):
            values = env.current_image().ravel()
            offset = np.floor(index_function(env)).astype(np.int64)
            inside = (offset >= 0) & (offset < values.size)
            return np.where(inside, values[np.clip(offset, 0, max(values.size - 1, 0))], 0.0)

        return run, SCALAR

    def node_assign(self, name, operator, value, position):
        if name in CONSTANTS or name == "I":
            self.fail(f"'{name}' cannot be assigned", position)
        value_function, size = self.node(value)
        if operator == "=":
            self.variables[name] = size

            def run(env):
                result = value_function(env)
                env.store(name, result)
                return result

            return run, size
        if name not in self.variables:
            self.fail(f"'{name}' is used before it is set", position)
        combine = OPERATORS[operator[0]]
        old_size = self.variables[name]
        new_size = old_size if size is SCALAR else size

        def update(env):
            result = combine(env.values[name], value_function(env))
            env.store(name, result)
            return result

        self.variables[name] = new_size
        return update, new_size

    def node_assign_item(self, name, index, operator, value, position):
        if name not in self.variables or self.variables[name] is SCALAR:
            self.fail(f"'{name}' is not a vector", position)
        index_function, _ = self.node(index)
        value_function, _ = self.node(value)
        size = self.variables[name]
        combine = None if operator == "=" else OPERATORS[operator[0]]

        def run(env):
            index = index_function(env)
            if index.size > 1:
                return per_pixel(env, index)
            k = _index(index, env.text)
            vector = env.values[name]
            new = value_function(env)
            if combine is not None:
                new = combine(vector[k] if 0 <= k < size else scalar(0.0), new)
            shape = np.broadcast_shapes(vector.shape[1:], new.shape)
            vector = np.array(np.broadcast_to(vector, (size,) + shape))
            if 0 <= k < size:
                vector[k] = new
            env.store(name, vector)
            return new

        def per_pixel(env, index):
            """V[x] = …: each pixel assigns its own component."""
            positions = index.astype(np.int64)
            new = value_function(env)
            shape = np.broadcast_shapes(env.values[name].shape[1:], new.shape, positions.shape)
            vector = np.array(np.broadcast_to(env.values[name], (size,) + shape))
            if combine is not None:
                inside = (positions >= 0) & (positions < size)
                current = np.take_along_axis(
                    vector, np.broadcast_to(np.clip(positions, 0, size - 1), shape)[None], 0
                )[0]
                new = combine(np.where(inside, current, 0.0), new)
            for k in range(size):
                vector[k] = np.where(positions == k, new, vector[k])
            env.store(name, vector)
            return new

        return run, SCALAR

    def node_if(self, condition, yes, no):
        condition_function, condition_size = self.node(condition)
        yes_function, yes_size = self.node(yes)
        no_function, no_size = self.node(no)
        size = yes_size if yes_size == no_size else _broadcast_size(yes_size, no_size, self)

        def run(env):
            test = condition_function(env)
            if condition_size is not SCALAR:
                test = np.all(test != 0, axis=0)
            if test.size == 1:  # one answer for every pixel: run one branch only
                return yes_function(env) if test.flat[0] != 0 else no_function(env)
            chosen = test != 0  # each branch's assignments and set() touch its pixels only
            return np.where(chosen, env.masked(chosen, yes_function), env.masked(~chosen, no_function))

        return run, size

    def call_loop(self, name, args, position):
        """while(cond,body), do(body,cond), for(init,cond,step,body), repeat(n,_k,body), run
        for every pixel at once: a pixel whose condition turns false keeps the values its
        variables had then, while the others go on."""
        least, most = LOOPS[name]
        if not least <= len(args) <= most:
            self.fail(f"wrong number of arguments for {name}()", position)
        if name == "repeat":
            counter = ("name", "_repeat_counter", position)
            if len(args) == 3:
                if args[1][0] not in ("name", "attr"):
                    self.fail("repeat(n,k,body): k must be a variable name", position)
                counter = ("name", args[1][1], position)
            init = ("assign", counter[1], "=", ("num", 0.0), position)
            parts = [
                init,
                ("op", "<", counter, args[0]),
                ("assign", counter[1], "+=", ("num", 1.0), position),
                args[-1],
            ]
        elif name == "for":
            parts = list(args)
        else:
            body, condition = (args[1], args[0]) if name == "while" else (args[0], args[1])
            parts = [None, condition, None, body]
        init, condition, step, body = (None if part is None else self.node(part) for part in parts)
        sizes = self.variables
        checks_first = name != "do"
        gives_nan = name == "repeat"

        def run(env):
            if init is not None:
                init[0](env)
            active = None
            result = scalar(math.nan)
            while True:
                if checks_first or active is not None:
                    test = truth(condition[0](env))
                    active = test if active is None else active & test
                    if not np.any(active):
                        return result
                else:
                    active = np.ones((1, 1, 1, 1), dtype=bool)
                before = dict(env.values)
                value = env.masked(active, body[0])
                if step is not None:
                    env.masked(active, step[0])
                for variable, new in env.values.items():
                    if variable in before:
                        mask = active if sizes.get(variable) is SCALAR else active[None]
                        env.values[variable] = np.where(mask, new, before[variable])
                if not gives_nan and body[1] is SCALAR:
                    result = np.where(active, value, result)

        return run, SCALAR

    def node_unary(self, operator, operand):
        function, size = self.node(operand)
        apply = {
            "-": np.negative,
            "+": lambda v: v,
            "!": lambda v: (v == 0).astype(np.float64),
            "~": bitwise_not,
        }[operator]
        return (lambda env: apply(function(env))), size

    def node_op(self, operator, left, right):
        left_function, left_size = self.node(left)
        right_function, right_size = self.node(right)
        if operator in ("==", "!=") and (left_size is not SCALAR or right_size is not SCALAR):
            equal = operator == "=="

            def compare_vectors(env):
                a, b = left_function(env), right_function(env)
                same = np.all(a == b, axis=0) if a.shape[:1] == b.shape[:1] else np.zeros(1) != 0
                return (same == equal).astype(np.float64)

            return compare_vectors, SCALAR
        size = _broadcast_size(left_size, right_size, self)
        if operator in ("&&", "||"):
            if size is not SCALAR:
                self.fail(f"'{operator}' takes numbers, not vectors")
            is_and = operator == "&&"

            def logic(env):
                a = truth(left_function(env))
                if a.size == 1 and bool(a.flat[0]) != is_and:  # decided by the left side
                    return scalar(float(not is_and))
                # per pixel, the right side runs where the left one does not decide
                b = truth(
                    right_function(env) if a.size == 1 else env.masked(a if is_and else ~a, right_function)
                )
                return (np.logical_and(a, b) if is_and else np.logical_or(a, b)).astype(np.float64)

            return logic, SCALAR
        apply = OPERATORS[operator]
        return (lambda env: apply(left_function(env), right_function(env))), size

    def node_call(self, name, args, position):
        if name in NN_MACROS:
            return (lambda env: env.nn_macro(name)), SCALAR
        if name == "set":
            return self.call_set(args, position)
        if name in ("i", "I", "j", "J"):
            return self.call_pixel(name, args, position)
        if name in ("u", "g"):
            return self.call_random(name, args, position)
        if name in ("isdir", "isfile"):
            if len(args) != 1 or args[0][0] != "str":
                self.fail(f"{name}() takes a path in single quotes", position)
            test = os.path.isdir if name == "isdir" else os.path.isfile
            found = scalar(float(test(args[0][1])))
            return (lambda env: found), SCALAR
        copies = re.fullmatch(r"vector(\d+)", name)
        if copies:  # vector3(a): [a,a,a]; vector3(a,b): [a,b,a] (the arguments repeated)
            if not args or int(copies.group(1)) < 1:
                self.fail(f"{name}() takes one value or more", position)
            return self.sized_vector(name, int(copies.group(1)), args, position)
        if name == "vector" and args and args[0][0] == "image":  # vector(#3): 0,0,0; vector(#3,a,b)
            return self.sized_vector(name, self.vector_size(args[0][1], position), args[1:], position)
        if name == "vector":
            return self.node_vector(args)
        if name == "dot":
            if len(args) != 2:
                self.fail("dot() takes two vectors", position)
            return self.node_call("sum", [("op", "*", args[0], args[1])], position)
        if name == "end":
            self.fail("end() must be a statement of its own", position)
        if name in LOOPS:
            return self.call_loop(name, args, position)
        if name == "if":
            if len(args) not in (2, 3):
                self.fail("if() takes a condition and one or two values", position)
            return self.node_if(args[0], args[1], args[2] if len(args) == 3 else ("num", 0.0))
        if name not in FUNCTIONS:
            self.fail(f"unknown function '{name}()'", position)
        function, least, most, kind = FUNCTIONS[name]
        if len(args) < least or (most is not None and len(args) > most):
            self.fail(f"wrong number of arguments for {name}()", position)
        compiled = [self.node(a) for a in args]
        functions = [f for f, _ in compiled]
        sizes = [s for _, s in compiled]
        if kind == "reduce":  # min, max, sum…: over every argument's every component

            def reduce(env):
                parts = []
                for f, s in zip(functions, sizes):
                    parts.extend(components(f(env), s))
                return function(parts)

            return reduce, SCALAR
        size = SCALAR
        for s in sizes:
            size = _broadcast_size(size, s, self)
        return (lambda env: function(*(f(env) for f in functions))), size

    def vector_size(self, node, position):
        """The size in vector(#size,…): a constant integer > 0, as G'MIC requires."""
        value = self.types.constant_index(self.node(node)[0])
        if value is None:
            self.fail("vector(#size): the size must be a constant", position)
        if not (math.isfinite(value) and value >= 1 and value == math.floor(value)):
            self.fail(f"vector(#size): the size must be an integer > 0 (got {gmic_number(value)})", position)
        return value

    def sized_vector(self, name, count, args, position):
        """vectorN(a,b,…) and vector(#N,a,b,…): N values, the components of the arguments
        repeated (0 when there are none), at most MAX_VECTOR of them."""
        if count > MAX_VECTOR:
            self.fail(
                f"{name}(): {count:.0f} values are more than nnpipe's limit of {MAX_VECTOR:,}", position
            )
        count = int(count)
        compiled = [self.node(a) for a in args] or [self.node_num(0.0)]
        functions, sizes = [f for f, _ in compiled], [s for _, s in compiled]

        def run(env):
            parts = [part for f, s in zip(functions, sizes) for part in components(f(env), s)][:count]
            vector = np.empty((count,) + np.broadcast_shapes(*(part.shape for part in parts)))
            for k, part in enumerate(parts):  # part k fills components k, k+len(parts), …
                vector[k :: len(parts)] = part
            return vector

        return run, count

    def call_set(self, args, position):
        if len(args) != 2 or args[0][0] != "str":
            self.fail("set() takes a variable name in single quotes and a value", position)
        name = args[0][1]
        value_function, size = self.node(args[1])

        nan = scalar(math.nan)

        def run(env):
            env.set_variable(name, value_function(env), size)
            return nan  # G'MIC's set() gives nan

        return run, SCALAR

    def call_pixel(self, name, args, position):
        """i(_#k,x,_y,_z,_c) and I(_#k,x,_y,_z): values read with G'MIC's rules (Dirichlet
        boundary: 0 outside; coordinates truncated to integers)."""
        index_function = None
        if args and args[0][0] == "image":
            index_function, _ = self.node(args[0][1])
            args = args[1:]
        compiled = [self.node(a) for a in args]
        is_vector = name in ("I", "J")
        relative = name in ("j", "J")
        most = 3 if is_vector else 4
        count = sum(1 if s is SCALAR else s for _, s in compiled)
        if count > most + 2:
            self.fail(f"{name}() takes at most {most} coordinates", position)
        size = SCALAR
        if is_vector:  # its size is the image's spectrum, known only for a constant index
            index = None if index_function is None else self.types.constant_index(index_function)
            if index_function is not None and index is None:
                self.fail(f"{name}(#k): the image index must be a constant", position)
            size = self.types.spectrum_of(index)

        def run(env):
            coordinates = []
            for function, s in compiled:
                coordinates.extend(components(function(env), s))
            image_index = _image_index(index_function, env, env.text)
            image = env.grid.image(image_index, env.text) if image_index is not None else env.current_image()
            if image is None:  # #k of an empty list: G'MIC reads 0, and has no vector to give
                if is_vector:
                    fail(env.text, f"{name}(#k): the image list is empty")
                return scalar(0.0)
            return env.read(image, coordinates[:most], is_vector, relative)

        return run, size

    def call_random(self, name, args, position):
        compiled = [self.node(a) for a in args]
        if name == "g":
            self.fail("g is a variable, not a function: write g", position)
        if len(compiled) > 2:
            self.fail("u() takes at most 2 arguments (G'MIC's include flags are not supported)", position)
        size = SCALAR
        for _, s in compiled:
            size = _broadcast_size(size, s, self)
        functions = [f for f, _ in compiled]

        def run(env):
            values = [f(env) for f in functions]
            low, high = (
                (scalar(0.0), scalar(1.0))
                if not values
                else ((scalar(0.0), values[0]) if len(values) == 1 else values)
            )
            shape = env.grid.shape if size is SCALAR else (size,) + env.grid.shape
            return low + (high - low) * env.grid.rng.random(shape)

        return run, size


def _image_index(index_function, env, text):
    if index_function is None:
        return None
    value = index_function(env)
    if value.size != 1:
        fail(text, "an image index #k must be the same for every pixel")
    return float(value.flat[0])


def _index(value, text):
    """A vector's index, the same for every pixel: nan or inf is out of any vector."""
    index = float(value.flat[0])
    if not math.isfinite(index):
        fail(text, f"index {gmic_number(index)} is outside the vector")
    return int(index)


def _broadcast_size(a, b, compiler):
    if a is SCALAR:
        return b
    if b is SCALAR or a == b:
        return a
    compiler.fail(f"vectors of different sizes ({a} and {b}) in one operation")


class TypeEnvironment:
    """What the compiler may know before running: image spectra and the network's sizes."""

    def __init__(self, images, current, network_sizes=None):
        self.images = images
        self.current = current
        self.network_sizes = network_sizes or {}

    def key(self, indices):
        """What a compiled form depends on: the spectra of the current image and of the images
        `indices` names (every image when None), and the network's sizes."""
        images = self.images
        count = len(images)
        if indices is None:
            spectra = tuple(image.shape[0] for image in images)
        else:
            spectra = tuple(
                None if (position := image_position(k, count)) is None else images[position].shape[0]
                for k in indices
            )
        return (spectra, self.spectrum(), tuple(sorted(self.network_sizes.items())))

    def spectrum(self, index=None):
        image = self.current if self.current is not None else (self.images[-1] if len(self.images) else None)
        return 1 if image is None else image.shape[0]

    def constant_index(self, index_function):
        try:
            with np.errstate(all="ignore"):  # an index of 0/0 is a NaN the caller names
                value = index_function(None)
        except Exception:
            return None
        return float(value.flat[0])

    def spectrum_of(self, index):
        position = None if index is None else image_position(index, len(self.images))
        if position is None:
            return self.spectrum(None)
        return self.images[position].shape[0]


class Compiled:
    """An expression compiled for one type environment: its statements, `end()` part, size."""

    def __init__(self, form, types):
        main, ends, _ = parse(form)
        compiler = Compiler(form.text, types)
        for name, size in types.network_sizes.items():
            compiler.variables.setdefault(name, size)  # nn macros define the module outputs
        self.uses_channel = uses_channel(main)
        self.run, self.size = compiler.sequence(main)
        self.end, _ = compiler.sequence(ends) if ends else (None, SCALAR)
        self.end_names = names_read(ends)
        self.variables = compiler.variables


_PROGRAMS = {}


def compile_expression(text, types):
    """The compiled form of `text` for `types`, and the numbers it runs with."""
    form = template(text)
    key = (form.key, types.key(parse(form)[2]))
    program = _PROGRAMS.get(key)
    if program is None:
        if len(_PROGRAMS) > 4096:
            _PROGRAMS.clear()
        try:
            program = Compiled(form, types)
        except ExpressionError:
            # the cached tree may be another text's of the same form (`1+foo`, `100 + foo`):
            # parsed again, the error points into this text
            forget(form)
            program = Compiled(form, types)
        _PROGRAMS[key] = program
    return program, form.constants

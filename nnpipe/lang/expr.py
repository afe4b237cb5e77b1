"""G'MIC's math expressions, our own evaluator (never Python's eval), vectorized over pixels.

An expression is parsed once (cached by its text) into a tree, then compiled into closures for
one *type environment* (the spectra of the images it reads, the sizes of the network's modules),
so the compiler knows, as G'MIC's does, which values are scalars and which are vectors. A
compiled expression runs over every pixel of an image at once: a scalar is a float64 array of
4 dimensions (s, d, h, w) that broadcasts over the pixel grid, a vector of n components adds a
leading axis of length n. `{expression}` in an item is the same evaluation on a grid of one
pixel, (0,0,0,0) of the last image.
"""

import functools
import math
import os
import re

import numpy as np

from nnpipe.errors import UserError

TOKEN = re.compile(
    r"\s*(?:(?P<number>0[xX][0-9a-fA-F]+|0[bB][01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'[^']*')"
    r"|(?P<op>\+=|-=|\*=|/=|%=|\^=|:=|&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%^<>!?:(),#;=\[\]&|~]))"
)
SCALAR = None  # the size of a scalar; a vector's size is its number of components
LOOPS = {"while": (2, 2), "do": (2, 2), "for": (4, 4), "repeat": (2, 3)}  # least, most args
IMAGE_SIZES = ("w", "h", "d", "s", "wh", "whd", "whds")


def _sample_variance(values):
    """G'MIC's iv: the variance dividing by n-1; 0 for one value."""
    return float(np.var(values, ddof=1)) if values.size > 1 else 0.0


IMAGE_STATISTICS = {"im": np.min, "iM": np.max, "ia": np.mean, "is": np.sum, "iv": _sample_variance,
                    "id": lambda values: math.sqrt(_sample_variance(values)), "ic": np.median,
                    "ip": np.prod, "in": np.linalg.norm}
CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan,
             "eps": float(np.finfo(np.float64).eps)}
NN_MACROS = ("__nn_forward", "__nn_loss", "__nn_backward", "__nn_update")


def format_number(value):
    """nnpipe's own numbers (losses, statistics): integers bare, others in their shortest
    exact form."""
    if isinstance(value, bool):
        value = int(value)
    value = float(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return gmic_number(value) if not math.isfinite(value) else repr(value)


def gmic_number(value):
    """A number as G'MIC prints it: C's %.17g, `inf`, `-inf`, `nan` (`-nan` when negative)."""
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1, value) < 0 else "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return "%.17g" % value


def format_value(value):
    """A scalar, or a vector as comma-separated numbers."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(gmic_number(v) for v in np.ravel(value))
    return gmic_number(value)


# --- parsing ---------------------------------------------------------------------------------

class ExpressionError(UserError):
    pass


def _fail(text, message, position=None):
    where = "" if position is None else f" at position {position + 1}"
    raise ExpressionError(f"expression '{text}': {message}{where}")


def tokenize(text):
    tokens, pos = [], 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if not text[pos:].strip():
                break
            bad = len(text[pos:]) - len(text[pos:].lstrip()) + pos
            _fail(text, f"unexpected character '{text[bad]}'", bad)
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


BINARY = [  # lowest to highest precedence, all left-associative, as G'MIC's: % binds tighter
    # than * and / (8/4%3 is 8), unary minus tighter than % (-7%3 is 2), ^ tighter still
    ("||",), ("&&",), ("|",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"),
    ("+", "-"), ("*", "/"), ("%",),
]
ASSIGNMENTS = ("=", "+=", "-=", "*=", "/=", "%=", "^=")
# G'MIC reads `{a^b}` with two plain numbers with C's scanf, so `{-2^2}` is (-2)^2 = 4 while
# `{-2^2+1}` and `fill "-2^2"` are -(2^2)...
NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
NUMBER_POWER = re.compile(rf"^({NUMBER})\^({NUMBER})$")


class _Parser:
    """Recursive descent into tuples: ('num', v), ('name', n), ('call', f, args), ('op', o, a, b) …"""

    def __init__(self, text, tokens):
        self.text = text
        self.tokens = tokens
        self.pos = 0

    def shown(self, token):
        """A token as the user wrote it (a number taken out by Template shows its digits)."""
        kind, value, position = token
        if kind == "slot":
            return TOKEN.match(self.text, position).group("number")
        return value

    def peek(self, offset=0):
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def accept(self, *values):
        kind, value, _ = self.peek()
        if kind == "op" and value in values:
            self.pos += 1
            return value
        return None

    def expect(self, value):
        if not self.accept(value):
            found, position = self.shown(self.peek()), self.peek()[2]
            _fail(self.text, f"expected '{value}' but found '{found or 'end of expression'}'", position)

    def parse(self):
        statements = self.sequence(())
        if self.peek()[0] != "end":
            _fail(self.text, f"unexpected '{self.shown(self.peek())}'", self.peek()[2])
        return statements

    def sequence(self, closing):
        statements = []
        while True:
            while self.accept(";"):
                pass
            kind, value, _ = self.peek()
            if kind == "end" or (kind == "op" and value in closing):
                break
            statements.append(self.assignment())
            if not self.accept(";"):
                break
        return ("seq", statements) if len(statements) != 1 else statements[0]

    def assignment(self):
        kind, value, position = self.peek()
        if kind == "name" and self.peek(1)[0] == "op" and self.peek(1)[1] in ASSIGNMENTS:
            self.pos += 2
            operator = self.tokens[self.pos - 1][1]
            return ("assign", value, operator, self.assignment(), position)
        if kind == "name" and self.peek(1)[1] == "[":  # V[k] = value, V[k] += value …
            start = self.pos
            self.pos += 2
            index = self.ternary()
            if self.accept("]") and self.peek()[0] == "op" and self.peek()[1] in ASSIGNMENTS:
                operator = self.peek()[1]
                self.pos += 1
                return ("assign_item", value, index, operator, self.assignment(), position)
            self.pos = start
        return self.ternary()

    def ternary(self):
        condition = self.binary(0)
        if self.accept("?"):
            yes = self.assignment()
            self.expect(":")
            no = self.assignment()
            return ("if", condition, yes, no)
        return condition

    def binary(self, level):
        if level == len(BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while op := self.accept(*BINARY[level]):
            left = ("op", op, left, self.binary(level + 1))
        return left

    def doubled(self, offset=0):
        """'++' or '--' written together at the token `offset` ahead, or None."""
        kind, first, position = self.peek(offset)
        next_kind, second, next_position = self.peek(offset + 1)
        if kind == next_kind == "op" and first == second and first in "+-" \
                and next_position == position + 1:
            return first
        return None

    def unary(self):
        sign = self.doubled()
        if sign and self.peek(2)[0] == "name":  # ++a, --a: add one, give the new value
            name, position = self.peek(2)[1], self.peek(2)[2]
            self.pos += 3
            return ("assign", name, sign + "=", ("num", 1.0), position)
        if op := self.accept("-", "+", "!", "~"):
            return ("unary", op, self.unary())
        return self.power()

    def power(self):
        # G'MIC reads 2^3^2 as (2^3)^2, and -x^2 as -(x^2).
        value = self.postfix()
        while self.accept("^"):
            exponent = self.unary() if self.peek()[1] in ("-", "+", "!") else self.postfix()
            value = ("op", "^", value, exponent)
        return value

    def postfix(self):
        value = self.atom()
        sign = self.doubled() if value[0] == "name" else None
        if sign and (self.peek(2)[0] == "end" or self.peek(2)[1] in (";", ")", ",", "]")):
            self.pos += 2  # a++, a--: add one, give the old value
            step = ("assign", value[1], sign + "=", ("num", 1.0), value[2])
            return ("op", "-" if sign == "+" else "+", step, ("num", 1.0))
        while self.accept("["):
            index = self.ternary()
            value = ("slice", value, index, self.ternary()) if self.accept(",") \
                else ("index", value, index)
            self.expect("]")
        return value

    def atom(self):
        kind, value, position = self.peek()
        self.pos += 1
        if kind == "number":
            return ("num", number_value(value))
        if kind == "slot":
            return ("slot", value)
        if kind == "string":
            return ("str", value[1:-1])
        if kind == "op" and value == "(":
            inner = self.sequence((")",))
            self.expect(")")
            return inner
        if kind == "op" and value == "[":
            items = []
            if not self.accept("]"):
                items.append(self.assignment())
                while self.accept(","):
                    items.append(self.assignment())
                self.expect("]")
            return ("vector", items)
        if kind == "name":
            if self.accept("("):
                return ("call", value, self.arguments(), position)
            if value in ("i", "I") and self.accept("#"):  # i#k, I#k: image k, here
                return ("call", value, [("image", self.unary())], position)
            if value in IMAGE_SIZES or value in IMAGE_STATISTICS:
                if self.accept("#"):
                    return ("attr", value, self.unary(), position)
                return ("attr", value, None, position)
            return ("name", value, position)
        _fail(self.text, f"unexpected '{value or 'end of expression'}'", position)

    def arguments(self):
        args = []
        if self.accept(")"):
            return args
        while True:
            if self.accept("#"):  # i(#k,…), I(#k,…): the image comes first
                args.append(("image", self.unary()))
            else:  # an argument may be a sequence: while(n>1, n/=2; ++c)
                args.append(self.sequence((",", ")")))
            if self.accept(")"):
                return args
            self.expect(",")


def number_value(text):
    """A number token's value: 0x10 and 0b101 too, as G'MIC reads them."""
    return float(int(text, 0)) if text[:2].lower() in ("0x", "0b") else float(text)


class Template:
    """An expression with its numbers taken out, so `$i<100` parses and compiles once whatever
    `$i` became. Numbers that the compiler must know stay: after `#` (they name images) and
    after a comma inside brackets (a length in V[start,length]). `key` identifies the parsed
    form, `constants` are the numbers taken out."""

    def __init__(self, text):
        self.text = text
        tokens, key, self.constants = [], [], []
        previous, brackets, end = ("", ""), [], -1
        for kind, value, position in tokenize(text):
            # `++x` and `+ +x` parse differently (see _Parser.doubled): the key tells them apart
            glued = kind == "op" and value in "+-" and previous[1] == value and position == end
            kept = "#" in previous or previous == ("#", "-") or (brackets[-1:] == ["["] and previous[1] == ",")
            if kind == "number" and not kept:
                tokens.append(("slot", len(self.constants), position))
                key.append(("slot", len(self.constants)))
                self.constants.append(number_value(value))
            else:
                tokens.append((kind, value, position))
                key.append((kind, value, glued) if glued else (kind, value))
            if kind == "op" and value in "([":
                brackets.append(value)
            elif kind == "op" and value in ")]" and brackets:
                brackets.pop()
            previous, end = (previous[1], value), position + len(value)
        self.tokens, self.key = tokens, tuple(key)


@functools.lru_cache(maxsize=1024)
def template(text):
    return Template(text)


_TREES = {}


def parse(form):
    """The tree of a Template, the `end(…)` statements apart (they run once, after every pixel),
    and the images whose spectrum the compiled form depends on."""
    tree = _TREES.get(form.key)
    if tree is None:
        try:
            statements = _Parser(form.text, form.tokens).parse()
        except RecursionError:
            _fail(form.text, "nested too deeply")
        statements = statements[1] if statements[0] == "seq" else [statements]
        ends = [s for s in statements if s[0] == "call" and s[1] == "end"]
        main = [s for s in statements if not (s[0] == "call" and s[1] == "end")]
        tree = (main, [argument for end in ends for argument in end[2]], _image_indices(main + ends))
        if len(_TREES) > 4096:
            _TREES.clear()
        _TREES[form.key] = tree
    return tree


def _image_indices(nodes):
    """The images whose spectrum the compiler needs (`I(#k,…)` with a constant k), or None
    when one is not constant."""
    found = set()
    for node in _walk(nodes):
        if node[0] == "call" and node[1] in ("I", "J") and node[2] and node[2][0][0] == "image":
            index = node[2][0][1]
            if index[0] == "num":
                found.add(int(index[1]))
            elif index[0] == "unary" and index[1] == "-" and index[2][0] == "num":
                found.add(-int(index[2][1]))
            else:
                found.add(None)
    return None if None in found else tuple(sorted(found))


# --- evaluation context ----------------------------------------------------------------------

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
        if index is None:
            if self.current is None:
                if not len(self.images):
                    return None
                return self.images[-1]
            return self.current
        count = len(self.images)
        if not -count <= index < count:
            _fail(text, f"image #{index} is out of range ({count} image{'s' * (count != 1)})")
        return self.images[index]


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


_CONSTANTS = {}


def _constant(value):
    """A number as a one-pixel scalar; the same read-only array for the same number."""
    key = value if value != 0 else ("zero", math.copysign(1.0, value))  # -0 keeps its sign
    array = _CONSTANTS.get(key)
    if array is None:
        if len(_CONSTANTS) > 10000:
            _CONSTANTS.clear()
        array = np.full((1, 1, 1, 1), value, dtype=np.float64)
        array.flags.writeable = False
        if value == value:  # NaN is no dictionary key
            _CONSTANTS[key] = array
    return array


def _truth(value):
    return value != 0


def _components(value, size):
    """A vector's components, or a scalar's one."""
    return [value] if size is SCALAR else [value[k] for k in range(value.shape[0])]


# --- compiling: a closure per node, and the node's size ----------------------------------------

class _Compiler:
    def __init__(self, text, types):
        self.text = text
        self.types = types  # image spectra and network sizes, see TypeEnvironment
        self.variables = {}  # name -> size, in statement order

    def fail(self, message, position=None):
        _fail(self.text, message, position)

    def sequence(self, nodes):
        compiled = [self.node(n) for n in nodes]
        if not compiled:
            return (lambda env: _constant(0.0)), SCALAR
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
        constant = _constant(value)
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
                parts.extend(_components(function(env), part_size))
            first = parts[0].shape
            shape = first if all(p.shape == first for p in parts) else \
                np.broadcast_shapes(*(p.shape for p in parts))
            vector = np.empty((len(parts),) + shape)
            for k, part in enumerate(parts):  # assignment broadcasts each part
                vector[k] = part
            return vector
        return run, size

    def node_name(self, name, position):
        if name in self.variables:
            size = self.variables[name]
            return (lambda env: env.value(name)), size
        if name in CONSTANTS:
            return self.node_num(CONSTANTS[name])
        if name in ("x", "y", "z", "c"):
            return (lambda env: env.grid.coordinates[name]), SCALAR
        if name == "i":
            return (lambda env: env.pixel_values()[env.grid.origin[0]] if env.vector_mode
                    else env.pixel_values()), SCALAR
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
                return _constant(0.0)
            s, d, h, w = image.shape
            if name in IMAGE_STATISTICS:
                values = image.astype(np.float64).ravel()  # in double precision, as G'MIC
                return _constant(float(IMAGE_STATISTICS[name](values)) if image.size else 0.0)
            return _constant({"w": w, "h": h, "d": d, "s": s, "wh": w * h, "whd": w * h * d,
                              "whds": w * h * d * s}[name])
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
                    _fail(env.text, f"index {position} is outside the vector (of size {size})")
                return vector[position]
            positions = np.clip(k.astype(np.int64), 0, size - 1)
            shape = np.broadcast_shapes(vector.shape[1:], positions.shape)
            return np.take_along_axis(np.broadcast_to(vector, (size,) + shape),
                                      np.broadcast_to(positions, shape)[None], 0)[0]
        return run, SCALAR

    def node_slice(self, target, start, length):
        """V[start,length]: the vector of V's `length` components from `start`."""
        if length[0] != "num" or length[1] < 1 or not float(length[1]).is_integer():
            self.fail("the length in V[start,length] must be a number >= 1")
        return self.node_vector([("index", target, ("op", "+", start, ("num", float(k))))
                                 for k in range(int(length[1]))])

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
                new = combine(vector[k] if 0 <= k < size else _constant(0.0), new)
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
                    vector, np.broadcast_to(np.clip(positions, 0, size - 1), shape)[None], 0)[0]
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
            return np.where(chosen, env.masked(chosen, yes_function),
                            env.masked(~chosen, no_function))
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
            parts = [init, ("op", "<", counter, args[0]),
                     ("assign", counter[1], "+=", ("num", 1.0), position), args[-1]]
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
            result = _constant(math.nan)
            while True:
                if checks_first or active is not None:
                    test = _truth(condition[0](env))
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
        apply = {"-": np.negative, "+": lambda v: v, "!": lambda v: (v == 0).astype(np.float64),
                 "~": _bitwise_not}[operator]
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
                a = _truth(left_function(env))
                if a.size == 1 and bool(a.flat[0]) != is_and:  # decided by the left side
                    return _constant(float(not is_and))
                # per pixel, the right side runs where the left one does not decide
                b = _truth(right_function(env) if a.size == 1 else
                           env.masked(a if is_and else ~a, right_function))
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
            found = _constant(float(test(args[0][1])))
            return (lambda env: found), SCALAR
        copies = re.fullmatch(r"vector(\d+)", name)
        if copies:  # vector3(a): [a,a,a]; vector3(a,b): [a,b,a] (the arguments repeated)
            count = int(copies.group(1))
            if not args or count < 1:
                self.fail(f"{name}() takes one value or more", position)
            return self.node_vector([args[k % len(args)] for k in range(count)])
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
                    parts.extend(_components(f(env), s))
                return function(parts)
            return reduce, SCALAR
        size = SCALAR
        for s in sizes:
            size = _broadcast_size(size, s, self)
        return (lambda env: function(*(f(env) for f in functions))), size

    def call_set(self, args, position):
        if len(args) != 2 or args[0][0] != "str":
            self.fail("set() takes a variable name in single quotes and a value", position)
        name = args[0][1]
        value_function, size = self.node(args[1])

        nan = _constant(math.nan)

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
        if is_vector:
            size = self.types.spectrum_of(None if index_function is None
                                          else self.types.constant_index(index_function))

        def run(env):
            coordinates = []
            for function, s in compiled:
                coordinates.extend(_components(function(env), s))
            image_index = _image_index(index_function, env, env.text)
            image = env.grid.image(image_index, env.text) if image_index is not None \
                else env.current_image()
            return env.read(image, coordinates[:most], is_vector, relative)
        return run, size

    def call_random(self, name, args, position):
        compiled = [self.node(a) for a in args]
        if name == "g":
            self.fail("g is a variable, not a function: write g", position)
        if len(compiled) > 2:
            self.fail("u() takes at most 2 arguments (G'MIC's include flags are not supported)",
                      position)
        size = SCALAR
        for _, s in compiled:
            size = _broadcast_size(size, s, self)
        functions = [f for f, _ in compiled]

        def run(env):
            values = [f(env) for f in functions]
            low, high = (_constant(0.0), _constant(1.0)) if not values else \
                ((_constant(0.0), values[0]) if len(values) == 1 else values)
            shape = env.grid.shape if size is SCALAR else (size,) + env.grid.shape
            return low + (high - low) * env.grid.rng.random(shape)
        return run, size


def _image_index(index_function, env, text):
    if index_function is None:
        return None
    value = index_function(env)
    if value.size != 1:
        _fail(text, "an image index #k must be the same for every pixel")
    return int(value.flat[0])


def _index(value, text):
    """A vector's index, the same for every pixel: nan or inf is out of any vector."""
    index = float(value.flat[0])
    if not math.isfinite(index):
        _fail(text, f"index {gmic_number(index)} is outside the vector")
    return int(index)


def _broadcast_size(a, b, compiler):
    if a is SCALAR:
        return b
    if b is SCALAR or a == b:
        return a
    compiler.fail(f"vectors of different sizes ({a} and {b}) in one operation")


def _floor_mod(a, b):
    """G'MIC's modulo: the sign of b; x % inf is x, inf % m is 0, x % 0 is nan."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    result = a - b * np.floor(a / b)
    result = np.where(np.isinf(b) & np.isfinite(a), a, result)
    return np.where(np.isinf(a) & np.isfinite(b) & (b != 0), 0.0, result)


def _round(value, step=None):
    """G'MIC rounds halves away from zero; round(x, step) rounds to a multiple of step."""
    if step is None:
        return np.sign(value) * np.floor(np.abs(value) + 0.5) + 0.0  # round(-0.4) is 0, not -0
    scaled = value / step
    return np.where(step == 0, value, np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) * step)


def _bitwise_not(value):
    """G'MIC's ~ works on 32-bit unsigned integers: ~0 is 4294967295."""
    return (~value.astype(np.int64) & 0xFFFFFFFF).astype(np.float64)


def _positive_nan(function):
    """G'MIC prints the NaN of sqrt(-1), log(-1) or 5%0 as `nan`, not `-nan` (the sign x86's
    default NaN has)."""
    def run(*args):
        result = function(*args)
        return np.where(np.isnan(result), np.abs(result), result)
    return run


def _factorial(value):
    """n!: beyond 170! a float64 overflows, so the product stops there (and nan stays nan)."""
    result = np.ones_like(value, dtype=np.float64)
    top = np.max(np.where(np.isnan(value), 1.0, value), initial=1)
    for k in range(2, int(min(top, 171)) + 1):
        result = np.where(value >= k, result * k, result)
    return np.where(np.isnan(value), np.nan, np.where(value > 170, np.inf, result))


def _round_toward(value, step=None, direction=None):
    """round(x,step,direction): direction 0 nearest (halves away from zero), 1 up, -1 down."""
    if direction is None:
        return _round(value, step)
    step = np.where(step == 0, 1.0, step) if step is not None else 1.0
    scaled = value / step
    rounded = np.where(direction > 0, np.ceil(scaled),
                       np.where(direction < 0, np.floor(scaled), _round(scaled)))
    return rounded * step + 0.0


def _count(parts):
    return _constant(float(len(parts)))


def _stack(parts):
    return np.stack(np.broadcast_arrays(*parts))


def _variance(parts):
    """G'MIC's var() and std() divide by n-1."""
    values = _stack(parts)
    deviations = values - values.mean(axis=0)
    return (deviations * deviations).sum(axis=0) / (len(parts) - 1)  # one value: nan, as G'MIC


def _kth(parts):
    """kth(k,a,b,…): the k-th smallest of a,b,… (k from 1)."""
    values = np.sort(_stack(parts[1:]), axis=0)
    k = np.clip(np.asarray(parts[0]).astype(np.int64) - 1, 0, len(parts) - 2)
    return np.take_along_axis(values, np.broadcast_to(k, values.shape[1:])[None], 0)[0]


def _nth_argument(parts):
    """arg(n,a1,a2,…): a_n (n from 1); 0 beyond."""
    values = _stack(parts[1:])
    n = np.asarray(parts[0]).astype(np.int64) - 1
    inside = (n >= 0) & (n < len(parts) - 1)
    picked = np.take_along_axis(values, np.broadcast_to(np.clip(n, 0, len(parts) - 2),
                                                        values.shape[1:])[None], 0)[0]
    return np.where(inside, picked, 0.0)


def _by_magnitude(choose):
    def run(parts):
        values = _stack(parts)
        index = choose(np.abs(values), axis=0)
        return np.take_along_axis(values, index[None], 0)[0]
    return run


def _gcd(a, b):
    return np.gcd(a.astype(np.int64), b.astype(np.int64)).astype(np.float64)


def _lcm(a, b):
    return np.lcm(a.astype(np.int64), b.astype(np.int64)).astype(np.float64)


def _gauss(x, sigma=None):
    sigma = 1.0 if sigma is None else sigma
    return np.exp(-x * x / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)


def _lerp(a, b, t):
    return a * (1 - t) + b * t


OPERATORS = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide,
    "%": _positive_nan(_floor_mod), "^": np.power,
    "<": lambda a, b: (a < b).astype(np.float64), "<=": lambda a, b: (a <= b).astype(np.float64),
    ">": lambda a, b: (a > b).astype(np.float64), ">=": lambda a, b: (a >= b).astype(np.float64),
    "==": lambda a, b: (a == b).astype(np.float64), "!=": lambda a, b: (a != b).astype(np.float64),
    "&": lambda a, b: (a.astype(np.int64) & b.astype(np.int64)).astype(np.float64),
    "|": lambda a, b: (a.astype(np.int64) | b.astype(np.int64)).astype(np.float64),
    "<<": lambda a, b: (a.astype(np.int64) << b.astype(np.int64)).astype(np.float64),
    ">>": lambda a, b: (a.astype(np.int64) >> b.astype(np.int64)).astype(np.float64),
}


def _reduce(function):
    def run(parts):
        result = parts[0]
        for part in parts[1:]:
            result = function(result, part)
        return result
    return run


FUNCTIONS = {  # name: (function, least arguments, most arguments, kind)
    "abs": (np.abs, 1, 1, "map"), "sqrt": (_positive_nan(np.sqrt), 1, 1, "map"),
    "exp": (np.exp, 1, 1, "map"), "log": (_positive_nan(np.log), 1, 1, "map"),
    "log2": (_positive_nan(np.log2), 1, 1, "map"), "log10": (_positive_nan(np.log10), 1, 1, "map"),
    "sin": (np.sin, 1, 1, "map"), "cos": (np.cos, 1, 1, "map"), "tan": (np.tan, 1, 1, "map"),
    "asin": (np.arcsin, 1, 1, "map"), "acos": (_positive_nan(np.arccos), 1, 1, "map"),
    "atan": (np.arctan, 1, 1, "map"), "atan2": (np.arctan2, 2, 2, "map"),
    "sinh": (np.sinh, 1, 1, "map"), "cosh": (np.cosh, 1, 1, "map"), "tanh": (np.tanh, 1, 1, "map"),
    "floor": (np.floor, 1, 1, "map"), "ceil": (lambda v: np.ceil(v) + 0.0, 1, 1, "map"),
    "round": (_round_toward, 1, 3, "map"),
    "int": (lambda v: np.trunc(v) + 0.0, 1, 1, "map"),  # +0.0: G'MIC prints int(-0.5) as 0
    "sign": (lambda v: np.nan_to_num(np.sign(v), nan=0.0), 1, 1, "map"),  # sign(nan) is 0
    "pow": (np.power, 2, 2, "map"), "lerp": (_lerp, 3, 3, "map"),
    "cut": (lambda v, a, b: np.minimum(np.maximum(v, a), b), 3, 3, "map"),
    "isnan": (lambda v: np.isnan(v).astype(np.float64), 1, 1, "map"),
    "isinf": (lambda v: np.isinf(v).astype(np.float64), 1, 1, "map"),
    "sqr": (np.square, 1, 1, "map"),
    "cbrt": (np.cbrt, 1, 1, "map"),
    "hypot": (np.hypot, 2, 2, "map"), "fact": (_factorial, 1, 1, "map"),
    "xor": (lambda a, b: (a.astype(np.int64) ^ b.astype(np.int64)).astype(np.float64), 2, 2, "map"),
    # min and max skip NaN, as G'MIC's do: min(-1,nan) is -1
    "min": (_reduce(np.fmin), 1, None, "reduce"), "max": (_reduce(np.fmax), 1, None, "reduce"),
    "sum": (_reduce(np.add), 1, None, "reduce"), "prod": (_reduce(np.multiply), 1, None, "reduce"),
    "size": (_count, 1, None, "reduce"), "narg": (_count, 0, None, "reduce"),
    "avg": (lambda parts: np.mean(_stack(parts), axis=0), 1, None, "reduce"),
    "med": (lambda parts: np.median(_stack(parts), axis=0), 1, None, "reduce"),
    "var": (_positive_nan(_variance), 1, None, "reduce"),
    "std": (_positive_nan(lambda parts: np.sqrt(_variance(parts))), 1, None, "reduce"),
    "argmin": (lambda parts: np.argmin(_stack(parts), axis=0) + 0.0, 1, None, "reduce"),
    "argmax": (lambda parts: np.argmax(_stack(parts), axis=0) + 0.0, 1, None, "reduce"),
    "minabs": (_by_magnitude(np.argmin), 1, None, "reduce"),
    "maxabs": (_by_magnitude(np.argmax), 1, None, "reduce"),
    "kth": (_kth, 2, None, "reduce"), "arg": (_nth_argument, 2, None, "reduce"),
    "norm1": (lambda parts: np.sum(np.abs(_stack(parts)), axis=0), 1, None, "reduce"),
    "norm2": (lambda parts: np.sqrt(np.sum(_stack(parts) ** 2, axis=0)), 1, None, "reduce"),
    "norminf": (lambda parts: np.max(np.abs(_stack(parts)), axis=0), 1, None, "reduce"),
    "bool": (lambda v: (v != 0).astype(np.float64), 1, 1, "map"),
    "isint": (lambda v: (np.isfinite(v) & (v == np.round(v))).astype(np.float64), 1, 1, "map"),
    "isfinite": (lambda v: np.isfinite(v).astype(np.float64), 1, 1, "map"),
    "isnum": (lambda v: np.ones_like(v), 1, 1, "map"),
    "isbool": (lambda v: ((v == 0) | (v == 1)).astype(np.float64), 1, 1, "map"),
    "sinc": (lambda v: np.where(v == 0, 1.0, np.sin(v) / np.where(v == 0, 1.0, v)), 1, 1, "map"),
    "asinh": (np.arcsinh, 1, 1, "map"), "acosh": (_positive_nan(np.arccosh), 1, 1, "map"),
    "atanh": (_positive_nan(np.arctanh), 1, 1, "map"),
    "gauss": (_gauss, 1, 2, "map"),
    "deg2rad": (lambda v: v * (np.pi / 180), 1, 1, "map"),
    "rad2deg": (lambda v: v * (180 / np.pi), 1, 1, "map"),
    "gcd": (_gcd, 2, 2, "map"), "lcm": (_lcm, 2, 2, "map"),
    "norm": (lambda parts: np.sqrt(_reduce(np.add)([p * p for p in parts])), 1, None, "reduce"),
}


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
            spectra = tuple(images[k].shape[0] if -count <= k < count else None for k in indices)
        return (spectra, self.spectrum(), tuple(sorted(self.network_sizes.items())))

    def spectrum(self, index=None):
        image = self.current if self.current is not None else (self.images[-1] if len(self.images) else None)
        return 1 if image is None else image.shape[0]

    def constant_index(self, index_function):
        try:
            value = index_function(None)
        except Exception:
            return None
        return int(value.flat[0])

    def spectrum_of(self, index):
        if index is None or not -len(self.images) <= index < len(self.images):
            return self.spectrum(None)
        return self.images[index].shape[0]


class Compiled:
    """An expression compiled for one type environment: its statements, `end()` part, size."""

    def __init__(self, form, types):
        main, ends, _ = parse(form)
        compiler = _Compiler(form.text, types)
        for name, size in types.network_sizes.items():
            compiler.variables.setdefault(name, size)  # nn macros define the module outputs
        self.uses_channel = _uses_channel(main)
        self.run, self.size = compiler.sequence(main)
        self.end, _ = compiler.sequence(ends) if ends else (None, SCALAR)
        self.end_names = _names(ends)
        self.variables = compiler.variables


def _walk(tree):
    """Every node of a parsed tree (tuples, and lists of them)."""
    if isinstance(tree, tuple):
        yield tree
        for part in tree[1:]:
            yield from _walk(part)
    elif isinstance(tree, list):
        for part in tree:
            yield from _walk(part)


def _names(nodes):
    """The variable names `nodes` read."""
    return {node[1] for node in _walk(nodes) if node[0] == "name"}


def _uses_channel(nodes):
    """Does a scalar result depend on the channel (so it must run once per channel)?"""
    return any((node[0] == "name" and node[1] in ("c", "i", "u", "g"))
               or (node[0] == "call" and node[1] in ("i", "j", "u", "g")) for node in _walk(nodes))


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
            _TREES.pop(form.key, None)
            program = Compiled(form, types)
        _PROGRAMS[key] = program
    return program, form.constants


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
                image = image[:, z:z + 1, y:y + 1, x:x + 1]
            self._pixels = image.astype(np.float64)
        return self._pixels

    def channel(self, k):
        values = self.pixel_values()
        if k >= values.shape[0]:
            return _constant(0.0)
        return values[k:k + 1]

    def pixel_vector(self):
        values = self.pixel_values()
        return values[:, None]  # (s, 1, d, h, w): one vector of s values per pixel

    def read(self, image, coordinates, is_vector, relative):
        here = [self.grid.coordinates[a] for a in ("x", "y", "z", "c")]
        count = 3 if is_vector else 4
        coordinates = [coordinates[k] if k < len(coordinates) else (_constant(0.0) if relative else here[k])
                       for k in range(count)]
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
        return _constant(0.0)

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
        if old is not None and old.shape[:old.ndim - 4] == value.shape[:value.ndim - 4]:
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


def evaluate_grid(text, images, current, rng, vector_mode=None, workspace=None, nn_hook=None,
                  one_pixel=False):
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
    env.constants = [_constant(value) for value in constants]
    env.text = text  # the compiled form may be another text's: errors name this one
    with np.errstate(all="ignore"):
        result = program.run(env)
        if program.end is not None:
            for name in program.end_names & env.values.keys():  # what end() reads, at the end
                size = program.variables.get(name, SCALAR)
                env.values[name] = _reduce_for_end(name, env.values[name], size, nn_hook)
            last = env.current_image()  # end() runs at its last pixel, as G'MIC's does
            env.grid = Grid(images, current, (1, 1, 1, 1), rng, workspace,
                            tuple(max(n - 1, 0) for n in last.shape))
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
        return _constant(nn_hook.batch_loss(name))
    last = _last_pixel(value, size)
    if size is SCALAR:
        return _constant(last)
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

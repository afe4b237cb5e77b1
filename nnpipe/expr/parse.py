"""Expressions parsed into trees: tokens, a recursive-descent parser following G'MIC's
precedences, and templates (an expression with its numbers taken out, so `$i<100` parses
once whatever `$i` became)."""

import functools
import re

from nnpipe.errors import UserError
from nnpipe.expr.functions import IMAGE_STATISTICS

TOKEN = re.compile(
    r"\s*(?:(?P<number>0[xX][0-9a-fA-F]+|0[bB][01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'[^']*')"
    r"|(?P<op>\+=|-=|\*=|/=|%=|\^=|:=|&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%^<>!?:(),#;=\[\]&|~]))"
)
IMAGE_SIZES = ("w", "h", "d", "s", "wh", "whd", "whds")


class ExpressionError(UserError):
    pass


def fail(text, message, position=None):
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
            fail(text, f"unexpected character '{text[bad]}'", bad)
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


BINARY = [  # lowest to highest precedence, all left-associative, as G'MIC's: % binds tighter
    # than * and / (8/4%3 is 8), unary minus tighter than % (-7%3 is 2), ^ tighter still
    ("||",),
    ("&&",),
    ("|",),
    ("&",),
    ("==", "!="),
    ("<", "<=", ">", ">="),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/"),
    ("%",),
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
            fail(self.text, f"expected '{value}' but found '{found or 'end of expression'}'", position)

    def parse(self):
        statements = self.sequence(())
        if self.peek()[0] != "end":
            fail(self.text, f"unexpected '{self.shown(self.peek())}'", self.peek()[2])
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
        if kind == next_kind == "op" and first == second and first in "+-" and next_position == position + 1:
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
            value = ("slice", value, index, self.ternary()) if self.accept(",") else ("index", value, index)
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
        fail(self.text, f"unexpected '{value or 'end of expression'}'", position)

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
    `$i` became. Numbers that the compiler must know stay: after `#` and inside brackets opened
    right after it (they name images, or a vector's size in vector(#n)) and after a comma inside
    brackets (a length in V[start,length]). `key` identifies the parsed
    form, `constants` are the numbers taken out."""

    def __init__(self, text):
        self.text = text
        tokens, key, self.constants = [], [], []
        previous, brackets, end = ("", ""), [], -1
        indexed = []  # depths of the brackets opened right after '#': `#(1+2)` keeps 1 and 2
        for kind, value, position in tokenize(text):
            # `++x` and `+ +x` parse differently (see _Parser.doubled): the key tells them apart
            glued = kind == "op" and value in "+-" and previous[1] == value and position == end
            kept = (
                "#" in previous
                or previous == ("#", "-")
                or (brackets[-1:] == ["["] and previous[1] == ",")
                or bool(indexed)
            )
            if kind == "op" and value == "(" and (previous[1] == "#" or previous == ("#", "-")):
                indexed.append(len(brackets) + 1)
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
                if indexed and indexed[-1] == len(brackets):
                    indexed.pop()
                brackets.pop()
            previous, end = (previous[1], value), position + len(value)
        self.tokens, self.key = tokens, tuple(key)


@functools.lru_cache(maxsize=1024)
def template(text):
    return Template(text)


_TREES = {}


def forget(form):
    """Drop the cached tree of `form` (it may be another text's of the same form)."""
    _TREES.pop(form.key, None)


def parse(form):
    """The tree of a Template, the `end(…)` statements apart (they run once, after every pixel),
    and the images whose spectrum the compiled form depends on."""
    tree = _TREES.get(form.key)
    if tree is None:
        try:
            statements = _Parser(form.text, form.tokens).parse()
        except RecursionError:
            fail(form.text, "nested too deeply")
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
    for node in walk(nodes):
        if node[0] == "call" and node[1] in ("I", "J") and node[2] and node[2][0][0] == "image":
            index = node[2][0][1]
            if index[0] == "num":
                found.add(index[1])
            elif index[0] == "unary" and index[1] == "-" and index[2][0] == "num":
                found.add(-index[2][1])
            else:
                found.add(None)
    return None if None in found else tuple(sorted(found))


def walk(tree):
    """Every node of a parsed tree (tuples, and lists of them)."""
    if isinstance(tree, tuple):
        yield tree
        for part in tree[1:]:
            yield from walk(part)
    elif isinstance(tree, list):
        for part in tree:
            yield from walk(part)


def names_read(nodes):
    """The variable names `nodes` read."""
    return {node[1] for node in walk(nodes) if node[0] == "name"}


def uses_channel(nodes):
    """Does a scalar result depend on the channel (so it must run once per channel)?"""
    return any(
        (node[0] == "name" and node[1] in ("c", "i", "u", "g"))
        or (node[0] == "call" and node[1] in ("i", "j", "u", "g"))
        for node in walk(nodes)
    )

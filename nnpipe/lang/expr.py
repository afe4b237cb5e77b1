"""A safe arithmetic evaluator for `{expression}`: our own parser, never Python's eval.

Numbers, variables, + - * / % ^, comparisons, && || !, `c ? a : b`, the functions below and
image attributes: `w h d s` (last image) or `w#i` (image i), plus `wh whd whds` and the
value statistics `im iM ia` (min, max, mean), and `i(image,x,_y,_z,_c)`, one value.
"""

import math
import re

from nnpipe.errors import UserError

TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%^<>!?:(),#]))"
)


def _checked_log(x):
    if x <= 0:
        raise UserError(f"log of a non-positive number ({format_number(x)})")
    return math.log(x)


def _checked_sqrt(x):
    if x < 0:
        raise UserError(f"sqrt of a negative number ({format_number(x)})")
    return math.sqrt(x)


def _round(x, step=1.0):
    if not step:
        return x
    multiples = math.floor(x / step + 0.5)
    inverse = 1 / step
    # round(x, 0.01) should print 30.56, not 30.560000000000002 (3056 * 0.01)
    return multiples / round(inverse) if abs(inverse - round(inverse)) < 1e-9 else multiples * step


FUNCTIONS = {
    "min": (lambda *a: min(a), 1, None), "max": (lambda *a: max(a), 1, None), "abs": (abs, 1, 1),
    "sqrt": (_checked_sqrt, 1, 1), "exp": (math.exp, 1, 1), "log": (_checked_log, 1, 1),
    "round": (_round, 1, 2), "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1),
    "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1), "tan": (math.tan, 1, 1),
    "pow": (math.pow, 2, 2),
}
CONSTANTS = {"pi": math.pi}
IMAGE_ATTRIBUTES = {"w", "h", "d", "s", "wh", "whd", "whds", "im", "iM", "ia"}


def format_number(value):
    """Integers without a decimal point, other numbers in their shortest exact form."""
    if isinstance(value, bool):
        value = int(value)
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise UserError(f"unexpected character '{text[pos:].strip()[:1]}' in expression '{text}'")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    tokens.append(("end", ""))
    return tokens


class _Parser:
    """Recursive descent over the token list, computing as it goes."""

    def __init__(self, text, variables, image_attribute):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.variables = variables
        self.image_attribute = image_attribute

    def peek(self):
        return self.tokens[self.pos]

    def take(self, value=None):
        token = self.tokens[self.pos]
        if value is not None and token[1] != value:
            found = token[1] or "end of expression"
            raise UserError(f"expected '{value}' but found '{found}' in expression '{self.text}'")
        self.pos += 1
        return token

    def accept(self, *values):
        if self.peek()[0] == "op" and self.peek()[1] in values:
            return self.take()[1]
        return None

    def parse(self):
        value = self.ternary()
        if self.peek()[0] != "end":
            raise UserError(f"unexpected '{self.peek()[1]}' in expression '{self.text}'")
        return value

    def ternary(self):
        condition = self.logic_or()
        if self.accept("?"):
            yes = self.ternary()
            self.take(":")
            no = self.ternary()
            return yes if condition else no
        return condition

    def logic_or(self):
        value = self.logic_and()
        while self.accept("||"):
            right = self.logic_and()
            value = int(bool(value) or bool(right))
        return value

    def logic_and(self):
        value = self.comparison()
        while self.accept("&&"):
            right = self.comparison()
            value = int(bool(value) and bool(right))
        return value

    COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
               ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}

    def comparison(self):
        value = self.additive()
        while op := self.accept(*self.COMPARE):
            value = int(self.COMPARE[op](value, self.additive()))
        return value

    def additive(self):
        value = self.multiplicative()
        while op := self.accept("+", "-"):
            right = self.multiplicative()
            value = value + right if op == "+" else value - right
        return value

    def multiplicative(self):
        value = self.unary()
        while op := self.accept("*", "/", "%"):
            right = self.unary()
            if op == "*":
                value = value * right
            elif right == 0:
                raise UserError(f"division by zero in expression '{self.text}'")
            elif op == "/":
                value = value / right
            else:
                value = math.fmod(value, right)
        return value

    def unary(self):
        if op := self.accept("-", "+", "!"):
            value = self.unary()
            return -value if op == "-" else (value if op == "+" else int(not value))
        return self.power()

    def power(self):
        base = self.atom()
        if self.accept("^"):
            exponent = self.unary()
            try:
                result = math.pow(base, exponent)
            except (OverflowError, ValueError):
                raise UserError(f"invalid power {format_number(base)}^{format_number(exponent)}") from None
            return result
        return base

    def atom(self):
        kind, value = self.take()
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "op" and value == "(":
            result = self.ternary()
            self.take(")")
            return result
        if kind == "name":
            if self.accept("("):
                return self.call(value)
            if value in IMAGE_ATTRIBUTES:
                index = -1
                if self.accept("#"):
                    index = self.unary()
                return self.image_attribute(value, index)
            if value in self.variables:
                return self.number_variable(value)
            if value in CONSTANTS:
                return CONSTANTS[value]
            raise UserError(f"unknown name '{value}' in expression '{self.text}'")
        found = value or "end of expression"
        raise UserError(f"unexpected '{found}' in expression '{self.text}'")

    def number_variable(self, name):
        text = self.variables[name]
        try:
            return float(text) if any(c in text for c in ".eEni") else int(text)
        except ValueError:
            raise UserError(f"variable '{name}' is not a number ('{text}')") from None

    def call(self, name):
        if name == "i":
            return self.pixel()
        if name not in FUNCTIONS:
            raise UserError(f"unknown function '{name}' in expression '{self.text}'")
        function, least, most = FUNCTIONS[name]
        args = []
        if not self.accept(")"):
            args.append(self.ternary())
            while self.accept(","):
                args.append(self.ternary())
            self.take(")")
        if len(args) < least or (most is not None and len(args) > most):
            raise UserError(f"wrong number of arguments for {name}() in expression '{self.text}'")
        return function(*args)


    def pixel(self):
        """i(image, x, _y, _z, _c): one value of an image."""
        args = [self.ternary()]
        while self.accept(","):
            args.append(self.ternary())
        self.take(")")
        if len(args) > 5:
            raise UserError(f"i() takes image,x,_y,_z,_c in expression '{self.text}'")
        return self.image_attribute("i", args[0], *args[1:])


def evaluate(text, variables=None, image_attribute=None):
    """Evaluate `text`; `variables` maps names to their text, `image_attribute(name, index)`."""
    def no_images(name, index):
        raise UserError(f"no image for '{name}' in expression '{text}'")

    try:
        return _Parser(text, variables or {}, image_attribute or no_images).parse()
    except (ArithmeticError, ValueError):
        raise UserError(f"expression '{text}' has no finite value") from None
    except RecursionError:
        raise UserError(f"expression '{text}' is nested too deeply") from None

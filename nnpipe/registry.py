"""The command registry: each command declares its signature once; the signature parses and
checks the arguments and writes `nnpipe help`.

    @command("resize", "r", group=IMAGES, each=True, params=[
        Size("width"), Size("height", SAME), ...])
    def resize(ctx, image, width, height, ...):
        (the docstring is the help text)

A command with `each=True` receives one image at a time and returns its replacement, so
selections and the `+` prefix (keep inputs, append results) work the same for all of them.
Other commands receive the selected indices. Arguments arrive in declared order.
"""

import difflib
import inspect
import math
from dataclasses import dataclass

from nnpipe.errors import UserError
from nnpipe.numbers import FLOAT32_MAX, INT_LIMIT
from nnpipe.quoting import unprotect

REQUIRED = object()
SAME = (100.0, True)  # a Size's default: 100% of the current size
IMAGES, NETWORK, TRAINING, FILES, CONTROL = (
    "Images",
    "Network building",
    "Training",
    "Network files",
    "Control",
)
DATA = "Data"
GROUP_ORDER = [IMAGES, CONTROL, NETWORK, DATA, TRAINING, FILES]


def split_arguments(text):
    """Split on commas outside quotes, brackets and parentheses; strip surrounding quotes.
    Commas a script quoted were protected by the lexer and come back here, in their part."""
    parts, depth, quote, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quote = not quote
        elif not quote and char in "([":
            depth += 1
        elif not quote and char in ")]":
            depth = max(depth - 1, 0)
        elif char == "," and not quote and not depth:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [unprotect(unquote(p)) for p in parts]


def unquote(text):
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


@dataclass
class Param:
    name: str
    default: object = REQUIRED
    help: str = ""

    kind = "value"

    @property
    def required(self):
        return self.default is REQUIRED

    def parse(self, text):
        return text

    def describe(self):
        return self.kind

    def fail(self, text, expected=None):
        raise UserError(f"{self.name} must be {expected or self.describe()} (got '{text}')")


def _number(param, text):
    try:
        value = float(text)
    except ValueError:
        param.fail(text)
    if not math.isfinite(value):
        param.fail(text)
    return value


def _range_text(low, high):
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


@dataclass
class Int(Param):
    low: int = None
    high: int = None

    def describe(self):
        return "an integer" + _range_text(self.low, self.high)

    def parse(self, text):
        value = _number(self, text)
        if not value.is_integer():
            self.fail(text)
        value = int(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            self.fail(text)
        if abs(value) > INT_LIMIT:
            raise UserError(f"{self.name} is too large in magnitude (got '{text}', at most {INT_LIMIT})")
        return value


class TypedNumber(float):
    """A number that remembers how it was written, so that nn_print shows it as typed
    (`1e-3`, not `0.001`), as nn_lib, which keeps its arguments as text, does."""

    def __new__(cls, value, text):
        number = super().__new__(cls, value)
        number.text = text
        return number

    def __str__(self):
        return self.text


def typed_number(text):
    return TypedNumber(float(text), text)


@dataclass
class Float(Param):
    low: float = None
    high: float = None
    positive: bool = False

    def describe(self):
        if self.positive:
            return "a number > 0"
        return "a number" + _range_text(self.low, self.high)

    def parse(self, text):
        value = _number(self, text)
        if abs(value) > FLOAT32_MAX:  # values are float32: a larger one would become inf
            raise UserError(f"{self.name} is beyond float32's range (got '{text}', at most ±3.4e38)")
        if (
            (self.positive and value <= 0)
            or (self.low is not None and value < self.low)
            or (self.high is not None and value > self.high)
        ):
            self.fail(text)
        return TypedNumber(value, text.strip())


@dataclass
class Bool(Param):
    def describe(self):
        return "0 or 1"

    def parse(self, text):
        if text not in ("0", "1"):
            self.fail(text)
        return text == "1"


@dataclass
class Choice(Param):
    choices: tuple = ()

    def describe(self):
        return "one of " + "|".join(self.choices)

    def parse(self, text):
        lowered = text.lower()
        if lowered in self.choices:
            return lowered
        if lowered.isdigit() and int(lowered) < len(self.choices):
            return self.choices[int(lowered)]
        self.fail(text)


@dataclass
class Text(Param):
    """Any text; with `rest=True` it takes every remaining argument, commas included."""

    rest: bool = False

    def describe(self):
        return "text"

    def parse(self, text):
        if not self.rest and not text:
            self.fail(text, "non-empty text")
        return text


@dataclass
class LayerName(Param):
    """A layer of the current network; with `previous=True`, '.' names the latest layer."""

    previous: bool = True

    def describe(self):
        return "a layer name" + (" or '.' (previous layer)" if self.previous else "")

    def parse(self, text):
        if not (text.isidentifier() or (self.previous and text == ".")):
            self.fail(text)
        return text


@dataclass
class Size(Param):
    """A size in pixels, or a percentage of the current size (`50%`); parsed to (value, is_percent)."""

    def describe(self):
        return "a size > 0 (pixels, or N% of the current size)"

    def parse(self, text):
        percent = text.endswith("%")
        value = _number(self, text[:-1] if percent else text)
        if value <= 0 or (not percent and not value.is_integer()):
            self.fail(text)
        if not percent and value > INT_LIMIT:
            raise UserError(f"{self.name} is too large (got '{text}', at most {INT_LIMIT})")
        return value, percent


@dataclass
class Command:
    """A command's declaration. Besides its signature, the flags that tell the interpreter how
    to call it, so that it knows commands only through the registry:
    `each`: receives one image at a time and returns its replacement (selections and '+');
    `raw`: receives its argument item whole (one Text parameter);
    `protected`: a raw command splitting its text itself gets quoted commas protected;
    `default_selection(ctx)`: the images used when none are selected (default: every data image);
    `selects_positions`: its selection names positions in the list, one past the end included
    (G'MIC's `input[k]`); `plus_on_copies`: '+' runs it on copies of the selection (G'MIC's
    +append, +keep); `implicit`: an item that is no command but a value, a size or a file runs
    it (G'MIC's `input`); `after(ctx, name, arguments)`: called once it has run (a network
    remembers the commands that built it); `apis`: the nn_lib APIs that have it."""

    name: str
    function: object
    params: list
    group: str
    help: str
    aliases: tuple = ()
    each: bool = False
    raw: bool = False
    takes_selection: bool = True
    default_selection: object = None
    protected: bool = False
    selects_positions: bool = False
    plus_on_copies: bool = False
    implicit: bool = False
    after: object = None
    apis: tuple = ("2023", "3.6")

    @property
    def takes_arguments(self):
        return bool(self.params)

    @property
    def arguments_optional(self):
        return all(not p.required for p in self.params)

    def parse_arguments(self, text):
        """The values of the declared parameters, in order, each one checked."""
        if self.raw:
            param = self.params[0]
            if text is None and param.required:
                raise UserError(f"missing argument '{param.name}' ({self.usage()})")
            if text is None:
                return [param.default]
            return [text if self.protected else unprotect(text)]
        values = split_arguments(text) if text is not None else []
        if len(values) == 1 and values[0] == "" and self.arguments_optional:
            values = []
        rest = self.params and isinstance(self.params[-1], Text) and self.params[-1].rest
        if len(values) > len(self.params) and not rest:
            raise UserError(
                f"takes at most {len(self.params)} argument{'s' * (len(self.params) != 1)}"
                f" ({self.usage()}), got {len(values)}"
            )
        parsed = []
        for index, param in enumerate(self.params):
            if rest and param is self.params[-1]:
                text_value = ",".join(values[index:]) if index < len(values) else None
            else:
                text_value = values[index] if index < len(values) else None
            if text_value is None or (text_value == "" and not param.required):
                if param.required:
                    raise UserError(f"missing argument '{param.name}' ({self.usage()})")
                parsed.append(param.default)
            else:
                parsed.append(param.parse(text_value))
        return parsed

    def usage(self):
        names = ",".join(p.name if p.required else "_" + p.name for p in self.params)
        return f"{self.name} {names}".strip()

    def summary(self):
        """The help's first paragraph, as one line."""
        return " ".join(self.help.strip().split("\n\n")[0].split())

    def describe(self):
        """The text of `nnpipe help NAME`."""
        lines = [self.usage()]
        if self.aliases:
            lines.append("aliases: " + ", ".join(self.aliases))
        lines.append("")
        lines.extend(self.help.strip().splitlines())
        if self.params:
            lines.append("")
            width = max(len(p.name) for p in self.params)
            for p in self.params:
                detail = p.help or p.describe()
                default = (
                    "" if p.required or "(default:" in detail else f" (default: {_default_text(p.default)})"
                )
                lines.append(f"  {p.name.ljust(width)}  {detail}{default}")
        if self.each:
            lines.append("")
            lines.append(
                "Applies to each selected image (default: all); '+' keeps the inputs and appends the results."
            )
        return "\n".join(lines)


def _default_text(value):
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bool):
        return f"{value[0]:g}{'%' if value[1] else ''}"
    return "none" if value is None else str(value)


APIS = ("2023", "3.6")  # nn_lib's APIs: 2023's (the default) and G'MIC 3.6's
DEFAULT_API = "2023"


class Registry:
    """The commands by name and alias, one table per nn_lib API (a command outside nn_lib
    is in both), and the global variables the language starts with (nn_lib's macro names, set
    by the commands that give them meaning)."""

    def __init__(self):
        self.tables = {api: ({}, {}) for api in APIS}  # api: (commands by name, aliases)
        self.variables = {}

    def add(self, entry):
        for api in entry.apis:
            commands, aliases = self.tables[api]
            for name in (entry.name, *entry.aliases):
                if name in commands or name in aliases:
                    raise RuntimeError(f"command {name} registered twice in API {api}")
            commands[entry.name] = entry
            aliases.update((alias, entry.name) for alias in entry.aliases)

    def commands(self, api=DEFAULT_API):
        """{name: Command} of `api`."""
        return self.tables[api][0]

    def aliases(self, api=DEFAULT_API):
        return self.tables[api][1]

    def lookup(self, name, api=DEFAULT_API):
        """The command called `name` (or by alias) in `api`, or None."""
        commands, aliases = self.tables[api]
        return commands.get(aliases.get(name, name))

    def elsewhere(self, name, api=DEFAULT_API):
        """The other API that has the command `name`, when `api` has not, or None."""
        if self.lookup(name, api) is not None:
            return None
        return next((other for other in APIS if self.lookup(name, other) is not None), None)

    def closest(self, name, api=DEFAULT_API):
        """The command name (or alias) of `api` most like `name`, or None."""
        commands, aliases = self.tables[api]
        found = difflib.get_close_matches(name, list(commands) + list(aliases), n=1)
        return found[0] if found else None

    def implicit(self, api=DEFAULT_API):
        return next(entry for entry in self.commands(api).values() if entry.implicit)

    def in_group(self, group, api=DEFAULT_API):
        return sorted((e for e in self.commands(api).values() if e.group == group), key=lambda e: e.name)


COMMANDS = Registry()  # what the command modules declare (nnpipe.commands.load_all)


def command(
    name,
    *aliases,
    params=(),
    group=IMAGES,
    help="",
    each=False,
    raw=False,
    takes_selection=True,
    default_selection=None,
    protected=False,
    selects_positions=False,
    plus_on_copies=False,
    implicit=False,
    after=None,
    api=None,
):
    """Register a command in COMMANDS; see the module docstring and Command's flags. `api`:
    the nn_lib API that has it ("2023" or "3.6"; default: both)."""

    def register(function):
        COMMANDS.add(
            Command(
                name,
                function,
                list(params),
                group,
                inspect.cleandoc(help or function.__doc__ or ""),
                tuple(aliases),
                each,
                raw,
                takes_selection or each,
                default_selection,
                protected,
                selects_positions,
                plus_on_copies,
                implicit,
                after,
                APIS if api is None else (api,),
            )
        )
        return function

    return register


def lookup(name, api=DEFAULT_API):
    """The command called `name` (or by alias) of `api` in COMMANDS, or None."""
    return COMMANDS.lookup(name, api)

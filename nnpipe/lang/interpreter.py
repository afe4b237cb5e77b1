"""Parse items into a tree of blocks and run it against the shared image list."""

import difflib
import glob
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from nnpipe.commands.registry import COMMANDS, ALIASES, lookup, split_arguments
from nnpipe.errors import UserError
from nnpipe.images.imagelist import ImageList
from nnpipe.lang.expr import format_number
from nnpipe.lang.lexer import Item, lex
from nnpipe.lang.substitute import substitute
from nnpipe.nn.network import DEFAULT_NAME, Network

COMMAND_ITEM = re.compile(r"^([+-]?)([A-Za-z_][A-Za-z0-9_]*)(\[.*\]|\.{1,3})?$")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
BLANK_SIZE = re.compile(r"^\d+(,\d+){1,3}(,[-+]?[\d.]+(e[-+]?\d+)?)?$")
KEYWORDS = {"repeat", "done", "if", "elif", "else", "fi", "do", "while", "{", "}"}
MAX_CALL_DEPTH = 64


@dataclass
class Run:
    """A command with its argument item (None when it takes none)."""
    item: Item
    arguments: Item = None


@dataclass
class Assign:
    item: Item


@dataclass
class Repeat:
    item: Item
    count: Item
    body: list


@dataclass
class If:
    item: Item
    branches: list  # [(condition item, body)]
    otherwise: list = None


@dataclass
class DoWhile:
    item: Item
    body: list
    condition: Item


@dataclass
class Frame:
    """One level of command call: its variables, its arguments and its enclosing repeats."""
    variables: dict
    arguments: list
    name: str
    repeats: list = field(default_factory=list)


class Parser:
    def __init__(self, items, definitions):
        self.items = items
        self.pos = 0
        self.definitions = definitions

    def is_command_item(self, text):
        match = COMMAND_ITEM.match(text)
        if not match:
            return False
        name = match.group(2)
        return lookup(name) is not None or name in self.definitions

    def starts_new_statement(self, text):
        return (text in KEYWORDS or ASSIGNMENT.match(text) is not None
                or self.is_command_item(text))

    def takes_arguments(self, name):
        if name in self.definitions:
            body = " ".join(item.text for item in self.definitions[name].items)
            return re.search(r"\$(\d|\*|#|\{\d)", body) is not None, True
        entry = lookup(name)
        if entry is None:
            return False, False
        return entry.takes_arguments, entry.arguments_optional

    def parse_block(self, until=()):
        """Parse statements until one of the keywords in `until`; return (nodes, keyword item)."""
        nodes = []
        while self.pos < len(self.items):
            item = self.items[self.pos]
            if item.text in until:
                self.pos += 1
                return nodes, item
            if item.text in ("done", "elif", "else", "fi", "while", "}"):
                raise UserError(f"'{item.text}' without a matching opening", item.where)
            self.pos += 1
            nodes.append(self.parse_statement(item))
        return nodes, None

    def next_item(self, item, what):
        if self.pos >= len(self.items):
            raise UserError(f"{item.text}: missing {what}", item.where)
        self.pos += 1
        return self.items[self.pos - 1]

    def parse_statement(self, item):
        text = item.text
        if text == "repeat":
            count = self.next_item(item, "repeat count")
            if self.pos < len(self.items) and self.items[self.pos].text == "{":
                self.pos += 1
                body, end = self.parse_block(("}",))
                closing = "'}'"
            else:
                body, end = self.parse_block(("done",))
                closing = "'done'"
            if end is None:
                raise UserError(f"repeat: block is not closed (missing {closing})", item.where)
            return Repeat(item, count, body)
        if text == "if":
            branches, otherwise = [], None
            condition = self.next_item(item, "condition")
            while True:
                body, end = self.parse_block(("elif", "else", "fi"))
                if end is None:
                    raise UserError("if: block is not closed (missing 'fi')", item.where)
                if otherwise is not None:
                    if end.text != "fi":
                        raise UserError(f"'{end.text}' after 'else'", end.where)
                    otherwise = body
                    return If(item, branches, otherwise)
                branches.append((condition, body))
                if end.text == "fi":
                    return If(item, branches)
                if end.text == "elif":
                    condition = self.next_item(end, "condition")
                else:
                    otherwise = []
        if text == "do":
            body, end = self.parse_block(("while",))
            if end is None:
                raise UserError("do: block is not closed (missing 'while')", item.where)
            return DoWhile(item, body, self.next_item(end, "condition"))
        if text == "{":
            raise UserError("'{' outside of a repeat block", item.where)
        if ASSIGNMENT.match(text):
            return Assign(item)
        match = COMMAND_ITEM.match(text)
        if match and (lookup(match.group(2)) or match.group(2) in self.definitions):
            takes, optional = self.takes_arguments(match.group(2))
            if takes and self.pos < len(self.items):
                following = self.items[self.pos].text
                if not (optional and self.starts_new_statement(following)):
                    self.pos += 1
                    return Run(item, self.items[self.pos - 1])
            return Run(item)
        if self.pos < len(self.items) and self.items[self.pos].text.startswith("=") \
                and re.fullmatch(r"[A-Za-z_]\w*", text):
            raise UserError(f"'{text} {self.items[self.pos].text}': to set a variable, write"
                            " name=value without spaces", item.where)
        return Run(item)


def parse(items, definitions):
    nodes, _ = Parser(items, definitions).parse_block()
    return nodes


class Interpreter:
    """Runs commands against one image list; holds variables, definitions and the networks."""

    def __init__(self, seed=None, quiet=False, verbose=False, out=None, err=None):
        self.images = ImageList()
        self.definitions = {}
        self.bodies = {}
        self.quiet = quiet
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.networks = {}
        self.current_network = None
        self.frames = [Frame({}, [], "")]
        self.location = "<command line>"

    # --- output -----------------------------------------------------------------------------
    def echo(self, text):
        print(text, file=self.out, flush=True)

    def warn(self, text):
        """A problem that does not stop the run: one line naming where and which command."""
        print(f"nnpipe: warning: {self.location}: {text}", file=self.err, flush=True)

    def notice(self, text):
        """Informational messages, hidden by --quiet."""
        if not self.quiet:
            print(text, file=self.err, flush=True)

    # --- running ----------------------------------------------------------------------------
    def run_source(self, text, file, arguments=()):
        main, definitions = lex(text, file)
        folder = os.path.dirname(file) if file not in ("<stdin>", "<command line>") else ""
        self.frames[0].variables.setdefault("script_dir", folder or ".")
        self.define(definitions)
        self.frames[0].arguments = list(arguments)
        self.execute(parse(main, self.definitions))

    def run_items(self, texts, file="<command line>"):
        items = [Item(text, file, 1) for text in texts]
        self.execute(parse(items, self.definitions))

    def define(self, definitions):
        self.definitions.update(definitions)
        for name, definition in definitions.items():
            self.bodies[name] = None  # parsed on first call, when every definition is known

    def execute(self, nodes):
        for node in nodes:
            self.location = node.item.where
            try:
                self.execute_node(node)
            except UserError as error:
                raise error.locate(node.item.where)

    def execute_node(self, node):
        frame = self.frames[-1]
        if isinstance(node, Run):
            self.run_command(node)
        elif isinstance(node, Assign):
            name, value = ASSIGNMENT.match(node.item.text).groups()
            frame.variables[name] = self.substitute(value)
        elif isinstance(node, Repeat):
            self.run_repeat(node, frame)
        elif isinstance(node, If):
            for condition, body in node.branches:
                if self.condition(condition):
                    self.execute(body)
                    return
            if node.otherwise:
                self.execute(node.otherwise)
        elif isinstance(node, DoWhile):
            while True:
                self.execute(node.body)
                if not self.condition(node.condition):
                    break

    def run_repeat(self, node, frame):
        count_text, _, variable = self.substitute(node.count.text).partition(",")
        try:
            count = float(count_text)
        except ValueError:
            raise UserError(f"count must be an integer >= 0 (got '{count_text}')", command="repeat")
        if count < 0 or not count.is_integer():
            raise UserError(f"count must be an integer >= 0 (got '{count_text}')", command="repeat")
        loop = [0, int(count)]
        frame.repeats.append(loop)
        try:
            for index in range(int(count)):
                loop[0] = index
                if variable:
                    frame.variables[variable] = str(index)
                self.execute(node.body)
        finally:
            frame.repeats.pop()

    def condition(self, item):
        text = self.substitute(item.text)
        try:
            return float(text) != 0
        except ValueError:
            raise UserError(f"condition must be a number (got '{text}'); write it as {{expression}}")

    def substitute(self, text):
        return substitute(text, self)

    def run_command(self, node):
        text = self.substitute(node.item.text)
        match = COMMAND_ITEM.match(text)
        name = match.group(2) if match else None
        if match and match.group(1) == "-" and lookup(name) is None and name not in self.definitions:
            match = None
        if not match or (lookup(name) is None and name not in self.definitions):
            if node.arguments is None and _is_input(text):
                return self.call_builtin(lookup("input"), "input", [], False, text, node)
            raise UserError(_unknown(text, self.definitions))
        plus, selection_text = match.group(1) == "+", match.group(3)
        try:
            arguments = None if node.arguments is None else self.substitute(node.arguments.text)
        except UserError as error:
            raise error.locate(None, name)
        if self.verbose:
            shown = f" {arguments}" if arguments is not None else ""
            print(f"[{node.item.where}] {text}{shown}", file=self.err, flush=True)
        if name in self.definitions:
            if selection_text or plus:
                raise UserError("a command defined in a script takes no selection or '+'", command=name)
            return self.call_definition(name, arguments)
        entry = lookup(name)
        if selection_text and not entry.takes_selection:
            raise UserError("takes no selection", command=entry.name)
        if plus and not entry.each:
            raise UserError("does not support the '+' prefix", command=entry.name)
        try:
            if selection_text is None and entry.default_selection is not None:
                selection = entry.default_selection(self)
            else:
                selection = self.select(selection_text)
        except UserError as error:
            raise error.locate(None, entry.name)
        return self.call_builtin(entry, entry.name, selection, plus, arguments, node)

    def call_builtin(self, entry, name, selection, plus, arguments, node):
        try:
            args = entry.parse_arguments(arguments)
            if entry.each:
                for index in selection:
                    result = entry.function(self, self.images[index], *args)
                    if plus:
                        self.images.append(result, self.images.names[index])
                    else:
                        self.images.replace(index, result)
            else:
                entry.function(self, selection, *args)
            if entry.builds_network:
                self.network().commands.append(f"{name} {arguments}" if arguments else name)
        except UserError as error:
            raise error.locate(None, name)
        except MemoryError:
            raise UserError("out of memory (smaller images, batches or layers need less)",
                            command=name) from None

    def call_definition(self, name, arguments):
        if len(self.frames) > MAX_CALL_DEPTH:
            raise UserError(f"more than {MAX_CALL_DEPTH} nested command calls", command=name)
        if self.bodies.get(name) is None:
            self.bodies[name] = parse(self.definitions[name].items, self.definitions)
        args = split_arguments(arguments) if arguments is not None else []
        self.frames.append(Frame({}, args, name))
        try:
            self.execute(self.bodies[name])
        finally:
            self.frames.pop()

    # --- selections -------------------------------------------------------------------------
    def select(self, text):
        """Indices named by a selection suffix (`[0,2]`, `[1-3]`, `[name]`, `.`).

        Without one: every image except those a network owns (weights, moments, trainer
        states), so `resize 64,64` after building a network leaves the network alone."""
        count = len(self.images)
        if text is None:
            owned = self.network_images() if self.networks else ()
            return [i for i in range(count) if self.images.names[i] not in owned]
        if text.startswith("."):
            text = f"[-{len(text)}]"
        indices = []
        for part in split_arguments(text[1:-1]):
            part = part.strip()
            if not part:
                continue
            indices.extend(self.select_part(part, count))
        return indices

    def select_part(self, part, count):
        if part in (".", "..", "..."):
            return [self.index(str(-len(part)), count, part)]
        range_match = re.fullmatch(r"(-?\d+)-(-?\d+)", part)
        if range_match:
            first = self.index(range_match.group(1), count, part)
            last = self.index(range_match.group(2), count, part)
            return list(range(first, last + 1))
        if re.fullmatch(r"-?\d+", part):
            return [self.index(part, count, part)]
        found = [i for i, name in enumerate(self.images.names) if name == part]
        if not found:
            raise UserError(f"selection [{part}]: no image named '{part}'")
        return found

    def index(self, text, count, part):
        value = int(text)
        if not -count <= value < count:
            raise UserError(f"selection [{part}] is out of range ({count} image{'s' * (count != 1)})")
        return value % count

    # --- what substitution asks for -----------------------------------------------------------
    def variables(self):
        merged = dict(self.frames[0].variables)
        merged.update(self.frames[-1].variables)
        return merged

    def lookup(self, name, default=None):
        frame = self.frames[-1]
        if name.isdigit():
            index = int(name)
            if index == 0:
                return frame.name
            if index <= len(frame.arguments) and frame.arguments[index - 1] != "":
                return frame.arguments[index - 1]
            if default is not None:
                return default
            raise UserError(f"missing argument ${index}")
        for scope in (frame.variables, self.frames[0].variables):
            if name in scope:
                return scope[name]
        if default is not None:
            return default
        raise UserError(f"undefined variable '${name}'")

    def special(self, char):
        frame = self.frames[-1]
        if char in "><":
            if not frame.repeats:
                raise UserError(f"'${char}' used outside of a repeat block")
            index, count = frame.repeats[-1]
            return str(index if char == ">" else count - 1 - index)
        return {"!": str(len(self.images)), "#": str(len(frame.arguments)),
                "*": ",".join(frame.arguments), "$": "$"}[char]

    def image_attribute(self, name, index, *coordinates):
        if not self.images:
            raise UserError(f"'{name}' needs an image but the list is empty")
        count = len(self.images)
        if float(index) != int(index) or not -count <= int(index) < count:
            raise UserError(f"image #{format_number(index)} is out of range ({count} images)")
        image = self.images[int(index)]
        s, d, h, w = image.shape
        if name == "i":
            position = [int(v) for v in coordinates] + [0] * (4 - len(coordinates))
            x, y, z, c = position
            if not (0 <= x < w and 0 <= y < h and 0 <= z < d and 0 <= c < s):
                raise UserError(f"i(): ({','.join(map(str, position))}) is outside image"
                                f" #{int(index)} of size {w},{h},{d},{s}")
            return float(image[c, z, y, x])
        sizes = {"w": w, "h": h, "d": d, "s": s, "wh": w * h, "whd": w * h * d, "whds": image.size}
        if name in sizes:
            return sizes[name]
        if image.size == 0:
            return 0
        return float({"im": image.min, "iM": image.max, "ia": image.mean}[name]())

    def network(self):
        """The current network; a first nn_* command without nn_init starts one."""
        if self.current_network is None:
            self.networks[DEFAULT_NAME] = Network(DEFAULT_NAME)
            self.current_network = DEFAULT_NAME
        return self.networks[self.current_network]

    def network_images(self):
        """Names of the images that belong to networks: parameters, moments, trainer states."""
        from nnpipe.nn.optimizers import MOMENTS
        names = set()
        for network in self.networks.values():
            for module in network.parameter_modules():
                names.add(module.name)
                for trainer in network.trainers.values():
                    names.update(module.name + suffix for suffix in MOMENTS[trainer.optimizer])
            names.update(network.trainers)
        return names

    def set_variable(self, name, value):
        self.frames[-1].variables[name] = value if isinstance(value, str) else format_number(value)


def _is_input(text):
    """Items G'MIC reads as `input`: inline values, a blank size such as 256,256, a file."""
    return text.startswith("(") or BLANK_SIZE.match(text) is not None or os.path.exists(text) \
        or (any(c in text for c in "*?") and bool(glob.glob(text))) \
        or re.search(r"\.(png|jpe?g|tiff?|npy|bmp|gif)$", text, re.I) is not None


def _unknown(text, definitions):
    text = text.strip('"')
    names = list(COMMANDS) + list(ALIASES) + list(definitions)
    close = difflib.get_close_matches(text.lstrip("+-"), names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown command '{text}'{hint}"

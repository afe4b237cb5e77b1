"""Parse items into a tree of blocks and run it against a workspace, as G'MIC reads them.

A command that takes arguments takes the next item as its argument list, whatever that item
looks like (`echo a=b` prints `a=b`). A command defined in a script takes one when its body
mentions its arguments ($1, $*, …), G'MIC's rule. Commands whose arguments are all optional
take the next item unless it starts a statement of its own.
"""

import contextlib
import difflib
import glob
import math
import os
import re
from dataclasses import dataclass

from nnpipe.commands import load_all
from nnpipe.commands.registry import closest, lookup, split_arguments
from nnpipe.errors import OUT_OF_MEMORY, UserError
from nnpipe.images.imagelist import ImageList
from nnpipe.images.selection import select
from nnpipe.lang import expr
from nnpipe.lang.lexer import Item, lex, lex_items, unprotect
from nnpipe.lang.substitute import substitute
from nnpipe.limits import check_text, read_text
from nnpipe.naming import copy_name
from nnpipe.workspace import Variables, Workspace

COMMAND_ITEM = re.compile(r"^([+-]?)([A-Za-z_][A-Za-z0-9_]*)(\[.*\]|\.{1,3})?$", re.S)
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:,[A-Za-z_][A-Za-z0-9_]*)*)"
                        r"(=|:=|\+=|-=|\*=|/=|%=|\^=|\.=)(.*)$", re.S)
BLANK_SIZE = re.compile(r"^\d+(,\d+){0,3}(,.*)?$", re.S)
IMAGE_EXPRESSION = re.compile(r"^\s*(-?\d+)\s*,(.*)$", re.S)
KEYWORDS = {"repeat", "done", "if", "elif", "else", "fi", "do", "while", "{", "}", "break",
            "continue", "return"}
# Commands on several images that G'MIC also runs with '+' (on copies of the selection); it
# has no +rm, +name, +input or +output.
PLUS_ON_COPIES = {"append", "keep"}
MAX_CALL_DEPTH = 64
MAX_NESTING = 200
NN_MACROS = {"_nn_forward": "__nn_forward();", "_nn_loss": "__nn_loss();",
             "_nn_backward": "__nn_backward();", "_nn_update": "__nn_update();"}
REPEAT_VARIABLE = re.compile(r"(.*),\s*([A-Za-z_][A-Za-z0-9_]*)", re.S)
COMMAND_FILE = re.compile(r"\.(gmic|nnp)$")


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
class LoopControl:
    item: Item


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    """`return`: leave the running command (at the top level, end the run), as in G'MIC."""


class Parser:
    def __init__(self, items, definitions, load_file):
        self.items = items
        self.pos = 0
        self.definitions = definitions
        self.load_file = load_file
        self.depth = 0

    def is_command(self, name):
        return lookup(name) is not None or name in self.definitions

    def starts_new_statement(self, text):
        match = COMMAND_ITEM.match(text)
        return (text in KEYWORDS or ASSIGNMENT.match(text) is not None
                or (match is not None and self.is_command(match.group(2))))

    def takes_arguments(self, name):
        """(takes arguments, all of them optional)"""
        if name in self.definitions:
            return self.definitions[name].takes_arguments, False
        entry = lookup(name)
        return entry.takes_arguments, entry.arguments_optional

    def parse_block(self, until=()):
        """Parse statements until one of the keywords in `until`; return (nodes, keyword item)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise UserError(f"blocks nested more than {MAX_NESTING} deep", self.items[self.pos - 1].where)
        try:
            nodes = []
            while self.pos < len(self.items):
                item = self.items[self.pos]
                if item.text in until:
                    self.pos += 1
                    return nodes, item
                if item.text in ("done", "elif", "else", "fi", "while", "}"):
                    raise UserError(f"'{item.text}' without a matching opening", item.where)
                self.pos += 1
                node = self.parse_statement(item)
                if node is not None:
                    nodes.append(node)
            return nodes, None
        finally:
            self.depth -= 1

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
            return self.parse_if(item)
        if text == "do":
            body, end = self.parse_block(("while",))
            if end is None:
                raise UserError("do: block is not closed (missing 'while')", item.where)
            return DoWhile(item, body, self.next_item(end, "condition"))
        if text in ("break", "continue", "return"):
            return LoopControl(item)
        if text == "{":
            raise UserError("'{' outside of a repeat block", item.where)
        if text == "command" and self.pos < len(self.items) \
                and os.path.isfile(unprotect(self.items[self.pos].text)):
            self.pos += 1  # `command file.gmic`: its commands exist from here on
            self.load_file(unprotect(self.items[self.pos - 1].text), item)
            return None
        if ASSIGNMENT.match(text):
            return Assign(item)
        match = COMMAND_ITEM.match(text)
        if match and self.is_command(match.group(2)):
            return self.parse_command(item, match.group(2))
        if COMMAND_FILE.search(unprotect(text)) and os.path.isfile(unprotect(text)):
            self.load_file(unprotect(text), item)  # `gmic file.gmic cmd`: its commands now exist
            return None
        if self.pos < len(self.items) and self.items[self.pos].text.startswith("=") \
                and re.fullmatch(r"[A-Za-z_]\w*", text):
            raise UserError(f"'{text} {self.items[self.pos].text}': to set a variable, write"
                            " name=value without spaces", item.where)
        return Run(item)

    def parse_if(self, item):
        branches, otherwise = [], None
        condition = self.next_item(item, "condition")
        while True:
            body, end = self.parse_block(("elif", "else", "fi"))
            if end is None:
                raise UserError("if: block is not closed (missing 'fi')", item.where)
            if otherwise is not None:
                if end.text != "fi":
                    raise UserError(f"'{end.text}' after 'else'", end.where)
                return If(item, branches, body)
            branches.append((condition, body))
            if end.text == "fi":
                return If(item, branches)
            if end.text == "elif":
                condition = self.next_item(end, "condition")
            else:
                otherwise = []

    def parse_command(self, item, name):
        takes, optional = self.takes_arguments(name)
        if takes and self.pos < len(self.items):
            following = self.items[self.pos].text
            if not (optional and self.starts_new_statement(following)):
                self.pos += 1
                return Run(item, self.items[self.pos - 1])
        return Run(item)


class Interpreter:
    """Runs parsed scripts against one workspace; holds the definitions and the call stack."""

    def __init__(self, seed=None, quiet=False, verbose=False, out=None, err=None):
        load_all()
        self.variables = Variables()
        self.variables.globals.update(NN_MACROS)
        self.workspace = Workspace(seed, quiet, out, err, self.variables)
        self.definitions = {}
        self.bodies = {}
        self.verbose = verbose
        self.arguments = [[]]  # per call: its name and arguments
        self.names = [""]
        self.repeats = [[]]
        self.script_dir = "."
        self.status_commands = {}  # `${-cmd}` parsed once
        self.workspace.run_pipeline = self.run_pipeline

    def __getattr__(self, name):
        """Tests and embedding code read the workspace (images, networks…) through here."""
        if name == "workspace":
            raise AttributeError(name)
        return getattr(self.workspace, name)

    def script_variables(self):
        """The variables of the script's own level (what a run leaves behind)."""
        return dict(self.variables.frames[0])

    # --- running ----------------------------------------------------------------------------
    def run_source(self, text, file, arguments=()):
        main, definitions = lex(text, file)
        folder = os.path.dirname(file) if file not in ("<stdin>", "<command line>") else ""
        self.script_dir = folder or "."
        self.define(definitions)
        self.arguments[0] = list(arguments)
        self.run_top_level(self.parse(main))

    def run_items(self, texts, file="<command line>"):
        self.run_top_level(self.parse(lex_items(texts, file)))

    def run_top_level(self, nodes):
        try:
            self.execute(nodes)
        except _Return:
            pass

    def parse(self, items):
        try:
            nodes, _ = Parser(items, self.definitions, self.load_file).parse_block()
        except RecursionError:
            raise UserError("blocks nested too deeply") from None
        return nodes

    def load_file(self, path, item):
        try:
            with open(path, encoding="utf-8") as handle:
                text = read_text(handle, f"command file '{path}'")
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read command file '{path}': {error}", item.where) from None
        except UserError as error:
            raise error.locate(item.where)
        _, definitions = lex(text, path)
        self.define(definitions)

    def define(self, definitions):
        self.definitions.update(definitions)
        for name in definitions:
            self.bodies[name] = None  # parsed on first call, when every definition is known

    def execute(self, nodes):
        for node in nodes:
            self.workspace.location = node.item.where
            try:
                self.execute_node(node)
            except UserError as error:
                raise error.locate(node.item.where)
            except RecursionError:
                raise UserError("blocks or calls nested too deeply", node.item.where) from None
            except MemoryError:
                raise UserError(OUT_OF_MEMORY, node.item.where) from None

    def execute_node(self, node):
        if isinstance(node, Run):
            self.run_command(node)
        elif isinstance(node, Assign):
            self.assign(node.item.text)
        elif isinstance(node, Repeat):
            self.run_repeat(node)
        elif isinstance(node, If):
            for condition, body in node.branches:
                if self.condition(condition):
                    self.execute(body)
                    return
            if node.otherwise:
                self.execute(node.otherwise)
        elif isinstance(node, DoWhile):
            self.run_do_while(node)
        elif isinstance(node, LoopControl):
            if node.item.text == "return":
                raise _Return()
            if not self.repeats[-1]:
                raise UserError(f"'{node.item.text}' outside of a loop")
            raise _Break() if node.item.text == "break" else _Continue()

    def assign(self, text):
        names, operator, value = ASSIGNMENT.match(text).groups()
        value = self.substitute(value)
        if operator == "=":
            targets = names.split(",")
            values = split_arguments(value) if len(targets) > 1 else [unprotect(value)]
            if len(values) != len(targets):
                raise UserError(f"'{unprotect(value)}' gives {len(values)} value"
                                f"{'s' * (len(values) != 1)} for {len(targets)} variables")
            for name, part in zip(targets, values):
                self.variables.set(name, part)
            return
        if operator == ":=":
            result = expr.format_value(expr.evaluate(unprotect(value), self.images, self.workspace.rng,
                                                     self.set_from_expression))
            check_text(len(result), f"variable '{names}'")
            self.variables.set(names, result)
            return
        current = self.variables.get(names)
        if operator == ".=":
            addition = unprotect(value)
            check_text(len(current) + len(addition), f"variable '{names}'")
            self.variables.set(names, current + addition)
            return
        result = expr.evaluate(f"({current or 0}){operator[0]}({unprotect(value)})", self.images,
                               self.workspace.rng)
        self.variables.set(names, expr.format_value(result))

    def run_do_while(self, node):
        """`do … while cond`: `$>` counts its iterations, `break` leaves it, as in G'MIC."""
        loop = [0, float("inf")]
        self.repeats[-1].append(loop)
        try:
            while self.run_body(node.body) and self.condition(node.condition):
                loop[0] += 1
        finally:
            self.repeats[-1].pop()

    def run_body(self, body):
        """Run a loop's body once; False when it ends the loop with `break`."""
        try:
            self.execute(body)
        except _Continue:
            pass
        except _Break:
            return False
        return True

    def run_repeat(self, node):
        text = unprotect(self.substitute(node.count.text))
        counted = REPEAT_VARIABLE.fullmatch(text)  # `repeat N,var`, not `repeat max(2,3)`
        count_text, variable = counted.groups() if counted else (text, None)
        count = self.number(count_text, "repeat")
        if count != count:
            raise UserError(f"count must be a number or inf (got '{count_text}')", command="repeat")
        count = max(math.floor(count), 0) if math.isfinite(count) else max(count, 0)  # as G'MIC
        loop = [0, count]
        self.repeats[-1].append(loop)
        try:
            index = 0
            while index < count:
                loop[0] = index
                if variable:
                    self.variables.set(variable, str(index))
                if not self.run_body(node.body):
                    break
                index += 1
        finally:
            self.repeats[-1].pop()

    def number(self, text, what):
        """A number written plainly, or a math expression (G'MIC's conditions and counts)."""
        try:
            return float(text)
        except ValueError:
            pass
        try:
            result = expr.evaluate(text, self.images, self.workspace.rng, self.set_from_expression)
        except UserError as error:
            raise UserError(f"'{text}' is neither a number nor an expression ({error.message})",
                            command=what) from None
        if isinstance(result, list):
            raise UserError(f"'{text}' is a vector, not a number", command=what)
        return result

    def condition(self, item):
        return self.number(unprotect(self.substitute(item.text)), "if") != 0  # nan is true

    def substitute(self, text):
        return substitute(text, self)

    def set_from_expression(self, name, value):
        """set('name',value) in an expression: the variable holds the number as G'MIC writes it."""
        self.variables.set(name, expr.format_value(value))

    def run_command(self, node):
        text = self.substitute(node.item.text)
        match = COMMAND_ITEM.match(text)
        name = match.group(2) if match else None
        if match and match.group(1) == "-" and lookup(name) is None and name not in self.definitions:
            match = None
        if not match or (lookup(name) is None and name not in self.definitions):
            plain = unprotect(text)
            if node.arguments is None and _is_input(plain):
                return self.call_builtin(lookup("input"), "input", [], False, text, node)
            raise UserError(_unknown(plain, self.definitions))
        plus, selection_text = match.group(1) == "+", match.group(3)
        try:
            arguments = None if node.arguments is None else self.substitute(node.arguments.text)
        except UserError as error:
            raise error.locate(None, name)
        if self.verbose:
            shown = f" {unprotect(arguments)}" if arguments is not None else ""
            print(f"[{node.item.where}] {unprotect(text)}{shown}", file=self.workspace.err, flush=True)
        if name in self.definitions:
            if selection_text or plus:
                raise UserError("a command defined in a script takes no selection or '+'", command=name)
            return self.call_definition(name, arguments)
        entry = lookup(name)
        if selection_text and not entry.takes_selection:
            raise UserError("takes no selection", command=entry.name)
        if plus and not entry.each and entry.name not in PLUS_ON_COPIES:
            raise UserError("does not support the '+' prefix", command=entry.name)
        try:
            if not entry.takes_selection:
                selection = []
            elif selection_text is None and entry.default_selection is not None:
                selection = entry.default_selection(self.workspace)
            elif entry.name == "input":  # a position, as G'MIC: [0] first … [-1] after the last
                selection = select(unprotect(selection_text), self.images.names + [""])
            else:
                selection = self.select(selection_text)
        except UserError as error:
            raise error.locate(None, entry.name)
        return self.call_builtin(entry, entry.name, selection, plus, arguments, node)

    def call_builtin(self, entry, name, selection, plus, arguments, node):
        workspace = self.workspace
        try:
            args = entry.parse_arguments(arguments)
            if entry.each:
                self.apply_each(entry, selection, plus, args)
            elif plus:
                self.run_on_copies(entry, selection, args)
            else:
                entry.function(workspace, selection, *args)
            if entry.builds_network:
                text = unprotect(arguments) if arguments else ""
                workspace.network().commands.append(f"{name} {text}" if text else name)
        except UserError as error:
            raise error.locate(None, name)
        except MemoryError:
            raise UserError(OUT_OF_MEMORY, command=name) from None

    def run_on_copies(self, entry, selection, args):
        """`+append[0,1] x`, `+keep[0]`: as G'MIC, the command works on a list of copies of the
        selected images, and what it leaves is appended to the list."""
        workspace = self.workspace
        everything, copies = workspace.images, ImageList()
        for index in selection:
            copies.append(everything[index].copy(), copy_name(everything.names[index]))
        workspace.images = copies
        try:
            entry.function(workspace, type(selection)(range(len(copies))), *args)
        finally:
            workspace.images = everything
        for image, name in zip(copies.images, copies.names):
            everything.append(image, name)

    def apply_each(self, entry, selection, plus, args):
        """One image at a time, in list order, as G'MIC does (an image filled first is read by
        the next one); a failure puts back every image changed so far."""
        images = self.workspace.images
        count, replaced = len(images), []
        try:
            for index in selection:
                result = entry.function(self.workspace, images[index], *args)
                if plus:
                    images.append(result, copy_name(images.names[index]))
                else:
                    replaced.append((index, images[index]))
                    images.replace(index, result)
        except BaseException:
            for index, image in reversed(replaced):
                images.replace(index, image)
            images.remove(range(count, len(images)))
            raise

    def call_definition(self, name, arguments):
        if len(self.arguments) > MAX_CALL_DEPTH:
            raise UserError(f"more than {MAX_CALL_DEPTH} nested command calls", command=name)
        if self.bodies.get(name) is None:
            self.bodies[name] = self.parse(self.definitions[name].items)
        args = split_arguments(arguments) if arguments is not None else []
        with self.call_frame(name, args):
            try:
                self.execute(self.bodies[name])
            except _Return:
                pass

    @contextlib.contextmanager
    def call_frame(self, name, arguments):
        """A command call's own arguments, loops and variables, for as long as it runs."""
        self.arguments.append(arguments)
        self.names.append(name)
        self.repeats.append([])
        self.variables.push()
        try:
            yield
        finally:
            self.variables.pop()
            self.repeats.pop()
            self.names.pop()
            self.arguments.pop()

    def run_pipeline(self, command, image):
        """nn_run's hook: run `command` (script text) on a list holding only `image`, in a call
        of its own; return the last image it leaves. The caller's list is left as it was."""
        workspace = self.workspace
        kept = workspace.images
        workspace.images = ImageList()
        workspace.images.append(image)
        try:
            with self.call_frame("nn_run", []):
                main, _ = lex(command, "nn_run")
                self.execute(self.parse(main))
            if not len(workspace.images):
                raise UserError(f"nn_run: '{command}' leaves no image")
            return workspace.images[-1]
        finally:
            workspace.images = kept

    def status_of(self, command_text):
        """`${-cmd args}`: run the command, give its status."""
        self.workspace.status = ""
        nodes = self.status_commands.get(command_text)
        if nodes is None:
            name, _, arguments = command_text.partition(" ")
            file, _, line = self.workspace.location.rpartition(":")
            items = [Item(name, file, line)]
            if arguments:
                items.append(Item(arguments, file, line))
            nodes = self.status_commands[command_text] = self.parse(items)
        self.execute(nodes)
        return self.workspace.status

    # --- selections -------------------------------------------------------------------------
    def select(self, text):
        """Indices named by a selection suffix; without one, every image except those a network
        owns (weights, moments, trainer states), so `resize 64,64` after building a network
        leaves the network alone."""
        if text is None:
            owned = self.workspace.network_images() if self.networks else ()
            return [i for i in range(len(self.images)) if self.images.names[i] not in owned]
        return self.workspace.select(unprotect(text))

    # --- what substitution asks for ---------------------------------------------------------
    def lookup(self, name, default=None):
        if name.lstrip("-").isdigit():
            index = int(name)
            if index == 0:
                return self.names[-1]
            arguments = self.arguments[-1]
            if index < 0:  # $-1: the last argument
                index += len(arguments) + 1
            if 0 < index <= len(arguments) and arguments[index - 1] != "":
                return arguments[index - 1]
            return default  # None: G'MIC leaves a missing `$k` as it is
        if name == "script_dir":  # nnpipe's own: the folder of the running script
            return self.variables.get(name, self.script_dir)
        return self.variables.get(name, default)

    def special(self, char):
        if char in "><":
            # a command called inside a loop sees the caller's loop, as in G'MIC
            loops = next((frame for frame in reversed(self.repeats) if frame), None)
            if loops is None:
                raise UserError(f"'${char}' used outside of a repeat block")
            index, count = loops[-1]
            if char == ">":
                return str(index)
            return "inf" if count == float("inf") else str(int(count) - 1 - index)
        arguments = self.arguments[-1]
        return {"!": str(len(self.images)), "#": str(len(arguments)),
                "*": ",".join(arguments)}[char]

    def last_status(self):
        """`${}`: the status the last command left."""
        return self.workspace.status

    def evaluate(self, text):
        """`{expression}` in an item; `{k,expression}` reads image k as its own (`{0,w}`);
        `{'text'}` is the character codes of text (all between the outer quotes, as G'MIC
        reads it: `{'a'=='b'}` is the codes of a'=='b)."""
        text = unprotect(text)
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return ",".join(str(ord(char)) for char in text[1:-1])
        image = None
        on_image = IMAGE_EXPRESSION.match(text)
        if on_image:
            index, text = int(on_image.group(1)), on_image.group(2)
            if not -len(self.images) <= index < len(self.images):
                raise UserError(f"{{{index},…}}: no image [{index}] ({len(self.images)} images)")
            image = self.images[index]
        result = expr.evaluate(text, self.images, self.workspace.rng, self.set_from_expression, image)
        return expr.format_value(result)


def _is_input(text):
    """Items G'MIC reads as `input`: inline values, a blank size such as 256,256, a file."""
    return text.startswith("(") or text.startswith("[") or BLANK_SIZE.match(text) is not None \
        or os.path.exists(text) or (any(c in text for c in "*?") and bool(glob.glob(text))) \
        or re.search(r"\.(png|jpe?g|tiff?|npy|bmp|gif)$", text, re.I) is not None


def _unknown(text, definitions):
    close = difflib.get_close_matches(text.lstrip("+-"), list(definitions), n=1) or \
        [closest(text.lstrip("+-"))]
    hint = f" (did you mean '{close[0]}'?)" if close[0] else ""
    return f"unknown command '{text}'{hint}"

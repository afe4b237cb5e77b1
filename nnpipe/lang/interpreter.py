"""The evaluator: runs parsed statements (nnpipe.lang.parser) against a workspace, with the
script's command definitions, the call stack and the variables' scopes. It knows commands only
through the registry it is given."""

import contextlib
import difflib
import glob
import math
import os
import re

import numpy as np

from nnpipe import expr
from nnpipe.commands.workspace import Variables, Workspace
from nnpipe.errors import OUT_OF_MEMORY, ImageError, UserError
from nnpipe.images.imagelist import ImageList
from nnpipe.images.selection import select
from nnpipe.lang.lexer import Item, lex, lex_items
from nnpipe.lang.parser import ASSIGNMENT, COMMAND_ITEM, Assign, DoWhile, If, LoopControl, Parser, Repeat, Run
from nnpipe.lang.substitute import substitute
from nnpipe.limits import check_text, read_text
from nnpipe.naming import copy_name, part_names
from nnpipe.numbers import format_value, short_number
from nnpipe.quoting import unprotect
from nnpipe.registry import DEFAULT_API, split_arguments

BLANK_SIZE = re.compile(r"^\d+(,\d+){0,3}(,.*)?$", re.S)
IMAGE_EXPRESSION = re.compile(r"^\s*(-?\d+)\s*,(.*)$", re.S)
MAX_CALL_DEPTH = 64
REPEAT_VARIABLE = re.compile(r"(.*),\s*([A-Za-z_][A-Za-z0-9_]*)", re.S)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    """`return`: leave the running command (at the top level, end the run), as in G'MIC."""


class Interpreter:
    """Runs parsed scripts against one workspace; holds the definitions and the call stack.

    `commands`: the registry (nnpipe.commands.load_all's), whose commands of the nn_lib API
    `api` it runs; the other arguments make the workspace: the random generator's seed,
    --quiet, the output and error streams."""

    def __init__(self, commands, seed=None, quiet=False, verbose=False, out=None, err=None, api=DEFAULT_API):
        self.commands = commands
        self.api = api
        self.variables = Variables()
        self.variables.globals.update(commands.variables)
        self.workspace = Workspace(seed, quiet, out, err, self.variables, self.run_commands, api)
        self.definitions = {}
        self.bodies = {}
        self.verbose = verbose
        self.arguments = [[]]  # per call: its name and arguments
        self.names = [""]
        self.repeats = [[]]
        self.script_dir = "."
        self.status_commands = {}  # `${-cmd}` parsed once

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
            nodes, _ = Parser(items, self.commands, self.api, self.definitions, self.load_file).parse_block()
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
                raise UserError(
                    f"'{unprotect(value)}' gives {len(values)} value"
                    f"{'s' * (len(values) != 1)} for {len(targets)} variables"
                )
            for name, part in zip(targets, values):
                self.variables.set(name, part)
            return
        if operator == ":=":
            result = format_value(
                expr.evaluate(
                    unprotect(value), self.workspace.images, self.workspace.rng, self.set_from_expression
                )
            )
            check_text(len(result), f"variable '{names}'")
            self.variables.set(names, result)
            return
        current = self.variables.get(names)
        if operator == ".=":
            addition = unprotect(value)
            check_text(len(current) + len(addition), f"variable '{names}'")
            self.variables.set(names, current + addition)
            return
        result = expr.evaluate(
            f"({current or 0}){operator[0]}({unprotect(value)})", self.workspace.images, self.workspace.rng
        )
        self.variables.set(names, format_value(result))

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
            result = expr.evaluate(text, self.workspace.images, self.workspace.rng, self.set_from_expression)
        except UserError as error:
            raise UserError(
                f"'{text}' is neither a number nor an expression ({error.message})", command=what
            ) from None
        if isinstance(result, list):
            raise UserError(f"'{text}' is a vector, not a number", command=what)
        return result

    def condition(self, item):
        return self.number(unprotect(self.substitute(item.text)), "if") != 0  # nan is true

    def substitute(self, text):
        return substitute(text, self)

    def set_from_expression(self, name, value):
        """set('name',value) in an expression: the variable holds the number as G'MIC writes it."""
        self.variables.set(name, format_value(value))

    def run_command(self, node):
        text = self.substitute(node.item.text)
        match = COMMAND_ITEM.match(text)
        name = match.group(2) if match else None
        if match is None or (self.commands.lookup(name, self.api) is None and name not in self.definitions):
            plain = unprotect(text)
            if node.arguments is None and _is_value(plain):
                implicit = self.commands.implicit(self.api)
                return self.call_builtin(implicit, implicit.name, [], False, text, node)
            raise UserError(self.unknown(plain))
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
        entry = self.commands.lookup(name, self.api)
        if selection_text and not entry.takes_selection:
            raise UserError("takes no selection", command=entry.name)
        if plus and not entry.each and not entry.plus_on_copies:
            raise UserError("does not support the '+' prefix", command=entry.name)
        try:
            if not entry.takes_selection:
                selection = []
            elif selection_text is None and entry.default_selection is not None:
                selection = entry.default_selection(self.workspace)
            elif entry.selects_positions:  # as G'MIC's input: [0] first … [-1] after the last
                selection = select(unprotect(selection_text), self.workspace.images.names + [""])
            else:
                selection = self.workspace.select(
                    None if selection_text is None else unprotect(selection_text)
                )
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
            if entry.after is not None:
                entry.after(workspace, name, arguments or "")
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
        the next one). A result that is a list of images takes the image's place (G'MIC's split:
        `a` becomes `a`, `a_c1`…); with '+' they are appended. A failure puts the list back as it
        was and names the image an ImageError is about."""
        images = self.workspace.images
        kept = (list(images.images), list(images.names))
        shift = 0  # images a split added before the next selected one
        try:
            for index in selection:
                at = index + shift
                try:
                    result = entry.function(self.workspace, images[at], *args)
                except ImageError as error:
                    raise error.about(index) from None
                parts = result if isinstance(result, list) else [result]
                # a part that is (a view of) its image is copied: images are written in place
                # (training updates the weight images), and each must stay itself
                parts = [part.copy() if np.may_share_memory(part, images[at]) else part for part in parts]
                name = images.names[at]
                if plus:
                    for part, part_name in zip(parts, part_names(copy_name(name), len(parts))):
                        images.append(part, part_name)
                else:
                    images.splice(at, parts, part_names(name, len(parts)))
                    shift += len(parts) - 1
        except BaseException:
            images.images, images.names = kept
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

    def run_commands(self, command, image):
        """The workspace's run_commands (nn_run's): run `command` (script text) on a list
        holding only `image`, in a call of its own; return the last image it leaves. The
        caller's list is left as it was."""
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
        return {"!": str(len(self.workspace.images)), "#": str(len(arguments)), "*": ",".join(arguments)}[
            char
        ]

    def unknown(self, text):
        """The message for an unknown command: the API that has it, or the closest name."""
        name = text.lstrip("+-")
        other = self.commands.elsewhere(name, self.api)
        if other is not None:
            return (
                f"'{name}' is nn_lib {other}'s, not {self.api}'s: run nnpipe with --nnlib {other}"
                f" (or NNPIPE_NNLIB={other})"
            )
        close = difflib.get_close_matches(name, list(self.definitions), n=1)
        close = close or [self.commands.closest(name, self.api)]
        hint = f" (did you mean '{close[0]}'?)" if close[0] else ""
        return f"unknown command '{text}'{hint}"

    def last_status(self):
        """`${}`: the status the last command left."""
        return self.workspace.status

    def evaluate(self, text):
        """`{expression}` in an item; `{k,expression}` reads image k as its own (`{0,w}`);
        `{'text'}` is the character codes of text (all between the outer quotes, as G'MIC
        reads it: `{'a'=='b'}` is the codes of a'=='b). `{_expression}` is the value printed
        short, as G'MIC prints it (an expression only: no `k,` and no `'text'` form)."""
        text = unprotect(text)
        if text.startswith("_"):
            value = expr.evaluate(
                text[1:], self.workspace.images, self.workspace.rng, self.set_from_expression
            )
            return format_value(value, short_number)
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return ",".join(str(ord(char)) for char in text[1:-1])
        image = None
        on_image = IMAGE_EXPRESSION.match(text)
        if on_image:
            index, text = int(on_image.group(1)), on_image.group(2)
            if not -len(self.workspace.images) <= index < len(self.workspace.images):
                raise UserError(f"{{{index},…}}: no image [{index}] ({len(self.workspace.images)} images)")
            image = self.workspace.images[index]
        result = expr.evaluate(
            text, self.workspace.images, self.workspace.rng, self.set_from_expression, image
        )
        return format_value(result)


def _is_value(text):
    """Items G'MIC reads as `input`: inline values, a blank size such as 256,256, a file."""
    return (
        text.startswith("(")
        or text.startswith("[")
        or BLANK_SIZE.match(text) is not None
        or os.path.exists(text)
        or (any(c in text for c in "*?") and bool(glob.glob(text)))
        or re.search(r"\.(png|jpe?g|tiff?|npy|bmp|gif)$", text, re.I) is not None
    )

"""Items parsed into a tree of statements, as G'MIC reads them.

A command that takes arguments takes the next item as its argument list, whatever that item
looks like (`echo a=b` prints `a=b`). A command defined in a script takes one when its body
mentions its arguments ($1, $*, …), G'MIC's rule. Commands whose arguments are all optional
take the next item unless it starts a statement of its own.
"""

import os
import re
from dataclasses import dataclass

from nnpipe.errors import UserError
from nnpipe.lang.lexer import Item
from nnpipe.quoting import unprotect

COMMAND_ITEM = re.compile(r"^([+-]?)([A-Za-z_][A-Za-z0-9_]*)(\[.*\]|\.{1,3})?$", re.S)
ASSIGNMENT = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*(?:,[A-Za-z_][A-Za-z0-9_]*)*)"
    r"(=|:=|\+=|-=|\*=|/=|%=|\^=|\.=)(.*)$",
    re.S,
)
KEYWORDS = {
    "repeat",
    "done",
    "if",
    "elif",
    "else",
    "fi",
    "do",
    "while",
    "{",
    "}",
    "break",
    "continue",
    "return",
}
MAX_NESTING = 200
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


class Parser:
    """Items into a tree of nodes. `commands` (the registry) and `definitions` (the script's
    commands) tell which items are commands and which take arguments; `load_file(path, item)`
    reads a command file named as an item, whose commands exist from there on. `api`: the
    nn_lib API whose commands the registry gives."""

    def __init__(self, items, commands, api, definitions, load_file):
        self.items = items
        self.pos = 0
        self.commands = commands
        self.api = api
        self.definitions = definitions
        self.load_file = load_file
        self.depth = 0

    def is_command(self, name):
        return self.commands.lookup(name, self.api) is not None or name in self.definitions

    def starts_new_statement(self, text):
        match = COMMAND_ITEM.match(text)
        return (
            text in KEYWORDS
            or ASSIGNMENT.match(text) is not None
            or (match is not None and self.is_command(match.group(2)))
        )

    def takes_arguments(self, name):
        """(takes arguments, all of them optional)"""
        if name in self.definitions:
            return self.definitions[name].takes_arguments, False
        entry = self.commands.lookup(name, self.api)
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
        if (
            text == "command"
            and self.pos < len(self.items)
            and os.path.isfile(unprotect(self.items[self.pos].text))
        ):
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
        if (
            self.pos < len(self.items)
            and self.items[self.pos].text.startswith("=")
            and re.fullmatch(r"[A-Za-z_]\w*", text)
        ):
            raise UserError(
                f"'{text} {self.items[self.pos].text}': to set a variable, write name=value without spaces",
                item.where,
            )
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

"""Split a script into items, each remembering the file and line it came from.

Items are separated by white space. Double quotes and `{…}` expressions may hold spaces;
a lone `{` or `}` is a block brace. `#` at the start of an item comments out the rest of
the line, and a trailing backslash continues the line.
"""

import re
from dataclasses import dataclass

from nnpipe.errors import UserError

DEFINITION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(?:\s+(.*))?$")


@dataclass(frozen=True)
class Item:
    text: str
    file: str
    line: int

    @property
    def where(self):
        return f"{self.file}:{self.line}"


@dataclass
class Definition:
    name: str
    items: list
    file: str
    line: int


def _logical_lines(text):
    """Yield (line_number, text, indented) with backslash continuations joined."""
    pending, start = None, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if pending is None:
            pending, start = raw, number
        else:
            pending += " " + raw.lstrip()
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        yield start, pending, pending[:1].isspace()
        pending = None
    if pending is not None:
        yield start, pending, pending[:1].isspace()


def split_line(text, file, line):
    """Split one logical line into items."""
    items, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "#":
            break
        start, quote, depth = i, False, 0
        while i < n and (quote or depth or not text[i].isspace()):
            char = text[i]
            if char == '"' and (i == 0 or text[i - 1] != "\\"):
                quote = not quote
            elif not quote and char == "{" and i + 1 < n and not text[i + 1].isspace():
                depth += 1
            elif not quote and char == "}" and depth:
                depth -= 1
            i += 1
        if quote:
            raise UserError("unterminated string (missing closing \")", f"{file}:{line}")
        items.append(Item(text[start:i], file, line))
    return items


def lex(text, file="<command line>"):
    """Return (main_items, definitions) of a script.

    A non-indented line `name :` starts a command definition whose body is the rest of that
    line plus the indented lines after it; every other line belongs to the main program.
    """
    main, definitions, current = [], {}, None
    for line, content, indented in _logical_lines(text):
        stripped = content.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = None if indented else DEFINITION.match(stripped)
        if match:
            name = match.group(1)
            if name in definitions:
                raise UserError(f"command '{name}' is defined twice", f"{file}:{line}")
            current = Definition(name, split_line(match.group(2) or "", file, line), file, line)
            definitions[name] = current
            continue
        if not indented:
            current = None
        target = current.items if current is not None else main
        target.extend(split_line(content, file, line))
    return main, definitions

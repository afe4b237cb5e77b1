"""Read scripts and G'MIC command files into items, each remembering its file and line.

As G'MIC reads them:
- `#` at the start of a line or after a blank starts a comment, to the end of the line
  (inside double quotes too); a trailing backslash joins the next line.
- Double quotes group words into one item and protect what they hold: `$`, `{`, `}` and `,`
  inside quotes are stored as private codes, so that no substitution or argument split
  touches them, and turn back into themselves when a command receives its arguments. The
  quotes themselves are removed (`"a"b` is `ab`). A quote left open at the end of a line
  goes on to the next one. A backslash protects the one character after it the same way
  (`\\$x` is the text $x); `\\ ` keeps a blank inside an item. A command's arguments
  ($1, $-1, $*, $#, ${1=default}) are substituted inside quotes too, as G'MIC does.
- A line `name :` (at the start of the line, not `name :=`) starts a command definition;
  its body is the rest of that line and every line up to the next definition. Lines before
  the first definition are the file's main program (run by `nnpipe run`). nnpipe's own
  style: a body whose first line is indented ends at the first line that is not.
- `{…}` holding blanks stays one item (an nnpipe extension: G'MIC splits it).
"""

import re
from dataclasses import dataclass

from nnpipe.errors import UserError
from nnpipe.quoting import NAME_END, PROTECT, unprotect

DEFINITION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(?!=)\s*(.*)$")


@dataclass(frozen=True)
class Item:
    text: str
    file: str
    line: int

    @property
    def where(self):
        return f"{self.file}:{self.line}"

    @property
    def shown(self):
        return unprotect(self.text)


@dataclass
class Definition:
    name: str
    items: list
    file: str
    line: int

    @property
    def takes_arguments(self):
        """G'MIC's rule: a command takes an argument when its body mentions $1…, $*, $#, $=,
        ${1…}, ${^…} or $"*"."""
        body = " ".join(item.text for item in self.items)
        return re.search(r'\$(?:[#*=1-9]|-[1-9]|"\*"|\{(?:\^|-?[1-9]))', body) is not None


def _strip_comment(line):
    match = re.search(r"(^|\s)#", line)
    return line if match is None else line[: match.start()]


def logical_lines(text):
    """Yield (first line number, text) with comments gone, continuations and open quotes joined."""
    pending, start, glued = None, 0, False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        if pending is None:
            pending, start = line, number
        elif glued:
            pending += line.lstrip()
        else:
            pending += line.lstrip()  # an open quote goes on: its line break is a blank
        glued = pending.endswith("\\")
        if glued:
            pending = pending[:-1]
            continue
        if _open_quote(pending):
            pending += " "
            continue
        yield start, pending
        pending = None
    if pending is not None:
        yield start, pending


def _open_quote(text):
    count, i = 0, 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 2
            continue
        count += text[i] == '"'
        i += 1
    return count % 2 == 1


def split_line(text, file, line):
    """Split one logical line into items (quotes protected and removed)."""
    items, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, quote, depth = i, False, 0
        while i < n and (quote or depth or not text[i].isspace()):
            char = text[i]
            if char == "\\" and i + 1 < n and (text[i + 1] == '"' or text[i + 1].isspace()):
                i += 2
                continue
            if char == '"':
                quote = not quote
            elif not quote and char == "{" and i + 1 < n and not text[i + 1].isspace():
                depth += 1
            elif not quote and char == "}" and depth:
                depth -= 1
            i += 1
        if quote:
            raise UserError('unterminated string (missing closing ")', f"{file}:{line}")
        items.append(read_item(text[start:i], file, line))
    return items


ARGUMENT_REFERENCE = re.compile(r"\$(?:-?\d+|\*|#|\{-?\d+(?:=[^}]*)?\})")


def read_item(text, file="<command line>", line=1):
    """One item: quotes removed, what they held protected, except a command's arguments
    ($1, $*, $#, ${1=default}), which G'MIC substitutes inside quotes too."""
    out, quote, i = [], False, 0
    while i < len(text):
        char = text[i]
        reference = ARGUMENT_REFERENCE.match(text, i) if quote and char == "$" else None
        if reference:
            out.append(reference.group(0))
            i = reference.end()
            continue
        if char == "\\" and i + 1 < len(text) and text[i + 1].isspace():
            out.append(text[i + 1])  # `\ ` keeps a blank inside the item
            i += 2
            continue
        if char == "\\" and i + 1 < len(text) and text[i + 1] in PROTECT:
            out.append(PROTECT[text[i + 1]])  # \$ \{ \} \, \" stand for themselves
            i += 2
            continue
        if char == '"':
            if not quote and out and (out[-1].isalnum() or out[-1] == "_"):
                out.append(NAME_END)
            quote = not quote
        else:
            out.append(PROTECT.get(char, char) if quote else char)
        i += 1
    if quote:
        raise UserError('unterminated string (missing closing ")', f"{file}:{line}")
    return Item("".join(out), file, line)


def lex(text, file="<command line>"):
    """Return (main_items, definitions) of a script or command file.

    A definition whose body starts on an indented line ends at the next line that is not
    indented (nnpipe's script style); otherwise, as in G'MIC, it runs to the next definition."""
    main, definitions, current, indented_body = [], {}, None, None
    for line, content in logical_lines(text):
        if not content.strip():
            continue
        indented = content[:1].isspace()
        match = None if indented else DEFINITION.match(content)
        if match:
            name = match.group(1)
            if name in definitions:
                raise UserError(f"command '{name}' is defined twice", f"{file}:{line}")
            current = Definition(name, split_line(match.group(2), file, line), file, line)
            definitions[name] = current
            indented_body = None if not match.group(2).strip() else False
            continue
        if current is not None and indented_body is None:
            indented_body = indented
        if current is not None and indented_body and not indented:
            current = None
        target = current.items if current is not None else main
        target.extend(split_line(content, file, line))
    return main, definitions


def lex_items(texts, file="<command line>"):
    """Items handed over by a shell: each stays one item; its quotes are read as in a file."""
    return [read_item(text, file, 1) for text in texts]

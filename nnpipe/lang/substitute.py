"""Substitution of `$name`, `${name}`, `${name=default}`, `${-command}`, `${}` (the status),
`$>`, `$<`, `$!`, `$#`, `$*`, `$1`… and `{expression}` inside one item, at the moment the item
runs. Quoted text was protected by the lexer, so nothing here touches it."""

import re

from nnpipe.errors import UserError
from nnpipe.lang.lexer import NAME_END
from nnpipe.limits import max_text, too_long

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
NEGATIVE_ARGUMENT = re.compile(r"-[1-9]\d*")  # $-1: the last argument
SPECIAL = re.compile("[${" + NAME_END + "]")


def _matching_brace(text, start):
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise UserError(f"unbalanced '{{' in '{text}'")


def substitute(text, scope):
    """Return `text` with every substitution done; `scope` answers the lookups."""
    if "$" not in text and "{" not in text:
        return text.replace(NAME_END, "") if NAME_END in text else text
    out, i, length, counted, limit = [], 0, 0, 0, max_text()
    while True:
        length += sum(len(piece) for piece in out[counted:])  # what a $x$x$x... has made so far
        counted = len(out)
        if length > limit:
            raise too_long("the item after substitution")
        match = SPECIAL.search(text, i)
        if match is None:
            out.append(text[i:])
            break
        start = match.start()
        out.append(text[i:start])
        char = text[start]
        if char == NAME_END:
            i = start + 1
        elif start + 1 >= len(text):
            out.append(char)
            break
        elif char == "{":
            end = _matching_brace(text, start)
            out.append(scope.evaluate(substitute(text[start + 1 : end], scope)))
            i = end + 1
        else:
            i = _dollar(text, start + 1, scope, out)
    result = "".join(out)
    if len(result) > limit:
        raise too_long("the item after substitution")
    return result


def _dollar(text, i, scope, out):
    """Substitute the `$…` form starting after the dollar at text[i-1]; return the next index."""
    char = text[i]
    if char == "$":  # G'MIC leaves `$$name` (a command's body) to the command that reads it
        out.append("$$")
        return i + 1
    if char in "><!#*":
        out.append(scope.special(char))
        return i + 1
    if char == "{":
        end = _matching_brace(text, i)
        inner = substitute(text[i + 1 : end], scope)
        if not inner:
            out.append(scope.last_status())
            return end + 1
        if inner.startswith("-") and (inner[1:2].isalpha() or inner[1:2] == "_"):
            out.append(scope.status_of(inner[1:]))
            return end + 1
        name, has_default, default = inner.partition("=")
        value = scope.lookup(name, default if has_default else None)
        out.append("${" + inner + "}" if value is None else value)  # a missing ${k} stays
        return end + 1
    match = NAME.match(text, i) or NEGATIVE_ARGUMENT.match(text, i)
    if not match:
        out.append("$")
        return i
    value = scope.lookup(match.group(0))
    out.append("$" + match.group(0) if value is None else value)
    return match.end()

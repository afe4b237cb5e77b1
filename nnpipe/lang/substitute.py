"""Substitution of `$name`, `${name}`, `${1=default}`, `$>`, `$<`, `$!`, `$#`, `$*`, `$1`…
and `{expression}` inside one item, at the moment the item runs."""

import re

from nnpipe.errors import UserError
from nnpipe.lang.expr import evaluate, format_number

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


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
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "{" and i + 1 < len(text):
            end = _matching_brace(text, i)
            expression = substitute(text[i + 1:end], scope)
            out.append(format_number(evaluate(expression, scope.variables(), scope.image_attribute)))
            i = end + 1
        elif char == "$" and i + 1 < len(text):
            i = _dollar(text, i + 1, scope, out)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _dollar(text, i, scope, out):
    """Substitute the `$…` form starting after the dollar at text[i-1]; return the next index."""
    char = text[i]
    if char in "><!#*$":
        out.append(scope.special(char))
        return i + 1
    if char == "{":
        end = text.find("}", i)
        if end < 0:
            raise UserError(f"unterminated '${{' in '{text}'")
        name, _, default = text[i + 1:end].partition("=")
        name = substitute(name, scope)
        has_default = "=" in text[i + 1:end]
        out.append(scope.lookup(name, substitute(default, scope) if has_default else None))
        return end + 1
    match = NAME.match(text, i)
    if not match:
        out.append("$")
        return i
    out.append(scope.lookup(match.group(0)))
    return match.end()

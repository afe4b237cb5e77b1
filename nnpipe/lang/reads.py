"""What a script reads, found in its text: `nnpipe sweep` and `nnpipe run` warn about a value
given to a script that never reads it.

The text is all there is to go on, so the answer is "written somewhere", not "read when it
runs": a `$rate` in a branch never taken counts as read, and a name built while the script
runs (`${$k}`, `$$name` in a body it generates) is not seen. A variable set from outside
belongs to the script's main program (a command the script defines has variables of its own,
and its `$1` is its own argument); a global one (`_name`) is seen by every command, those of
the command files the script names (`command FILE`, or FILE.nnp/FILE.gmic as an item) too.
"""

import os
import re
from dataclasses import dataclass

from nnpipe.errors import UserError
from nnpipe.lang.lexer import lex
from nnpipe.lang.parser import COMMAND_FILE
from nnpipe.limits import read_text
from nnpipe.quoting import unprotect

# `$name`, `${name}`, `${name=default}`, `$1`, `${1=default}`; `$*` `$"*"` `$-1` `${-1}` `$=`
# read arguments whatever their number
NAMED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*|\d+)")
EVERY_ARGUMENT = re.compile(r'\$(?:\*|"\*"|=|\{?-\d)')


@dataclass
class Reads:
    main: set  # names and argument numbers ('rate', '1') the main program mentions
    anywhere: set  # names any part mentions, command files included
    every_argument: bool  # `$*` and the like: every argument is read
    defined: set  # the commands the script and its command files define

    def reads(self, name):
        """Whether `name` (a variable, or a number N for $N) is read somewhere."""
        if name.isdigit():
            return self.every_argument or name in self.main
        return name in (self.anywhere if name.startswith("_") else self.main)


def script_reads(path):
    """What the script at `path` reads; None when it cannot be read or lexed (running it will
    say why)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return text_reads(read_text(handle, "the script"), path, os.path.dirname(path))
    except (OSError, UnicodeDecodeError, UserError):  # running the script says why
        return None


def text_reads(text, name, folder):
    """What the script `text` (named `name`, in `folder`) reads; UserError when it does not
    lex."""
    main, definitions = lex(text, name)
    texts = [item.text for item in main]
    reads = Reads(_names(texts), set(), any(EVERY_ARGUMENT.search(text) for text in texts), set(definitions))
    bodies = [item.text for definition in definitions.values() for item in definition.items]
    for file in _command_files(texts, folder):
        try:
            with open(file, encoding="utf-8") as handle:
                _, more = lex(read_text(handle, "a command file"), file)
        except (OSError, UnicodeDecodeError, UserError):  # the run says why
            continue
        bodies += [item.text for definition in more.values() for item in definition.items]
        reads.defined |= set(more)
    reads.anywhere = reads.main | _names(bodies)
    return reads


def _names(texts):
    return {match.group(1) for text in texts for match in NAMED.finditer(text)}


def _command_files(texts, folder):
    """The command files the main program names, found from here or the script's folder."""
    for text, following in zip(texts, texts[1:] + [""]):
        name = unprotect(following if text == "command" else text)
        if COMMAND_FILE.search(name):
            found = [path for path in (name, os.path.join(folder, name)) if os.path.isfile(path)]
            yield from found[:1]

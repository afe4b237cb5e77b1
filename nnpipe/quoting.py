"""What double quotes protect: inside them `$`, `{`, `}`, `,` and `"` are stored as private
codes, so that no substitution or argument split touches them, and turn back into themselves
when a command receives its arguments (see nnpipe.lang.lexer)."""

import re

PROTECT = {"$": "\ue000", "{": "\ue001", "}": "\ue002", ",": "\ue003", '"': "\ue004"}
UNPROTECT = {code: char for char, code in PROTECT.items()}
# where a quote opened right after a name (`$x"…"`): the name ends there, as in G'MIC
NAME_END = "\ue005"
_UNPROTECT_TABLE = str.maketrans({**UNPROTECT, NAME_END: ""})
_PROTECTED = re.compile("[\ue000-\ue005]")


def unprotect(text):
    """The text a user wrote, quoted parts included (for display and for command arguments)."""
    return text.translate(_UNPROTECT_TABLE) if _PROTECTED.search(text) else text

"""The language's keywords and forms, declared once: `nnpipe help FORM`, the language part of
`nnpipe help` and `nnpipe --help` are written from this table."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    """`names`: what `nnpipe help NAME` accepts (the first is the title); `usage`: how it is
    written; `text`: what it does, its first sentence a summary."""

    names: tuple
    usage: str
    text: str

    def summary(self):
        return self.text.split(". ")[0].rstrip(".") + "."

    def describe(self):
        also = [name for name in self.names[1:] if name not in self.usage]
        lines = [self.usage]
        if also:
            lines.append("also: " + ", ".join(also))
        return "\n".join([*lines, "", self.text])


FORMS = [
    Form(
        ("repeat", "done", "{", "}", "$>", "$<"),
        "repeat N[,var] ... done   or   repeat N[,var] { ... }",
        "Run the body N times (N: a number, an expression, or inf). Inside it `$>` counts up from 0"
        " and `$<` down to 0 (a command called from the body sees the caller's loop); `,var` sets"
        " the variable var to the count too (nnpipe's own). `break` and `continue` work in it.",
    ),
    Form(
        ("if", "elif", "else", "fi"),
        "if COND ... [elif COND ...] [else ...] fi",
        "Run the first branch whose condition holds. COND is a number or a math expression, true"
        " when not 0 (nan is true), e.g. `if $loss>0.1 ... fi`.",
    ),
    Form(
        ("do", "while"),
        "do ... while COND",
        "Run the body, then again while COND holds (a number or a math expression, true when not"
        " 0). `$>` counts the iterations from 0; `break` and `continue` work in it.",
    ),
    Form(
        ("break", "continue", "return"),
        "break   continue   return",
        "`break` leaves the innermost repeat or do/while loop, `continue` goes on with its next"
        " iteration; `return` leaves the running command (at the script's top level it ends the"
        " run, successfully).",
    ),
    Form(
        ("+", "+cmd"),
        "+command[selection] arguments",
        "Keep the input images and append the results, named after the inputs with `_c1`"
        " (`+resize[0] 50%,50%` appends a half-size copy of image 0).",
    ),
    Form(
        ("[", "[]", "selection", "selections", ".", "..", "..."),
        "command[selection]   command.   command..   command...",
        "Restrict a command to some images of the list: `[0]` (the first), `[-1]` (the last),"
        " `[0,2]`, `[1-3]`, `[name]` (the images called name), and `.` `..` `...` for the last,"
        " second-last and third-last image. Indices are sorted and de-duplicated. Without a"
        " selection a command works on every image except those of the networks (weights,"
        " moments, trainer states): select those by name, or use nn_print.",
    ),
    Form(
        ("$", "variables", "variable", "=", "$name", "${name}", "${name=default}"),
        "name=value   $name   ${name}   ${name=default}",
        "`name=value` sets a variable (`a,b=1,2` several), `name.=text` appends text, `name+=expr`"
        " (-= *= /= %= ^=) computes, `name:=expr` stores the value of a math expression. `$name`"
        " or `${name}` is its value (a name set nowhere reads the environment, then the empty"
        " text); `${name=default}` gives default when the variable is not set (nnpipe's own)."
        " `$1` `$2`... are the arguments of the running command or script, `$*` all of them, `$#`"
        " their count, `$-1` the last one; `$!` is the number of images, `${}` the status the last"
        " command left, `${-command args}` runs a command and gives its status. Variables are"
        " local to the running command unless their name starts with `_`.",
    ),
    Form(
        ("_", "_name", "globals", "global"),
        "_name=value   $_name",
        "A variable whose name starts with `_` is global: every command call sees and changes the"
        " same one. Other variables belong to the command call (or script) that sets them.",
    ),
    Form(
        ("{expr}", "{", "expression", "expressions", "{_expr}", "{'text'}"),
        "{expression}   {_expression}   {k,expression}   {'text'}",
        "A math expression in an item is replaced by its value, as G'MIC prints it (`echo"
        " {1/3}` prints 0.33333333333333331); `{_expression}` prints the value short, with 6"
        " significant digits (`{_1/3}` is 0.333333). `{k,expression}` reads image k as its own"
        " (`{0,w}`), `{'text'}` is the character codes of text. Inside, `w` `h` `d` `s` `i(x,y)`"
        " `w#k` `i(#k,x,y)` `vector(#k)` read images; `set('name',value)` sets a variable.",
    ),
    Form(
        (":", "name :", "define", "definition", "definitions", "command"),
        "name : body",
        "In a script or a command file, a line `name :` starts the definition of a command, whose"
        " body is the rest of the line and the lines below, up to the next definition (or, when"
        " the first body line is indented, to the first line that is not). Its arguments are `$1`"
        " `$2`... `$*` `$#`; `$0` is its name. A command file (.nnp, .gmic) named as an item, or"
        " by `command FILE`, adds its definitions from there on.",
    ),
    Form(
        ("#", "comments", "quotes", '"', "\\"),
        '# comment   "quoted text"   line \\',
        "In a script `#` (at a line's start or after a blank) starts a comment; a trailing"
        " backslash joins the next line. Double quotes group words into one item and protect"
        " `$`, `{}` and commas from substitution and splitting; a backslash protects the one"
        " character after it.",
    ),
]

BY_NAME = {name: form for form in FORMS for name in form.names}


def lookup(name):
    """The form `nnpipe help name` describes, or None."""
    return BY_NAME.get(name)

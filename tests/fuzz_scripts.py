"""Hostile scripts for the fuzz test (tests/test_fuzz.py) and scripts/fuzz.py.

A script is a list of items as a shell hands them over: a setup that gives the commands
something to work on (nothing, images, a small network with a trainer), then commands drawn
from the registry (names and aliases, with selections and the '+' prefix) with arguments made
of hostile pieces (non-numbers, huge and non-finite numbers, empty parts, quotes, brackets,
control characters, paths that cannot be written). Built from command names and argument
strings only, so it stays valid as the language changes.

Numbers are small or beyond every limit: a valid but large count or size (a billion training
iterations, a 40000x40000 image) is a long run or a real allocation, not a mistake, and would
make the test slow without finding anything.
"""

from hypothesis import strategies as st

from nnpipe.commands import load_all
from nnpipe.registry import COMMANDS

load_all()

SETUPS = [
    [],
    ["input", "3,2,1,3,0.5", "input", "4,4"],
    [
        "input",
        "1,12,1,5,0.25",
        "nn_init",
        "nn_input",
        "IN,2",
        "nn_fc",
        "OUT,IN,3",
        "nn_loss_mse",
        "LOSS,OUT,GT",
        "nn_trainer",
        "T,LOSS,0.01,adam",
    ],
    [
        "input",
        "8,8,4,1,0.5",
        "name",
        "X",
        "input",
        "1,1,4,2,0",
        "name",
        "Y",
        "nn_init",
        "nn_input",
        "IN,8,8",
        "nn_conv2d",
        "C,IN,2",
        "nn_maxpool2d",
        "P,C",
        "nn_fc",
        "OUT,P,2",
        "nn_loss_softmax_crossentropy",
        "LOSS,OUT,GT",
        "nn_trainer",
        "T,LOSS",
    ],
]

NUMBERS = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-2",
    "0.5",
    "-0",
    "1e-45",
    "1e-320",
    "1e308",
    "-1e308",
    "1e39",
    "2147483648",
    "-2147483649",
    "9e18",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "0x10",
    "1_000",
    "1e",
    "+",
    "-",
    ".",
    "1.5e3%",
    "1e308%",
    "50%",
    "0%",
    "-5%",
    "3%",
]
WORDS = [
    "",
    " ",
    "abc",
    "IN",
    "OUT",
    "LOSS",
    "T",
    "GT",
    "X",
    "Y",
    ".",
    "..",
    "nn",
    "adam",
    "linear",
    "relu",
    "x",
    "c",
    "16",
    "x.png",
    "missing.png",
    "missing.npy",
    "out/net.tif",
    "net.png",
    "a.tif",
    "w.npy",
    "d.csv",
    "/proc/nnpipe.png",
    "/proc/self/x.tif",
    "dir/",
    "*.png",
    "[0]",
    "[",
    "]",
    "(",
    ")",
    "(1,2",
    "(1,2;3)",
    "()",
    '"',
    '""',
    '"a,b"',
    "'",
    "\\",
    "$",
    "$1",
    "${x}",
    "{",
    "}",
    "{1/0}",
    "#",
    "%",
    "\n",
    "\t",
    "\x01",
    "a\x00.png",
    "\x00",
    "é",
    "名前",
    "a" * 300,
    "0" * 50,
    # math expressions (fill, input w,h,d,s,expr, {…}): G'MIC's forms and broken ones
    "x*y",
    "x/0",
    "i(0,0)",
    "i[99]",
    "w#9",
    "sqrt(-1)",
    "[1,2,3]",
    "if(x,1)",
    "'str'",
    "x=",
    "(x",
    "1e308*10",
    "fact(200)",
    "pow(10,400)",
    "round(1e308)",
    "{1e308*1e308}",
]
# image-index forms with every kind of index: G'MIC wraps a finite one around the list and
# refuses NaN; vector(#n) is n values
INDEX_FORMS = [
    "w#{}",
    "(h#{})",
    "i#{}",
    "I#{}",
    "iv#{}",
    "i(#{},0)",
    "i(#{},0,0,0,1)",
    "I(#{})",
    "j(#{},1)",
    "J(#{},0,0)",
    "vector(#{})",
    "vector(#{},1,2)",
    "vector{}(0)",
    "sum(vector(#{}))",
    "k={};I(#k)",
    "k={};J(#k,0,0)",
]
INDICES = [
    "0",
    "1",
    "-1",
    "3",
    "-5",
    "0.5",
    "-0.5",
    "nan",
    "-nan",
    "(0/0)",
    "inf",
    "+inf",
    "-inf",
    "1e30",
    "-1e30",
    "1e400",
    "2147483648",
    "-2147483649",
    "4294967296",
    "30000000",
    "(1+2)",
    "$x",
    "x",
]
INDEXED = st.builds(str.format, st.sampled_from(INDEX_FORMS), st.sampled_from(INDICES))
PIECES = st.one_of(st.sampled_from(NUMBERS + WORDS), INDEXED, INDEXED.map("{{{}}}".format))
LAYERS = ["IN", "OUT", "LOSS", "GT", "C", "P", ".", "NEW", "N2"]


def plausible(param):
    """Values a careful user would give for a declared parameter (the registry's)."""
    kind = type(param).__name__
    if kind == "Int":
        low = param.low if param.low is not None else 0
        values = [low, low + 1, low + 2, 3]
        return [str(v) for v in values if param.high is None or v <= param.high]
    if kind == "Float":
        return ["0.5", "1", "0.01", "2"]
    if kind == "Bool":
        return ["0", "1"]
    if kind == "Choice":
        return list(param.choices)
    if kind == "LayerName":
        return LAYERS
    if kind == "Size":
        return ["2", "3", "50%", "200%"]
    return ["3,3", "x.png", "a.tif", "w.npy", "d.csv", "net.tif", "net.png", "X", "Y", "IN"]


@st.composite
def arguments(draw, entry):
    """Arguments for `entry`: each declared parameter plausible or hostile, some left out or
    added; or a string of hostile pieces only."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.one_of(st.none(), st.lists(PIECES, min_size=1, max_size=6).map(",".join)))
    values = [
        draw(st.sampled_from(plausible(p)) if draw(st.integers(0, 7)) else PIECES) for p in entry.params
    ]
    if draw(st.integers(0, 3)) == 0:  # some left out, or one too many
        values = (values + [draw(PIECES)])[: draw(st.integers(0, len(values) + 1))]
    return ",".join(values) if values else None


SELECTIONS = st.sampled_from(
    ["", "", "", ".", "..", "[0]", "[-1]", "[0,1]", "[0-1]", "[5]", "[IN]", "[X]", "[]", "[-99]"]
)
NAMES = sorted(COMMANDS.commands()) + sorted(COMMANDS.aliases())


@st.composite
def command_items(draw):
    name = draw(st.sampled_from(NAMES))
    plus = "+" if draw(st.integers(0, 9)) == 0 else ""
    items = [plus + name + draw(SELECTIONS)]
    text = draw(arguments(COMMANDS.lookup(name)))
    if text is not None:
        items.append(text)
    return items


# the image-index forms where a user writes them: in an item's {…}, and as a pixel expression
INDEXED_ITEMS = st.one_of(
    INDEXED.map(lambda text: [f"x={{{text}}}"]),
    INDEXED.map(lambda text: ["echo", f"{{{text}}}"]),
    INDEXED.map(lambda text: ["eval", text]),
    INDEXED.map(lambda text: ["fill", text]),
)


@st.composite
def scripts(draw, blocks=False):
    """A setup then 1-6 commands or image-index forms; with `blocks`, also the language's
    keywords with small counts, balanced or not (scripts/fuzz.py --blocks)."""
    items = list(draw(st.sampled_from(SETUPS)))
    parts = st.one_of(command_items(), INDEXED_ITEMS)
    if blocks:
        parts = st.one_of(parts, st.sampled_from(BLOCK_ITEMS))
    for command in draw(st.lists(parts, min_size=1, max_size=8 if blocks else 6)):
        items.extend(command)
    return items


BLOCK_ITEMS = [
    ["repeat", "2", "{"],
    ["}"],
    ["repeat", "3"],
    ["done"],
    ["if", "1"],
    ["if", "0"],
    ["if", "nan"],
    ["elif", "1"],
    ["else"],
    ["fi"],
    ["do"],
    ["while", "0"],
    ["repeat", "2,i"],
    ["x=$>"],
    ["$<"],
    ["${x}"],
    ["${-x}"],
    ["{"],
]

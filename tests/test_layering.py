"""Dependencies point down only: cli -> lang -> commands -> nn, expr -> images -> the base
modules. A module importing one of a higher level (even inside a function) fails here, with
the line to look at."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nnpipe"
# the highest level first; a module is at the level of its longest listed prefix
LEVELS = [
    ("nnpipe.cli", "nnpipe.__main__", "nnpipe.sweeps"),
    ("nnpipe.lang",),
    ("nnpipe.commands",),
    ("nnpipe.nn", "nnpipe.expr"),
    ("nnpipe.images", "nnpipe.interrupt"),
    ("nnpipe",),  # the base: errors, numbers, quoting, registry, naming, limits, progress
]


def level(module):
    matches = [
        (len(prefix), len(LEVELS) - rank)
        for rank, prefixes in enumerate(LEVELS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1]


def imports(path):
    """(line, imported module) of every nnpipe import in the file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names if alias.name.startswith("nnpipe"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnpipe"):
            for alias in node.names:  # `from nnpipe import expr` imports the module nnpipe.expr
                name = f"{node.module}.{alias.name}"
                yield (
                    node.lineno,
                    name
                    if (PACKAGE.parent / name.replace(".", "/")).exists()
                    or (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists()
                    else node.module,
                )


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_from_a_higher_level():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imports(path):
            if level(imported) > level(importer):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {importer} imports {imported}")
    assert upward == []


def test_the_levels_cover_every_module_and_place_the_base_at_the_bottom():
    assert level("nnpipe.errors") == 1 and level("nnpipe.registry") == 1
    assert level("nnpipe.lang.interpreter") > level("nnpipe.commands.images") > level("nnpipe.nn.engine")
    assert level("nnpipe.nn.layers.fc") > level("nnpipe.images.io") > level("nnpipe.numbers")

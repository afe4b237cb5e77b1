"""Generated hostile scripts: whatever the input, only the user-error type escapes
(scripts/fuzz.py runs many more)."""

import io
import os

import numpy as np
import pytest
from fuzz_scripts import scripts
from hypothesis import HealthCheck, given, settings

from nnpipe.commands import load_all
from nnpipe.errors import UserError
from nnpipe.lang.interpreter import Interpreter

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 2000))


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory):
    """A folder to run in, holding a few real files the scripts name."""
    folder = tmp_path_factory.mktemp("fuzz")
    previous = os.getcwd()
    os.chdir(folder)
    run_hostile(["input", "4,3,1,3,7", "output", "x.png", "output", "a.tif", "output", "w.npy"])
    (folder / "d.csv").write_text("a,b,label\n1,2,cat\n3,4,dog\n")
    np.save(folder / "labels.npy", np.array([0, 1, 1]))
    yield folder
    os.chdir(previous)


def run_hostile(items):
    """Run `items` in-process; a UserError is a fine outcome, any other exception fails."""
    interpreter = Interpreter(load_all(), seed=0, quiet=True, out=io.StringIO(), err=io.StringIO())
    try:
        interpreter.run_items(items)
    except UserError as error:
        assert "\n" not in str(error), str(error)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(scripts())
@pytest.mark.slow
def test_generated_scripts_raise_only_user_errors(fuzz_folder, items):
    run_hostile(items)

"""Shared helpers: run the interpreter in-process, or the real command line through click."""

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnpipe.cli import main  # importing the CLI also registers every command family
from nnpipe.commands import load_all
from nnpipe.errors import UserError
from nnpipe.lang.interpreter import Interpreter

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """What an in-process run left behind."""

    interpreter: Interpreter
    out: str
    err: str

    @property
    def workspace(self):
        return self.interpreter.workspace

    @property
    def lines(self):
        return self.out.splitlines()

    @property
    def images(self):
        return self.interpreter.workspace.images

    def image(self, index=-1):
        return self.interpreter.workspace.images[index]

    @property
    def names(self):
        return list(self.interpreter.workspace.images.names)


def _interpreter(seed, quiet, verbose, api="2023"):
    out, err = io.StringIO(), io.StringIO()
    interpreter = Interpreter(load_all(), seed=seed, quiet=quiet, verbose=verbose, out=out, err=err, api=api)
    return interpreter, out, err


def run_script(text, args=(), file="test.nnp", seed=0, quiet=False, verbose=False, api="2023"):
    """Run script text through Interpreter.run_source (nn_lib's `api`); UserError propagates."""
    interpreter, out, err = _interpreter(seed, quiet, verbose, api)
    interpreter.run_source(text, file, list(args))
    return Run(interpreter, out.getvalue(), err.getvalue())


def run_items(*items, seed=0, quiet=False, verbose=False, api="2023"):
    """Run items as the shell would hand them over (`nnpipe ITEM...`)."""
    interpreter, out, err = _interpreter(seed, quiet, verbose, api)
    interpreter.run_items(list(items))
    return Run(interpreter, out.getvalue(), err.getvalue())


def script_error(text, args=(), file="test.nnp", api="2023"):
    """The UserError a script raises (fails the test if it raises none)."""
    with pytest.raises(UserError) as info:
        run_script(text, args, file, api=api)
    return info.value


def items_error(*items):
    with pytest.raises(UserError) as info:
        run_items(*items)
    return info.value


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    exception: BaseException = None

    @property
    def error_lines(self):
        return self.stderr.splitlines()


def _runner():
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps stderr apart by itself


def cli(*args, input=None):
    """Run the real `nnpipe` command line in-process; returns code, stdout and stderr."""
    result = _runner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exception)


def subprocess_nnpipe(*args, cwd=None, input=None):
    """Run `python -m nnpipe` in a child process (slow: use sparingly)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "nnpipe", *map(str, args)],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


def values(image):
    """An image as a plain nested list for readable assertions (channel 0, depth 0: rows)."""
    return np.asarray(image)[0, 0].tolist()


@pytest.fixture
def work(tmp_path, monkeypatch):
    """Run in an empty temporary folder, so scripts can use short relative file names."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

"""The documentation cannot drift from the code: every ```sh (and ```python) block of the
README and of the site's pages runs, a page's blocks in order in a folder of their own with
the examples beside them, and a ```text block marked `<!-- output -->` is what the block
before it prints (numbers within 0.1%); the generated pages are current; the site builds
strictly."""

import math
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md"] + sorted(p for p in DOCS.rglob("*.md") if "drafts" not in p.parts)
BLOCK = re.compile(r"^(<!-- output -->\n)?```(sh|python|text)\n(.*?)^```$", re.S | re.M)
SLOW_PAGES = {"scale-out.md", "getting-started.md"}


def runnable(page):
    """[(kind, code, its expected output or None)] of the page's blocks that run."""
    blocks = []
    for marked, kind, code in BLOCK.findall(page.read_text(encoding="utf-8")):
        if marked and blocks:
            blocks[-1] = blocks[-1][:2] + (code,)
        elif kind != "text" and not code.startswith("--8<--"):  # not a file the page shows
            blocks.append((kind, code, None))
    return blocks


def same_output(expected, got):
    """Line by line, word by word; numbers within 0.1% (the last digits of a loss depend on
    the order of float sums)."""
    expected, got = expected.strip().splitlines(), got.strip().splitlines()
    if len(expected) != len(got):
        return False
    for want, have in zip(expected, got):
        want, have = want.split(), have.split()
        if len(want) != len(have):
            return False
        for a, b in zip(want, have):
            try:
                if not math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-9):
                    return False
            except ValueError:
                if a != b:
                    return False
    return True


def page_id(page):
    return str(page.relative_to(REPO))


CASES = [
    pytest.param(page, marks=pytest.mark.slow) if page.name in SLOW_PAGES else page
    for page in PAGES
    if runnable(page)
]


@pytest.mark.parametrize("page", CASES, ids=page_id)
def test_every_block_of_the_page_runs(page, tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("shapes"))
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for kind, code, output in runnable(page):
        command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{page_id(page)}:\n{code}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        if output is not None:
            assert same_output(output, done.stdout), f"{page_id(page)}:\n{code}\nprints:\n{done.stdout}"


def test_the_generated_pages_are_current():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=os.path.dirname(sys.executable)) or shutil.which("mkdocs")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

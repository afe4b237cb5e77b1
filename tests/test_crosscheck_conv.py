"""scripts/crosscheck_conv.py without PyTorch: nnpipe's LeNet-like net (forward pass of every
layer, 5 Adam steps, final weights) against the numbers PyTorch computed from the same samples
and weights, stored in tests/data/crosscheck_conv.npz by `crosscheck_conv.py --write`."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from crosscheck_conv import TOLERANCE, WEIGHTS, differences, nnpipe_results  # noqa: E402

REFERENCE = REPO / "tests" / "data" / "crosscheck_conv.npz"
# runs a script as `python SCRIPT` would, except that `import torch` fails whether or not
# PyTorch is installed
WITHOUT_TORCH = (
    "import os, runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:];"
    " sys.path.insert(0, os.path.dirname(sys.argv[0]));"
    " runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.slow
def test_lenet_agrees_with_the_stored_pytorch_numbers():
    stored = np.load(REFERENCE)
    weights = {name: stored[f"initial_{name}"] for name in WEIGHTS}
    ours = nnpipe_results(stored["pictures"], stored["labels"], weights)
    theirs = {what: stored[what] for what in ours}
    found = differences(ours, theirs)
    assert set(found) >= {"output_C1", "output_P2", "output_OUT", "losses", "final_OUT_fc"}
    assert max(found.values()) <= TOLERANCE, found


def test_crosscheck_script_without_torch_says_how_to_install_it():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(REPO / "scripts" / "crosscheck_conv.py")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "pip install torch==2.13.0" in result.stderr

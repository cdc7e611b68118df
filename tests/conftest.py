"""Shared test helpers: tiny volumes, the real-data folder, running the console command."""

import os
import subprocess
import sys

import numpy as np
import pytest

import isonet  # noqa: F401  (sets TensorFlow's CPU defaults before any test imports it)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The two real tomogram crops (8-bit copies, see tests/data/real/README.md) and the metadata fixtures.
REAL_DATA = os.path.join(REPO, "tests", "data", "real")
DATA = os.path.join(REPO, "tests", "data")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def real_data_dir():
    """Folder of the real tomogram crops (tests/data/real: mt13pf_crop.mrc, mt14pf_crop.mrc; bright density)."""
    return REAL_DATA


def run_cli(*args, cwd=None, timeout=600):
    """Run ``isonet.py ARGS`` in a subprocess (the installed command if on PATH, else bin/isonet.py).

    Returns the CompletedProcess with text stdout/stderr.
    """
    script = os.path.join(REPO, "bin", "isonet.py")
    command = [sys.executable, script, *map(str, args)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)

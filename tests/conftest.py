"""Shared test helpers: tiny volumes, the real-data folder, running the console command."""

import contextlib
import io
import logging
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


def run_in_process(*args, cwd):
    """Run ``isonet.cli.main(ARGS)`` in this process, in folder ``cwd``, without a log file unless ARGS name one.

    Returns a :class:`subprocess.CompletedProcess` with text stdout/stderr, as :func:`run_cli` does. A
    subprocess costs seconds of start-up (TensorFlow's import) per call: the error cases, small commands
    and short refine runs run here instead. The working folder and the ``isonet`` logger that ``main``
    configures are put back as they were afterwards.
    """
    from isonet.cli import main
    args = [*map(str, args)]
    if not any(a == "--log_file" or a.startswith("--log_file=") for a in args):
        args.append("--log_file=")
    logger = logging.getLogger("isonet")
    saved = list(logger.handlers), logger.level, logger.propagate
    here, out, err = os.getcwd(), io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(args)
    finally:
        os.chdir(here)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
    return subprocess.CompletedProcess(["isonet.py", *args], status, out.getvalue(), err.getvalue())


@pytest.fixture
def run_main():
    """:func:`run_in_process` returning ``(exit status, stdout, stderr)``."""
    def run(*args, cwd):
        result = run_in_process(*args, cwd=cwd)
        return result.returncode, result.stdout, result.stderr
    return run

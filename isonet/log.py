"""One logging setup for every command: timestamped lines to stdout and a log file.

Progress bars (tqdm) go to stderr; when stderr is not a terminal (cluster
jobs) they refresh rarely so that log files stay readable.
"""

import contextlib
import logging
import os
import sys
import time

from tqdm import tqdm

LOGGER_NAME = "isonet"
FORMAT = "%(asctime)s %(levelname)s %(message)s"
DEBUG_FORMAT = "%(asctime)s %(levelname)s [%(name)s:%(lineno)d] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def discard_closed_stdout():
    """Point stdout at /dev/null after its reader went away (``isonet.py ... | head -1``).

    Later writes, and the interpreter's final flush, then succeed silently
    instead of raising BrokenPipeError; the log file still gets everything.
    """
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _StdoutHandler(logging.StreamHandler):
    """Log handler for stdout that goes quiet, without a traceback, when the reader closed the pipe."""

    def handleError(self, record):
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            discard_closed_stdout()
        else:
            super().handleError(record)


def setup_logging(level="info", log_file="isonet.log"):
    """Configure the ``isonet`` logger; returns it.

    Parameters
    ----------
    level : {'info', 'debug', 'warning'}
    log_file : str or None
        File appended to (``None`` or '' for none).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    numeric = getattr(logging, str(level).upper())
    formatter = logging.Formatter(DEBUG_FORMAT if numeric <= logging.DEBUG else FORMAT, DATE_FORMAT)
    # Progress and warnings go to stdout; a failure is one plain "ERROR: ..." line on stderr.
    stdout = _StdoutHandler(sys.stdout)
    stdout.addFilter(lambda record: record.levelno < logging.ERROR)
    stdout.setFormatter(formatter)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.ERROR)
    stderr.setFormatter(logging.Formatter("ERROR: %(message)s"))
    handlers = [stdout, stderr]
    if log_file:
        to_file = logging.FileHandler(log_file, mode="a")
        to_file.setFormatter(formatter)
        handlers.append(to_file)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    return logger


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr that refreshes every 30 s when not on a terminal."""
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.5 if interactive else 30.0)
    kwargs.setdefault("dynamic_ncols", interactive)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)


@contextlib.contextmanager
def log_time(what):
    """Log ``'<what>: done in N s'`` when the block finishes."""
    start = time.perf_counter()
    yield
    logging.getLogger(LOGGER_NAME).info("%s: done in %.1f s", what, time.perf_counter() - start)

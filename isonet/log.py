"""One logging setup for every command: timestamped lines to stdout and a log file.

Progress (:func:`progress`) is a tqdm bar on stderr when both stdout and
stderr are terminals. Otherwise (cluster jobs, output redirected to a file)
it is whole log lines at a steady pace: every 10 % of the work (at most one
line per :data:`MIN_GAP` seconds), at least every :data:`INTERVAL` seconds
while work goes on, and one line at the end; no carriage returns. The log
file gets these lines in both cases.
"""

import contextlib
import logging
import math
import os
import sys
import time

from tqdm import tqdm

LOGGER_NAME = "isonet"
FORMAT = "%(asctime)s %(levelname)s %(message)s"
DEBUG_FORMAT = "%(asctime)s %(levelname)s [%(name)s:%(lineno)d] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Seconds between progress lines while work goes on (non-interactive output).
INTERVAL = 30.0
#: Fewest seconds between two progress lines, however fast the work advances.
MIN_GAP = 15.0
#: Attribute of a log record that goes to the log file only (progress lines under a tqdm bar).
FILE_ONLY = "isonet_file_only"


def discard_closed_stdout():
    """Point stdout at /dev/null after its reader went away (``isonet.py ... | head -1``).

    Later writes, and the interpreter's final flush, then succeed silently
    instead of raising BrokenPipeError; the log file still gets everything.
    """
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _StdoutHandler(logging.StreamHandler):
    """Log handler for stdout: lifts tqdm bars out of the way of each line; goes quiet, without a
    traceback, when the reader closed the pipe."""

    def emit(self, record):
        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)

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
    stdout.addFilter(lambda record: record.levelno < logging.ERROR and not getattr(record, FILE_ONLY, False))
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


def interactive():
    """Whether progress may be drawn as bars: stdout and stderr are both terminals."""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def duration_text(seconds):
    """``'42 s'``, ``'7 min'``, ``'2 h 05 min'``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Progress of a loop: a tqdm bar on a terminal, log lines otherwise (see the module docstring).

    Use it like tqdm: iterate over it, or call :meth:`update` and :meth:`close`
    (also as a context manager).

    Parameters
    ----------
    iterable : iterable, optional
        Items to go through (counted one each).
    total : int, optional
        Work units expected (default ``len(iterable)`` when it has one).
    desc : str
        What is done, first word of each line.
    unit : str
        Name of a work unit.
    leave : bool
        Log the final line even when the work was short (False for inner loops:
        their final line appears only if earlier lines did).
    disable : bool
        Show and log nothing.
    bar : bool, optional
        Draw a tqdm bar (default: :func:`interactive`); lines then go to the log file only.
    clock : callable
        Seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, iterable=None, total=None, desc="", unit="it", leave=True, disable=False, bar=None,
                 clock=time.monotonic):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.leave, self.disable, self.clock = leave, disable, clock
        self.n, self.postfix, self.lines = 0, "", 0
        self.started = self._last_line = clock()
        self._last_fraction = 0.0
        self.bar = None
        if not disable and (interactive() if bar is None else bar):
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, mininterval=0.5,
                            dynamic_ncols=True)
        self._extra = {FILE_ONLY: self.bar is not None}
        self.closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def set_postfix_str(self, text):
        """Text appended to the bar and to each line (e.g. the current loss)."""
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def update(self, n=1):
        """Count ``n`` more units done; logs a line when one is due."""
        if self.disable:
            return
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        now = self.clock()
        since = now - self._last_line
        fraction = self.n / self.total if self.total else 0.0
        step_due = math.floor(fraction * 10) > math.floor(self._last_fraction * 10) and since >= MIN_GAP
        if (since >= INTERVAL or step_due) and not (self.total and self.n >= self.total):
            self._log(now)

    def close(self):
        """Log the final line (see ``leave``) and remove the bar; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if self.disable:
            return
        if self.bar is not None:
            self.bar.close()
        if self.leave or self.lines:
            self._log(self.clock(), final=True)

    def line(self, now=None, final=False):
        """The progress line: ``'<desc>: 12/50 <unit> (24 %), 31 s, 0.39 <unit>/s, ETA 97 s'``."""
        now = self.clock() if now is None else now
        elapsed = now - self.started
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{self.desc}: {count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        if final:
            parts.append(f"done in {duration_text(elapsed)}")
        else:
            parts.append(duration_text(elapsed))
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}")
            if self.total and not final:
                parts.append(f"ETA {duration_text((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _log(self, now, final=False):
        logging.getLogger(LOGGER_NAME).info("%s", self.line(now, final), extra=self._extra)
        self.lines += 1
        self._last_line = now
        self._last_fraction = self.n / self.total if self.total else 0.0


def progress(iterable=None, total=None, desc="", unit="it", leave=True, disable=False):
    """Progress of a loop over ``iterable`` or of ``total`` units: a :class:`Progress` (tqdm-like)."""
    return Progress(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable)


@contextlib.contextmanager
def log_time(what):
    """Log ``'<what>: done in N s'`` when the block finishes."""
    start = time.perf_counter()
    yield
    logging.getLogger(LOGGER_NAME).info("%s: done in %.1f s", what, time.perf_counter() - start)

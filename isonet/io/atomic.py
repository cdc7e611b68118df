"""Atomic file replacement: write to a temporary file beside the target, then rename."""

import contextlib
import os
import tempfile

from isonet.errors import IsonetError


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path in the folder of ``path``; rename it to ``path`` on success.

    An interrupted or failed write leaves no half-written ``path`` behind (the
    temporary file is removed), and an existing ``path`` stays intact until the
    new content is complete. The suffix of ``path`` is kept so that libraries
    choosing a format by extension behave the same. A system error (folder
    missing or read-only, disk full...) becomes an :class:`IsonetError` that
    names ``path``, never the temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    suffix = os.path.splitext(base)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + suffix, dir=folder)
    except OSError as exc:
        raise IsonetError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise IsonetError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)

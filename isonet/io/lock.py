"""Advisory locks on outputs, so that two isonet commands never write the same files at once.

The lock of an output ``path`` (file or folder) is the file ``.<name>.isonet-lock``
beside it, locked with ``fcntl.flock`` and holding the owner's process id.
The kernel drops the lock when its process ends, however it ends (kill -9
included), so the lock of a dead process is simply taken over. The lock file
is removed on release; a waiting process that locked the removed file notices
(the path no longer names the file it holds) and tries again.
"""

import contextlib
import fcntl
import os
import time

from isonet.errors import IsonetError

_SUFFIX = ".isonet-lock"
#: Pause between two tries of a lock held by another process, when the caller waits for it.
_RETRY_SECONDS = 0.05


def lock_path(path):
    """``<folder>/.<name>.isonet-lock`` for the output ``path``."""
    path = os.path.abspath(os.fspath(path)).rstrip(os.sep)
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{_SUFFIX}")


def _holder(handle, wait=1.0):
    """The holder's pid from the lock file; the holder writes it just after locking, so wait up to ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        handle.seek(0)
        text = handle.read().strip()
        if text.isdigit() or time.monotonic() > deadline:
            return text if text.isdigit() else "unknown"
        time.sleep(0.01)


def _acquire(path, wait):
    """Lock ``path``'s lock file, retrying for up to ``wait`` seconds while another process holds it; returns
    the open handle, or raises naming the holder's pid."""
    name = lock_path(path)
    deadline = time.monotonic() + wait
    try:
        os.makedirs(os.path.dirname(name), exist_ok=True)
    except OSError as exc:
        raise IsonetError(f"{path}: cannot create its folder ({exc.strerror})") from None
    while True:
        try:
            handle = open(name, "a+")
        except OSError as exc:
            raise IsonetError(f"{path}: cannot create the lock file {name} ({exc.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                handle.close()
                time.sleep(_RETRY_SECONDS)
                continue
            holder = _holder(handle)
            handle.close()
            raise IsonetError(f"{path} is being written by another isonet command (pid {holder})") from None
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(name))
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return handle
        handle.close()  # the holder removed this file while we waited for it: lock the new one


def _release(handle):
    with contextlib.suppress(FileNotFoundError):
        os.remove(handle.name)  # still locked: nobody can hold the lock of this file in between
    handle.close()


@contextlib.contextmanager
def output_lock(*paths, wait=0.0):
    """Hold the locks of the outputs ``paths`` (files or folders) for the block.

    Parameters
    ----------
    *paths : str or path-like
        Outputs to lock.
    wait : float
        Seconds to keep trying a lock held by another process before giving up (0: give up at once).

    Raises
    ------
    IsonetError
        ``<path> is being written by another isonet command (pid N)`` when another process holds one
        (for longer than ``wait``).
    """
    unique = sorted({os.path.abspath(os.fspath(p)).rstrip(os.sep) for p in paths})
    handles = []
    try:
        for path in unique:  # a fixed order: two commands locking the same paths cannot deadlock
            handles.append(_acquire(path, wait))
        yield
    finally:
        for handle in reversed(handles):
            _release(handle)

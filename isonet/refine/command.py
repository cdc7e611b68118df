"""The ``refine`` command: settings from the command line to :func:`isonet.refine.loop.refine`, under a lock."""

import contextlib

from isonet.commands import REFINE
from isonet.io.lock import output_lock
from isonet.refine.config import RefineConfig, load_state
from isonet.refine.workers import is_chief


def refine_command(**values):
    """Run refine with the settings given (name -> typed value); the others keep their defaults.

    With ``continue_from``, settings left out are restored from that JSON (given ones win). The
    result folder is locked against a second isonet command for the whole run (by the chief, on several
    machines).

    Parameters
    ----------
    **values
        Settings of :data:`isonet.commands.REFINE` as typed values; only those given.

    Returns
    -------
    list of dict
        History of the run (see :func:`isonet.refine.loop.refine`).
    """
    REFINE.resolve(values)  # ranges and choices of the values given
    continue_from = values.pop("continue_from", None)
    strided = values.get("pool") is False  # an explicit --pool False wins over --continue_from too
    if strided:
        values["pool"] = None
    config = RefineConfig.from_cli(values)
    if strided:
        config.explicit.add("pool")
    result_dir = config.result_dir
    if continue_from is not None and "result_dir" not in config.explicit:
        result_dir = load_state(continue_from)[0].result_dir
    from isonet.refine.loop import refine
    with output_lock(result_dir) if is_chief() else contextlib.nullcontext():  # the other workers write nothing
        return refine(config, continue_from=continue_from)

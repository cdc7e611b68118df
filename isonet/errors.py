"""User-facing errors.

An :class:`IsonetError` carries a one-line message that names the file or the
parameter at fault and what was expected. The command line prints it as
``ERROR: <message>`` and exits with status 1; tracebacks are shown only with
``--log_level debug``.
"""


class IsonetError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class UsageError(IsonetError):
    """A command-line usage problem (unknown option, bad value); exit status 2."""

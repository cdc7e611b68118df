"""The ``isonet.py`` command line: python-fire dispatch over the command specs of :mod:`isonet.commands`.

Every command is one :class:`~isonet.spec.CommandSpec`; :class:`Commands`
gets one method per spec with the spec's parameters, and fire dispatches to
it. The method only parses the raw values with the spec and calls the library
function the spec names: no defaults, checks or algorithms live here.
:func:`main` adds what fire does not do: the command overview, help from the
spec (every default shown once), rejection of unknown options and stray
arguments, one logging setup, and the exit-status rule: 0 success, 2 usage or
parameter error, 1 input or runtime error, with one ``ERROR: ...`` line, last
on stderr.
"""

import importlib
import logging
import os
import shlex
import sys
import traceback

import fire
from tqdm import tqdm

import isonet
from isonet.commands import ALL, BY_NAME, COMMON
from isonet.errors import IsonetError, UsageError
from isonet.log import discard_closed_stdout, setup_logging
from isonet.refine.workers import is_chief

log = logging.getLogger("isonet")


def _run(spec, raw):
    """Parse the raw values of ``spec``'s command and call its library function with those given.

    Returns nothing: fire would print a returned value (a table) after the log.
    """
    values = spec.parse(raw)
    module, name = spec.function.split(":")
    getattr(importlib.import_module(module), name)(**values)


class Commands:
    """isonet: missing-wedge correction and denoising of cryo-electron tomograms (IsoNet 1)."""


for _spec in ALL:
    setattr(Commands, _spec.name, staticmethod(_spec.fire_function(_run)))


def overview():
    """Text listing every command with its one-line summary."""
    width = max(len(spec.name) for spec in ALL)
    lines = [f"isonet {isonet.__version__}: missing-wedge correction and denoising of cryo-ET tomograms",
             "", "Usage: isonet.py COMMAND [ARGS] [--option value ...]", "", "Commands:"]
    lines += [f"  {spec.name:<{width}}  {spec.summary}" for spec in ALL]
    lines += ["", "Run 'isonet.py COMMAND --help' for the parameters of a command."]
    return "\n".join(lines)


def command_help(name):
    """Help text of one command: usage, description, every parameter with its default and meaning."""
    return BY_NAME[name].help(COMMON)


def _option_name(token):
    return token[2:].split("=", 1)[0].replace("-", "_")


def _split_common_options(args):
    """Remove --log_level / --log_file (either form) from ``args``; return (args, typed values)."""
    names = {p.name: p for p in COMMON}
    values = {p.name: p.default for p in COMMON}
    rest, i = [], 0
    while i < len(args):
        token = args[i]
        name = _option_name(token) if token.startswith("--") else None
        if name in names:
            if "=" in token:
                raw = token.split("=", 1)[1]
            elif i + 1 < len(args):
                raw = args[i + 1]
                i += 1
            else:
                raise UsageError(f"--{name}: missing value")
            values[name] = names[name].parse(raw) if raw != "" else ""
        else:
            rest.append(token)
        i += 1
    return rest, values


def _check_arguments(spec, args):
    """Reject unknown options, options without a value and extra positional arguments.

    Done before fire, which would otherwise misreport them or print its usage text after the error.
    """
    known = {p.name: p for p in spec.params if not p.variadic}
    positional, i = 0, 0
    while i < len(args):
        token = args[i]
        if token.startswith("--") and token != "--":
            name = _option_name(token)
            param = known.get(name) or (known.get(name[2:]) if name.startswith("no") else None)
            if param is None:
                raise UsageError(f"unknown option --{name} for '{spec.name}' (see 'isonet.py {spec.name} --help')")
            takes_value = "=" not in token and param.name == name
            if takes_value and param.kind != "bool":
                if i + 1 >= len(args) or (args[i + 1].startswith("--") and len(args[i + 1]) > 2):
                    raise UsageError(f"--{name}: missing value")
                i += 1
            elif takes_value and i + 1 < len(args) and not args[i + 1].startswith("--"):
                i += 1  # --flag True / --flag False
        else:
            positional += 1
        i += 1
    if not any(p.variadic for p in spec.params):
        allowed = len(spec.positional)
        if positional > allowed:
            raise UsageError(f"{spec.name}: too many arguments ({positional} given, {allowed} expected; "
                             f"see 'isonet.py {spec.name} --help')")


def _print(text):
    """Print, ignoring a reader that went away (``isonet.py refine --help | head -1``)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        discard_closed_stdout()


def main(argv=None):
    """Entry point of ``isonet.py``; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        _print(overview())
        return 0
    if args[0] in ("--version", "version"):
        _print(f"isonet {isonet.__version__}")
        return 0
    command = args[0]
    if command not in BY_NAME:
        print(f"ERROR: unknown command '{command}' (run 'isonet.py --help' for the list)", file=sys.stderr)
        return 2
    spec = BY_NAME[command]
    if "-h" in args[1:] or "--help" in args[1:]:
        _print(command_help(command))
        return 0
    level = "info"
    try:
        args, common = _split_common_options(args)
        level = common["log_level"]
        _check_arguments(spec, args[1:])
        log_file = common["log_file"] or None
        if command == "refine" and not is_chief():  # on several machines only the chief writes files
            log_file = None
        setup_logging(level, log_file)
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ERROR: --log_file {common['log_file']}: cannot open ({exc.strerror})", file=sys.stderr)
        return 1
    log.info("isonet %s: %s (in %s)", isonet.__version__, shlex.join(["isonet.py"] + args), os.getcwd())
    try:
        fire.Fire(Commands, command=args, name="isonet.py")
    except fire.core.FireExit as exc:  # fire already printed what it could not parse
        return exc.code if isinstance(exc.code, int) else 2
    except UsageError as exc:
        return _fail(exc, level, status=2)
    except IsonetError as exc:
        return _fail(exc, level, status=1)
    except KeyboardInterrupt:
        return _fail("interrupted", level, status=130)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # anything unexpected still ends with one ERROR line
        return _fail(f"{type(exc).__name__}: {exc}", level, status=1)
    return 0


def _fail(message, level, status):
    if level == "debug":
        log.debug("".join(traceback.format_exc()))
    for bar in list(getattr(tqdm, "_instances", ())):  # end unfinished progress bars: the ERROR line comes last
        bar.close()
    for handler in log.handlers:
        handler.flush()
    log.error("%s", message)
    return status


if __name__ == "__main__":
    sys.exit(main())

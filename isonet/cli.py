"""The ``isonet.py`` command line: python-fire dispatch over :class:`Commands`.

Each public method of :class:`Commands` is one command. Methods only turn the
raw values fire delivers into typed values, check them, and call the module
that does the work; no algorithm lives here. :func:`main` adds what fire does
not do for us: a one-line command overview, help that lists every parameter
with its default, rejection of unknown options (exit status 2), one logging
setup, and the ``ERROR: ...`` line with a non-zero exit status on failure.
"""

import inspect
import logging
import os
import re
import shlex
import sys
import traceback

import fire

import isonet
from isonet.errors import IsonetError, UsageError
from isonet.log import setup_logging
from isonet.params import parse_bool, parse_index_list, parse_number_tuple

log = logging.getLogger("isonet")

#: Options every command accepts; handled here, before fire sees the arguments.
COMMON_OPTIONS = {
    "log_level": ("info", "Logging detail: info or debug (debug also prints tracebacks)."),
    "log_file": ("isonet.log", "Log file appended to, besides stdout ('' for none)."),
}


class Commands:
    """isonet: missing-wedge correction and denoising of cryo-electron tomograms (IsoNet 1)."""

    # ----------------------------------------------------------------- foundation
    def prepare_star(self, folder_name, output_star="tomograms.star", pixel_size=10.0, defocus=0.0,
                     number_subtomos=100, tilt_min=-60.0, tilt_max=60.0):
        """Make tomograms.star listing every tomogram (.mrc/.rec) of a folder.

        Parameters
        ----------
        folder_name : str
            Folder holding the tomograms; files ending in .mrc or .rec are listed, sorted by name.
        output_star : str
            STAR file written.
        pixel_size : float
            Pixel size in Å written for every tomogram (about 10 Å is recommended).
        defocus : float
            Defocus in Å (underfocus positive) at 0° tilt, for every tomogram; 0 skips deconv.
        number_subtomos : int
            Subtomograms to extract from each tomogram.
        tilt_min : float
            Lowest tilt angle in degrees (missing-wedge edge), for every tomogram.
        tilt_max : float
            Highest tilt angle in degrees.
        """
        from isonet.prepare import prepare_star
        prepare_star(str(folder_name), output_star=str(output_star), pixel_size=float(pixel_size),
                     defocus=float(defocus), number_subtomos=int(number_subtomos),
                     tilt_min=float(tilt_min), tilt_max=float(tilt_max))

    def prepare_subtomo_star(self, folder_name, output_star="subtomo.star", pixel_size=10.0, cube_size=None,
                             tilt_min=-60.0, tilt_max=60.0):
        """Make subtomo.star from a folder of subtomograms extracted by other software.

        Parameters
        ----------
        folder_name : str
            Folder holding only cubic subtomogram MRC files (sorted by name).
        output_star : str
            STAR file written.
        pixel_size : float
            Pixel size in Å written for every subtomogram.
        cube_size : int
            Training cube edge (divisible by 8). Default, or if not smaller than the
            subtomogram edge: floor(crop/1.5 + 1) // 16 * 16.
        tilt_min : float
            Lowest tilt angle in degrees of the tomograms the subtomograms come from.
        tilt_max : float
            Highest tilt angle in degrees.
        """
        from isonet.prepare import prepare_subtomo_star
        prepare_subtomo_star(str(folder_name), output_star=str(output_star), pixel_size=float(pixel_size),
                             cube_size=None if cube_size is None else int(cube_size),
                             tilt_min=float(tilt_min), tilt_max=float(tilt_max))

    def check(self):
        """Check the installation: versions, devices TensorFlow sees, a tiny Conv3D forward pass."""
        from isonet.check import check_installation
        check_installation()

    # ------------------------------------------------------------------ commands added below


def _command_names():
    return [name for name, _ in inspect.getmembers(Commands, inspect.isfunction) if not name.startswith("_")]


def _summary(function):
    doc = inspect.getdoc(function) or ""
    return doc.splitlines()[0] if doc else ""


def _parse_parameter_docs(function):
    """Map parameter name -> description from a numpydoc 'Parameters' section."""
    doc = inspect.getdoc(function) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\S.*\n-+\n|\Z)", doc + "\n", flags=re.S | re.M)
    if not match:
        return {}
    docs, current = {}, None
    for line in match.group(1).splitlines():
        header = re.match(r"^(\w+)\s*:", line)
        if header:
            current = header.group(1)
            docs[current] = []
        elif current and line.strip():
            docs[current].append(line.strip())
    return {name: " ".join(lines) for name, lines in docs.items()}


def _description(function):
    doc = inspect.getdoc(function) or ""
    return re.split(r"^Parameters\n-+\n", doc, flags=re.M)[0].strip()


def overview():
    """Text listing every command with its one-line summary."""
    names = _command_names()
    width = max(len(n) for n in names)
    lines = [f"isonet {isonet.__version__}: missing-wedge correction and denoising of cryo-ET tomograms",
             "", "Usage: isonet.py COMMAND [ARGS] [--option value ...]", "", "Commands:"]
    lines += [f"  {name:<{width}}  {_summary(getattr(Commands, name))}" for name in names]
    lines += ["", "Run 'isonet.py COMMAND --help' for the parameters of a command."]
    return "\n".join(lines)


def command_help(name):
    """Help text of one command: usage, description, every parameter with its default and meaning."""
    function = getattr(Commands, name)
    signature = inspect.signature(function)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    docs = _parse_parameter_docs(function)
    required = [p for p in params if p.default is inspect.Parameter.empty]
    optional = [p for p in params if p.default is not inspect.Parameter.empty]
    usage = " ".join(["isonet.py", name] + [p.name.upper() for p in required] + (["[options]"] if optional else []))
    lines = [f"Usage: {usage}", "", _description(function), ""]
    if required:
        lines.append("Arguments:")
        lines += [f"  {p.name.upper():<24} {docs.get(p.name, '')}" for p in required]
        lines.append("")
    lines.append("Options:")
    for p in optional:
        default = p.default
        shown = ",".join(str(v) for v in default) if isinstance(default, tuple) else default
        lines.append(f"  --{p.name:<22} {docs.get(p.name, '')} (default: {shown})")
    for option, (default, meaning) in COMMON_OPTIONS.items():
        lines.append(f"  --{option:<22} {meaning} (default: {default})")
    return "\n".join(lines)


def _split_common_options(args):
    """Remove --log_level / --log_file (either form) from ``args``; return (args, values)."""
    values = {k: v[0] for k, v in COMMON_OPTIONS.items()}
    rest, i = [], 0
    while i < len(args):
        token = args[i]
        name = token[2:].split("=", 1)[0].replace("-", "_") if token.startswith("--") else None
        if name in COMMON_OPTIONS:
            if "=" in token:
                values[name] = token.split("=", 1)[1]
            elif i + 1 < len(args):
                values[name] = args[i + 1]
                i += 1
            else:
                raise UsageError(f"--{name}: missing value")
            i += 1
            continue
        rest.append(token)
        i += 1
    if values["log_level"].lower() not in ("info", "debug", "warning"):
        raise UsageError(f"--log_level: expected info or debug, got {values['log_level']!r}")
    return rest, values


def _check_option_names(command, args):
    """Reject option names the command does not have (python-fire would misreport them)."""
    signature = inspect.signature(getattr(Commands, command))
    known = {name for name in signature.parameters if name != "self"}
    for token in args[1:]:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name in known or (name.startswith("no") and name[2:] in known):
            continue
        raise UsageError(f"unknown option --{name} for '{command}' (see 'isonet.py {command} --help')")


def main(argv=None):
    """Entry point of ``isonet.py``; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    if args[0] in ("--version", "version"):
        print(f"isonet {isonet.__version__}")
        return 0
    command = args[0]
    if command not in _command_names():
        print(f"ERROR: unknown command '{command}'\n\n{overview()}", file=sys.stderr)
        return 2
    if "-h" in args[1:] or "--help" in args[1:]:
        print(command_help(command))
        return 0
    level = "info"
    try:
        args, common = _split_common_options(args)
        level = common["log_level"].lower()
        _check_option_names(command, args)
        setup_logging(level, common["log_file"] or None)
    except (UsageError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
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
    except Exception as exc:  # anything unexpected still ends with one ERROR line
        return _fail(f"{type(exc).__name__}: {exc}", level, status=1)
    return 0


def _fail(message, level, status):
    if level == "debug":
        log.debug("".join(traceback.format_exc()))
    log.error("%s", message)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Parameter specifications: one :class:`CommandSpec` per command, the single source of its settings.

A :class:`Param` holds a setting's name, kind, default, unit, allowed range or
choices and help text. From a command's spec come the command line (parsing of
the raw values python-fire delivers, unknown-option rejection), ``--help``
(every parameter with its default shown once) and the validation of the values
the library function receives (:meth:`CommandSpec.implements`), so a default
or a range is written in one place only. The specs themselves are in
:mod:`isonet.commands`.

Every problem with a value raises :class:`~isonet.errors.UsageError` naming
the parameter (exit status 2 on the command line).
"""

import functools
import inspect
import logging
import math
import re
from dataclasses import dataclass, field

from isonet.errors import UsageError
from isonet.params import (parse_bool, parse_choice, parse_gpu_ids, parse_index_list, parse_number_tuple,
                           parse_optional_text, parse_pool)

log = logging.getLogger("isonet")

#: The value of a setting left out (distinct from ``None``, which several settings use for "derive it").
MISSING = object()

_RANGE = re.compile(r"^\s*(?:(?P<op>>=|<=|>|<)\s*(?P<bound>\S+)|"
                    r"(?P<left>[\[(])\s*(?P<low>[^,]+),\s*(?P<high>[^\])]+)(?P<right>[\])]))\s*$")


def _number(value, kind, name):
    if isinstance(value, (list, tuple)) and len(value) != 1:
        raise UsageError(f"--{name}: expected one number, got {len(value)} ({_text(value, name)})")
    try:
        return parse_number_tuple(value, name, kind=kind, length=1)[0]
    except UsageError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"--{name}: expected {what}, got {_text(value, name)!r}") from None


def _text(value, name):
    if isinstance(value, (list, tuple)):  # fire reads 'a,b' as a tuple
        return ",".join(str(v) for v in value)
    return str(value)


#: kind -> function(raw value, parameter name) -> typed value.
PARSERS = {
    "int": lambda v, n: _number(v, int, n),
    "float": lambda v, n: _number(v, float, n),
    "text": _text,
    "bool": parse_bool,
    "choice": None,  # handled with the parameter's choices
    "ints": lambda v, n: parse_number_tuple(v, n, kind=int),
    "floats": lambda v, n: parse_number_tuple(v, n, kind=float),
    "index_list": lambda v, n: parse_index_list(v, n),
    "gpu_ids": lambda v, n: parse_gpu_ids(v, n),
    "pool": lambda v, n: parse_pool(v, n),
    "texts": lambda v, n: [str(x) for x in v] if isinstance(v, (list, tuple)) else str(v).split(","),
}


@dataclass(frozen=True)
class Param:
    """One setting of a command.

    Attributes
    ----------
    name : str
        Option name (``--name``), as in IsoNet 1.
    kind : str
        Key of :data:`PARSERS`: int, float, text, bool, choice, ints, floats
        (comma lists), index_list (``1,3-5``), gpu_ids, pool, texts.
    default : object
        Value when left out; ``None`` means "not set / derived" (see ``default_text``).
    help : str
        One or two sentences, without the default (the help adds it once).
    unit : str
        Unit shown after the default (Å, degrees, voxels...).
    range : str
        Allowed numbers: ``'> 0'``, ``'>= 1'``, ``'(0, 100]'``, ``'[0, 1)'``...; checked for
        every number of the value.
    choices : tuple of str
        Allowed texts (kind ``choice``), matched case-insensitively.
    required : bool
        A positional argument (no default).
    variadic : bool
        Takes all remaining positional arguments (kind ``texts``).
    positional : bool
        An optional setting that may also be given as the first argument (refine's SUBTOMO_STAR).
    length : int
        Required number of items of a list kind.
    target : str
        Name of the library function's keyword, if it differs from ``name``.
    default_text : str
        How the help describes a derived default (``None`` default).
    aliases : tuple of (str, str)
        Former names of choices, ``(old, new)``: still read (command line, saved settings), with a warning.
    group : str
        Heading the option is listed under in ``--help`` (None: "Options").
    """

    name: str
    kind: str
    default: object = None
    help: str = ""
    unit: str = ""
    range: str = None
    choices: tuple = None
    required: bool = False
    variadic: bool = False
    positional: bool = False
    length: int = None
    target: str = None
    default_text: str = None
    aliases: tuple = ()
    group: str = None

    @property
    def keyword(self):
        """Keyword of the library function."""
        return self.target or self.name

    def parse(self, raw):
        """Typed value of ``raw`` (a value as python-fire delivers it), checked; ``None`` for 'None'."""
        if raw is None or (isinstance(raw, str) and raw.strip() == "None" and self.kind != "text"):
            return None
        if self.kind == "choice":
            try:
                value = self.canonical(parse_choice(raw, self.name, self.choices + tuple(a for a, _ in self.aliases)))
            except UsageError:  # the message lists today's names only
                value = parse_choice(raw, self.name, self.choices)
        elif self.kind == "text":
            value = parse_optional_text(_text(raw, self.name))
        else:
            value = PARSERS[self.kind](raw, self.name)
        return self.check(value)

    def canonical(self, value, where=None):
        """``value``, a former name of a choice replaced by today's with one warning (``where``: its source)."""
        new = dict(self.aliases).get(value)
        if new is None:
            return value
        log.warning("%s%s %s is the former name of %s: read as %s", f"{where}: " if where else "--",
                    self.name, value, new, new)
        return new

    def check(self, value):
        """Raise :class:`UsageError` unless ``value`` (typed) fits the kind, length, range and choices."""
        if value is None:
            return None
        if self.kind == "choice" and value not in self.choices:
            raise UsageError(f"--{self.name}: expected one of {', '.join(self.choices)}, got {value!r}")
        numbers = value if isinstance(value, (list, tuple)) else [value]
        if self.length is not None and isinstance(value, (list, tuple)) and len(value) != self.length:
            raise UsageError(f"--{self.name}: expected {self.length} values, got {len(value)} ({value!r})")
        if self.kind in ("int", "float", "ints", "floats"):
            for number in numbers:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise UsageError(f"--{self.name}: expected a number, got {number!r}")
                if self.kind in ("int", "ints") and number != int(number):
                    raise UsageError(f"--{self.name}: expected a whole number, got {number!r}")
                if math.isnan(number) or not in_range(number, self.range):
                    raise UsageError(f"--{self.name}: expected a value {self.range}"
                                     f"{' ' + self.unit if self.unit else ''}, got {number!r}")
        return value

    def shown_default(self):
        """The default as the help shows it."""
        if self.default_text:
            return self.default_text
        if isinstance(self.default, (list, tuple)):
            return ",".join(str(v) for v in self.default)
        return "none" if self.default is None else str(self.default)

    def help_line(self):
        """``--name  help (default: X unit; range)`` for the help text."""
        default = self.shown_default()
        if self.unit and self.default is not None:
            default += f" {self.unit}"
        extra = f"; {self.range}" if self.range else ""
        extra += f"; one of {', '.join(self.choices)}" if self.choices else ""
        return f"  --{self.name:<22} {self.help} (default: {default}{extra})"


def in_range(number, text):
    """True if ``number`` lies in the range ``text`` (see :attr:`Param.range`); ``None`` allows all."""
    if not text:
        return True
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"bad range {text!r}")
    if match.group("op"):
        bound = float(match.group("bound"))
        return {">": number > bound, ">=": number >= bound, "<": number < bound, "<=": number <= bound}[
            match.group("op")]
    low, high = float(match.group("low")), float(match.group("high"))
    above = number >= low if match.group("left") == "[" else number > low
    below = number <= high if match.group("right") == "]" else number < high
    return above and below


@dataclass(frozen=True)
class CommandSpec:
    """The settings of one command.

    Attributes
    ----------
    name : str
        Command name.
    summary : str
        One line for the command overview.
    description : str
        Paragraph(s) for ``--help``.
    params : tuple of Param
        Positional arguments first (``required``), then options.
    function : str
        ``'module:function'`` doing the work (imported only when the command runs).
    """

    name: str
    summary: str
    description: str
    params: tuple
    function: str
    _by_name: dict = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})
        for param in self.params:  # a malformed range is a programming error: fail at import
            if param.range:
                in_range(0.0, param.range)

    def __getitem__(self, name):
        return self._by_name[name]

    @property
    def positional(self):
        """Parameters that may be given as arguments, in order."""
        return [p for p in self.params if p.required or p.variadic or p.positional]

    @property
    def options(self):
        """Parameters given as ``--name value`` only."""
        return [p for p in self.params if not (p.required or p.variadic or p.positional)]

    def defaults(self):
        """Option name -> default."""
        return {p.name: p.default for p in self.options}

    def parse(self, raw):
        """Typed values of the settings given on the command line.

        Parameters
        ----------
        raw : dict
            Name -> value as fire delivers it; :data:`MISSING` for settings left out.

        Returns
        -------
        dict
            Name -> typed value, only for settings given (a missing argument is a usage error).
        """
        values = {}
        for param in self.params:
            value = raw.get(param.name, MISSING)
            if value is MISSING or (param.variadic and not value):
                if param.required or param.variadic:
                    raise UsageError(f"{self.name}: missing argument {param.name.upper()} "
                                     f"(see 'isonet.py {self.name} --help')")
                continue
            values[param.name] = param.parse(value)
        return values

    def resolve(self, values):
        """All settings: ``values`` (name -> typed value) checked, the rest from the defaults.

        Returns
        -------
        dict
            Library keyword (:attr:`Param.keyword`) -> value.
        """
        unknown = set(values) - set(self._by_name)
        if unknown:
            raise UsageError(f"{self.name}: unknown setting(s) {', '.join(sorted(unknown))}")
        out = {}
        for param in self.params:
            if param.name in values:
                out[param.keyword] = param.check(values[param.name])
            elif param.required or param.variadic:
                raise UsageError(f"{self.name}: missing argument {param.name.upper()}")
            else:
                out[param.keyword] = param.default
        return out

    def implements(self, function):
        """Decorator: the library function doing this command gets its defaults and checks from the spec.

        ``function`` takes every setting by keyword (:attr:`Param.keyword`) without defaults; the
        wrapper accepts the spec's names or keywords, fills the defaults and checks every value.
        """
        keywords = {p.keyword: p for p in self.params}
        order = list(inspect.signature(function).parameters)
        if sorted(order) != sorted(keywords):
            raise TypeError(f"{function.__name__} takes {sorted(order)}, spec {self.name} has {sorted(keywords)}")

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if len(args) > len(order):
                raise TypeError(f"{function.__name__}() takes {len(order)} arguments, {len(args)} given")
            given = {keywords[key].name: value for key, value in zip(order, args)}
            for key, value in kwargs.items():
                param = keywords.get(key) or self._by_name.get(key)
                if param is None:
                    raise TypeError(f"{function.__name__}() got an unexpected keyword argument {key!r}")
                given[param.name] = value
            return function(**self.resolve(given))

        wrapper.__signature__ = inspect.Signature([
            inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              default=inspect.Parameter.empty if keywords[key].required or keywords[key].variadic
                              else keywords[key].default)
            for key in order])
        wrapper.spec = self
        return wrapper

    def usage(self):
        """``isonet.py NAME ARG... [options]``."""
        words = ["isonet.py", self.name] + [
            (f"[{p.name.upper()}]" if p.positional else p.name.upper()) + ("..." if p.variadic else "")
            for p in self.positional]
        return " ".join(words + (["[options]"] if self.options else []))

    def help(self, common_options=()):
        """Help text: usage, description, arguments, every option with its default shown once."""
        lines = [f"Usage: {self.usage()}", "", self.description.strip(), ""]
        if self.positional:
            lines.append("Arguments:")
            lines += [f"  {p.name.upper():<24} {p.help}" for p in self.positional]
            lines.append("")
        for group, params in self.option_groups():
            lines += [f"{group}:", *(p.help_line() for p in params), ""]
        lines += ["Logging:", *(p.help_line() for p in common_options)] if common_options else []
        return "\n".join(lines).rstrip("\n")

    def option_groups(self):
        """``[(heading, [Param, ...]), ...]``: the options under their ``group``, in order of first appearance."""
        groups = {}
        for param in self.options:
            groups.setdefault(param.group or "Options", []).append(param)
        return list(groups.items())

    def reference(self):
        """Markdown reference of the command: summary, usage, a table of its parameters per group."""
        def row(p):
            default = "required" if p.required or p.variadic else p.shown_default()
            default += f" {p.unit}" if p.unit and p.default is not None else ""
            allowed = p.range or (", ".join(p.choices) if p.choices else "")
            cells = [f"`{p.name}`", p.help, default, allowed]
            return "| " + " | ".join(c.replace("|", "\\|").replace("<", "&lt;") for c in cells) + " |"

        lines = [f"### {self.name}", "", self.summary, "", f"`{self.usage()}`", ""]
        sections = ([("Arguments", self.positional)] if self.positional else []) + self.option_groups()
        for heading, params in sections:
            lines += [f"{heading}:", "", "| parameter | meaning | default | allowed |", "|---|---|---|---|",
                      *(row(p) for p in params), ""]
        return "\n".join(lines)

    def fire_function(self, run):
        """A function with this command's signature for python-fire; calls ``run(raw values)``.

        Every parameter defaults to :data:`MISSING`, so that fire never fills a default itself and
        the settings given can be told apart from those left out (``--continue_from`` needs that).
        """
        def command(*args, **kwargs):
            bound = command.__signature__.bind(*args, **kwargs)
            raw = dict(bound.arguments)
            for param in self.positional:
                if param.variadic:
                    raw[param.name] = raw.get(param.name, ())
            return run(self, raw)

        parameters = []
        for p in self.params:
            if p.variadic:
                parameters.append(inspect.Parameter(p.name, inspect.Parameter.VAR_POSITIONAL))
            else:
                kind = (inspect.Parameter.KEYWORD_ONLY if any(q.variadic for q in self.params)
                        and not p.required else inspect.Parameter.POSITIONAL_OR_KEYWORD)
                parameters.append(inspect.Parameter(p.name, kind, default=MISSING))
        command.__signature__ = inspect.Signature(parameters)
        command.__name__ = self.name
        command.__doc__ = self.summary
        return command

"""Parsing of command-line values as python-fire delivers them.

fire turns ``--gpuID 0,1`` into the tuple ``(0, 1)``, ``--gpuID 0`` into the
int ``0``, ``--tomo_idx 1,3-5`` into the text ``'1,3-5'`` and ``--noise_level
0.1`` into a float; these helpers accept every such form and return one
canonical type, or raise :class:`~isonet.errors.UsageError` naming the
parameter.
"""

import re

from isonet.errors import UsageError


def _items(value):
    """Split a scalar, tuple/list or comma/blank separated text into a list of items."""
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            out.extend(_items(item))
        return out
    if isinstance(value, str):
        return [item for item in re.split(r"[,\s]+", value.strip().strip("()[]")) if item]
    return [value]


def parse_index_list(value, name="tomo_idx"):
    """Expand an index selection into a sorted list of unique ints.

    Accepts an int, a tuple/list, or text mixing commas, blanks and inclusive
    ranges such as ``'1,3-5'``. ``None`` (or the text ``'None'``) means all rows
    and is returned as ``None``.

    >>> parse_index_list('5-7,2')
    [2, 5, 6, 7]
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "all")):
        return None
    result = set()
    for item in _items(value):
        text = str(item).strip()
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
        try:
            if match:
                first, last = int(match.group(1)), int(match.group(2))
                if last < first:
                    raise ValueError
                result.update(range(first, last + 1))
            else:
                number = float(text)
                if number != int(number):
                    raise ValueError
                result.add(int(number))
        except ValueError:
            raise UsageError(f"--{name}: cannot read {text!r}; expected indices like 1,3-5") from None
    if any(i < 0 for i in result):
        raise UsageError(f"--{name}: indices must not be negative")
    return sorted(result)


def parse_gpu_ids(value, name="gpuID"):
    """GPU ids as a list of unique ints, in the order given; ``None`` means "use what is there".

    ``--gpuID 0,1`` arrives as ``(0, 1)``, ``--gpuID 0`` as ``0``, ``--gpuID
    '0,1'`` as text: all give ``[0, 1]`` / ``[0]``. ``--gpuID -1`` or ``cpu``
    forces the CPU and gives ``[]``.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    items = _items(value)
    if len(items) == 1 and str(items[0]).strip().lower() in ("-1", "cpu"):
        return []
    ids = []
    for item in items:
        try:
            number = int(str(item).strip())
        except ValueError:
            raise UsageError(f"--{name}: cannot read {item!r}; expected GPU ids like 0,1 (or -1 for CPU)") from None
        if number < 0:
            raise UsageError(f"--{name}: GPU ids must be >= 0, got {number}")
        if number not in ids:
            ids.append(number)
    return ids


def parse_number_tuple(value, name, kind=float, length=None):
    """A scalar or sequence of numbers as a tuple of ``kind``; scalars become 1-tuples.

    ``length`` (optional) is the required number of items.
    """
    if value is None:
        return None
    items = _items(value)
    try:
        numbers = tuple(kind(float(item)) if kind is int else kind(item) for item in items)
    except (TypeError, ValueError):
        raise UsageError(f"--{name}: expected numbers separated by commas, got {value!r}") from None
    if kind is int and any(float(i) != int(float(i)) for i in items):
        raise UsageError(f"--{name}: expected whole numbers, got {value!r}")
    if not numbers:
        raise UsageError(f"--{name}: no value given")
    if length is not None and len(numbers) != length:
        raise UsageError(f"--{name}: expected {length} values, got {len(numbers)} ({value!r})")
    return numbers


def parse_optional_text(value):
    """Text, or ``None`` for ``None``, '' and the text 'None'."""
    return None if value is None or str(value).strip() in ("", "None") else str(value)


def parse_pool(value, name="pool"):
    """U-Net pooling option: ``None`` (not given), ``False`` (strided convolutions) or ``(2, 2, 2)``.

    Accepts True/False (also as text) and 2 or 2,2,2; other sizes are an error.
    """
    if value is None:
        return None
    if isinstance(value, bool) or str(value).strip().lower() in ("true", "false", "none", ""):
        return (2, 2, 2) if str(value).strip().lower() == "true" else False
    pool = parse_number_tuple(value, name, kind=int)
    pool = pool * 3 if len(pool) == 1 else pool
    require(pool == (2, 2, 2), f"--{name}: expected 2 (or True/False), got {value!r}")
    return pool


def parse_bool(value, name):
    """True/False from fire's bool or from text such as 'true', 'no', '1'."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", "none"):
        return False
    raise UsageError(f"--{name}: expected True or False, got {value!r}")


def parse_choice(value, name, choices):
    """``value`` as lower-case text, which must be one of ``choices``."""
    text = str(value).strip()
    lowered = {c.lower(): c for c in choices}
    if text.lower() not in lowered:
        raise UsageError(f"--{name}: expected one of {', '.join(choices)}, got {value!r}")
    return lowered[text.lower()]


def require(condition, message):
    """Raise :class:`UsageError` with ``message`` unless ``condition``."""
    if not condition:
        raise UsageError(message)

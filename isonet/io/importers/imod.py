"""IMOD/etomo metadata: tilt angles (``.tlt``) and ctfplotter defocus files (``.defocus``).

``.tlt``: one tilt angle (degrees) per line, one line per image kept in the
aligned stack (etomo writes the final angles after alignment here).

``.defocus`` (ctfplotter): one line per fitted range of views, defocus in nm,
underfocus positive. Three layouts exist:

- version 1: ``start_view end_view start_angle end_angle defocus`` on every line;
- version 2: the same, with a sixth number ``2`` at the end of the first line;
- version 3 and later: a first line ``flags 0 0. 0. 0 version`` whose flags say
  what the lines hold (1: astigmatism, then ``defocus1 defocus2 astig_angle``
  follow the angles, else one defocus; 4 and 8 add phase shift and cut-on
  frequency columns, which are not used here).
"""

import os

from isonet.errors import IsonetError
from isonet.io.importers import lowest_tilt_index

#: Flag of the first line of a version-3 defocus file: lines carry two defoci and an astigmatism angle.
ASTIGMATISM_FLAG = 1


def _number_lines(path, what):
    """The non-blank lines of a text file as lists of floats (errors name the file and line)."""
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: {what} not found")
    lines = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                lines.append([float(v) for v in line.split()])
            except ValueError:
                raise IsonetError(f"{path}: line {number}: expected numbers in this {what}, got "
                                  f"{line.strip()!r}") from None
    return lines


def read_tlt(path):
    """Tilt angles (degrees) of an IMOD ``.tlt`` file, in file order.

    Returns
    -------
    list of float
    """
    lines = _number_lines(path, "tilt angle file")
    if not lines or any(len(values) != 1 for values in lines):
        raise IsonetError(f"{path}: expected one tilt angle per line")
    angles = [values[0] for values in lines]
    if any(abs(a) > 90 for a in angles):
        raise IsonetError(f"{path}: tilt angles must lie in [-90, 90] degrees")
    return angles


def read_ctfplotter_defocus(path):
    """The fitted ranges of a ctfplotter ``.defocus`` file (any version, see the module description).

    Returns
    -------
    list of tuple
        ``(start_angle, end_angle, defocus)`` per range: degrees, degrees, Å
        (the mean of the two defoci of an astigmatic fit).
    """
    lines = _number_lines(path, "ctfplotter defocus file")
    if not lines:
        raise IsonetError(f"{path}: empty ctfplotter defocus file")
    astigmatic = False
    first = lines[0]
    if len(first) == 6 and first[5] >= 3 and first[1:5] == [0.0, 0.0, 0.0, 0.0]:
        astigmatic = bool(int(first[0]) & ASTIGMATISM_FLAG)
        lines = lines[1:]
    elif len(first) == 6:  # version 2: a data line with the version number appended
        lines = [first[:5]] + lines[1:]
    ranges = []
    for values in lines:
        needed = 7 if astigmatic else 5
        if len(values) < needed:
            raise IsonetError(f"{path}: expected at least {needed} numbers per line "
                              f"(views, angles, defocus{' 1, defocus 2, astigmatism angle' if astigmatic else ''}), "
                              f"got {len(values)}")
        defocus_nm = (values[4] + values[5]) / 2 if astigmatic else values[4]
        ranges.append((values[2], values[3], 10.0 * defocus_nm))
    if not ranges:
        raise IsonetError(f"{path}: no defocus line")
    return ranges


def lowest_tilt_defocus(path):
    """Defocus (Å) of the range of a ctfplotter file whose mid angle is closest to 0°, and that angle."""
    ranges = read_ctfplotter_defocus(path)
    middles = [(start + end) / 2 for start, end, _ in ranges]
    best = lowest_tilt_index(middles)
    return ranges[best][2], middles[best]

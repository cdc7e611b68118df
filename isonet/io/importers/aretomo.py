"""AreTomo 2/3 alignment files (``.aln``): the tilt angles of the images kept.

The global-alignment table starts after the comment line naming its columns
(``# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT``) and holds one line per
section kept in the reconstruction (dark frames, listed on ``# DarkFrame``
lines, are left out); the last column is the tilt angle in degrees. The table
ends at the next comment line (e.g. ``# Local Alignment``).
"""

import os

from isonet.errors import IsonetError


def read_aln_tilts(path):
    """Tilt angles (degrees) of the sections kept, from an AreTomo ``.aln`` file.

    Returns
    -------
    list of float
    """
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: AreTomo alignment file not found")
    angles, columns = [], None
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text.startswith("#"):
                words = text.lstrip("#").split()
                if words[:1] == ["SEC"] and "TILT" in words:
                    columns = words
                elif columns is not None and angles:
                    break
                continue
            if columns is None or not text:
                continue
            values = text.split()
            if len(values) < len(columns):
                raise IsonetError(f"{path}: line {number}: expected {len(columns)} columns "
                                  f"({' '.join(columns)}), got {len(values)}")
            try:
                angles.append(float(values[columns.index("TILT")]))
            except ValueError:
                raise IsonetError(f"{path}: line {number}: TILT is not a number ({text!r})") from None
    if columns is None:
        raise IsonetError(f"{path}: not an AreTomo alignment file (no '# SEC ... TILT' column line)")
    if not angles:
        raise IsonetError(f"{path}: no section in the global alignment table")
    return angles

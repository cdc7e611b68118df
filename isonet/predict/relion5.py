"""A RELION 5 ``tomograms.star`` listing the corrected tomograms, for RELION's next steps (picking, averaging).

RELION 5's Denoise job adds ``rlnTomoReconstructedTomogramDenoised`` to the
``tomograms.star`` it reads; RELION shows and picks on those tomograms, while
subtomogram averaging goes on from the tilt series. predict does the same
with the corrected tomograms: a project imported from RELION 5
(``prepare_star --relion5``, whose rows carry ``rlnTomoName`` and
``rlnTomoTomogramsFile``) gets every column of RELION's row of that tilt
series plus ``rlnTomoReconstructedTomogramDenoised``; other projects get the
columns isonet knows: ``rlnTomoName`` (file name of the tomogram without
extension), the optics, ``rlnTomoTiltSeriesPixelSize`` (the tomogram's pixel
size, with ``rlnTomoTomogramBinning`` 1), ``rlnTomoReconstructedTomogram``
and its halves. Paths are written as tomograms.star holds them (relative to
the folder isonet runs in: the RELION project folder for RELION projects).
"""

import pandas as pd
import starfile

from isonet.errors import IsonetError
from isonet.io.atomic import atomic_output
from isonet.io.importers.relion5 import read_global_table
from isonet.io.paths import file_root
from isonet.io.star import HALF_TOMOGRAM_LABELS, OPTICS_LABELS, is_empty, resolve_path

#: File name of the RELION 5 tomograms.star in predict's output folder.
RELION5_STAR_NAME = "tomograms_relion5.star"
#: RELION 5's label of a tomogram processed for picking (as its Denoise job writes it).
CORRECTED_LABEL = "rlnTomoReconstructedTomogramDenoised"
#: First line of the STAR files RELION 5 writes (the format version).
RELION5_VERSION_LINE = "# version 50001"


def relion5_rows(table, star_file):
    """RELION 5's row of the tilt series of every row of ``table`` imported from RELION 5, read and checked.

    Parameters
    ----------
    table : pandas.DataFrame
        Tomogram STAR table; rows with ``rlnTomoTomogramsFile`` and ``rlnTomoName`` came from RELION 5.
    star_file : str
        Its file (relative paths are also looked up beside it).

    Returns
    -------
    dict
        ``rlnIndex`` -> dict of RELION's labels and values.

    Raises
    ------
    IsonetError
        A RELION 5 file that cannot be read, or that lists no tilt series of the row's ``rlnTomoName``.
    """
    if "rlnTomoTomogramsFile" not in table.columns:
        return {}
    globals_by_path, rows = {}, {}
    for _, row in table.iterrows():
        if is_empty(row["rlnTomoTomogramsFile"]):
            continue
        path = resolve_path(row["rlnTomoTomogramsFile"], star_file)
        if path not in globals_by_path:
            globals_by_path[path] = read_global_table(path)
        relion = globals_by_path[path]
        matches = relion[relion["rlnTomoName"] == str(row.get("rlnTomoName"))]
        if matches.empty:
            raise IsonetError(f"{star_file}: rlnTomoName {row.get('rlnTomoName')} of rlnIndex {row['rlnIndex']} "
                              f"is not a tilt series of {path}")
        rows[int(row["rlnIndex"])] = matches.iloc[0].to_dict()
    return rows


def _isonet_row(row):
    """The RELION 5 columns of a row not imported from RELION 5."""
    entry = {"rlnTomoName": file_root(row["rlnMicrographName"])}
    entry.update({label: float(row[label]) for label in OPTICS_LABELS if not is_empty(row.get(label))})
    if not is_empty(row.get("rlnPixelSize")):
        entry.update(rlnTomoTiltSeriesPixelSize=float(row["rlnPixelSize"]), rlnTomoTomogramBinning=1.0)
    entry["rlnTomoReconstructedTomogram"] = row["rlnMicrographName"]
    entry.update({label: row[label] for label in HALF_TOMOGRAM_LABELS if not is_empty(row.get(label))})
    return entry


def write_relion5_tomograms(table, relion_rows, path):
    """Write ``path``: a RELION 5 tomograms.star with one row per corrected tomogram of ``table``, atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        Tomogram STAR table; rows with ``rlnCorrectedTomoName`` are listed, in its order.
    relion_rows : dict
        :func:`relion5_rows` of the table: RELION's row of each row imported from RELION 5.
    path : str
        File written.
    """
    entries = []
    for _, row in table.iterrows():
        if is_empty(row.get("rlnCorrectedTomoName")):
            continue
        entry = dict(relion_rows.get(int(row["rlnIndex"])) or _isonet_row(row))
        entry[CORRECTED_LABEL] = row["rlnCorrectedTomoName"]
        entries.append(entry)
    with atomic_output(path) as tmp:
        starfile.write({"global": pd.DataFrame(entries)}, tmp)
        with open(tmp) as handle:
            text = handle.read()
        with open(tmp, "w") as handle:
            handle.write(f"{RELION5_VERSION_LINE}\n{text}")

"""RELION 5 tomography projects: ``tomograms.star`` and the tilt-series STAR files it names.

``tomograms.star`` (block ``data_global``) has one row per tilt series:
``rlnTomoName``, ``rlnTomoTiltSeriesStarFile``, ``rlnVoltage`` (kV),
``rlnSphericalAberration`` (mm), ``rlnAmplitudeContrast``,
``rlnTomoTiltSeriesPixelSize`` (Å, of the tilt images),
``rlnTomoTomogramBinning`` and, once tomograms are reconstructed,
``rlnTomoReconstructedTomogram`` (and ``rlnTomoReconstructedTomogramHalf1/2``
when half tomograms were made). Each tilt-series STAR file has a block named
after the tilt series with one row per tilt image kept:
``rlnTomoNominalStageTiltAngle`` (degrees) and the CTF fit ``rlnDefocusU``,
``rlnDefocusV`` (Å, underfocus positive).

Paths in these files are relative to the RELION project folder, which is the
current folder when RELION runs; they are looked up from the current folder,
then from the STAR file's folder and each folder above it.
"""

import logging
import os

import pandas as pd
import starfile

from isonet.errors import IsonetError
from isonet.io.importers import TomogramRecord, lowest_tilt_index
from isonet.io.star import HALF_TOMOGRAM_LABELS, is_empty

log = logging.getLogger("isonet")

#: RELION's optics labels -> TomogramRecord fields.
OPTICS_LABELS = {"rlnVoltage": "voltage", "rlnSphericalAberration": "cs", "rlnAmplitudeContrast": "amplitude_contrast"}


def _read_blocks(path):
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: STAR file not found")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many kinds on malformed text
        raise IsonetError(f"{path}: not a readable STAR file ({exc})") from exc
    return {name: block for name, block in blocks.items() if isinstance(block, pd.DataFrame)}


def locate(value, star_file):
    """Path of a file named in ``star_file``: as written if it exists, else below the STAR file's
    folder or one of the folders above it (the RELION project folder)."""
    path = os.fspath(value)
    if os.path.isabs(path) or os.path.exists(path):
        return path
    folder = os.path.dirname(os.path.abspath(star_file))
    while True:
        candidate = os.path.join(folder, path)
        if os.path.exists(candidate):
            return os.path.relpath(candidate) if not os.path.isabs(star_file) else candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            raise IsonetError(f"{star_file}: {path} not found (looked in the current folder and from the STAR "
                              "file's folder upwards; run isonet from the RELION project folder)")
        folder = parent


def read_tilt_series(path, name):
    """Tilt angles and CTF of one RELION 5 tilt-series STAR file.

    Parameters
    ----------
    path : str
        Tilt-series STAR file.
    name : str
        ``rlnTomoName`` (the block to read; the first table if there is no block of that name).

    Returns
    -------
    angles : list of float
        ``rlnTomoNominalStageTiltAngle`` of the images kept, degrees.
    defocus : float or None
        ``(rlnDefocusU + rlnDefocusV) / 2`` of the image closest to 0°, Å.
    lowest : float
        The tilt angle of that image.
    """
    blocks = _read_blocks(path)
    if not blocks:
        raise IsonetError(f"{path}: no data table")
    table = blocks.get(name, next(iter(blocks.values())))
    if "rlnTomoNominalStageTiltAngle" not in table.columns:
        raise IsonetError(f"{path}: no rlnTomoNominalStageTiltAngle column (is it a RELION 5 tilt-series STAR?)")
    angles = [float(a) for a in table["rlnTomoNominalStageTiltAngle"]]
    if not angles:
        raise IsonetError(f"{path}: no tilt image listed")
    lowest = lowest_tilt_index(angles)
    defocus = None
    if "rlnDefocusU" in table.columns:
        row = table.iloc[lowest]
        second = row["rlnDefocusV"] if "rlnDefocusV" in table.columns else row["rlnDefocusU"]
        defocus = (float(row["rlnDefocusU"]) + float(second)) / 2
    return angles, defocus, angles[lowest]


def read_global_table(star_file):
    """The ``data_global`` table of a RELION 5 ``tomograms.star`` (one row per tilt series, ``rlnTomoName`` as text).

    Raises
    ------
    IsonetError
        Unreadable file, or no table with ``rlnTomoName``.
    """
    blocks = _read_blocks(star_file)
    table = blocks.get("global", next(iter(blocks.values()), None))
    if table is None or "rlnTomoName" not in table.columns:
        raise IsonetError(f"{star_file}: not a RELION 5 tomograms.star (no rlnTomoName in a data_global table)")
    return table.astype({"rlnTomoName": str})


def read_relion5(star_file):
    """One :class:`TomogramRecord` per reconstructed tomogram of a RELION 5 ``tomograms.star``.

    Raises
    ------
    IsonetError
        Unreadable files, no reconstructed tomogram, or a file named there that cannot be found.
    """
    table = read_global_table(star_file)
    if "rlnTomoReconstructedTomogram" not in table.columns:
        raise IsonetError(f"{star_file}: no rlnTomoReconstructedTomogram column: reconstruct the tomograms "
                          "in RELION first (Reconstruct tomograms job) and use that job's tomograms.star")
    base = os.path.basename(star_file)
    records = []
    for _, row in table.iterrows():
        name = str(row["rlnTomoName"])
        if is_empty(row["rlnTomoReconstructedTomogram"]):
            log.warning("%s: tilt series %s has no reconstructed tomogram; left out", star_file, name)
            continue
        record = TomogramRecord(locate(row["rlnTomoReconstructedTomogram"], star_file), tomo_name=name)
        if all(label in table.columns and not is_empty(row[label]) for label in HALF_TOMOGRAM_LABELS):
            record.halves = tuple(locate(row[label], star_file) for label in HALF_TOMOGRAM_LABELS)
        if "rlnTomoTiltSeriesPixelSize" in table.columns:
            binning = float(row["rlnTomoTomogramBinning"]) if "rlnTomoTomogramBinning" in table.columns else 1.0
            record.set("pixel_size", float(row["rlnTomoTiltSeriesPixelSize"]) * binning,
                       f"{base} (rlnTomoTiltSeriesPixelSize {float(row['rlnTomoTiltSeriesPixelSize']):g} x "
                       f"rlnTomoTomogramBinning {binning:g})")
        for label, field in OPTICS_LABELS.items():
            if label in table.columns:
                record.set(field, row[label], base)
        if "rlnTomoTiltSeriesStarFile" in table.columns and not is_empty(row["rlnTomoTiltSeriesStarFile"]):
            series = locate(row["rlnTomoTiltSeriesStarFile"], star_file)
            angles, defocus, lowest = read_tilt_series(series, name)
            record.set_tilts(angles, f"{os.path.basename(series)} (rlnTomoNominalStageTiltAngle of "
                                     f"{len(angles)} images)")
            record.set("defocus", defocus, f"{os.path.basename(series)} (rlnDefocusU/V at {lowest:g}°)")
        records.append(record)
    if not records:
        raise IsonetError(f"{star_file}: no reconstructed tomogram listed")
    return records

"""Reading and writing RELION-style STAR tables with :mod:`starfile`.

``tomograms.star`` and ``subtomo.star`` carry all state between the steps of
the pipeline. Columns are always addressed by label (any order is fine), and
files written by the original IsoNet 1 (anonymous ``data_`` block,
``_rlnLabel #k`` headers, values followed by space + TAB) are read as well.

Empty values are ``None`` in memory and the text ``None`` on disk.
"""

import math
import os

import pandas as pd
import starfile

from isonet.errors import IsonetError
from isonet.io.atomic import atomic_output
from isonet.io.lock import output_lock

#: Labels whose values are always text (paths and keys), even if they look numeric.
TEXT_LABELS = (
    "rlnMicrographName", "rlnDeconvTomoName", "rlnMaskName", "rlnMaskBoundary",
    "rlnCorrectedTomoName", "rlnImageName",
    "rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2",
    "rlnDeconvTomoHalf1", "rlnDeconvTomoHalf2", "rlnImageNameHalf1", "rlnImageNameHalf2",
    "rlnTomoName", "rlnTomoTomogramsFile",
)
#: Labels holding integers.
INT_LABELS = ("rlnIndex", "rlnSubtomoIndex", "rlnNumberSubtomo", "rlnCubeSize", "rlnCropSize", "rlnBrightDensity")
#: Labels holding floats.
FLOAT_LABELS = (
    "rlnPixelSize", "rlnDefocus", "rlnSnrFalloff", "rlnDeconvStrength",
    "rlnMaskDensityPercentage", "rlnMaskStdPercentage", "rlnTiltMin", "rlnTiltMax",
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnNormMean", "rlnNormStd", "rlnNormMeanHalf1", "rlnNormStdHalf1", "rlnNormMeanHalf2", "rlnNormStdHalf2",
    "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
)

#: Columns every tomograms.star must have.
TOMOGRAM_REQUIRED = ("rlnIndex", "rlnMicrographName", "rlnPixelSize")
#: Columns every subtomo.star must have.
SUBTOMO_REQUIRED = ("rlnSubtomoIndex", "rlnImageName", "rlnCubeSize", "rlnCropSize")

#: Even/odd half tomograms in tomograms.star (RELION 5's labels), their deconvolved versions
#: (isonet's labels), and the subtomograms cut from them in subtomo.star (isonet's labels).
HALF_TOMOGRAM_LABELS = ("rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2")
HALF_DECONV_LABELS = ("rlnDeconvTomoHalf1", "rlnDeconvTomoHalf2")
HALF_SUBTOMO_LABELS = ("rlnImageNameHalf1", "rlnImageNameHalf2")
#: Per-subtomogram statistics of its source tomogram's central slab (full, half 1, half 2):
#: ``(mean label, std label)`` each, see :func:`isonet.normalize.slab_statistics`.
NORM_LABELS = (("rlnNormMean", "rlnNormStd"), ("rlnNormMeanHalf1", "rlnNormStdHalf1"),
               ("rlnNormMeanHalf2", "rlnNormStdHalf2"))

#: Per-tomogram optics in tomograms.star (RELION's labels): voltage (kV), Cs (mm), amplitude contrast.
OPTICS_LABELS = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
#: isonet's label of the density sign of a tomogram: 1 if dense matter is bright (high values), 0 or absent if
#: dark (the usual contrast of cryo-ET reconstructions). Applies to every file of the row (raw, deconvolved, halves).
BRIGHT_DENSITY_LABEL = "rlnBrightDensity"

#: Seconds a command waits for another one updating the same STAR file (:func:`update_star_rows`); an update
#: takes milliseconds, so only a command that holds the STAR file for good makes it wait that long.
STAR_UPDATE_WAIT = 60.0

#: Default tilt range (degrees) for rows without rlnTiltMin / rlnTiltMax.
DEFAULT_TILT_RANGE = (-60.0, 60.0)


def is_empty(value):
    """True for values that mean "not set": None, NaN, '' and the text 'None'."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NA:
        return True
    return isinstance(value, str) and value.strip() in ("", "None", "<NA>", "nan")


def _as_text(value):
    return None if is_empty(value) else str(value)


def read_star(path, required=()):
    """Read the first data block of a STAR file as a DataFrame.

    Parameters
    ----------
    path : str or path-like
        STAR file.
    required : sequence of str
        Labels that must be present (without the leading underscore).

    Returns
    -------
    pandas.DataFrame
        One row per entry, columns named by label, index 0..n-1. Text labels
        hold ``str`` or ``None``; integer and float labels hold numbers.

    Raises
    ------
    IsonetError
        Missing or unreadable file, no data block, or missing required labels.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: STAR file not found")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:
        raise IsonetError(f"{path}: not a readable STAR file ({exc})") from exc
    tables = [b for b in blocks.values() if isinstance(b, pd.DataFrame)]
    if not tables:
        raise IsonetError(f"{path}: STAR file has no data table (expected a loop_ of _rln labels)")
    table = tables[0].reset_index(drop=True)
    missing = [label for label in required if label not in table.columns]
    if missing:
        raise IsonetError(f"{path}: missing STAR label(s) {', '.join(missing)} "
                          f"(found {', '.join(table.columns) or 'none'})")
    return _normalise_types(table, path)


def _normalise_types(table, path):
    table = table.copy()
    for label in table.columns:
        if label in INT_LABELS or label in FLOAT_LABELS:
            try:
                numbers = pd.to_numeric(table[label])
            except (ValueError, TypeError) as exc:
                raise IsonetError(f"{path}: column {label} must hold numbers ({exc})") from exc
            if label in INT_LABELS:
                if numbers.isna().any() or (numbers != numbers.round()).any():
                    raise IsonetError(f"{path}: column {label} must hold whole numbers")
                numbers = numbers.astype(int)
            else:
                numbers = numbers.astype(float)
            table[label] = numbers
        elif label in TEXT_LABELS or not pd.api.types.is_numeric_dtype(table[label]):
            table[label] = pd.Series([_as_text(v) for v in table[label]], index=table.index, dtype=object)
    return table


def write_star(table, path):
    """Write ``table`` as a single-block STAR file, atomically.

    ``None`` values are written as the text ``None`` (as IsoNet 1 does), so
    they survive a round trip through :func:`read_star`.
    """
    out = table.copy()
    for label in out.columns:
        if not pd.api.types.is_numeric_dtype(out[label]):
            out[label] = pd.Series(["None" if is_empty(v) else str(v) for v in out[label]],
                                   index=out.index, dtype=object)
    with atomic_output(path) as tmp:
        starfile.write({"": out}, tmp, overwrite=True)


def update_star_rows(star_file, table, positions, while_locked=None):
    """Write the rows ``positions`` of ``table`` into ``star_file`` as it is on disk now, leaving its other rows.

    Commands that process some rows of a STAR file (e.g. the tasks of a job array, one tomogram each) update it
    this way without undoing each other's updates: under the lock of ``star_file`` (waited for up to
    :data:`STAR_UPDATE_WAIT` seconds) the file is read again, columns it lacks are added with the values of
    ``table``, the rows ``positions`` (matched by ``rlnIndex``) take every value of ``table``, and the file is
    rewritten atomically.

    Parameters
    ----------
    star_file : str
        Tomogram STAR file, keyed by ``rlnIndex``.
    table : pandas.DataFrame
        The command's table, read from ``star_file`` and updated in memory.
    positions : sequence
        Index labels of ``table`` whose rows are written.
    while_locked : callable, optional
        Called with the updated table after the write, while the lock is still held (to derive another file
        from the whole, current table).

    Returns
    -------
    pandas.DataFrame
        The table now in ``star_file``.

    Raises
    ------
    IsonetError
        The file's rlnIndex values differ from ``table``'s (the file was replaced meanwhile).
    """
    with output_lock(star_file, wait=STAR_UPDATE_WAIT):
        current = read_star(star_file, required=("rlnIndex",))
        ours = {int(index): position for position, index in table["rlnIndex"].items()}
        theirs = {int(index): position for position, index in current["rlnIndex"].items()}
        if sorted(ours) != sorted(theirs):
            raise IsonetError(f"{star_file}: its rlnIndex values changed while this command ran "
                              f"(now {sorted(theirs)}, read {sorted(ours)}); run the command again")
        for label in table.columns:
            if label not in current.columns:
                current[label] = [table.at[ours[int(index)], label] for index in current["rlnIndex"]]
        for position in positions:
            target = theirs[int(table.at[position, "rlnIndex"])]
            for label in table.columns:
                set_column(current, label, table.at[position, label], rows=[target])
        write_star(current, star_file)
        if while_locked is not None:
            while_locked(current)
    return current


def resolve_path(value, star_file):
    """Path of a file named in ``star_file``: as written if it exists from the current folder
    (IsoNet 1's convention), else relative to the STAR file's folder, else as written.

    Lets users run commands from the project folder or from elsewhere.
    """
    path = os.fspath(value)
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.fspath(star_file)), path)
    return beside if os.path.exists(beside) else path


def set_column(table, label, value, rows=None):
    """Set ``label`` to ``value`` on ``rows`` (all by default), creating the column if needed.

    A new text column is filled with ``None`` outside ``rows``; a new numeric
    column with ``value``.
    """
    if label not in table.columns:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        table[label] = value if numeric else pd.Series([None] * len(table), index=table.index, dtype=object)
    if rows is None:
        rows = table.index
    if isinstance(value, str) or value is None:
        if table[label].dtype != object:
            table[label] = table[label].astype(object)
    table.loc[rows, label] = value


def has_halves(table, labels=HALF_TOMOGRAM_LABELS):
    """True if every row of ``table`` names both halves (``labels``); error if only some rows do."""
    if not all(label in table.columns for label in labels):
        return False
    listed = [not (is_empty(a) or is_empty(b)) for a, b in zip(table[labels[0]], table[labels[1]])]
    if any(listed) and not all(listed):
        raise IsonetError(f"{labels[0]}/{labels[1]}: every row must name both half tomograms, or none "
                          f"(rows {[i + 1 for i, ok in enumerate(listed) if not ok]} do not)")
    return bool(listed) and all(listed)


def bright_density(row):
    """True if the row's tomogram has bright density (``rlnBrightDensity`` 1); dark if absent."""
    value = row.get(BRIGHT_DENSITY_LABEL)
    return not is_empty(value) and int(value) == 1


def tilt_range(row):
    """The tilt range ``(tilt_min, tilt_max)`` in degrees of a STAR row, ±60 if absent."""
    low = row.get("rlnTiltMin", DEFAULT_TILT_RANGE[0])
    high = row.get("rlnTiltMax", DEFAULT_TILT_RANGE[1])
    low = DEFAULT_TILT_RANGE[0] if is_empty(low) else float(low)
    high = DEFAULT_TILT_RANGE[1] if is_empty(high) else float(high)
    check_tilt_range(low, high)
    return low, high


def check_tilt_range(tilt_min, tilt_max, what="tilt range", error=IsonetError):
    """Raise ``error`` unless -90 <= tilt_min < tilt_max <= 90 (:class:`UsageError` for options)."""
    if not (-90.0 <= tilt_min < tilt_max <= 90.0):
        raise error(f"{what}: expected -90 <= tilt_min < tilt_max <= 90 degrees, "
                          f"got tilt_min={tilt_min}, tilt_max={tilt_max}")


def select_rows(table, indices, key="rlnIndex"):
    """Rows of ``table`` whose ``key`` is in ``indices`` (all rows if ``indices`` is None).

    ``indices`` is a list of int as returned by :func:`isonet.params.parse_index_list`.
    Asking for an index that is not in the table is an error.
    """
    if indices is None:
        return table
    present = set(int(v) for v in table[key])
    unknown = [i for i in indices if i not in present]
    if unknown:
        raise IsonetError(f"--tomo_idx: {key} value(s) {unknown} not in the STAR file "
                          f"(present: {sorted(present)})")
    return table[table[key].astype(int).isin(indices)]

"""``prepare_star`` and ``prepare_subtomo_star``: the STAR files that start a project."""

import glob
import logging
import os

import pandas as pd

from isonet.commands import DEFAULT_OPTICS, DEFAULT_PIXEL_SIZE, PREPARE_STAR, PREPARE_SUBTOMO_STAR
from isonet.errors import IsonetError, UsageError
from isonet.io.importers import FIELDS
from isonet.io.importers.folder import owner_root, pair_halves, read_folder_metadata
from isonet.io.importers.relion5 import read_relion5
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header
from isonet.io.paths import check_output_file, file_root
from isonet.io.star import (BRIGHT_DENSITY_LABEL, DEFAULT_TILT_RANGE, HALF_TOMOGRAM_LABELS, OPTICS_LABELS,
                            check_tilt_range, write_star)
from isonet.preprocess.contrast import check_density_sign

log = logging.getLogger("isonet")

TOMOGRAM_EXTENSIONS = (".mrc", ".rec")
#: Fields of the optics columns (:data:`isonet.io.star.OPTICS_LABELS`, same order).
OPTICS_FIELDS = ("voltage", "cs", "amplitude_contrast")
#: Values assumed for a tomogram when neither the user, the header nor its metadata give one.
DEFAULT_VALUES = dict(pixel_size=DEFAULT_PIXEL_SIZE, tilt_min=DEFAULT_TILT_RANGE[0], tilt_max=DEFAULT_TILT_RANGE[1],
                      defocus=0.0, **DEFAULT_OPTICS)


def list_tomograms(folder):
    """Sorted paths (``folder`` joined with the name) of the .mrc/.rec files in ``folder``."""
    if not os.path.isdir(folder):
        raise IsonetError(f"{folder}: folder not found")
    names = sorted(n for n in os.listdir(folder)
                   if n.endswith(TOMOGRAM_EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise IsonetError(f"{folder}: no tomograms found (expected files ending in .mrc or .rec)")
    return [os.path.join(folder, n) for n in names]


def list_half_tomograms(where):
    """Tomogram files named by a folder (its .mrc/.rec files) or a glob pattern, sorted."""
    if any(c in where for c in "*?["):
        paths = sorted(p for p in glob.glob(where) if os.path.isfile(p))
        if not paths:
            raise IsonetError(f"{where}: no file matches this pattern")
        return paths
    return list_tomograms(where)


def match_halves(tomograms, halves, option):
    """Pair each tomogram with the one file of ``halves`` named after it.

    A half matches the tomogram whose file root (name without extension) is
    its own root, or the longest root that its root starts with followed by
    ``_``, ``-`` or ``.`` (``tomo_01_even.mrc`` and ``even/tomo_01.mrc`` both
    match ``tomo_01.mrc``).

    Parameters
    ----------
    tomograms, halves : list of str
        Paths of the full tomograms and of one set of halves.
    option : str
        Option named in errors (``--even`` or ``--odd``).

    Returns
    -------
    list of str
        The half of each tomogram, in the order of ``tomograms``.
    """
    roots = [file_root(p) for p in tomograms]
    found = {}
    for half in halves:
        owner = owner_root(file_root(half), roots)
        if owner is None:
            continue
        if owner in found:
            raise IsonetError(f"{option}: {found[owner]} and {half} both match tomogram {owner}")
        found[owner] = half
    missing = [p for p, r in zip(tomograms, roots) if r not in found]
    if missing:
        raise IsonetError(f"{option}: no half tomogram named after {missing[0]} (expected e.g. "
                          f"{roots[tomograms.index(missing[0])]}_even.mrc or the same file name)")
    return [found[r] for r in roots]


#: Relative difference between two pixel sizes (or other values) reported as a conflict.
CONFLICT_TOLERANCE = 0.005


def _differ(a, b):
    return abs(a - b) > CONFLICT_TOLERANCE * max(abs(a), abs(b), 1e-9)


def _settle(record, given):
    """The values written for one tomogram: given options, else the header (pixel size), else the
    metadata, else the defaults; logs where each value came from and warns on conflicts.

    Parameters
    ----------
    record : isonet.io.importers.TomogramRecord
    given : dict
        Field -> value typed by the user (None if not given).

    Returns
    -------
    dict
        Field -> value for every field of :data:`isonet.io.importers.FIELDS`.
    """
    path = record.path
    header_pixel = read_header(path).voxel_size[0]
    values, said, assumed = {}, [], []
    for name, unit in FIELDS:
        label = name.replace("_", " ")
        found, source = getattr(record, name), record.sources.get(name)
        if given[name] is not None:
            values[name] = given[name]
            if found is not None and _differ(given[name], found):
                log.warning("%s: --%s %g%s differs from %g%s read from %s; using %g%s", path, name, given[name],
                            unit, found, unit, source, given[name], unit)
            if name == "pixel_size" and header_pixel > 0 and _differ(given[name], header_pixel):
                log.warning("%s: --pixel_size %g Å differs from the MRC header's %g Å; using %g Å", path,
                            given[name], header_pixel, given[name])
            said.append(("given", f"{label} {given[name]:g}{unit}"))
        elif name == "pixel_size" and header_pixel > 0:
            values[name] = header_pixel
            if found is not None and _differ(found, header_pixel):
                log.warning("%s: pixel size %g Å from %s differs from the MRC header's %g Å; using the header's "
                            "(or give --pixel_size)", path, found, source, header_pixel)
            if header_pixel == 1.0:
                log.warning("%s: the MRC header gives a pixel size of 1 Å, often a placeholder; give --pixel_size "
                            "if it is not the real one", path)
            said.append(("MRC header", f"pixel size {header_pixel:g} Å"))
        elif found is not None:
            values[name] = found
            said.append((source, f"{label} {found:g}{unit}"))
        else:
            values[name] = DEFAULT_VALUES[name]
            assumed.append(f"{label} {DEFAULT_VALUES[name]:g}{unit}")
            if name == "pixel_size":
                log.warning("%s: no pixel size in the MRC header or metadata; assumed %g Å (give --pixel_size)",
                            path, DEFAULT_VALUES[name])
    groups = {}
    for source, text in said:
        groups.setdefault(source, []).append(text)
    log.info("%s: %s", path, "; ".join(f"{', '.join(texts)} ({source})" for source, texts in groups.items()))
    if assumed:
        log.info("%s: assumed (not given, not found): %s", path, ", ".join(assumed))
    check_tilt_range(values["tilt_min"], values["tilt_max"], f"{path}: tilt range")
    return values


def _folder_records(folder_name, metadata_folder, even, odd):
    """Records of the tomograms of ``folder_name``: metadata files found beside them (or in
    ``metadata_folder``) and their halves (``even``/``odd``, else paired by name)."""
    paths = list_tomograms(folder_name)
    automatic = {}
    if even is None:
        paths, automatic = pair_halves(paths)
    folders = [metadata_folder] if metadata_folder is not None else \
        [folder_name, os.path.dirname(os.path.abspath(folder_name))]
    if metadata_folder is not None and not os.path.isdir(metadata_folder):
        raise IsonetError(f"--metadata_folder {metadata_folder}: folder not found")
    records = [read_folder_metadata(path, folders) for path in paths]
    if even is not None:
        pairs = zip(*[match_halves(paths, list_half_tomograms(where), option)
                      for where, option in ((even, "--even"), (odd, "--odd"))])
        for record, pair in zip(records, pairs):
            record.halves = tuple(pair)
    elif automatic:
        for record in records:
            record.halves = automatic[record.path]
        log.info("Half tomograms paired by name: %s", "; ".join(
            f"{record.path} <- {', '.join(record.halves)}" for record in records))
    return records


@PREPARE_STAR.implements
def prepare_star(folder_name, output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max, even, odd,
                 relion5, metadata_folder, voltage, cs, amplitude_contrast, bright_density):
    """Write a tomograms.star with one row per tomogram of ``folder_name`` or of a RELION 5 project.

    Columns: rlnIndex (1..N), rlnMicrographName, rlnPixelSize (Å), rlnDefocus
    (Å), rlnNumberSubtomo, rlnMaskBoundary (None), rlnTiltMin, rlnTiltMax
    (degrees), rlnVoltage (kV), rlnSphericalAberration (mm),
    rlnAmplitudeContrast, rlnBrightDensity (0 dark, 1 bright); with half
    tomograms also rlnTomoReconstructedTomogramHalf1 (even) and
    rlnTomoReconstructedTomogramHalf2 (odd), RELION 5's labels; with ``relion5``
    also RELION's rlnTomoName (the tilt series) and rlnTomoTomogramsFile (``relion5``
    itself), from which predict writes a RELION 5 tomograms.star with RELION's columns.

    Each value is the one given here, else (pixel size) the MRC header's, else
    the one read from the metadata of the tomogram (:mod:`isonet.io.importers`:
    RELION 5 STAR files with ``relion5``; otherwise IMOD ``.tlt``, ctfplotter
    ``.defocus``, AreTomo ``.aln`` and Warp ``.xml`` files beside the tomogram
    or in ``metadata_folder``), else the default (10 Å, ±60°, defocus 0, 300 kV,
    2.7 mm, 0.07). The log says where every value came from and which were
    assumed; a given value or header that contradicts the metadata is a
    warning naming both. Halves come from ``even``/``odd`` (matched by name,
    :func:`match_halves`), from RELION's STAR, or are paired by name
    (:func:`isonet.io.importers.folder.pair_halves`). The density sign of every
    tomogram is estimated (:mod:`isonet.preprocess.contrast`) and a
    disagreement with ``bright_density`` is a warning. Every file is checked
    before the STAR is written.

    Parameters
    ----------
    folder_name : str or None
        Folder of the tomograms (.mrc/.rec); None with ``relion5``.
    output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max, even, odd, relion5, metadata_folder,
    voltage, cs, amplitude_contrast, bright_density
        Settings of :data:`isonet.commands.PREPARE_STAR` (defaults and ranges there).

    Returns
    -------
    pandas.DataFrame
        The table written.
    """
    if tilt_min is not None and tilt_max is not None:
        check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    if (even is None) != (odd is None):
        raise UsageError("--even and --odd: give both half-tomogram sets, or neither")
    if relion5 is not None:
        if folder_name is not None or even is not None or metadata_folder is not None:
            raise UsageError("--relion5: give the RELION 5 tomograms.star alone (not with FOLDER_NAME, --even/--odd "
                             "or --metadata_folder)")
        records = read_relion5(relion5)
        log.info("Read %d tomogram(s) from the RELION 5 project file %s", len(records), relion5)
    elif folder_name is None:
        raise UsageError("prepare_star: missing argument FOLDER_NAME (or --relion5 with a RELION 5 tomograms.star)")
    else:
        records = _folder_records(folder_name, metadata_folder, even, odd)
    given = dict(pixel_size=pixel_size, tilt_min=tilt_min, tilt_max=tilt_max, defocus=defocus, voltage=voltage,
                 cs=cs, amplitude_contrast=amplitude_contrast)
    for record in records:
        for path in (record.path,) + tuple(record.halves):
            read_header(path)
    values = [_settle(record, given) for record in records]
    check_output_file(output_star, "--output_star")
    for record in records:
        check_density_sign(record.path, bright_density)
    table = pd.DataFrame({
        "rlnIndex": range(1, len(records) + 1),
        "rlnMicrographName": [record.path for record in records],
        "rlnPixelSize": [v["pixel_size"] for v in values],
        "rlnDefocus": [v["defocus"] for v in values],
        "rlnNumberSubtomo": int(number_subtomos),
        "rlnMaskBoundary": pd.Series([None] * len(records), dtype=object),
        "rlnTiltMin": [v["tilt_min"] for v in values],
        "rlnTiltMax": [v["tilt_max"] for v in values],
        **{label: [v[name] for v in values] for label, name in zip(OPTICS_LABELS, OPTICS_FIELDS)},
        BRIGHT_DENSITY_LABEL: int(bool(bright_density)),
    })
    if all(record.halves for record in records):
        for label, half in zip(HALF_TOMOGRAM_LABELS, zip(*[record.halves for record in records])):
            table[label] = list(half)
    elif any(record.halves for record in records):
        log.warning("half tomograms listed for only some tomograms: halves not used")
    if relion5 is not None:  # for predict's RELION 5 tomograms.star, which keeps RELION's columns
        table["rlnTomoName"] = [record.tomo_name for record in records]
        table["rlnTomoTomogramsFile"] = relion5
    with output_lock(output_star):
        write_star(table, output_star)
    log.info("Wrote %s with %d tomogram(s)%s", output_star, len(records),
             " and their halves" if HALF_TOMOGRAM_LABELS[0] in table.columns else "")
    return table


def default_cube_size(crop_size):
    """IsoNet 1's training cube edge for subtomograms of edge ``crop_size``: floor(crop/1.5 + 1) // 16 * 16."""
    return int(crop_size / 1.5 + 1) // 16 * 16


@PREPARE_SUBTOMO_STAR.implements
def prepare_subtomo_star(folder_name, output_star, pixel_size, cube_size, tilt_min, tilt_max):
    """Write a subtomo.star for the subtomograms in ``folder_name``.

    Every file must be a readable cubic MRC volume, all of the same edge
    (``rlnCropSize``); rows are numbered 1..N without gaps. ``cube_size``
    defaults to :func:`default_cube_size` and must be smaller than the edge.

    Parameters
    ----------
    folder_name : str
    output_star, pixel_size, cube_size, tilt_min, tilt_max
        Settings of :data:`isonet.commands.PREPARE_SUBTOMO_STAR` (defaults and ranges there).

    Returns
    -------
    pandas.DataFrame
        The table written.
    """
    check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    if not os.path.isdir(folder_name):
        raise IsonetError(f"{folder_name}: folder not found")
    paths = [os.path.join(folder_name, n) for n in sorted(os.listdir(folder_name))
             if os.path.isfile(os.path.join(folder_name, n))]
    if not paths:
        raise IsonetError(f"{folder_name}: no subtomogram files found")
    crop = None
    for path in paths:
        shape = read_header(path).shape
        if len(set(shape)) != 1:
            raise IsonetError(f"{path}: subtomogram must be cubic, got shape (z, y, x) = {shape}")
        if crop is None:
            crop = shape[0]
        elif shape[0] != crop:
            raise IsonetError(f"{path}: edge {shape[0]} differs from {crop} of {paths[0]}; "
                              "all subtomograms must have the same size")
    if cube_size is None or cube_size >= crop:
        if cube_size is not None:
            log.warning("--cube_size %d is not smaller than the subtomogram edge %d; using %d",
                        cube_size, crop, default_cube_size(crop))
        cube_size = default_cube_size(crop)
    if cube_size < 8 or cube_size % 8:
        raise UsageError(f"--cube_size must be a positive multiple of 8, got {cube_size} "
                         f"(subtomograms of edge {crop})")
    check_output_file(output_star, "--output_star")
    table = pd.DataFrame({
        "rlnSubtomoIndex": range(1, len(paths) + 1),
        "rlnImageName": paths,
        "rlnCubeSize": int(cube_size),
        "rlnCropSize": int(crop),
        "rlnPixelSize": float(pixel_size),
        "rlnTiltMin": float(tilt_min),
        "rlnTiltMax": float(tilt_max),
    })
    with output_lock(output_star):
        write_star(table, output_star)
    log.info("Wrote %s with %d subtomogram(s) of edge %d, cube size %d", output_star, len(paths), crop, cube_size)
    return table

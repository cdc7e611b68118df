"""``prepare_star`` and ``prepare_subtomo_star``: the STAR files that start a project."""

import glob
import logging
import os

import pandas as pd

from isonet.commands import PREPARE_STAR, PREPARE_SUBTOMO_STAR
from isonet.errors import IsonetError, UsageError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header
from isonet.io.paths import check_output_file, file_root
from isonet.io.star import HALF_TOMOGRAM_LABELS, check_tilt_range, write_star

log = logging.getLogger("isonet")

TOMOGRAM_EXTENSIONS = (".mrc", ".rec")


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
        name = file_root(half)
        owners = [r for r in roots if name == r or any(name.startswith(r + s) for s in "_-.")]
        if not owners:
            continue
        owner = max(owners, key=len)
        if owner in found:
            raise IsonetError(f"{option}: {found[owner]} and {half} both match tomogram {owner}")
        found[owner] = half
    missing = [p for p, r in zip(tomograms, roots) if r not in found]
    if missing:
        raise IsonetError(f"{option}: no half tomogram named after {missing[0]} (expected e.g. "
                          f"{roots[tomograms.index(missing[0])]}_even.mrc or the same file name)")
    return [found[r] for r in roots]


@PREPARE_STAR.implements
def prepare_star(folder_name, output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max, even, odd):
    """Write a tomograms.star with one row per tomogram of ``folder_name``.

    Columns: rlnIndex (1..N), rlnMicrographName, rlnPixelSize (Å), rlnDefocus
    (Å), rlnNumberSubtomo, rlnMaskBoundary (None), rlnTiltMin, rlnTiltMax
    (degrees); with ``even`` and ``odd`` also rlnTomoReconstructedTomogramHalf1
    (even) and rlnTomoReconstructedTomogramHalf2 (odd), RELION 5's labels,
    matched to the tomograms by name (:func:`match_halves`). Only the MRC
    headers are read (a file that is not an MRC volume is refused).

    Parameters
    ----------
    folder_name : str
    output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max, even, odd
        Settings of :data:`isonet.commands.PREPARE_STAR` (defaults and ranges there).

    Returns
    -------
    pandas.DataFrame
        The table written.
    """
    check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    if (even is None) != (odd is None):
        raise UsageError("--even and --odd: give both half-tomogram sets, or neither")
    paths = list_tomograms(folder_name)
    halves = [] if even is None else [match_halves(paths, list_half_tomograms(where), option)
                                      for where, option in ((even, "--even"), (odd, "--odd"))]
    for path in paths + [p for half in halves for p in half]:
        read_header(path)
    check_output_file(output_star, "--output_star")
    table = pd.DataFrame({
        "rlnIndex": range(1, len(paths) + 1),
        "rlnMicrographName": paths,
        "rlnPixelSize": float(pixel_size),
        "rlnDefocus": float(defocus),
        "rlnNumberSubtomo": int(number_subtomos),
        "rlnMaskBoundary": pd.Series([None] * len(paths), dtype=object),
        "rlnTiltMin": float(tilt_min),
        "rlnTiltMax": float(tilt_max),
    })
    for label, half_paths in zip(HALF_TOMOGRAM_LABELS, halves):
        table[label] = half_paths
    with output_lock(output_star):
        write_star(table, output_star)
    log.info("Wrote %s with %d tomogram(s)%s", output_star, len(paths), " and their halves" if halves else "")
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

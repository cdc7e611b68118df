"""``prepare_star`` and ``prepare_subtomo_star``: the STAR files that start a project."""

import logging
import os

import pandas as pd

from isonet.commands import PREPARE_STAR, PREPARE_SUBTOMO_STAR
from isonet.errors import IsonetError, UsageError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header
from isonet.io.paths import check_output_file
from isonet.io.star import check_tilt_range, write_star

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


@PREPARE_STAR.implements
def prepare_star(folder_name, output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max):
    """Write a tomograms.star with one row per tomogram of ``folder_name``.

    Columns: rlnIndex (1..N), rlnMicrographName, rlnPixelSize (Å), rlnDefocus
    (Å), rlnNumberSubtomo, rlnMaskBoundary (None), rlnTiltMin, rlnTiltMax
    (degrees). Only the MRC headers are read (a file that is not an MRC volume
    is refused).

    Parameters
    ----------
    folder_name : str
    output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max
        Settings of :data:`isonet.commands.PREPARE_STAR` (defaults and ranges there).

    Returns
    -------
    pandas.DataFrame
        The table written.
    """
    check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    paths = list_tomograms(folder_name)
    for path in paths:
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
    with output_lock(output_star):
        write_star(table, output_star)
    log.info("Wrote %s with %d tomogram(s)", output_star, len(paths))
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

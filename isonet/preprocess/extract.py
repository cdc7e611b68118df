"""Subtomogram extraction for training (spec §3.3, §1.5).

Centres are drawn at random among the mask voxels that lie at least
``crop_size // 2`` from the low border and ``crop_size - crop_size // 2`` from
the high border of every axis, without replacement when there are enough such
voxels. Every subtomogram is traced back in ``subtomo.star`` by its source
tomogram (``rlnMicrographName``) and centre (``rlnCoordinateX/Y/Z``, voxels).
Volumes are indexed ``[z, y, x]``.
"""

import logging
import os

import numpy as np
import pandas as pd

from isonet.commands import EXTRACT
from isonet.errors import IsonetError, UsageError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.paths import check_outputs, file_root, input_tomogram, rename_aside
from isonet.io.star import (HALF_DECONV_LABELS, HALF_SUBTOMO_LABELS, NORM_LABELS, TOMOGRAM_REQUIRED,
                            bright_density, has_halves, is_empty, read_star, resolve_path, select_rows, tilt_range,
                            write_star)
from isonet.log import log_time, progress
from isonet.normalize import slab_statistics, warn_if_flat

log = logging.getLogger("isonet")


def valid_centre_box(shape, crop_size):
    """Per-axis inclusive range ``(low, high)`` of centres whose crop fits in a volume of ``shape``.

    Returns ``None`` if the volume is smaller than ``crop_size`` along some axis.
    """
    box = [(crop_size // 2, n - (crop_size - crop_size // 2)) for n in shape]
    return None if any(low > high for low, high in box) else box


def sample_centres(shape, crop_size, count, rng, mask=None):
    """Random centres ``(z, y, x)`` inside ``mask`` whose crop of edge ``crop_size`` fits in the volume.

    Draws without replacement when there are at least ``count`` valid voxels,
    else with replacement (warning). Memory stays at one plane of indices.

    Parameters
    ----------
    shape : tuple of 3 int
        Volume shape ``(nz, ny, nx)``.
    crop_size : int
        Edge of the subtomograms.
    count : int
        Number of centres.
    rng : numpy.random.Generator
    mask : ndarray of bool, shape ``shape``, optional
        Valid voxels (all if ``None``).

    Returns
    -------
    ndarray of int64, shape (count, 3)
        Centres ``(z, y, x)``, sorted by position in the volume.

    Raises
    ------
    IsonetError
        No valid centre (volume thinner than ``crop_size`` or mask empty there).
    """
    box = valid_centre_box(shape, crop_size)
    if box is None:
        raise IsonetError(f"tomogram of shape (z, y, x) = {tuple(shape)} is thinner than crop_size {crop_size}")
    inner = tuple(slice(low, high + 1) for low, high in box)
    plane_size = (box[1][1] - box[1][0] + 1) * (box[2][1] - box[2][0] + 1)
    if mask is None:
        per_plane = np.full(box[0][1] - box[0][0] + 1, plane_size, dtype=np.int64)
    else:
        per_plane = np.count_nonzero(mask[inner], axis=(1, 2)).astype(np.int64)
    total = int(per_plane.sum())
    if total == 0:
        raise IsonetError(f"no mask voxel lies at least crop_size/2 = {crop_size // 2} voxels inside the borders "
                          "(empty mask?)")
    if total >= count:
        ranks = np.sort(rng.choice(total, size=count, replace=False))
    else:
        log.warning("only %d valid centre voxels for %d subtomograms: some will repeat", total, count)
        ranks = np.sort(rng.integers(0, total, size=count))
    first = np.concatenate([[0], np.cumsum(per_plane)])
    planes = np.searchsorted(first, ranks, side="right") - 1
    centres = np.empty((count, 3), dtype=np.int64)
    for plane in np.unique(planes):
        chosen = planes == plane
        offsets = ranks[chosen] - first[plane]
        if mask is None:
            flat = offsets
        else:
            flat = np.flatnonzero(mask[box[0][0] + plane][inner[1:]])[offsets]
        y, x = np.unravel_index(flat, (box[1][1] - box[1][0] + 1, box[2][1] - box[2][0] + 1))
        centres[chosen] = np.column_stack([np.full(len(y), box[0][0] + plane), y + box[1][0], x + box[2][0]])
    return centres


def crop(volume, centre, crop_size):
    """The cube of edge ``crop_size`` starting at ``centre - crop_size // 2`` on every axis (a copy)."""
    start = [int(c) - crop_size // 2 for c in centre]
    return np.array(volume[tuple(slice(s, s + crop_size) for s in start)], dtype=np.float32)


def random_halves(count, rng):
    """Random disjoint halves of ``range(count)``: two sorted index arrays (the first gets the odd one)."""
    order = rng.permutation(count)
    half = (count + 1) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def half_star_names(subtomo_star):
    """``subtomo.star`` -> (``subtomo_half1.star``, ``subtomo_half2.star``), beside it."""
    root, extension = os.path.splitext(subtomo_star)
    return f"{root}_half1{extension or '.star'}", f"{root}_half2{extension or '.star'}"


@EXTRACT.implements
def extract_subtomograms(star_file, subtomo_folder, subtomo_star, cube_size, crop_size, use_deconv_tomo, tomo_idx,
                         seed, split_halves):
    """Cut random subtomograms from the tomograms of ``star_file`` and list them in ``subtomo_star``.

    For each selected row, ``rlnNumberSubtomo`` (default 100) centres are drawn
    inside ``rlnMaskName`` (whole volume if unset) and
    ``<subtomo_folder>/<root>_<j:06d>.mrc`` written (float32, raw intensities,
    voxel size = rlnPixelSize; root = file name of ``rlnMicrographName``
    without its extension). When the rows list half tomograms
    (``rlnTomoReconstructedTomogramHalf1/2``, or ``rlnDeconvTomoHalf1/2`` with
    ``use_deconv_tomo``), the same centres are cut from both halves into
    ``<root>_<j:06d>_half1.mrc`` and ``_half2.mrc``, listed as
    ``rlnImageNameHalf1/2``. Every row also gets its source tomograms'
    central-slab mean and standard deviation (``rlnNormMean``/``rlnNormStd``,
    and ``...Half1``/``...Half2``; :func:`isonet.normalize.slab_statistics`),
    the global normalisation of the halves method. Subtomograms are always dark
    density: bright-density tomograms (``rlnBrightDensity`` 1) are negated on
    reading, before the statistics. An existing ``subtomo_folder``
    is renamed aside (``subtomo~``, ``subtomo~2``...), never deleted, but only once
    every input (STAR labels, tomogram and mask headers and shapes, counts, free
    disk space) has been checked; the outputs are locked against a second isonet
    command meanwhile. Defaults and ranges: :data:`isonet.commands.EXTRACT`.

    Parameters
    ----------
    star_file : str
        tomograms.star (read only).
    subtomo_folder : str
        Output folder for the subtomograms.
    subtomo_star : str
        Output STAR: rlnSubtomoIndex, rlnImageName, rlnCubeSize, rlnCropSize,
        rlnPixelSize, rlnTiltMin, rlnTiltMax, rlnMicrographName, rlnCoordinateX/Y/Z,
        rlnNormMean, rlnNormStd (and the half columns above).
    cube_size : int
        Training cube edge (multiple of 8, smaller than ``crop_size``).
    crop_size : int, optional
        Subtomogram edge; default ``cube_size + 16``.
    use_deconv_tomo : bool
        Cut from ``rlnDeconvTomoName`` when set and the file exists (else from the original, with a warning).
    tomo_idx : list of int, optional
        ``rlnIndex`` values to use (all by default).
    seed : int, optional
        Random seed (a fresh one is drawn and logged if ``None``).
    split_halves : bool
        Also write ``<subtomo_star root>_half1.star`` and ``_half2.star``:
        random disjoint halves of the subtomograms (gold-standard refinement).

    Returns
    -------
    pandas.DataFrame
        The subtomo table written.
    """
    if cube_size % 8:
        raise UsageError(f"--cube_size must be a positive multiple of 8, got {cube_size}")
    if crop_size is None:
        crop_size = cube_size + 16
    if crop_size <= cube_size:
        raise UsageError(f"--crop_size ({crop_size}) must be larger than --cube_size ({cube_size})")
    table = read_star(star_file, required=TOMOGRAM_REQUIRED)
    rows = select_rows(table, tomo_idx)
    plans = _check_inputs(rows, star_file, crop_size, use_deconv_tomo)
    total = sum(plan["count"] for plan in plans)
    copies = 3 if any(plan["halves"] for plan in plans) else 1
    check_outputs(subtomo_folder, "--subtomo_folder", subtomo_star, "--subtomo_star",
                  copies * total * (crop_size ** 3 * 4 + 1024))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 31))
        log.info("extract: random seed %d (pass --seed %d to repeat)", seed, seed)
    rng = np.random.default_rng(seed)
    outputs = [subtomo_folder, subtomo_star] + (list(half_star_names(subtomo_star)) if split_halves else [])
    with output_lock(*outputs):
        rename_aside(subtomo_folder)
        os.makedirs(subtomo_folder)
        entries = []
        for plan in progress(plans, desc="extract", unit="tomogram"):
            entries += _extract_one(plan, subtomo_folder, cube_size, crop_size, rng)
        return _write_tables(entries, subtomo_star, split_halves, rng, cube_size, crop_size)


def _check_inputs(rows, star_file, crop_size, use_deconv_tomo):
    """Check every row's tomogram and mask (headers, shapes, counts) before anything is written.

    Returns
    -------
    list of dict
        Per row: ``source``, ``mask`` (path or None), ``count``, ``pixel_size``, ``tilts``, ``root``,
        ``name`` (rlnMicrographName), ``halves`` (the two half tomograms, or empty) and ``bright``
        (rlnBrightDensity).
    """
    roots = [file_root(name) for name in rows["rlnMicrographName"]]
    repeated = sorted({r for r in roots if roots.count(r) > 1})
    if repeated:
        raise IsonetError(f"{star_file}: several tomograms have the file name root {repeated[0]!r}; "
                          "their subtomogram files would collide (rename the tomograms)")
    plans = []
    for (_, row), root in zip(rows.iterrows(), roots):
        source = input_tomogram(row, star_file, use_deconv_tomo, fallback=True)
        shape = read_header(source).shape
        if valid_centre_box(shape, crop_size) is None:
            raise IsonetError(f"{source}: tomogram of shape (z, y, x) = {shape} is thinner than crop_size "
                              f"{crop_size}; use a smaller --cube_size/--crop_size")
        count = 100 if is_empty(row.get("rlnNumberSubtomo")) else int(row["rlnNumberSubtomo"])
        if count < 1:
            raise IsonetError(f"{star_file}: rlnNumberSubtomo of {source} must be >= 1, got {count}")
        pixel_size = float(row["rlnPixelSize"])
        if not pixel_size > 0:
            raise IsonetError(f"{star_file}: rlnPixelSize of {source} must be > 0 Å, got {pixel_size}")
        mask = None
        if not is_empty(row.get("rlnMaskName")):
            mask = resolve_path(row["rlnMaskName"], star_file)
            mask_shape = read_header(mask).shape
            if mask_shape != shape:
                raise IsonetError(f"{mask}: mask shape {mask_shape} differs from tomogram {source} "
                                  f"shape {shape} (z, y, x)")
        halves = [input_tomogram(row, star_file, use_deconv_tomo, True, half) for half in (1, 2)] \
            if has_halves(rows) else []
        if halves and use_deconv_tomo and not is_empty(row.get("rlnDeconvTomoName")) and any(
                is_empty(row.get(label)) for label in HALF_DECONV_LABELS):
            raise IsonetError(f"{star_file}: {row['rlnMicrographName']} is deconvolved but its halves are "
                              "not (rlnDeconvTomoHalf1/2); run deconv again so that halves and full "
                              "tomogram are processed alike, or extract with --use_deconv_tomo False")
        for half in halves:
            if read_header(half).shape != shape:
                raise IsonetError(f"{half}: half tomogram shape {read_header(half).shape} differs from {source} "
                                  f"shape {shape} (z, y, x)")
        plans.append(dict(source=source, mask=mask, count=count, pixel_size=pixel_size, tilts=tilt_range(row),
                          root=root, name=row["rlnMicrographName"], halves=halves, bright=bright_density(row)))
    return plans


def _write_tables(entries, subtomo_star, split_halves, rng, cube_size, crop_size):
    """Write subtomo.star (and its random halves); return the table."""
    subtomos = pd.DataFrame(entries)
    subtomos.insert(0, "rlnSubtomoIndex", np.arange(1, len(subtomos) + 1))
    write_star(subtomos, subtomo_star)
    log.info("Wrote %s with %d subtomograms of edge %d (cube size %d)", subtomo_star, len(subtomos),
             crop_size, cube_size)
    if split_halves:
        for name, half in zip(half_star_names(subtomo_star), random_halves(len(subtomos), rng)):
            write_star(subtomos.iloc[half].reset_index(drop=True), name)
            log.info("Wrote %s with %d subtomograms", name, len(half))
    return subtomos


def _extract_one(plan, subtomo_folder, cube_size, crop_size, rng):
    """Cut and write the subtomograms of one checked row (see :func:`_check_inputs`); return their entries."""
    source = plan["source"]
    with log_time(f"extract {source}"):
        shape = read_header(source).shape
        # the mask is read before the tomogram so that its float32 copy is gone by then
        mask = None if plan["mask"] is None else read_volume(plan["mask"]) != 0
        try:
            centres = sample_centres(shape, crop_size, plan["count"], rng, mask)
        except IsonetError as exc:
            raise IsonetError(f"{source}: {exc}" + (f" (mask {plan['mask']})" if mask is not None else "")
                              ) from None
        del mask
        entries = [{
            "rlnImageName": os.path.join(subtomo_folder, f"{plan['root']}_{j:06d}.mrc"),
            "rlnCubeSize": int(cube_size), "rlnCropSize": int(crop_size), "rlnPixelSize": plan["pixel_size"],
            "rlnTiltMin": plan["tilts"][0], "rlnTiltMax": plan["tilts"][1], "rlnMicrographName": plan["name"],
            "rlnCoordinateX": float(centre[2]), "rlnCoordinateY": float(centre[1]),
            "rlnCoordinateZ": float(centre[0]),
        } for j, centre in enumerate(centres)]
        # The same centres from the full tomogram and from each half; one volume in memory at a time.
        for half, tomogram in enumerate([source] + plan["halves"]):
            path_label = "rlnImageName" if half == 0 else HALF_SUBTOMO_LABELS[half - 1]
            mean_label, std_label = NORM_LABELS[half]
            volume = read_volume(tomogram, negate=plan["bright"])
            warn_if_flat(volume, tomogram)
            mean, std = slab_statistics(volume)
            for j, (centre, entry) in enumerate(zip(centres, entries)):
                path = entry["rlnImageName"] if half == 0 else \
                    os.path.join(subtomo_folder, f"{plan['root']}_{j:06d}_half{half}.mrc")
                write_volume(path, crop(volume, centre, crop_size), voxel_size=plan["pixel_size"])
                entry.update({path_label: path, mean_label: mean, std_label: std})
            del volume
        log.info("%s: %d subtomograms of edge %d%s", source, len(entries), crop_size,
                 " (and the same from each half)" if plan["halves"] else "")
    return entries

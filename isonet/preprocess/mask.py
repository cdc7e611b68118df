"""Sample masks for subtomogram extraction (spec §3.2).

A mask keeps the voxels with dense material (dark in standard tomograms:
the maximum filter runs on the negated volume) and with local contrast (local
standard deviation), optionally inside a polygon drawn in IMOD and away from
the top and bottom of the tomogram. Work is done on the volume binned by 2;
the mask is upsampled back to full size. Volumes are indexed ``[z, y, x]``.
"""

import logging
import os

import numpy as np
from scipy import ndimage

from isonet.commands import MAKE_MASK
from isonet.errors import IsonetError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.paths import check_outputs, file_root, input_tomogram, make_folder
from isonet.io.star import (TOMOGRAM_REQUIRED, bright_density, is_empty, read_star, resolve_path, select_rows,
                            set_column, update_star_rows)
from isonet.log import log_time, progress
from isonet.preprocess.imod import read_boundary_points

log = logging.getLogger("isonet")

#: Percentages above this disable their criterion (every voxel kept).
DISABLE_ABOVE = 99.8
#: Minimum difference in z (binned voxels) of the last two boundary points that makes them a z-range.
Z_RANGE_MIN_SPAN = 5
#: Full-resolution voxels smoothed at once by :func:`bin2` (64 MiB of float32).
_SLAB_VOXELS = 1 << 24


def bin2(volume):
    """Downsample by 2 on every axis with anti-aliasing: Gaussian of sigma 0.5, then 2x2x2 means.

    Output shape is ``shape // 2`` (an odd last plane is dropped). Processed in
    Z slabs so that only a small float32 scratch is needed.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)

    Returns
    -------
    ndarray of float32, shape (nz // 2, ny // 2, nx // 2)
    """
    nz, ny, nx = (n // 2 for n in volume.shape)
    if min(nz, ny, nx) < 1:
        raise IsonetError(f"volume of shape {volume.shape} is too small to bin by 2")
    halo = 4
    slab = max(1, _SLAB_VOXELS // (2 * volume[0].size))
    binned = np.empty((nz, ny, nx), dtype=np.float32)
    for z in range(0, nz, slab):
        z_end = min(z + slab, nz)
        low, high = max(2 * z - halo, 0), min(2 * z_end + halo, volume.shape[0])
        smooth = ndimage.gaussian_filter(np.asarray(volume[low:high], dtype=np.float32), 0.5, mode="reflect")
        smooth = smooth[2 * z - low:2 * z_end - low, :2 * ny, :2 * nx]
        binned[z:z_end] = smooth.reshape(z_end - z, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5))
    return binned


def local_std(volume, size):
    """Standard deviation in a cube of edge ``size`` around every voxel, counting only voxels inside.

    ``var = (sum x^2 - (sum x)^2 / n) / n`` with ``n`` the number of box voxels
    inside the volume; negative rounding residues are clipped to 0.

    Returns
    -------
    ndarray of float32, same shape as ``volume``
    """
    x = np.asarray(volume, dtype=np.float64)
    x = x - x.mean()
    half = size // 2
    counts = [np.minimum(np.arange(n) + half, n - 1) - np.maximum(np.arange(n) - half, 0) + 1 for n in x.shape]
    scale = float(size) ** 3 / counts[0][:, None, None]

    def box_mean(values):
        """Mean over the in-volume part of the box (uniform_filter divides by the full box size)."""
        result = ndimage.uniform_filter(values, size, mode="constant")
        result *= scale
        result /= counts[1][None, :, None]
        result /= counts[2][None, None, :]
        return result

    variance = box_mean(x * x)
    mean = box_mean(x)
    del x
    mean *= mean
    variance -= mean
    del mean
    np.maximum(variance, 0, out=variance)
    return np.sqrt(variance).astype(np.float32)


def boundary_region(points, binned_shape):
    """Region of the binned volume inside a polygon boundary (spec §3.2 step 6).

    ``points`` are full-resolution ``(x, y, z)`` and are divided by 2. If the
    last two points differ in z by at least 5 binned voxels they give the
    z-range ``[min z, max z)`` and are not polygon vertices; otherwise the
    whole depth is used. No remaining vertex means the z-range only; at least
    3 form a polygon in the XY plane, extruded over the z-range.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        ``(x, y, z)`` in full-resolution voxels.
    binned_shape : tuple of 3 int

    Returns
    -------
    ndarray of bool, shape binned_shape
    """
    from matplotlib.path import Path

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3) / 2.0
    nz, ny, nx = binned_shape
    z_low, z_high = 0, nz
    if len(points) >= 2 and abs(points[-1, 2] - points[-2, 2]) >= Z_RANGE_MIN_SPAN:
        low, high = sorted(points[-2:, 2])
        z_low, z_high = int(np.clip(low, 0, nz)), int(np.clip(high, 0, nz))
        points = points[:-2]
    if len(points) in (1, 2):
        raise IsonetError(f"mask boundary: {len(points)} polygon point(s) left after the z-range; "
                          "need 0 (z-range only) or at least 3")
    region = np.zeros(binned_shape, dtype=bool)
    if len(points) == 0:
        region[z_low:z_high] = True
        return region
    y, x = np.mgrid[0:ny, 0:nx]
    inside = Path(points[:, :2]).contains_points(np.column_stack([x.ravel(), y.ravel()]))
    region[z_low:z_high] = inside.reshape(ny, nx)[None]
    return region


def make_mask(volume, patch_size=4, density_percentage=50.0, std_percentage=50.0, z_crop=None,
              boundary_points=None):
    """Mask of the voxels worth sampling in a tomogram (spec §3.2).

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Tomogram indexed ``[z, y, x]``, dark density on bright background.
    patch_size : int
        Half-width of the local filters in binned voxels (box edge ``2 patch_size + 1``);
        the Gaussian has sigma ``patch_size / 2``.
    density_percentage : float
        Percent of voxels kept by the local-density criterion (> 99.8 disables it).
    std_percentage : float
        Percent of voxels kept by the local-std criterion (> 99.8 disables it).
    z_crop : float, optional
        Fraction of the depth removed at the top and at the bottom (0 <= z_crop < 0.5).
    boundary_points : ndarray, shape (n, 3), optional
        Polygon boundary ``(x, y, z)`` in full-resolution voxels, see :func:`boundary_region`.

    Returns
    -------
    ndarray of uint8, shape (nz, ny, nx)
        1 inside the mask, 0 outside; for odd sizes the last plane is 0.
    """
    return mask_from_binned(bin2(volume), volume.shape, patch_size, density_percentage, std_percentage, z_crop,
                            boundary_points)


def mask_from_binned(binned, shape, patch_size=4, density_percentage=50.0, std_percentage=50.0, z_crop=None,
                     boundary_points=None):
    """:func:`make_mask` from the volume already binned by :func:`bin2` (lets callers free the volume).

    Parameters
    ----------
    binned : ndarray of float32, shape (nz // 2, ny // 2, nx // 2)
        Output of :func:`bin2`.
    shape : tuple of 3 int
        Full-resolution shape ``(nz, ny, nx)``.
    patch_size, density_percentage, std_percentage, z_crop, boundary_points
        As for :func:`make_mask`.

    Returns
    -------
    ndarray of uint8, shape ``shape``
    """
    smooth = ndimage.gaussian_filter(binned, patch_size / 2.0)
    size = 2 * int(patch_size) + 1
    keep = np.ones(smooth.shape, dtype=bool)
    if density_percentage <= DISABLE_ABOVE:
        density = ndimage.maximum_filter(-smooth, size=size, mode="reflect")
        keep &= density > np.percentile(density, 100.0 - density_percentage)
        del density
    if std_percentage <= DISABLE_ABOVE:
        deviation = local_std(smooth, size)
        keep &= deviation > np.percentile(deviation, 100.0 - std_percentage)
        del deviation
    del smooth
    if boundary_points is not None:
        keep &= boundary_region(boundary_points, keep.shape)
    if z_crop:
        depth = shape[0] / 2.0
        keep[:int(z_crop * depth)] = False
        keep[int((1.0 - z_crop) * depth):] = False
    mask = np.zeros(shape, dtype=np.uint8)
    nz, ny, nx = keep.shape
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                mask[dz:2 * nz:2, dy:2 * ny:2, dx:2 * nx:2] = keep
    return mask


@MAKE_MASK.implements
def make_masks(star_file, mask_folder, patch_size, density_percentage, std_percentage, use_deconv_tomo, z_crop,
               tomo_idx, mask_boundary):
    """Make a mask for every selected tomogram of ``star_file`` and record it there.

    Adds ``rlnMaskDensityPercentage`` (50), ``rlnMaskStdPercentage`` (50) and
    ``rlnMaskName`` (None) when absent; percentages given here override the
    STAR's and are written into it, as is ``mask_boundary`` into
    ``rlnMaskBoundary``. Bright-density tomograms (``rlnBrightDensity`` 1) are
    negated on reading, so that dense matter is found whatever the sign. Writes ``<mask_folder>/<root>_mask.mrc`` (0/1 in 8-bit MRC
    mode 0; root = file name of the tomogram used without its extension) with the
    tomogram's voxel size and origin, and writes the row into the STAR file after
    every mask (:func:`isonet.io.star.update_star_rows`: rows of other commands,
    e.g. the other tasks of a job array, are kept). Every selected row (tomogram
    header, percentages, boundary file) is checked before anything is written;
    the masks written are locked against a second isonet command (not their
    folder: array tasks write other masks into it at once). Defaults and ranges:
    :data:`isonet.commands.MAKE_MASK`.

    Parameters
    ----------
    star_file : str
        tomograms.star.
    mask_folder : str
        Output folder (created if missing).
    patch_size, density_percentage, std_percentage, z_crop
        See :func:`make_mask`; ``None`` percentages mean the STAR's values.
    use_deconv_tomo : bool
        Use ``rlnDeconvTomoName`` when set.
    tomo_idx : list of int, optional
        ``rlnIndex`` values to process (all by default).
    mask_boundary : str, optional
        IMOD ``.mod`` model or point file (x y z per line) for every processed
        tomogram; by default each row's ``rlnMaskBoundary``.

    Returns
    -------
    pandas.DataFrame
        The updated table.
    """
    if mask_boundary is not None and str(mask_boundary).strip() in ("", "None"):
        mask_boundary = None
    table = read_star(star_file, required=TOMOGRAM_REQUIRED)
    for label, default in (("rlnMaskDensityPercentage", 50.0), ("rlnMaskStdPercentage", 50.0),
                           ("rlnMaskName", None), ("rlnMaskBoundary", None)):
        if label not in table.columns:
            set_column(table, label, default)
    rows = select_rows(table, tomo_idx)
    for position in rows.index:  # the settings given here go into the STAR, checked with its values
        if density_percentage is not None:
            set_column(table, "rlnMaskDensityPercentage", float(density_percentage), rows=[position])
        if std_percentage is not None:
            set_column(table, "rlnMaskStdPercentage", float(std_percentage), rows=[position])
        if mask_boundary is not None:
            set_column(table, "rlnMaskBoundary", str(mask_boundary), rows=[position])
    jobs = [_check_row(table.loc[position], position, star_file, mask_folder, use_deconv_tomo, mask_boundary)
            for position in rows.index]
    check_outputs(mask_folder, "--mask_folder", star_file, "STAR file")
    with output_lock(*(job["output"] for job in jobs)):
        make_folder(mask_folder, "--mask_folder")
        for job in progress(jobs, desc="make_mask", unit="tomogram"):
            _make_one(job, patch_size, z_crop)
            set_column(table, "rlnMaskName", job["output"], rows=[job["position"]])
            update_star_rows(star_file, table, [job["position"]])
    return table


def _check_row(row, position, star_file, mask_folder, use_deconv_tomo, mask_boundary):
    """Check one row (tomogram header, percentages, boundary points) before anything is written; returns
    what :func:`_make_one` needs."""
    source = input_tomogram(row, star_file, use_deconv_tomo)
    read_header(source)
    points, boundary = None, None
    if not is_empty(row["rlnMaskBoundary"]):
        boundary = mask_boundary if mask_boundary is not None else resolve_path(row["rlnMaskBoundary"], star_file)
        points = read_boundary_points(boundary)
    return dict(position=position, source=source, boundary=boundary, points=points, bright=bright_density(row),
                density=_percentage(row, "rlnMaskDensityPercentage", star_file),
                deviation=_percentage(row, "rlnMaskStdPercentage", star_file),
                output=os.path.join(mask_folder, f"{file_root(source)}_mask.mrc"))


def _make_one(job, patch_size, z_crop):
    """Compute and write the mask of one checked row (see :func:`_check_row`)."""
    source, output = job["source"], job["output"]
    if job["points"] is not None:
        log.info("%s: polygon boundary from %s (%d points)", source, job["boundary"], len(job["points"]))
    with log_time(f"make_mask {source}"):
        volume, header = read_volume(source, return_header=True, negate=job["bright"])
        binned = bin2(volume)
        del volume
        mask = mask_from_binned(binned, header.shape, patch_size, job["density"], job["deviation"], z_crop,
                                job["points"])
        del binned
        kept = int(np.count_nonzero(mask))
        if kept == 0:
            raise IsonetError(f"{source}: the mask keeps no voxel (density_percentage={job['density']:g}, "
                              f"std_percentage={job['deviation']:g}, z_crop={z_crop}, boundary="
                              f"{job['boundary']}); raise the percentages or check the boundary")
        log.info("%s: mask keeps %.1f %% of the voxels -> %s", source, 100.0 * kept / mask.size, output)
        # MRC mode 0 (8-bit): mrcfile would store uint8 as 16-bit mode 6
        write_volume(output, mask.view(np.int8), like=header)


def _percentage(row, label, star_file):
    value = 50.0 if is_empty(row.get(label)) else float(row[label])
    if not 0 < value <= 100:
        raise IsonetError(f"{star_file}: {label} must be in (0, 100] percent, got {value}")
    return value

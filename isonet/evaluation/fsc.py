"""Directional and 3-D Fourier shell correlation of two volumes: ``isonet.py fsc3d``.

Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 = beam/Z, tilt axis = Y).
Typical use: the two half-set reconstructions of the gold-standard workflow
(docs/gold_standard.md), read at the 0.143 threshold.

Curves (all from :mod:`isonet.evaluation.fourier`, shells ``1 / min(shape)``
cycles per voxel thick):

* ``x``, ``y``, ``z``: FSC inside double cones of half-angle ``cone_angle``
  around each axis;
* ``measured`` and ``missing_wedge``: FSC over the measured and missing-wedge
  Fourier regions of the given tilt range (guard band excluded);
* ``all``: the ordinary FSC over whole shells.

The 3-D FSC volume follows the conical-FSC definition of 3DFSC (Tan et al.,
Nat. Methods 2017): for each of ``n_directions`` directions spread over the
half sphere, the FSC per shell inside the cone of half-angle ``cone_angle``
around it; the map holds, at every frequency, these conical FSCs interpolated
over direction (see :func:`isonet.evaluation.fourier.fsc_map`), in centred
(fftshift) layout with the volumes' shape.

With ``cubic_crops = N``, N cubes of edge ``min(shape)`` spread over the
volume (as in the IsoNet paper for non-cubic tomograms) are compared
separately and their curves and maps averaged.
"""

import json
import logging
import math
import os

import numpy as np

from isonet.commands import FSC3D
from isonet.errors import IsonetError, UsageError
from isonet.evaluation import fourier
from isonet.evaluation.metrics import check_same_shape, header_pixel_size, json_number
from isonet.io.atomic import atomic_write_text
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.paths import check_output_folder
from isonet.io.star import check_tilt_range
from isonet.log import progress

log = logging.getLogger("isonet")

CURVE_NAMES = ("x", "y", "z", "measured", "missing_wedge", "all")


def cubic_crop_corners(shape, n_crops):
    """Corners of ``n_crops`` cubes of edge ``min(shape)`` spread over a volume.

    Along each axis the candidate corners are ``ceil(n / edge)`` evenly spaced
    positions from 0 to ``n - edge`` (non-overlapping cubes where ``edge``
    divides ``n``); among all combinations (z slowest, x fastest), ``n_crops``
    evenly spaced ones are taken (for a 64x256x256 volume and 4 crops: the
    four cubes along the XY diagonal).

    Parameters
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)``.
    n_crops : int
        Number of cubes wanted (at least 1); capped at the number of candidates.

    Returns
    -------
    list of tuple of 3 int
        ``(z0, y0, x0)`` corners.
    """
    edge = min(shape)
    positions = [np.rint(np.linspace(0, n - edge, math.ceil(n / edge))).astype(int) for n in shape]
    candidates = [(int(z), int(y), int(x)) for z in positions[0] for y in positions[1] for x in positions[2]]
    if n_crops >= len(candidates):
        if n_crops > len(candidates):
            log.warning("--cubic_crops %d: only %d distinct cubes of edge %d fit in %s; using %d",
                        n_crops, len(candidates), edge, tuple(shape), len(candidates))
        return candidates
    return [candidates[i] for i in np.rint(np.linspace(0, len(candidates) - 1, n_crops)).astype(int)]


def fsc3d(volume_a, volume_b, pixel_size, mask=None, cone_angle=30.0, tilt_min=-60.0, tilt_max=60.0,
          guard_band=5.0, cubic_crops=0, n_directions=100, low_resolution=None):
    """Directional, wedge-region and 3-D FSC of two volumes.

    Parameters
    ----------
    volume_a, volume_b : ndarray, shape (nz, ny, nx)
        Volumes indexed ``[z, y, x]`` of the same shape. If they correlate
        negatively (opposite contrast conventions, e.g. a tomogram against a
        ground truth), B is multiplied by -1 first.
    pixel_size : float
        Å per voxel.
    mask : ndarray, shape (nz, ny, nx), optional
        Soft or binary mask multiplied into both volumes before the FFT.
    cone_angle : float
        Half-angle in degrees of every cone (X/Y/Z curves and the 3-D map).
    tilt_min, tilt_max : float
        Tilt range in degrees defining the measured and missing-wedge regions.
    guard_band : float
        Degrees on either side of each wedge edge left out of both regions.
    cubic_crops : int
        0: use the whole volumes; N > 0: average over N cubic crops of edge
        ``min(shape)`` (see :func:`cubic_crop_corners`).
    n_directions : int
        Cone directions sampled over the half sphere for the 3-D map.
    low_resolution : float, optional
        Å; the resolutions are searched from ``1 / low_resolution`` on (the curves keep every
        shell). Default :func:`isonet.evaluation.fourier.default_low_resolution` of the
        (cropped) volumes: the two lowest shells, where a cone holds a handful of samples and
        one chance dip would decide the resolution, are left out.

    Returns
    -------
    dict
        ``frequency_per_A`` (shells, ndarray); ``curves``: name -> ``(fsc,
        count)`` arrays for ``x``, ``y``, ``z``, ``measured``,
        ``missing_wedge``, ``all`` (averaged over crops; counts summed);
        ``resolution``: name -> {0.5: Å, 0.143: Å}; ``low_resolution``: Å, the
        lowest resolution searched; ``z_over_x``: threshold ->
        ratio; ``map``: the 3-D FSC volume (float32, crop shape if cropping);
        ``crops``: the crop corners used (empty without cropping);
        ``sign_flipped``: whether B was multiplied by -1.
    """
    volume_a, volume_b, mask = fourier.checked_volumes(volume_a, volume_b, mask)
    # Sign of the (masked) Pearson correlation of the whole volumes; one decision for every crop.
    weight = 1.0 if mask is None else mask
    flipped = bool(np.vdot(weight * (volume_a - volume_a.mean()), weight * (volume_b - volume_b.mean())) < 0)
    if flipped:
        log.warning("the volumes correlate negatively (opposite contrast): B is multiplied by -1")
        volume_b = -volume_b
    if cubic_crops > 0:
        edge = min(volume_a.shape)
        corners = cubic_crop_corners(volume_a.shape, cubic_crops)
        boxes = [tuple(slice(c, c + edge) for c in corner) for corner in corners]
    else:
        corners, boxes = [], [(slice(None),) * 3]
    directions = fourier.hemisphere_directions(n_directions)
    curve_sums, map_sum = None, None
    for box in progress(boxes, desc="fsc3d", unit="crop", disable=len(boxes) == 1):
        a, b = volume_a[box], volume_b[box]
        if mask is not None:
            a, b = a * mask[box], b * mask[box]
        samples = fourier.fourier_samples(a, b, tilt_min, tilt_max, guard_band)
        curves = fourier.fsc_curves(samples, cone_angle)
        conical, _ = fourier.conical_fsc(samples, directions, cone_angle)
        volume_map = fourier.fsc_map(samples.shape, directions, conical, cone_angle)
        if curve_sums is None:
            frequency = curves["frequency"]
            curve_sums = {name: [np.zeros_like(frequency), np.zeros_like(frequency)] for name in CURVE_NAMES}
            map_sum = np.zeros_like(volume_map)
        for name in CURVE_NAMES:
            curve_sums[name][0] += curves[name][0]
            curve_sums[name][1] += curves[name][1]
        map_sum += volume_map
    n = len(boxes)
    averaged = {name: (fsc / n, count) for name, (fsc, count) in curve_sums.items()}
    if low_resolution is None:
        low_resolution = fourier.default_low_resolution(pixel_size, a.shape)
    lowest = pixel_size / low_resolution
    resolution = {name: fourier.curve_resolutions(frequency, fsc, pixel_size, low_frequency=lowest)
                  for name, (fsc, _) in averaged.items()}
    return {
        "frequency_per_A": frequency / pixel_size,
        "curves": averaged,
        "resolution": resolution,
        "low_resolution": float(low_resolution),
        "z_over_x": {t: resolution["z"][t] / resolution["x"][t] for t in fourier.THRESHOLDS},
        "map": map_sum / n,
        "crops": corners,
        "sign_flipped": flipped,
    }


@FSC3D.implements
def fsc3d_files(path_a, path_b, out_prefix, mask_path, pixel_size, cone_angle, tilt_min, tilt_max, guard_band,
                cubic_crops, n_directions, low_resolution):
    """Run :func:`fsc3d` on two MRC files and write ``PREFIX.json``, ``PREFIX.png`` and ``PREFIX_map.mrc``.

    Every setting and the headers of all inputs are checked before a volume is read. Defaults and
    ranges: :data:`isonet.commands.FSC3D`.

    Prints one JSON line with the resolutions (the summary part of ``PREFIX.json``).

    Parameters
    ----------
    path_a, path_b : str
        MRC volumes of the same shape.
    out_prefix : str
        Output path prefix (its folder is created if missing).
    mask_path : str, optional
        MRC mask of the same shape.
    pixel_size : float, optional
        Å per voxel; default: the X voxel size in the header of ``path_a``.
    Other parameters as :func:`fsc3d`.

    Returns
    -------
    dict
        The JSON content (summary and curves).
    """
    from isonet.evaluation.pictures import plot_fsc

    check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    header_a, header_b = read_header(path_a), read_header(path_b)
    if header_a.shape != header_b.shape:
        raise IsonetError(f"{path_b}: shape {header_b.shape} differs from {path_a} {header_a.shape}")
    pixel_size = header_pixel_size(header_a, path_a) if pixel_size is None else pixel_size
    if low_resolution is not None and not low_resolution > 2 * pixel_size:
        raise UsageError(f"--low_resolution ({low_resolution:g} Å) must be coarser than Nyquist "
                         f"({2 * pixel_size:g} Å at {pixel_size:g} Å/px): no shell would be searched")
    check_same_shape(mask_path, header_a.shape)
    folder = os.path.dirname(os.path.abspath(out_prefix))
    check_output_folder(folder, "--out")
    mask = read_volume(mask_path) if mask_path else None
    result = fsc3d(read_volume(path_a), read_volume(path_b), pixel_size, mask, cone_angle, tilt_min, tilt_max,
                   guard_band, cubic_crops, n_directions, low_resolution)
    os.makedirs(folder, exist_ok=True)
    summary = {
        "a": str(path_a), "b": str(path_b), "mask": str(mask_path) if mask_path else None,
        "pixel_size": pixel_size, "cone_angle": cone_angle, "tilt_range": [tilt_min, tilt_max],
        "guard_band": guard_band, "low_resolution": result["low_resolution"],
        "crops": [list(c) for c in result["crops"]],
        "sign_flipped": result["sign_flipped"],
        "resolution": {name: {str(t): json_number(r) for t, r in res.items()}
                       for name, res in result["resolution"].items()},
        "z_over_x": {str(t): json_number(r) for t, r in result["z_over_x"].items()},
    }
    curves = {"frequency_per_A": [json_number(f) for f in result["frequency_per_A"]],
              **{name: {"fsc": [json_number(v) for v in fsc], "count": [int(c) for c in count]}
                 for name, (fsc, count) in result["curves"].items()}}
    content = {**summary, "map": out_prefix + "_map.mrc", "plot": out_prefix + ".png", "curves": curves}
    write_volume(out_prefix + "_map.mrc", result["map"], voxel_size=pixel_size)
    plot_fsc(result["frequency_per_A"], {name: fsc for name, (fsc, _) in result["curves"].items()},
             out_prefix + ".png", title=f"{path_a} vs {path_b}")
    atomic_write_text(out_prefix + ".json", json.dumps(content, indent=1) + "\n")
    print(json.dumps(summary), flush=True)
    log.info("wrote %s.json, %s.png, %s_map.mrc", out_prefix, out_prefix, out_prefix)
    return content

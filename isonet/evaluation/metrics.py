"""Restoration quality against a ground truth: ``isonet.py evaluate``.

Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 = beam/Z, tilt axis = Y).
All scores come from :mod:`isonet.evaluation.fourier` and are correlations,
hence unchanged when the candidate is multiplied by a positive number; the
contrast sign does not matter either, because the candidate is multiplied by
-1 first when its overall correlation with the ground truth is negative (a
raw tomogram has dark density, the ground truth positive density).
"""

import json
import logging
import math
import os

import numpy as np

from isonet.commands import EVALUATE
from isonet.errors import IsonetError, UsageError
from isonet.evaluation import fourier
from isonet.io.atomic import atomic_write_text
from isonet.io.mrc import read_header, read_volume
from isonet.io.paths import check_output_folder
from isonet.io.star import check_tilt_range

log = logging.getLogger("isonet")

#: Depth bands (degrees beyond the nearest tilt limit) of the wedge scores; 10-30 pools the deep ones.
WEDGE_DEPTH_BANDS = ((0, 10), (10, 20), (20, 30), (10, 30))


def evaluate(candidate, ground_truth, pixel_size, tilt_min=-60.0, tilt_max=60.0, resolution=30.0, mask=None,
             guard_band=5.0, cone_angle=30.0, low_resolution=None):
    """Compare a restored (or raw) tomogram with its ground truth.

    Parameters
    ----------
    candidate, ground_truth : ndarray, shape (nz, ny, nx)
        Volumes indexed ``[z, y, x]``, of the same shape.
    pixel_size : float
        Å per voxel.
    tilt_min, tilt_max : float
        Tilt range (degrees) of the acquisition: defines the missing-wedge and
        measured Fourier regions (see :mod:`isonet.evaluation.fourier`).
    resolution : float
        Å; the region correlations use frequencies up to ``1 / resolution``.
    mask : ndarray, shape (nz, ny, nx), optional
        Soft or binary mask multiplied into both volumes before the FFT.
    guard_band : float
        Degrees on either side of each wedge edge excluded from both regions.
    cone_angle : float
        Half-angle (degrees) of the cones around X, Y and Z for the directional FSC.
    low_resolution : float, optional
        Å; the region correlations and the search for the FSC resolutions use
        frequencies from ``1 / low_resolution`` on. Default
        :func:`isonet.evaluation.fourier.default_low_resolution` (the two lowest
        shells left out: there a raw tomogram correlates with the truth, and a
        cone holds too few samples for a meaningful FSC).

    Returns
    -------
    dict
        ``sign_flipped`` (bool); ``correlation``: ``overall`` (Pearson, all
        frequencies), ``missing_wedge`` and ``measured`` (frequencies between
        ``1 / low_resolution`` and ``1 / resolution``; None where a region is empty);
        ``wedge_bands``: the missing-wedge correlation by depth beyond the
        nearest tilt limit (keys ``'0-10'``, ``'10-20'``, ``'20-30'``,
        ``'10-30'``, degrees; same frequency band; no guard band: the bands
        start at the edge; None where a band is empty, e.g. 20-30 when the
        wedge is narrower than 40 degrees); ``wedge_power``: the power of the
        missing wedge over that of the measured region, of the ``truth`` and
        of the ``candidate``, their quotient ``relative`` (1: as much power in
        the wedge as the truth has; a raw tomogram: about 0) and that quotient
        per depth band (``relative_by_depth``);
        ``fsc``: per axis ``x``, ``y``, ``z`` the resolutions in Å at 0.5 and
        0.143 (keys ``'0.5'``, ``'0.143'``); ``z_over_x``: Z/X resolution ratio
        per threshold; ``curves``: ``frequency_per_A`` and the FSC per axis;
        plus the parameters used.
    """
    candidate, ground_truth, mask = fourier.checked_volumes(candidate, ground_truth, mask,
                                                            what="candidate and ground truth")
    if mask is not None:
        candidate, ground_truth = candidate * mask, ground_truth * mask
    samples = fourier.fourier_samples(ground_truth, candidate, tilt_min, tilt_max, guard_band)
    flipped = fourier.correlation(samples) < 0
    if flipped:
        samples.flip_sign_of_b()
    if low_resolution is None:
        low_resolution = fourier.default_low_resolution(pixel_size, ground_truth.shape)
    if not low_resolution > resolution:
        raise IsonetError(f"low_resolution ({low_resolution:g} Å) must be larger than resolution ({resolution:g} Å)")
    if pixel_size / resolution > 0.5:
        log.warning("--resolution %.4g Å is finer than Nyquist (%.4g Å): all frequencies used",
                    resolution, 2 * pixel_size)
    # Frequencies in cycles per voxel.
    band = (samples.frequency <= pixel_size / resolution) & (samples.frequency >= pixel_size / low_resolution)
    regions = {"overall": fourier.correlation(samples),
               "missing_wedge": fourier.correlation(samples, band & samples.missing),
               "measured": fourier.correlation(samples, band & samples.measured)}
    for name in ("missing_wedge", "measured"):
        if math.isnan(regions[name]):
            log.warning("the %s region is empty for tilt range %g..%g (guard band %g°)",
                        name.replace("_", " "), tilt_min, tilt_max, guard_band)
    depth_bands = {f"{low}-{high}": band & fourier.depth_select(samples, low, high) for low, high in WEDGE_DEPTH_BANDS}
    measured = band & samples.measured

    def relative_power(select):
        truth_fraction = fourier.power_fraction(samples.power_a, select, measured)
        candidate_fraction = fourier.power_fraction(samples.power_b, select, measured)
        return candidate_fraction / truth_fraction if truth_fraction > 0 else float("nan")

    wedge_power = {
        "truth": fourier.power_fraction(samples.power_a, band & samples.missing, measured),
        "candidate": fourier.power_fraction(samples.power_b, band & samples.missing, measured),
        "relative": relative_power(band & samples.missing),
        "relative_by_depth": {name: json_number(relative_power(select)) for name, select in depth_bands.items()}}
    curves = fourier.fsc_curves(samples, cone_angle)
    frequency = curves["frequency"]
    # The FSC resolutions leave out the same lowest shells as the correlations (see low_resolution).
    resolutions = {axis: fourier.curve_resolutions(frequency, curves[axis][0], pixel_size,
                                                   low_frequency=pixel_size / low_resolution)
                   for axis in fourier.AXES}
    return {
        "shape": list(ground_truth.shape), "pixel_size": pixel_size, "tilt_range": [tilt_min, tilt_max],
        "resolution_limit": resolution, "low_resolution_limit": json_number(low_resolution),
        "guard_band": guard_band, "cone_angle": cone_angle,
        "masked": mask is not None, "sign_flipped": bool(flipped),
        "correlation": {k: json_number(v) for k, v in regions.items()},
        "wedge_bands": {k: json_number(fourier.correlation(samples, v)) for k, v in depth_bands.items()},
        "wedge_power": {k: v if isinstance(v, dict) else json_number(v) for k, v in wedge_power.items()},
        "fsc": {axis: {str(t): json_number(r) for t, r in res.items()} for axis, res in resolutions.items()},
        "z_over_x": {str(t): json_number(resolutions["z"][t] / resolutions["x"][t]) for t in fourier.THRESHOLDS},
        "curves": {"frequency_per_A": [json_number(f / pixel_size) for f in frequency],
                   **{axis: [json_number(v) for v in curves[axis][0]] for axis in fourier.AXES}},
    }


def json_number(value):
    """``value`` as a float rounded to 6 significant digits, or None for NaN (JSON has no NaN)."""
    value = float(value)
    return None if math.isnan(value) else float(f"{value:.6g}")


def format_table(result, candidate_name="candidate", ground_truth_name="ground truth"):
    """Human-readable table of an :func:`evaluate` result (one string, no trailing newline)."""
    def show(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    corr = result["correlation"]
    band = f"({result['low_resolution_limit']:.0f}-{result['resolution_limit']:g} Å)"
    cones = f"FSC resolution in Å ({result['cone_angle']:g}° cones)"
    z, y, x = result["shape"]
    lines = [
        f"{candidate_name} vs {ground_truth_name}: {z}x{y}x{x} voxels, {result['pixel_size']:g} Å/px, "
        f"tilt {result['tilt_range'][0]:g}..{result['tilt_range'][1]:g}°, guard band {result['guard_band']:g}°"
        + (", masked" if result["masked"] else "")
        + (", candidate sign flipped" if result["sign_flipped"] else ""),
        f"  {'correlation, overall':<40}{show(corr['overall']):>10}",
        f"  {'correlation, missing wedge ' + band:<40}{show(corr['missing_wedge']):>10}",
        f"  {'correlation, measured ' + band:<40}{show(corr['measured']):>10}",
        f"  {'wedge correlation by depth beyond the tilt limit':<50}"
        + "".join(f"{name + '°':>8}" for name in result["wedge_bands"]),
        f"  {'':<50}" + "".join(f"{show(v):>8}" for v in result["wedge_bands"].values()),
        f"  {'wedge/measured power: truth, candidate, relative':<50}"
        + "".join(f"{show(result['wedge_power'][k]):>8}" for k in ("truth", "candidate", "relative")),
        f"  {cones:<30}{'at 0.5':>10}{'at 0.143':>10}",
    ]
    for axis in fourier.AXES:
        values = result["fsc"][axis]
        lines.append(f"    {axis.upper():<28}{show(values['0.5'], 1):>10}{show(values['0.143'], 1):>10}")
    ratio = result["z_over_x"]
    lines.append(f"    {'Z/X ratio':<28}{show(ratio['0.5'], 2):>10}{show(ratio['0.143'], 2):>10}")
    return "\n".join(lines)


@EVALUATE.implements
def evaluate_files(candidate_path, ground_truth_path, pixel_size, tilt_min, tilt_max, resolution, mask_path,
                   guard_band, cone_angle, json_path, low_resolution):
    """Read the volumes, :func:`evaluate`, print the table and write JSON (atomically) if asked.

    Every setting and the headers of all inputs are checked before a volume is read. Defaults and
    ranges: :data:`isonet.commands.EVALUATE`.

    Parameters
    ----------
    candidate_path, ground_truth_path : str
        MRC files of the same shape.
    pixel_size : float, optional
        Å per voxel; default: the ground truth header's (X voxel size).
    mask_path : str, optional
        MRC mask of the same shape.
    json_path : str, optional
        JSON file written with the result (and the two file names).
    Other parameters as :func:`evaluate`.

    Returns
    -------
    dict
        The :func:`evaluate` result plus ``candidate`` and ``ground_truth`` paths.
    """
    check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    if low_resolution is not None and not low_resolution > resolution:
        raise UsageError(f"--low_resolution ({low_resolution:g} Å) must be larger than --resolution "
                         f"({resolution:g} Å)")
    truth_header = read_header(ground_truth_path)
    candidate_header = read_header(candidate_path)
    if candidate_header.shape != truth_header.shape:
        raise IsonetError(f"{candidate_path}: shape {candidate_header.shape} differs from the ground truth "
                          f"{ground_truth_path} {truth_header.shape}")
    pixel_size = header_pixel_size(truth_header, ground_truth_path) if pixel_size is None else pixel_size
    check_same_shape(mask_path, truth_header.shape)
    if json_path:
        check_output_folder(os.path.dirname(os.path.abspath(json_path)), "--json")
    mask = read_volume(mask_path) if mask_path else None
    result = evaluate(read_volume(candidate_path), read_volume(ground_truth_path), pixel_size, tilt_min, tilt_max,
                      resolution, mask, guard_band, cone_angle, low_resolution)
    result = {"candidate": str(candidate_path), "ground_truth": str(ground_truth_path),
              "mask": str(mask_path) if mask_path else None, **result}
    print(format_table(result, candidate_path, ground_truth_path), flush=True)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        atomic_write_text(json_path, json.dumps(result, indent=1) + "\n")
        log.info("wrote %s", json_path)
    return result


def check_same_shape(mask_path, shape):
    """Check the header of the optional mask ``mask_path``: its shape must be ``shape`` (z, y, x)."""
    if mask_path:
        mask_shape = read_header(mask_path).shape
        if mask_shape != tuple(shape):
            raise IsonetError(f"{mask_path}: mask shape {mask_shape} differs from the volumes' {tuple(shape)}")


def header_pixel_size(header, path):
    """Pixel size (Å) from an MRC header's X voxel size; error if the header has none.

    Parameters
    ----------
    header : isonet.io.mrc.VolumeHeader
    path : str
        File the header comes from (for messages).
    """
    size_x, size_y, size_z = header.voxel_size
    if not size_x > 0:
        raise IsonetError(f"{path}: header has no pixel size; give --pixel_size")
    if not np.allclose(header.voxel_size, size_x, rtol=1e-3):
        log.warning("%s: anisotropic voxel size %s; using X (%g Å)", path, header.voxel_size, size_x)
    return float(size_x)

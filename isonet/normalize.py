"""Intensity normalisation shared by refine and predict (spec §0.5), and the check for flat volumes."""

import logging

import numpy as np

#: Percentiles mapped to 0 and 1 by percentile normalisation (IsoNet 1 uses 4 and 96).
PERCENTILES = (4.0, 96.0)


def normalize(volume, percentile=True, axis=None):
    """Normalise intensities; returns float32.

    Parameters
    ----------
    volume : ndarray
        One volume, or a batch if ``axis`` names the per-volume axes.
    percentile : bool
        True: map the 4th percentile to 0 and the 96th to 1,
        ``(x - P4) / (P96 - P4 + 1e-20)``, no clipping. False: ``(x - mean) / std``.
    axis : int or tuple of int, optional
        Axes over which the statistics are taken (all by default); e.g.
        ``(1, 2, 3)`` normalises each volume of a ``(B, z, y, x)`` batch on its own.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if percentile:
        low, high = np.percentile(volume, PERCENTILES, axis=axis, keepdims=True)
        return ((volume - low) / (high - low + 1e-20)).astype(np.float32)
    mean = volume.mean(axis=axis, keepdims=True, dtype=np.float64)
    std = volume.std(axis=axis, keepdims=True, dtype=np.float64)
    return ((volume - mean) / (std + 1e-20)).astype(np.float32)


def normalize_in_place(volume, percentile=True):
    """Normalise a float32 volume in place, as :func:`normalize` does.

    Same formulas (4/96 percentiles to 0/1, or mean/std), without the
    temporaries of the out-of-place version: a tomogram-sized copy would be
    most of predict's memory. Returns ``volume``.
    """
    if percentile:
        low, high = np.percentile(volume, PERCENTILES)
        scale = high - low + 1e-20
    else:
        low = volume.mean(dtype=np.float64)
        squares = sum(np.square(slab - low).sum() for slab in _slabs(volume))  # float64, slab by slab
        scale = np.sqrt(squares / volume.size) + 1e-20
    volume -= np.float32(low)
    volume /= np.float32(scale)
    return volume


def _slabs(volume, voxels=2**24):
    """Views of ``volume`` along axis 0 with about ``voxels`` voxels each."""
    step = max(1, voxels // max(1, volume[0].size))
    return (volume[i:i + step] for i in range(0, len(volume), step))


def flat_volume_problem(volume):
    """Why ``volume`` cannot be normalised meaningfully, or ``None``.

    A constant volume (every voxel the same value), or a nearly empty one whose
    4th and 96th percentiles coincide (at least 92 % of the voxels share one
    value, e.g. a tomogram padded with zeros), gives a zero or meaningless
    intensity scale: normalisation then divides by (almost) nothing. The
    percentiles are taken on every 7th voxel, which keeps the check cheap.
    """
    low, high = float(np.min(volume)), float(np.max(volume))
    if low == high:
        return f"constant volume (every voxel is {low:g})"
    sample = np.asarray(volume).reshape(-1)[::7]
    p_low, p_high = np.percentile(sample, PERCENTILES)
    if p_low == p_high:
        return f"nearly empty volume (the {PERCENTILES[0]:g}th to {PERCENTILES[1]:g}th percentiles are all {p_low:g})"
    return None


def warn_if_flat(volume, path, logger=None):
    """Log a warning naming ``path`` if :func:`flat_volume_problem` finds one; returns the problem or None."""
    problem = flat_volume_problem(volume)
    if problem:
        (logger or logging.getLogger("isonet")).warning(
            "%s: %s; its output will carry no information (check the input file)", path, problem)
    return problem


#: Fraction of the depth (Z) around the middle whose voxels give a tomogram's global statistics:
#: the sample, away from the empty ice and reconstruction artefacts of the top and bottom.
SLAB_FRACTION = 1.0 / 3.0


def central_slab(volume, fraction=SLAB_FRACTION):
    """The central ``fraction`` of a tomogram's Z planes (at least one), as :func:`slab_statistics` uses them."""
    depth = len(volume)
    count = max(1, int(round(depth * fraction)))
    start = (depth - count) // 2
    return volume[start:start + count]


def slab_statistics(volume, fraction=SLAB_FRACTION):
    """Mean and standard deviation of the central slab of a tomogram, float64.

    Global normalisation of the halves method: every subtomogram (and predict's
    tomogram) is mapped with its source tomogram's numbers, ``(x - mean) / std``
    then negated (density positive), so that contrast differences between
    regions of a tomogram survive, unlike IsoNet 1's per-subtomogram normalisation.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Tomogram ``[z, y, x]`` (Z the beam axis).
    fraction : float
        Share of the Z planes used, centred (at least one plane).

    Returns
    -------
    mean, std : float
    """
    slab = central_slab(volume, fraction)
    mean = float(slab.mean(dtype=np.float64))
    squares = sum(float(np.square(part - mean, dtype=np.float64).sum()) for part in _slabs(slab))
    return mean, float(np.sqrt(squares / slab.size))


def apply_statistics(volume, mean, std):
    """``-(volume - mean) / std`` as float32 (density positive, see :func:`slab_statistics`)."""
    return ((np.float32(mean) - np.asarray(volume, dtype=np.float32)) / np.float32(std + 1e-20)).astype(
        np.float32, copy=False)

"""Intensity normalisation shared by refine and predict (spec §0.5)."""

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

"""Missing-wedge imposition and the merge rule of refine, vectorised over a batch.

Volumes are indexed ``[z, y, x]`` (tilt axis Y, beam along Z); a batch is
``(B, nz, ny, nx)``. Masks come from :func:`isonet.wedge.wedge_mask` in the
``rfftn`` layout, shape ``(nz, 1, nx // 2 + 1)`` for one volume or
``(B, nz, 1, nx // 2 + 1)`` for one mask per volume (each subtomogram has its
own tilt range). The masks are symmetric under ``k -> -k``, so a real FFT
gives exactly the real part of IsoNet 1's complex filtering.
"""

import functools

import numpy as np
import scipy.fft

from isonet.wedge import wedge_mask

_AXES = (-3, -2, -1)


@functools.lru_cache(maxsize=64)
def _cached_mask(shape, tilt_min, tilt_max):
    mask = wedge_mask(shape, tilt_min, tilt_max, real=True, dtype=np.float32)
    mask.setflags(write=False)
    return mask


def wedge_masks(shape, tilt_ranges):
    """One ``rfftn``-layout wedge mask per tilt range, stacked.

    Parameters
    ----------
    shape : tuple of 3 int
        Volume shape ``(nz, ny, nx)``.
    tilt_ranges : sequence of (float, float)
        ``(tilt_min, tilt_max)`` in degrees, one per volume.

    Returns
    -------
    ndarray of float32, shape (B, nz, 1, nx // 2 + 1)
        1 where measured (IsoNet 1 §3.4.2 geometry), 0 in the missing wedge.
    """
    shape = tuple(int(n) for n in shape)
    return np.stack([_cached_mask(shape, float(lo), float(hi)) for lo, hi in tilt_ranges])


def _filter(batch, weights):
    """``irfftn(rfftn(batch) * weights)`` over the last three axes, float32."""
    batch = np.asarray(batch, dtype=np.float32)
    spectrum = scipy.fft.rfftn(batch, axes=_AXES)
    spectrum *= weights
    return scipy.fft.irfftn(spectrum, s=batch.shape[-3:], axes=_AXES).astype(np.float32, copy=False)


def apply_wedge(batch, mask, measured_weight=1.0, missing_weight=0.0):
    """Multiply the spectrum by ``measured_weight * M + missing_weight * (1 - M)``.

    Parameters
    ----------
    batch : ndarray, shape (nz, ny, nx) or (B, nz, ny, nx)
        Real volume(s) ``[z, y, x]``.
    mask : ndarray, shape (nz, 1, nx // 2 + 1) or (B, nz, 1, nx // 2 + 1)
        ``rfftn``-layout wedge mask(s) (:func:`wedge_masks`); a single mask is
        used for every volume of the batch.
    measured_weight, missing_weight : float
        ``(1, 0)`` keeps the measured region (simulates the missing wedge);
        ``(0, 1)`` keeps only the missing wedge and the out-of-circle corners.

    Returns
    -------
    ndarray of float32, shape of ``batch``
    """
    mask = np.asarray(mask, dtype=np.float32)
    if (measured_weight, missing_weight) != (1.0, 0.0):
        mask = measured_weight * mask + missing_weight * (1.0 - mask)
    return _filter(batch, mask)


def merge(original, prediction, mask):
    """Measured region from ``original``, the rest from ``prediction`` (spec §3.4.4 step 3).

    Equals ``apply_wedge(prediction, mask, 0, 1) + apply_wedge(original, mask, 1, 0)``
    with one inverse FFT.

    Parameters
    ----------
    original, prediction : ndarray, shape (nz, ny, nx) or (B, nz, ny, nx)
        Normalised original subtomogram(s) and the network's previous prediction(s).
    mask : ndarray
        ``rfftn``-layout wedge mask(s), as for :func:`apply_wedge`.

    Returns
    -------
    ndarray of float32, shape of ``original``
    """
    original = np.asarray(original, dtype=np.float32)
    prediction = np.asarray(prediction, dtype=np.float32)
    if original.shape != prediction.shape:
        raise ValueError(f"merge: shapes differ, {original.shape} vs {prediction.shape}")
    mask = np.asarray(mask, dtype=np.float32)
    measured = scipy.fft.rfftn(original, axes=_AXES)
    missing = scipy.fft.rfftn(prediction, axes=_AXES)
    spectrum = missing + mask * (measured - missing)
    return scipy.fft.irfftn(spectrum, s=original.shape[-3:], axes=_AXES).astype(np.float32, copy=False)

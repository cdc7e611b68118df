"""The rfftn frequency grid and the reading of correlation curves, shared by evaluation and predict.

Volumes are indexed ``[z, y, x]``; their spectra are those of :func:`numpy.fft.rfftn` (half of Fourier
space along X). Frequencies are in cycles per voxel (0 to 0.5 along an axis), so non-cubic volumes are
handled physically; a pixel size in Å turns them into 1/Å. Pure numpy.
"""

import numpy as np


def rfft_frequencies(shape):
    """``(kz, ky, kx)``: the frequencies of the ``rfftn`` grid of ``shape`` (cycles per voxel), broadcastable.

    Returns
    -------
    kz, ky, kx : ndarray of float64, shapes (nz, 1, 1), (1, ny, 1), (1, 1, nx // 2 + 1)
    """
    nz, ny, nx = shape
    return (np.fft.fftfreq(nz)[:, None, None], np.fft.fftfreq(ny)[None, :, None],
            np.fft.rfftfreq(nx)[None, None, :])


def hermitian_weights(nx):
    """Full-space frequencies each rfftn column stands for: 1 at kx = 0 and at Nyquist (even nx), else 2.

    Sums over the ``rfftn`` grid weighted so equal those over the full :func:`numpy.fft.fftn`.

    Returns
    -------
    ndarray of float64, shape (nx // 2 + 1,)
    """
    weights = np.full(nx // 2 + 1, 2.0)
    weights[0] = 1.0
    if nx % 2 == 0:
        weights[-1] = 1.0
    return weights


def resolution_at(frequency, fsc, threshold, pixel_size, low_frequency=0.0):
    """Resolution (Å) where an FSC curve first falls below ``threshold``.

    The crossing frequency is interpolated linearly between the last shell at
    or above the threshold and the first below it; shells without samples
    (NaN) and shells below ``low_frequency`` are skipped.

    Parameters
    ----------
    frequency : ndarray, shape (n,)
        Shell frequencies in cycles per voxel, ascending.
    fsc : ndarray, shape (n,)
    threshold : float
    pixel_size : float
        Å per voxel.
    low_frequency : float
        Cycles per voxel; shells below it are not searched. The lowest shells
        of a cone hold few samples (18 in the first Z shell of a 64x192x192
        volume, 2 in that of a 96x160x160 one), so their FSC is mostly chance.

    Returns
    -------
    resolution : float
        ``pixel_size / crossing frequency``. If the first shell searched is already
        below the threshold, that shell's resolution; if the
        curve never falls below, the Nyquist-limited resolution of the last shell.
    crossed : bool
        False when the curve never falls below the threshold.
    """
    frequency, fsc = np.asarray(frequency), np.asarray(fsc)
    valid = np.isfinite(fsc) & (frequency >= low_frequency)
    frequency, fsc = frequency[valid], fsc[valid]
    if frequency.size == 0:
        return float("nan"), False
    below = np.nonzero(fsc < threshold)[0]
    if below.size == 0:
        return float(pixel_size / frequency[-1]), False
    i = below[0]
    if i == 0:
        return float(pixel_size / frequency[0]), True
    f0, f1, c0, c1 = frequency[i - 1], frequency[i], fsc[i - 1], fsc[i]
    crossing = f0 + (c0 - threshold) * (f1 - f0) / (c0 - c1)
    return float(pixel_size / crossing), True

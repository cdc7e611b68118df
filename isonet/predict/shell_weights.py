"""Wiener weights per spatial frequency, from the agreement of two independent estimates.

A network of the halves method predicts each half tomogram; the noise of the two outputs is
independent, so their Fourier shell correlation ``F`` estimates, shell by shell, the fraction of
an output that is signal. The output for the full tomogram, made from both halves, then has the
signal-to-noise ratio ``2F / (1 - F)`` of a sum of two halves (Rosenthal & Henderson 2003, J. Mol.
Biol. 333:721), and the filter that minimises its mean squared error against the specimen is
``SNR / (1 + SNR) = 2F / (1 + F)``. Frequencies where the halves' outputs disagree (noise the
network passed through) are damped; those where they agree are kept.

A tomogram's signal-to-noise ratio depends on the direction as much as on the resolution: every
projection measures the tilt axis (Y), the missing wedge holds only the network's fill. The
correlation is therefore taken, and the weights applied, per shell within each of
:data:`N_CLASSES` classes of Fourier samples: the measured region and the missing wedge
(:func:`isonet.wedge.measured_mask`), each split by the angle to the Y axis (:data:`Y_ANGLES`).

All functions are pure numpy / scipy on volumes indexed ``[z, y, x]`` (Z the beam axis, Y the tilt
axis); frequencies are radial, in cycles per voxel (0 to 0.5 along an axis).
"""

import numpy as np
import scipy.fft

from isonet.fourier_grid import hermitian_weights, rfft_frequencies
from isonet.wedge import measured_mask

#: Upper bounds (degrees) of the classes of angle between a frequency and the Y (tilt) axis.
Y_ANGLES = (30.0, 60.0, 90.0)
#: Classes of Fourier samples: the measured region's by angle to Y, then the missing wedge's.
N_CLASSES = 2 * len(Y_ANGLES)


def _radius_and_class(kz, ky, kx, measured):
    """Radius (cycles per voxel) and class (:data:`N_CLASSES`) of frequencies; ``measured`` broadcastable bool."""
    radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        angle = np.degrees(np.arccos(np.clip(np.abs(ky) / radius, 0.0, 1.0)))
    angle = np.nan_to_num(angle)  # the origin: class 0
    bins = np.minimum(np.searchsorted(Y_ANGLES, angle), len(Y_ANGLES) - 1)
    return radius, np.where(measured, bins, bins + len(Y_ANGLES))


def class_shell_correlation(volume_a, volume_b, tilt_range, shell_width=None):
    """Fourier shell correlation of two volumes, per shell in each class of samples (module docstring).

    Parameters
    ----------
    volume_a, volume_b : ndarray, shape (nz, ny, nx)
        Real volumes of the same shape.
    tilt_range : (float, float)
        Degrees: the measured region (:func:`isonet.wedge.measured_mask`).
    shell_width : float, optional
        Cycles per voxel; default ``1 / min(shape)``, one sample along the shortest axis.

    Returns
    -------
    centres : ndarray, shape (n,)
        Shell centres in cycles per voxel, from 0 to the largest radius present.
    fsc : ndarray, shape (N_CLASSES, n)
        Correlation per class and shell, in [-1, 1] (0 where a class has no sample in a shell).
    """
    if volume_a.shape != volume_b.shape or volume_a.ndim != 3:
        raise ValueError(f"shell correlation: shapes {volume_a.shape} and {volume_b.shape}: expected equal 3-D shapes")
    width = shell_width or 1.0 / min(volume_a.shape)
    radius, classes = _radius_and_class(*rfft_frequencies(volume_a.shape),
                                        measured_mask(volume_a.shape, *tilt_range, real=True))
    shell = np.rint(radius / width).astype(np.int64)
    n = int(shell.max()) + 1
    index = (np.broadcast_to(classes, shell.shape) * n + shell).ravel()
    counts = np.broadcast_to(hermitian_weights(volume_a.shape[2]), shell.shape).ravel()
    a = scipy.fft.rfftn(np.asarray(volume_a, dtype=np.float32)).ravel()
    b = scipy.fft.rfftn(np.asarray(volume_b, dtype=np.float32)).ravel()

    def sums(values):
        return np.bincount(index, values * counts, minlength=N_CLASSES * n).reshape(N_CLASSES, n)

    cross = sums(np.real(a * np.conj(b)))
    power = sums(np.abs(a) ** 2) * sums(np.abs(b) ** 2)
    fsc = np.where(power > 0, cross / np.sqrt(np.where(power > 0, power, 1.0)), 0.0)
    return np.arange(n) * width, np.clip(fsc, -1.0, 1.0)


def wiener_weights(fsc):
    """The mean-squared-error filter ``2F / (1 + F)`` of the sum of two halves whose outputs correlate ``F``.

    A negative correlation (no signal, or chance) gives 0.
    """
    agreement = np.clip(np.asarray(fsc, dtype=np.float64), 0.0, 1.0)
    return 2.0 * agreement / (1.0 + agreement)


def filter_by_shell(volume, centres, weights, tilt_range):
    """``volume`` with each Fourier coefficient multiplied by the weight of its class and radius.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
    centres : ndarray, shape (n,)
        Radii in cycles per voxel, increasing.
    weights : ndarray, shape (N_CLASSES, n)
        Weight per class at each radius; linear between radii, the last weight beyond the last radius.
    tilt_range : (float, float)
        Degrees (the classes, :func:`class_shell_correlation`).

    Returns
    -------
    ndarray of float32, shape (nz, ny, nx)
    """
    spectrum = scipy.fft.rfftn(np.asarray(volume, dtype=np.float32))
    kz, ky, kx = rfft_frequencies(volume.shape)
    measured = measured_mask(volume.shape, *tilt_range, real=True)
    for z in range(spectrum.shape[0]):  # plane by plane: no array as large as the spectrum
        radius, classes = _radius_and_class(kz[z:z + 1], ky, kx, measured[z:z + 1])
        plane = np.zeros(radius.shape, dtype=np.float32)
        for label in range(N_CLASSES):
            plane += np.where(classes == label, np.interp(radius, centres, weights[label]), 0.0).astype(np.float32)
        spectrum[z] *= plane[0]
    return scipy.fft.irfftn(spectrum, s=volume.shape).astype(np.float32, copy=False)

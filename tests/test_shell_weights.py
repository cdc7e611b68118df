"""Wiener weights from the agreement of two estimates (isonet/predict/shell_weights.py): known answers."""

import numpy as np
import pytest

from isonet.fourier_grid import rfft_frequencies
from isonet.predict.shell_weights import (N_CLASSES, Y_ANGLES, _radius_and_class, class_shell_correlation,
                                          filter_by_shell, wiener_weights)
from isonet.wedge import measured_mask

SHAPE = (32, 48, 40)  # z, y, x: not cubic
TILTS = (-50.0, 60.0)
#: Class means over the middle shells of 20 seeds spread by 0.025 at most (standard deviation): 4 of them.
CORRELATION_TOLERANCE = 0.1


def _pair(noise, seed=0, wedge_signal=True, shape=SHAPE):
    """Two estimates of one white signal with independent noise of variance ``noise`` (signal variance 1)."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(shape)
    a = signal + np.sqrt(noise) * rng.standard_normal(shape)
    b_signal = signal
    if not wedge_signal:  # b holds nothing of the signal in the missing wedge
        spectrum = np.fft.rfftn(signal) * measured_mask(shape, *TILTS, real=True)
        b_signal = np.fft.irfftn(spectrum, s=shape, axes=(0, 1, 2))
    return a, b_signal + np.sqrt(noise) * rng.standard_normal(shape)


def test_correlation_matches_the_full_spectrum_brute_force():
    shape = (25, 41, 33)  # odd: no Nyquist plane, where the sign of the tilt angle is a convention
    a, b = _pair(1.0, shape=shape)
    centres, fsc = class_shell_correlation(a, b, TILTS)
    # the same sums over the full (not half) spectrum
    kz, ky = np.fft.fftfreq(shape[0])[:, None, None], np.fft.fftfreq(shape[1])[None, :, None]
    kx = np.fft.fftfreq(shape[2])[None, None, :]
    measured = measured_mask(shape, *TILTS)
    radius, classes = _radius_and_class(kz, ky, kx, measured)
    index = (np.broadcast_to(classes, radius.shape) * len(centres) + np.rint(radius * min(shape))).astype(int).ravel()
    fa, fb = np.fft.fftn(a).ravel(), np.fft.fftn(b).ravel()
    cross = np.bincount(index, np.real(fa * np.conj(fb)), minlength=fsc.size)
    power = np.bincount(index, np.abs(fa) ** 2, minlength=fsc.size) * np.bincount(index, np.abs(fb) ** 2,
                                                                                  minlength=fsc.size)
    expected = np.where(power > 0, cross / np.sqrt(np.where(power > 0, power, 1)), 0).reshape(fsc.shape)
    np.testing.assert_allclose(fsc, expected, atol=1e-6)


def test_known_signal_to_noise_ratio_gives_its_correlation_and_weight():
    a, b = _pair(1.0)  # SNR 1 per estimate: FSC 1 / (1 + 1) = 0.5, weight 2 * 0.5 / 1.5 = 2 / 3
    centres, fsc = class_shell_correlation(a, b, TILTS)
    middle = (centres > 0.15) & (centres < 0.45)
    for label in range(N_CLASSES):
        assert fsc[label, middle].mean() == pytest.approx(0.5, abs=CORRELATION_TOLERANCE), label
    assert wiener_weights(fsc)[2, middle].mean() == pytest.approx(2 / 3, abs=CORRELATION_TOLERANCE)


def test_the_missing_wedge_gets_its_own_weights():
    a, b = _pair(0.25, wedge_signal=False)  # measured: FSC 0.8; wedge: b holds no signal, FSC 0
    centres, fsc = class_shell_correlation(a, b, TILTS)
    middle = (centres > 0.15) & (centres < 0.45)
    n = len(Y_ANGLES)
    assert np.all(np.abs(fsc[:n, middle].mean(axis=1) - 0.8) < CORRELATION_TOLERANCE)
    assert np.all(np.abs(fsc[n:, middle].mean(axis=1)) < CORRELATION_TOLERANCE)


def test_weights_are_the_wiener_filter_of_the_sum_of_two_halves():
    np.testing.assert_allclose(wiener_weights([-0.2, 0.0, 0.5, 1.0]), [0.0, 0.0, 2 / 3, 1.0])


def test_filter_by_shell_applies_each_class_its_weights():
    rng = np.random.default_rng(3)
    volume = rng.standard_normal(SHAPE).astype(np.float32)
    centres = np.linspace(0.0, 0.9, 10)
    np.testing.assert_allclose(filter_by_shell(volume, centres, np.ones((N_CLASSES, 10)), TILTS), volume,
                               atol=1e-5)
    weights = np.ones((N_CLASSES, 10))
    weights[len(Y_ANGLES):] = 0.0  # the missing wedge removed, the measured region kept
    filtered = filter_by_shell(volume, centres, weights, TILTS)
    measured = measured_mask(SHAPE, *TILTS, real=True)
    original, result = np.fft.rfftn(volume), np.fft.rfftn(filtered)
    inside = np.broadcast_to(measured, result.shape)
    np.testing.assert_allclose(result[inside], original[inside], rtol=1e-4, atol=1e-3)
    assert np.abs(result[~inside]).max() < 1e-3
    # a weight that falls with the radius: each sample scaled by the weight at its radius
    falling = np.tile(1.0 - centres, (N_CLASSES, 1))
    kz, ky, kx = rfft_frequencies(SHAPE)
    radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    np.testing.assert_allclose(np.fft.rfftn(filter_by_shell(volume, centres, falling, TILTS)),
                               original * np.interp(radius, centres, 1.0 - centres), rtol=1e-4, atol=1e-3)

"""Conventions checked on real tomograms (tests/data/real): axis order, the wedge mask, the density sign.

The crops are real reconstructions (tilt axis Y, about +-60 degrees): their Fourier power must be
low where isonet.wedge says the missing wedge is, and the same mask placed as if the tilt axis were X
must fit clearly worse.
"""

import os

import numpy as np
import pytest

from isonet.io.mrc import read_sample, read_volume
from isonet.preprocess.contrast import UNDECIDED_SKEW, estimate_bright_density
from isonet.wedge import measured_mask


def _log_power_contrast(volume):
    """Mean log power inside the measured region minus inside the missing wedge (5° guard bands),
    over frequencies 0.05-0.3 cycles/voxel, for a tilt series of +-60 degrees about Y."""
    volume = volume - volume.mean()
    power = np.abs(np.fft.rfftn(volume)) ** 2
    kz = np.fft.fftfreq(volume.shape[0])[:, None, None]
    ky = np.fft.fftfreq(volume.shape[1])[None, :, None]
    kx = np.fft.rfftfreq(volume.shape[2])[None, None, :]
    radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    band = (radius > 0.05) & (radius < 0.3)
    measured = band & measured_mask(volume.shape, -55, 55, real=True)
    missing = band & ~measured_mask(volume.shape, -65, 65, real=True)
    return np.log(power[measured]).mean() - np.log(power[missing]).mean()


@pytest.mark.parametrize("name", ["mt13pf_crop.mrc", "mt14pf_crop.mrc"])
def test_wedge_mask_matches_real_tomograms(real_data_dir, name):
    volume = read_volume(os.path.join(real_data_dir, name))
    assert volume.shape[0] < min(volume.shape[1:])  # [z, y, x]: the thin axis comes first
    contrast = _log_power_contrast(volume)
    as_if_tilted_about_x = _log_power_contrast(np.ascontiguousarray(volume.transpose(0, 2, 1)))
    assert contrast > 2.0  # measured region carries > 7x the power of the wedge
    assert contrast > 2 * as_if_tilted_about_x


@pytest.mark.parametrize("name", ["mt13pf_crop.mrc", "mt14pf_crop.mrc"])
def test_density_sign_of_real_tomograms_is_bright(real_data_dir, name):
    """The crops are contrast-inverted (bright density): the estimate says so, and says dark once negated."""
    path = os.path.join(real_data_dir, name)
    bright, skew = estimate_bright_density(read_volume(path))
    assert bright is True and skew > 3 * UNDECIDED_SKEW
    assert estimate_bright_density(-read_volume(path)) == (False, pytest.approx(-skew, abs=1e-6))
    assert estimate_bright_density(read_sample(path))[0] is True  # the cheap sample prepare_star uses


def test_density_sign_of_pure_noise_is_undecided(rng):
    assert estimate_bright_density(rng.standard_normal((24, 48, 48)))[0] is None

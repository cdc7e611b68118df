"""Fourier shells/cones/FSC (isonet.evaluation.fourier) and fsc3d (isonet.evaluation.fsc)."""

import json

import numpy as np
import pytest
from conftest import run_cli
from scipy.ndimage import gaussian_filter

from isonet.errors import IsonetError
from isonet.evaluation import fourier
from isonet.evaluation.fsc import cubic_crop_corners, fsc3d
from isonet.fourier_grid import resolution_at
from isonet.io.mrc import read_volume, write_volume
from isonet.wedge import measured_mask

CURVES = ("x", "y", "z", "measured", "missing_wedge", "all")


def smooth_volume(rng, shape, sigma=1.0):
    """Random volume with a decaying spectrum, like a (very) blurred specimen."""
    return gaussian_filter(rng.standard_normal(shape), sigma).astype(np.float32)


def wedge_filtered(volume, tilt_min=-60.0, tilt_max=60.0):
    """Volume with every unmeasured frequency (isonet.wedge convention) set to 0."""
    keep = measured_mask(volume.shape, tilt_min, tilt_max, real=True)
    return np.fft.irfftn(np.fft.rfftn(volume) * keep, s=volume.shape, axes=(0, 1, 2)).astype(np.float32)


def test_pearson_and_counts_match_full_fft(rng):
    """Hermitian weighting: rfftn sums equal full-space sums, for odd and even nx."""
    for shape in [(16, 20, 18), (16, 18, 17)]:
        a, b = rng.standard_normal(shape), rng.standard_normal(shape)
        samples = fourier.fourier_samples(a, b)
        assert fourier.correlation(samples) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-6)
        kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(n) for n in shape), indexing="ij")
        shell = np.rint(np.sqrt(kz ** 2 + ky ** 2 + kx ** 2) * min(shape))
        expected = [np.count_nonzero(shell == i) for i in range(1, min(shape) // 2 + 1)]
        _, count = fourier.shell_fsc(samples)
        np.testing.assert_array_equal(count, expected)
        np.testing.assert_allclose(fourier.shell_frequencies(shape), np.arange(1, 9) / 16)


def test_fsc_of_volume_with_itself_is_one(rng):
    volume = smooth_volume(rng, (24, 32, 32))
    result = fsc3d(volume, 2.5 * volume, pixel_size=10.0, n_directions=30)
    for name in CURVES:
        fsc, count = result["curves"][name]
        present = count > 0
        assert present[-1] and present.sum() >= len(fsc) - 1, name
        np.testing.assert_allclose(fsc[present], 1.0, atol=1e-5, err_msg=name)
        assert result["resolution"][name][0.143] == pytest.approx(20.0)  # never crosses: Nyquist
    assert result["map"].shape == volume.shape
    nz, ny, nx = volume.shape
    kz, ky, kx = np.meshgrid(*((np.arange(n) - n // 2) / n for n in volume.shape), indexing="ij")
    inside = np.rint(np.sqrt(kz ** 2 + ky ** 2 + kx ** 2) * min(volume.shape)) <= min(volume.shape) // 2
    np.testing.assert_allclose(result["map"][inside], 1.0, atol=1e-5)
    assert np.all(result["map"][~inside] == 0)
    assert result["z_over_x"][0.143] == pytest.approx(1.0)


def test_fsc_of_independent_noise_is_within_three_sigma(rng):
    shape = (32, 32, 32)
    a, b = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    result = fsc3d(a, b, pixel_size=1.0, n_directions=20)
    for name in CURVES:
        fsc, count = result["curves"][name]
        present = count > 0
        bound = 3.0 / np.sqrt(count[present])
        assert np.all(np.abs(fsc[present]) <= bound), (name, fsc[present], bound)
        assert np.abs(fsc[present][-8:]).max() < 0.25, name  # big outer shells are close to 0
    assert np.abs(result["map"]).max() <= 1.0


def measured_copy(rng, volume, tilt_min=-60.0, tilt_max=60.0):
    """Wedge-filtered copy plus faint white noise (1 % of the std), as a measurement would have.

    Without noise the missing region would hold float rounding residue only, whose
    correlation with anything is arbitrary (correlations ignore the scale).
    """
    noise = rng.standard_normal(volume.shape).astype(np.float32) * 0.01 * volume.std()
    return wedge_filtered(volume, tilt_min, tilt_max) + noise


def test_wedge_filtered_copy_is_high_in_x_and_y_low_in_z(rng):
    volume = smooth_volume(rng, (32, 32, 32), sigma=0.8)
    result = fsc3d(volume, measured_copy(rng, volume), pixel_size=10.0, n_directions=60)
    curves = {name: result["curves"][name][0] for name in CURVES}
    counts = {name: result["curves"][name][1] for name in CURVES}
    assert curves["x"].min() > 0.99  # 30° cone around X lies inside the measured +-60° range
    assert curves["y"].min() > 0.5  # the Y cone crosses the wedge: about sqrt(2/3) of the power kept
    assert curves["measured"].min() > 0.99
    for name in ("z", "missing_wedge"):  # the Z cone lies inside the missing wedge
        assert np.all(np.abs(curves[name]) <= 3 / np.sqrt(counts[name])), name
        assert np.abs(curves[name]).mean() < 0.1, name
    assert result["resolution"]["x"][0.143] == pytest.approx(20.0)
    # below 0.143 at the first shell searched: the third (the two lowest are left out by default)
    assert result["low_resolution"] == pytest.approx(10.0 * 32 / 2.5)
    assert result["resolution"]["z"][0.143] == pytest.approx(10.0 * 32 / 3)
    assert result["z_over_x"][0.143] == pytest.approx(32 / 3 / 2)
    everything = fsc3d(volume, measured_copy(rng, volume), pixel_size=10.0, n_directions=4, low_resolution=1e6)
    assert everything["resolution"]["z"][0.143] == pytest.approx(320.0)  # searched from the first shell
    # 3-D map: along kx (centre row of the centred layout) high, along kz low (cones of directions
    # a few degrees off Z reach into the measured region, hence not 0).
    fsc_map = result["map"]
    assert fsc_map[16, 16, 20:31].min() > 0.99
    assert fsc_map[20:31, 16, 16].mean() < 0.4


def test_asymmetric_tilt_range_moves_the_regions(rng):
    volume = smooth_volume(rng, (32, 32, 32), sigma=0.8)
    filtered = measured_copy(rng, volume, -50.0, 66.0)
    right = fsc3d(volume, filtered, 10.0, tilt_min=-50, tilt_max=66, n_directions=10)["curves"]
    wrong = fsc3d(volume, filtered, 10.0, tilt_min=-60, tilt_max=60, n_directions=10)["curves"]
    assert right["measured"][0].min() > 0.99 and np.abs(right["missing_wedge"][0]).mean() < 0.1
    assert wrong["measured"][0].mean() < 0.985  # -55..-50 counted as measured, but was not


def test_resolution_at_interpolates_the_crossing():
    frequency = np.array([0.1, 0.2, 0.3, 0.4])
    fsc = np.array([0.9, 0.7, 0.3, 0.1])
    assert resolution_at(frequency, fsc, 0.5, 2.0) == (pytest.approx(2.0 / 0.25), True)
    assert resolution_at(frequency, np.ones(4), 0.5, 2.0) == (pytest.approx(5.0), False)
    assert resolution_at(frequency, np.zeros(4), 0.5, 2.0) == (pytest.approx(20.0), True)
    with_gap = np.array([0.9, np.nan, 0.1, 0.0])
    assert resolution_at(frequency, with_gap, 0.5, 1.0)[0] == pytest.approx(1.0 / 0.2)
    low_dip = np.array([-0.4, 0.9, 0.3, 0.1])  # a chance dip in the first shell
    assert resolution_at(frequency, low_dip, 0.5, 2.0) == (pytest.approx(20.0), True)
    assert resolution_at(frequency, low_dip, 0.5, 2.0, low_frequency=0.15) == (
        pytest.approx(2.0 / (0.2 + 0.1 * 0.4 / 0.6)), True)


def test_fsc_map_interpolates_direction_and_shell():
    directions = fourier.hemisphere_directions(200)
    n_shells = 8
    # Conical FSC = |z component of the direction| at every shell.
    curves = np.repeat(np.abs(directions[:, :1]), n_shells, axis=1)
    fsc_map = fourier.fsc_map((16, 16, 16), directions, curves, cone_angle=20.0)
    assert fsc_map[8 + 6, 8, 8] > 0.9  # along kz
    assert fsc_map[8, 8, 8 + 6] < 0.15 and fsc_map[8, 8 + 6, 8] < 0.15  # along kx, ky
    np.testing.assert_allclose(fsc_map[8 + 5, 8, 8], fsc_map[8 - 5, 8, 8], atol=1e-6)  # k and -k
    assert fsc_map[0, 0, 0] == 0.0  # corner beyond Nyquist
    # Independent of direction: the map is the curve of each voxel's shell.
    ramp = np.tile(np.arange(1, n_shells + 1) / n_shells, (len(directions), 1))
    fsc_map = fourier.fsc_map((16, 16, 16), directions, ramp, cone_angle=20.0)
    assert fsc_map[8, 8, 8 + 3] == pytest.approx(3 / 8) and fsc_map[8 - 5, 8 + 3, 8] == pytest.approx(6 / 8)


def test_cubic_crops():
    assert cubic_crop_corners((16, 64, 64), 4) == [(0, 0, 0), (0, 16, 16), (0, 32, 32), (0, 48, 48)]
    assert len(cubic_crop_corners((16, 40, 64), 100)) == 3 * 4  # capped at the distinct cubes
    corners = cubic_crop_corners((16, 40, 64), 5)
    assert all(y + 16 <= 40 and x + 16 <= 64 and z == 0 for z, y, x in corners) and len(set(corners)) == 5


def test_cubic_crops_average_the_curves(rng):
    volume = smooth_volume(rng, (16, 48, 48))
    noisy = volume + 0.3 * rng.standard_normal(volume.shape).astype(np.float32)
    result = fsc3d(volume, noisy, 10.0, cubic_crops=3, n_directions=10)
    assert result["crops"] == [(0, 0, 0), (0, 16, 16), (0, 32, 32)]
    assert result["map"].shape == (16, 16, 16)
    expected = np.mean([fsc3d(volume[:, y:y + 16, x:x + 16], noisy[:, y:y + 16, x:x + 16], 10.0, n_directions=10)
                        ["curves"]["z"][0] for _, y, x in result["crops"]], axis=0)
    np.testing.assert_allclose(result["curves"]["z"][0], expected, atol=1e-12)


def test_sign_mask_and_shape_errors(rng):
    volume = smooth_volume(rng, (16, 16, 16))
    flipped = fsc3d(volume, -volume, 1.0, n_directions=5)
    assert flipped["sign_flipped"] and np.allclose(flipped["curves"]["all"][0], 1.0)
    # A mask hiding where the volumes differ makes them identical.
    other = volume.copy()
    other[:, :, 8:] = rng.standard_normal((16, 16, 8))
    mask = np.zeros_like(volume)
    mask[:, :, :8] = 1.0
    assert np.allclose(fsc3d(volume, other, 1.0, mask=mask, n_directions=5)["curves"]["all"][0], 1.0)
    with pytest.raises(IsonetError, match="shape"):
        fsc3d(volume, volume[:8], 1.0)


def test_fsc3d_cli(tmp_path, rng, run_main):
    volume = smooth_volume(rng, (16, 32, 32))
    write_volume(tmp_path / "a.mrc", volume, voxel_size=8.0)
    write_volume(tmp_path / "b.mrc", measured_copy(rng, volume), voxel_size=8.0)
    result = run_cli("fsc3d", "a.mrc", "b.mrc", "--out", "fsc/half", "--cubic_crops", "2", "--n_directions", "20",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][0])
    assert printed["pixel_size"] == 8.0 and printed["crops"] == [[0, 0, 0], [0, 16, 16]]
    assert printed["resolution"]["x"]["0.143"] == pytest.approx(16.0)
    assert printed["resolution"]["z"]["0.143"] > 2 * 16.0 and printed["z_over_x"]["0.143"] > 2
    assert printed["low_resolution"] == pytest.approx(8.0 * 16 / 2.5)  # of the 16^3 crops
    saved = json.loads((tmp_path / "fsc/half.json").read_text())
    assert saved["resolution"] == printed["resolution"] and len(saved["curves"]["z"]["fsc"]) == 8
    assert read_volume(tmp_path / "fsc/half_map.mrc").shape == (16, 16, 16)
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "fsc/half.png").shape[:2] == (500, 800)
    status, _, err = run_main("fsc3d", "a.mrc", "b.mrc", "--cone_angle", "0", cwd=tmp_path)
    assert status == 2 and err.startswith("ERROR: --cone_angle")
    status, _, err = run_main("fsc3d", "a.mrc", "b.mrc", "--low_resolution", "10", cwd=tmp_path)  # Nyquist: 16 Å
    assert status == 2 and err.startswith("ERROR: --low_resolution (10 Å) must be coarser than Nyquist (16 Å")

"""Tests of ``isonet.py simulate``: scene, acquisition geometry, reconstruction and the written dataset."""

import os

import numpy as np
import pytest
from conftest import run_cli
from scipy import ndimage

from isonet.io.mrc import read_header, read_volume
from isonet.io.star import read_star, resolve_path
from isonet.simulate import lateral_padding, run_simulation, simulate_tomogram
from isonet.simulate.acquisition import (apply_ctf, project, ramp_filter, sirt, tilt_angles,
                                         weighted_backprojection)
from isonet.simulate.phantom import SCENES, Specimen, make_specimen
from isonet.wedge import measured_mask, tilt_angle_map
from isonet.ctf import ctf

SMALL = (32, 64, 64)


def band_power(volume, phi_low, phi_high, k_low=0.08, k_high=0.45):
    """Mean 3-D FFT power of frequencies with tilt angle in [phi_low, phi_high] and |k| in a band."""
    power = np.abs(np.fft.fftn(volume - volume.mean())) ** 2
    phi = np.broadcast_to(tilt_angle_map(volume.shape), volume.shape)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(n) for n in volume.shape), indexing="ij")
    radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    select = (phi >= phi_low) & (phi <= phi_high) & (radius > k_low) & (radius < k_high)
    return power[select].mean()


def mask_fit(volume, tilt_min, tilt_max, k_low=0.08, k_high=0.45):
    """Mean FFT power inside isonet.wedge.measured_mask over that outside it, for |k| in a band.

    The band leaves out the lowest frequencies, where the finite slab leaks power
    into every direction, and the corners beyond Nyquist.
    """
    power = np.abs(np.fft.fftn(volume - volume.mean())) ** 2
    inside = np.broadcast_to(measured_mask(volume.shape, tilt_min, tilt_max), volume.shape)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(n) for n in volume.shape), indexing="ij")
    radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    band = (radius > k_low) & (radius < k_high)
    return power[band & inside].mean() / power[band & ~inside].mean()


def correlation(a, b, sigma=0.0):
    if sigma:
        a, b = ndimage.gaussian_filter(a, sigma), ndimage.gaussian_filter(b, sigma)
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def simulate(tilt_min, tilt_max, seed=0, snr=0.5, **kwargs):
    return simulate_tomogram(SMALL, 10.0, tilt_angles(tilt_min, tilt_max, 3.0), np.random.default_rng(seed),
                             snr=snr, **kwargs)


# ---------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("theta", [-50.0, 0.0, 30.0, 66.0, 90.0])
def test_point_projects_where_the_convention_says(theta):
    """A voxel at (z, x) offsets lands on t = x cos(theta) + z sin(theta) (isonet.wedge's convention)."""
    volume = np.zeros((33, 3, 65), np.float32)
    dz, dx = 9, -13
    volume[16 + dz, 1, 32 + dx] = 1.0
    row = project(volume, [theta])[0, 1]
    expected = dx * np.cos(np.radians(theta)) + dz * np.sin(np.radians(theta))
    centroid = np.sum(row * np.arange(65)) / row.sum() - 32
    # Linear interpolation blurs a single voxel by up to one pixel; a sign error would move it by many.
    assert centroid == pytest.approx(expected, abs=0.4)


def test_projection_is_line_integral():
    volume = np.random.default_rng(0).random((12, 5, 20)).astype(np.float32)
    projections = project(volume, [0.0, 90.0], detector_width=20)
    np.testing.assert_allclose(projections[0], volume.sum(axis=0), rtol=1e-5)
    # At 90 degrees the ray runs along -x and t = z: detector pixels 4..15 see z = 0..11.
    np.testing.assert_allclose(projections[1][:, 4:16], volume.sum(axis=2).T, rtol=1e-5)


def test_ramp_filter_is_abs_frequency():
    response = ramp_filter(256)
    k = np.abs(np.fft.fftfreq(256))
    assert response[0] == pytest.approx(0.0, abs=1e-3)
    assert np.max(np.abs(response[1:100] - k[1:100])) < 3e-3
    assert ramp_filter(256, "hamming")[128] == pytest.approx(0.08 * 0.5, abs=3e-3)


def test_full_range_wbp_and_sirt_recover_a_blob():
    z, x = np.mgrid[:32, :48]
    blob = np.exp(-((z - 14.0) ** 2 + (x - 26.0) ** 2) / (2 * 3.0 ** 2)).astype(np.float32)
    volume = np.repeat(blob[:, None, :], 2, axis=1)
    angles = tilt_angles(-90, 87, 3)
    projections = project(volume, angles, detector_width=64)
    wbp = weighted_backprojection(projections, angles, volume.shape)
    assert wbp.max() == pytest.approx(1.0, abs=0.1)
    assert correlation(wbp, volume) > 0.98
    assert correlation(sirt(projections, angles, volume.shape, iterations=10), volume) > 0.98


def test_ctf_multiplies_the_projection_spectrum():
    projections = np.random.default_rng(2).standard_normal((1, 32, 48)).astype(np.float32)
    filtered = apply_ctf(projections, pixel_size=10.0, defocus=30000.0)
    ky, kx = np.fft.fftfreq(32)[:, None], np.fft.rfftfreq(48)[None, :]
    expected = ctf(np.sqrt(ky ** 2 + kx ** 2) / 10.0, 30000.0)
    ratio = np.fft.rfft2(filtered[0]) / np.fft.rfft2(projections[0])
    np.testing.assert_allclose(ratio.real, expected, atol=1e-4)


def test_lateral_padding_covers_the_steepest_tilt():
    assert lateral_padding((64, 256, 256), tilt_angles(-60, 60, 3)) == 128  # capped at nx / 2
    assert lateral_padding((64, 256, 256), tilt_angles(-30, 30, 3)) == 39
    assert lateral_padding((64, 256, 256), [0.0]) == 0


# ------------------------------------------------------------------------------------------------ scene
def test_scene_is_positive_inside_the_slab_and_holds_every_object_type():
    density, counts = make_specimen((64, 256, 256), 10.0, np.random.default_rng(0))
    assert density.dtype == np.float32 and density.min() >= 0.0
    margin = int(round(0.1 * 64))
    assert density[:margin].max() == 0.0 and density[-margin:].max() == 0.0
    for kind in ("membrane sheet", "vesicle", "microtubule", "actin filament", "ribosome", "gold bead",
                 "small protein"):
        assert counts.get(kind, 0) >= 1, kind
    assert counts["membrane sheet"] == 2
    assert density.max() == pytest.approx(8.0, rel=0.02)  # gold


@pytest.mark.parametrize("scene, kinds", [
    ("cytosol", {"small protein", "ribosome", "barrel", "condensate"}),
    ("membranes", {"membrane sheet", "vesicle", "double membrane"}),
    ("filaments", {"filament bundle", "microtubule", "actin filament"}),
    ("sparse", {"ribosome", "barrel", "small protein"}),
])
def test_scenes_hold_their_object_kinds(scene, kinds):
    density, counts = make_specimen((64, 128, 128), 10.0, np.random.default_rng(0), scene=scene)
    assert kinds <= set(counts), counts
    assert density.min() >= 0 and density[:3].max() == 0 and density[-3:].max() == 0


def test_scenes_differ_in_what_they_hold():
    counts = {scene: make_specimen((64, 128, 128), 10.0, np.random.default_rng(0), scene=scene)[1]
              for scene in SCENES}
    proteins = {scene: c.get("small protein", 0) for scene, c in counts.items()}
    # Crowded cytosol: several times the proteins of the tutorial's cell; sparse: fewer.
    assert proteins["cytosol"] > 2 * proteins["cell"] > 2 * proteins["sparse"]
    assert counts["membranes"]["membrane sheet"] >= 3 and "membrane sheet" not in counts["sparse"]
    assert counts["filaments"]["actin filament"] > 3 * counts["cell"].get("actin filament", 0)


def test_objects_do_not_interpenetrate():
    specimen = Specimen((24, 40, 40), 10.0, 2, np.random.default_rng(0))
    sphere = lambda dz, dy, dx: (np.sqrt(dz * dz + dy * dy + dx * dx) < 4).astype(np.float32)  # noqa: E731
    assert specimen.place("ball", sphere, [4, 4, 4], centre=[12, 20, 20])
    assert not specimen.place("ball", sphere, [4, 4, 4], centre=[12, 20, 25])
    assert specimen.place("ball", sphere, [4, 4, 4], centre=[12, 20, 30])
    assert specimen.counts == {"ball": 2} and specimen.density.max() == 1.0


def test_object_sizes_scale_with_pixel_size():
    def gold_diameter(pixel_size):
        specimen = Specimen((40, 40, 40), pixel_size, 2, np.random.default_rng(0))
        specimen.add_gold_bead()
        # Along Z the bead is never cut by the volume edge (it must fit inside the slab).
        return (specimen.density.max(axis=(1, 2)) > 4.0).sum() if specimen.counts else 0

    assert gold_diameter(10.0) == pytest.approx(10, abs=1)
    assert gold_diameter(5.0) == pytest.approx(20, abs=1)


# ------------------------------------------------------------------------------------ tomogram: wedge
def test_symmetric_wedge_lies_where_the_tilt_range_says():
    tomogram, _, _ = simulate(-60, 60)
    assert mask_fit(tomogram, -60, 60) > 2
    # Away from the wedge edges (5 degree guard band) the contrast is stronger.
    measured = band_power(tomogram, -55, 55)
    assert measured / band_power(tomogram, 65, 90) > 4
    assert measured / band_power(tomogram, -90, -65) > 4


def test_asymmetric_wedge_has_the_right_sign():
    tomogram, _, _ = simulate(-50, 66)
    right, mirrored = mask_fit(tomogram, -50, 66), mask_fit(tomogram, -66, 50)
    assert right > 3
    assert right > 3 * mirrored
    # Tilt angles 52..64 were measured, -64..-52 were not.
    assert band_power(tomogram, 52, 64) > 5 * band_power(tomogram, -64, -52)


def test_full_range_reconstruction_matches_ground_truth_better_than_a_wedge():
    full, truth, _ = simulate(-90, 90, snr=np.inf)
    wedge, truth_again, _ = simulate(-60, 60, snr=np.inf)
    np.testing.assert_array_equal(truth, truth_again)
    full_score, wedge_score = -correlation(full, truth, 1.0), -correlation(wedge, truth, 1.0)
    assert full_score > 0.8
    assert wedge_score < full_score - 0.2


def test_tomogram_is_dark_and_ground_truth_positive():
    tomogram, truth, _ = simulate(-60, 60, defocus=30000.0)
    assert tomogram.shape == truth.shape == SMALL
    assert tomogram.dtype == truth.dtype == np.float32
    assert truth.min() >= 0.0 and truth.max() > 0.5
    assert correlation(tomogram, truth, 1.0) < -0.2


def test_same_seed_same_data_other_seed_other_data():
    first = simulate(-60, 60, seed=3, defocus=20000.0)
    again = simulate(-60, 60, seed=3, defocus=20000.0)
    other = simulate(-60, 60, seed=4, defocus=20000.0)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    assert not np.array_equal(first[0], other[0])


# ------------------------------------------------------------------------------------------- halves
def test_halves_have_independent_half_dose_noise_and_average_to_the_tomogram():
    """Half noise: variance twice the full tomogram's, uncorrelated between halves; mean of halves = tomogram."""
    angles = tilt_angles(-60, 60, 3.0)
    tomogram, truth, _, (half1, half2) = simulate_tomogram(SMALL, 10.0, angles, np.random.default_rng(2),
                                                          snr=0.5, halves=True)
    clean, _, _ = simulate_tomogram(SMALL, 10.0, angles, np.random.default_rng(2), snr=np.inf)
    # The halves do not change the tomogram (same random stream up to the halves).
    again, _, _ = simulate_tomogram(SMALL, 10.0, angles, np.random.default_rng(2), snr=0.5)
    np.testing.assert_array_equal(tomogram, again)
    np.testing.assert_allclose((half1 + half2) / 2, tomogram, atol=1e-5 * np.abs(tomogram).max())
    full_noise, noise1, noise2 = tomogram - clean, half1 - clean, half2 - clean
    ratio = noise1.var() / full_noise.var()
    assert ratio == pytest.approx(2.0, rel=0.05) and noise2.var() / full_noise.var() == pytest.approx(2.0, rel=0.05)
    # Independent halves: their difference carries the noise of both, 4x the full power; correlation ~ 0.
    assert (half1 - half2).var() / full_noise.var() == pytest.approx(4.0, rel=0.05)
    assert abs(np.corrcoef(noise1.ravel(), noise2.ravel())[0, 1]) < 0.03


def test_halves_are_deterministic_per_seed():
    angles = tilt_angles(-45, 45, 3.0)
    first = simulate_tomogram(SMALL, 10.0, angles, np.random.default_rng(4), snr=1.0, halves=True)[3]
    again = simulate_tomogram(SMALL, 10.0, angles, np.random.default_rng(4), snr=1.0, halves=True)[3]
    other = simulate_tomogram(SMALL, 10.0, angles, np.random.default_rng(5), snr=1.0, halves=True)[3]
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_without_halves_no_half_folders_or_columns(tmp_path):
    table = run_simulation(str(tmp_path), n_tomos=1, shape=SMALL, seed=1, halves=False)
    assert not any(label.startswith("rlnTomoReconstructedTomogramHalf") for label in table.columns)
    assert not (tmp_path / "tomograms_half1").exists() and not (tmp_path / "tomograms_half2").exists()


# ------------------------------------------------------------------------------------------ dataset
def test_cli_writes_tomograms_ground_truth_tilts_and_star(tmp_path):
    result = run_cli("simulate", "data", "--n_tomos", 2, "--shape", "32,48,64", "--pixel_size", 12.5,
                     "--tilt_min", -50, "--tilt_max", 66, "--tilt_step", 3, "--defocus", 25000,
                     "--number_subtomos", 7, "--seed", 5, "--log_file", "", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    star = tmp_path / "data" / "tomograms.star"
    table = read_star(star)
    assert list(table.columns) == ["rlnIndex", "rlnMicrographName", "rlnPixelSize", "rlnDefocus",
                                   "rlnNumberSubtomo", "rlnMaskBoundary", "rlnTiltMin", "rlnTiltMax",
                                   "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnBrightDensity",
                                   "rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2"]
    assert list(table["rlnIndex"]) == [1, 2]
    assert list(table["rlnMicrographName"]) == ["tomograms/tomo_01.mrc", "tomograms/tomo_02.mrc"]
    for half in (1, 2):
        assert list(table[f"rlnTomoReconstructedTomogramHalf{half}"]) == [
            f"tomograms_half{half}/tomo_01.mrc", f"tomograms_half{half}/tomo_02.mrc"]
    assert list(table["rlnPixelSize"]) == [12.5, 12.5] and list(table["rlnDefocus"]) == [25000.0] * 2
    assert list(table["rlnNumberSubtomo"]) == [7, 7] and list(table["rlnMaskBoundary"]) == [None, None]
    assert list(table["rlnVoltage"]) == [300.0] * 2 and list(table["rlnAmplitudeContrast"]) == [0.07] * 2
    assert list(table["rlnBrightDensity"]) == [0, 0]  # simulated tomograms have dark density
    # The last tilt on the 3-degree grid is 64, and that is what the STAR says.
    assert list(table["rlnTiltMin"]) == [-50.0] * 2 and list(table["rlnTiltMax"]) == [64.0] * 2
    for index in (1, 2):
        tomogram_path = resolve_path(table["rlnMicrographName"][index - 1], str(star))
        truth_path = tmp_path / "data" / "ground_truth" / f"tomo_{index:02d}.mrc"
        half_paths = [resolve_path(table[f"rlnTomoReconstructedTomogramHalf{h}"][index - 1], str(star))
                      for h in (1, 2)]
        for path in [tomogram_path, truth_path] + half_paths:
            header = read_header(path)
            assert header.shape == (32, 48, 64)
            assert header.voxel_size == pytest.approx((12.5, 12.5, 12.5))
        tilts = np.loadtxt(tmp_path / "data" / "tomograms" / f"tomo_{index:02d}.tlt")
        np.testing.assert_allclose(tilts, np.arange(-50, 65, 3))
    tomo_1, tomo_2 = (read_volume(tmp_path / "data" / "tomograms" / f"tomo_{i}.mrc") for i in ("01", "02"))
    assert not np.array_equal(tomo_1, tomo_2)


def test_existing_dataset_is_renamed_aside_and_rerun_is_identical(tmp_path):
    options = dict(n_tomos=1, shape=SMALL, snr=2.0, seed=9)
    run_simulation(str(tmp_path), **options)
    first = read_volume(tmp_path / "tomograms" / "tomo_01.mrc")
    run_simulation(str(tmp_path), **options)
    assert (tmp_path / "tomograms~" / "tomo_01.mrc").is_file()
    assert (tmp_path / "ground_truth~" / "tomo_01.mrc").is_file()
    assert (tmp_path / "tomograms.star~").is_file()
    np.testing.assert_array_equal(first, read_volume(tmp_path / "tomograms" / "tomo_01.mrc"))


@pytest.mark.parametrize("option, value", [("--shape", "32,64"), ("--snr", "-1"), ("--reconstruction", "art"),
                                           ("--tilt_step", "0"), ("--defocus", "-5")])
def test_bad_options_fail_with_one_line(tmp_path, run_main, option, value):
    status, _, err = run_main("simulate", "out", option, value, cwd=tmp_path)
    assert status == 2  # a parameter error
    assert err.startswith("ERROR: ") and err.count("\n") == 1 and option in err
    assert os.listdir(tmp_path) == []

"""Metric sanity of isonet.evaluation.metrics (``isonet.py evaluate``)."""

import json

import numpy as np
import pytest
from conftest import run_cli
from scipy.ndimage import gaussian_filter

from isonet.errors import IsonetError
from isonet.evaluation.metrics import evaluate, format_table
from isonet.io.mrc import write_volume
from isonet.wedge import measured_mask, tilt_angle_map, wedge_depth_map

SHAPE = (24, 32, 32)
PIXEL = 10.0


@pytest.fixture
def truth(rng):
    """Ground-truth-like volume: smooth random density."""
    return gaussian_filter(rng.standard_normal(SHAPE), 0.8).astype(np.float32)


def wedge_zeroed(volume, tilt_min=-60.0, tilt_max=60.0):
    keep = measured_mask(volume.shape, tilt_min, tilt_max, real=True)
    return np.fft.irfftn(np.fft.rfftn(volume) * keep, s=volume.shape, axes=(0, 1, 2)).astype(np.float32)


def scores(result):
    """The numbers of an evaluate result that must not depend on contrast sign or scale, flattened."""
    def flatten(value):
        if isinstance(value, dict):
            return [x for key in sorted(value) for x in flatten(value[key])]
        return [x for item in value for x in flatten(item)] if isinstance(value, list) else [value]
    numbers = flatten({k: result[k] for k in ("correlation", "wedge_bands", "fsc", "z_over_x", "curves")})
    return pytest.approx(numbers, rel=1e-4, abs=1e-4)


def test_ground_truth_against_itself_is_one_everywhere(truth):
    result = evaluate(truth, truth, PIXEL)
    assert not result["sign_flipped"]
    for region, value in result["correlation"].items():
        assert value == pytest.approx(1.0, abs=1e-6), region
    for axis in "xyz":
        assert all(v == pytest.approx(1.0, abs=1e-5) for v in result["curves"][axis]), axis
        assert result["fsc"][axis] == {"0.5": pytest.approx(2 * PIXEL), "0.143": pytest.approx(2 * PIXEL)}
    assert result["z_over_x"] == {"0.5": pytest.approx(1.0), "0.143": pytest.approx(1.0)}


def test_wedge_zeroed_truth_scores_zero_inside_and_one_outside(truth):
    result = evaluate(wedge_zeroed(truth), truth, PIXEL)
    correlation = result["correlation"]
    assert abs(correlation["missing_wedge"]) < 0.05
    assert correlation["measured"] > 0.999
    assert 0.5 < correlation["overall"] < 0.95
    assert result["fsc"]["x"]["0.143"] == pytest.approx(2 * PIXEL)
    assert result["fsc"]["z"]["0.5"] > 5 * PIXEL and result["z_over_x"]["0.5"] > 2.5


def keep_to_depth(volume, max_depth, tilt_min=-60.0, tilt_max=60.0):
    """``volume`` with every frequency deeper than ``max_depth`` degrees into the wedge zeroed."""
    keep = wedge_depth_map(volume.shape, tilt_min, tilt_max, real=True) <= max_depth
    return np.fft.irfftn(np.fft.rfftn(volume) * keep, s=volume.shape, axes=(0, 1, 2)).astype(np.float32)


@pytest.mark.parametrize("tilt_min, tilt_max", [(-60.0, 60.0), (-50.0, 66.0), (-45.0, 45.0)])
def test_wedge_depth_is_the_angle_beyond_the_nearest_tilt_limit(tilt_min, tilt_max):
    shape = (64, 1, 64)
    phi = tilt_angle_map(shape)
    depth = wedge_depth_map(shape, tilt_min, tilt_max)
    measured = measured_mask(shape, tilt_min, tilt_max)
    kz, kx = np.fft.fftfreq(64)[:, None, None], np.fft.fftfreq(64)[None, None, :]
    np.testing.assert_array_equal(depth[measured] == 0, True)
    assert np.all(depth[~measured] > 0)
    # The beam axis (phi = +-90) sits in the middle of a symmetric wedge; nearer the upper edge otherwise.
    beam = np.broadcast_to((kx == 0) & (kz != 0), shape)
    assert np.allclose(depth[beam], min(90 - tilt_max, 90 + tilt_min))
    assert depth.max() == pytest.approx((180 - (tilt_max - tilt_min)) / 2, abs=1.0)
    # A direction 5 degrees beyond the upper limit.
    upper = (phi > tilt_max) & (phi < tilt_max + 5)
    np.testing.assert_allclose(depth[upper], phi[upper] - tilt_max)


def test_wedge_bands_and_power_of_truth_zeroed_and_partial(truth):
    same = evaluate(truth, truth, PIXEL)
    assert same["wedge_bands"] == {k: pytest.approx(1.0, abs=1e-6) for k in ("0-10", "10-20", "20-30", "10-30")}
    assert same["wedge_power"]["relative"] == pytest.approx(1.0)
    assert same["wedge_power"]["truth"] == pytest.approx(same["wedge_power"]["candidate"]) and same["wedge_power"]["truth"] > 0.1
    assert all(v == pytest.approx(1.0) for v in same["wedge_power"]["relative_by_depth"].values())

    zeroed = evaluate(wedge_zeroed(truth), truth, PIXEL)
    assert all(abs(v) < 0.05 for v in zeroed["wedge_bands"].values()), zeroed["wedge_bands"]
    assert zeroed["wedge_power"]["relative"] < 1e-3 and zeroed["wedge_power"]["candidate"] < 1e-3

    # Band 0-10 kept, 10-30 zeroed: 1 in the first band, 0 in the deeper ones.
    partial = evaluate(keep_to_depth(truth, 10.0), truth, PIXEL)
    bands = partial["wedge_bands"]
    assert bands["0-10"] > 0.999 and all(abs(bands[k]) < 0.05 for k in ("10-20", "20-30", "10-30"))
    by_depth = partial["wedge_power"]["relative_by_depth"]
    assert by_depth["0-10"] == pytest.approx(1.0, rel=1e-3) and by_depth["10-30"] < 1e-3
    assert 0 < partial["wedge_power"]["relative"] < 1


def test_deep_band_is_empty_for_a_narrow_wedge(truth):
    result = evaluate(truth, truth, PIXEL, tilt_min=-75, tilt_max=75)
    assert result["wedge_bands"]["20-30"] is None and result["wedge_bands"]["0-10"] == pytest.approx(1.0)


def test_sign_and_scale_do_not_matter(truth, rng):
    reference = evaluate(truth, truth, PIXEL)
    flipped = evaluate(-3.0 * truth, truth, PIXEL)
    assert flipped["sign_flipped"] and scores(flipped) == scores(reference).expected
    # A measurement-like candidate (faint noise fills the wedge: exact zeros would leave only float
    # rounding residue there, whose correlation is arbitrary).
    partial = wedge_zeroed(truth) + 0.01 * rng.standard_normal(SHAPE).astype(np.float32)
    expected = scores(evaluate(partial, truth, PIXEL))
    assert scores(evaluate(-3.0 * partial, truth, PIXEL)).expected == expected
    assert scores(evaluate(0.5 * partial + 2.0, truth, PIXEL)).expected == expected  # offset: mean ignored


def truth_below(truth, rng, cycles_per_voxel):
    """Candidate equal to the truth up to a frequency (cycles/voxel), independent noise above."""
    k = np.sqrt(sum(f ** 2 for f in np.meshgrid(np.fft.fftfreq(24), np.fft.fftfreq(32), np.fft.rfftfreq(32),
                                                indexing="ij")))
    spectrum = np.where(k <= cycles_per_voxel, np.fft.rfftn(truth), np.fft.rfftn(rng.standard_normal(SHAPE)))
    return np.fft.irfftn(spectrum, s=SHAPE, axes=(0, 1, 2))


def test_resolution_limits_select_the_frequencies(truth, rng):
    # Truth up to 1/40 Å, noise above: the band-limited scores see only the former.
    candidate = truth_below(truth, rng, PIXEL / 40.0)
    result = evaluate(candidate, truth, PIXEL, resolution=40.0)
    limited = result["correlation"]
    assert limited["missing_wedge"] == pytest.approx(1.0) and limited["measured"] == pytest.approx(1.0)
    assert evaluate(candidate, truth, PIXEL, resolution=20.0)["correlation"]["measured"] < 0.9
    # The two lowest shells (|k| < 2.5 / 24) are left out by default, included on request.
    assert result["low_resolution_limit"] == pytest.approx(PIXEL * 24 / 2.5)
    candidate = truth_below(truth, rng, 2.4 / 24)
    assert abs(evaluate(candidate, truth, PIXEL)["correlation"]["measured"]) < 0.2
    included = evaluate(candidate, truth, PIXEL, resolution=PIXEL * 24 / 2.4, low_resolution=1e6)["correlation"]
    assert included["measured"] == pytest.approx(1.0) and included["missing_wedge"] == pytest.approx(1.0)
    # Tilt range reaching +-90 leaves no missing wedge: reported as None.
    assert evaluate(truth, truth, PIXEL, tilt_min=-90, tilt_max=90)["correlation"]["missing_wedge"] is None


def test_fsc_resolutions_skip_the_lowest_shells(truth):
    # The two lowest shells anticorrelate: their few samples must not decide the resolution.
    k = np.sqrt(sum(f ** 2 for f in np.meshgrid(np.fft.fftfreq(24), np.fft.fftfreq(32), np.fft.rfftfreq(32),
                                                indexing="ij")))
    low = (k > 0) & (k <= 2.4 / 24)
    candidate = np.fft.irfftn(np.where(low, -np.fft.rfftn(truth), np.fft.rfftn(truth)), s=SHAPE, axes=(0, 1, 2))
    result = evaluate(candidate, truth, PIXEL)
    assert not result["sign_flipped"]
    for axis in "xyz":
        assert result["curves"][axis][0] < 0, axis  # the first shell anticorrelates ...
        assert result["fsc"][axis]["0.143"] == pytest.approx(2 * PIXEL), axis  # ... and is not searched
    everything = evaluate(candidate, truth, PIXEL, resolution=20.0, low_resolution=1e6)
    assert everything["fsc"]["z"]["0.143"] == pytest.approx(PIXEL * 24)


def test_mask_multiplies_both_volumes(truth, rng):
    candidate = truth.copy()
    candidate[:, :, 16:] = rng.standard_normal((24, 32, 16))
    mask = np.zeros(SHAPE, np.float32)
    mask[:, :, :16] = 1.0
    assert evaluate(candidate, truth, PIXEL)["correlation"]["overall"] < 0.9
    masked = evaluate(candidate, truth, PIXEL, mask=mask)
    assert masked["masked"] and masked["correlation"]["overall"] == pytest.approx(1.0, abs=1e-6)


def test_bad_shapes_and_limits_are_errors(truth):
    with pytest.raises(IsonetError, match="shape"):
        evaluate(truth[:, :16], truth, PIXEL)
    with pytest.raises(IsonetError, match="mask shape"):
        evaluate(truth, truth, PIXEL, mask=np.ones((4, 4, 4)))
    with pytest.raises(IsonetError, match="low_resolution"):
        evaluate(truth, truth, PIXEL, resolution=50.0, low_resolution=40.0)


def test_table_lists_every_number(truth):
    table = format_table(evaluate(-wedge_zeroed(truth), truth, PIXEL), "raw.mrc", "gt.mrc")
    assert "raw.mrc vs gt.mrc" in table and "sign flipped" in table
    for label in ("overall", "missing wedge", "measured", "X ", "Y ", "Z ", "Z/X ratio", "0.143", "10-20°",
                  "wedge/measured power"):
        assert label in table, label


def test_evaluate_cli_writes_json(tmp_path, truth, run_main):
    write_volume(tmp_path / "gt.mrc", truth, voxel_size=PIXEL)
    write_volume(tmp_path / "raw.mrc", -wedge_zeroed(truth), voxel_size=1.0)  # header of the GT is used
    result = run_cli("evaluate", "raw.mrc", "gt.mrc", "--json", "out/eval.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "correlation, missing wedge" in result.stdout
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["candidate"] == "raw.mrc" and saved["ground_truth"] == "gt.mrc"
    assert saved["pixel_size"] == PIXEL and saved["sign_flipped"] is True
    assert abs(saved["correlation"]["missing_wedge"]) < 0.05 and saved["correlation"]["measured"] > 0.999
    assert abs(saved["wedge_bands"]["10-30"]) < 0.05 and saved["wedge_power"]["relative"] < 1e-3
    assert saved["fsc"]["x"]["0.143"] == pytest.approx(2 * PIXEL)
    assert len(saved["curves"]["frequency_per_A"]) == len(saved["curves"]["z"]) == 12
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "eval.json"]  # no temporary left

    override = run_cli("evaluate", "raw.mrc", "gt.mrc", "--pixel_size", "5", "--resolution", "12",
                       "--tilt_min", "-50", "--tilt_max", "66", "--json", "e2.json", cwd=tmp_path)
    assert override.returncode == 0, override.stderr
    saved = json.loads((tmp_path / "e2.json").read_text())
    assert saved["pixel_size"] == 5.0 and saved["tilt_range"] == [-50.0, 66.0] and saved["resolution_limit"] == 12
    assert saved["low_resolution_limit"] == pytest.approx(5.0 * 24 / 2.5)

    write_volume(tmp_path / "small.mrc", truth[:8], voxel_size=PIXEL)
    status, _, err = run_main("evaluate", "small.mrc", "gt.mrc", cwd=tmp_path)
    assert status == 1 and err.startswith("ERROR: ") and err.count("\n") == 1
    assert "small.mrc" in err and "shape" in err
    status, _, err = run_main("evaluate", "raw.mrc", "gt.mrc", "--resolution", "-3", cwd=tmp_path)
    assert status == 2 and err.startswith("ERROR: --resolution")

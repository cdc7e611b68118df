"""Even/odd halves end to end: prepare_star, extract, deconv, the halves method of refine, predict."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, run_in_process
from scipy.ndimage import gaussian_filter

from isonet.errors import IsonetError
from isonet.io.mrc import read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.normalize import apply_statistics, slab_statistics
from isonet.prepare import match_halves
from isonet.wedge import rotated_wedge_mask, wedge_mask

SHAPE = (32, 48, 48)
TINY = ["--epochs", 1, "--steps_per_epoch", 6, "--filter_base", 4, "--unet_depth", 2, "--learning_rate", 0.004,
        "--preprocessing_ncpus", 2, "--batch_size", 4]


def _wedged(volume, tilts=(-60.0, 60.0)):
    return np.fft.irfftn(np.fft.rfftn(volume) * wedge_mask(volume.shape, *tilts, real=True), s=volume.shape,
                         axes=(0, 1, 2)).astype(np.float32)


def _write_halves_project(folder, n_tomos=1, seed=0):
    """Tomograms with independent-noise halves (dark density), as tomo_NN.mrc / even/ / tomo_NN_odd.mrc."""
    rng = np.random.default_rng(seed)
    for name in ("tomos", "even", "odd"):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    signals = []
    for t in range(n_tomos):
        signal = -gaussian_filter((rng.random(SHAPE) > 0.97).astype(np.float32), 1.5) * 10
        halves = [_wedged(signal + rng.normal(0, 0.5, SHAPE).astype(np.float32)) for _ in range(2)]
        write_volume(os.path.join(folder, "tomos", f"tomo_{t:02d}.mrc"), (halves[0] + halves[1]) / 2,
                     voxel_size=10.0)
        write_volume(os.path.join(folder, "even", f"tomo_{t:02d}.mrc"), halves[0], voxel_size=10.0)
        write_volume(os.path.join(folder, "odd", f"tomo_{t:02d}_odd.mrc"), halves[1], voxel_size=10.0)
        signals.append(signal)
    return signals


# ----------------------------------------------------------------------------- prepare_star, extract, deconv

def test_match_halves_by_name():
    tomos = ["a/tomo_1.mrc", "a/tomo_10.mrc", "a/tomo_1_b.mrc"]
    halves = ["e/tomo_10_even.mrc", "e/tomo_1_b_even.mrc", "e/tomo_1.mrc", "e/other.mrc"]
    assert match_halves(tomos, halves, "--even") == ["e/tomo_1.mrc", "e/tomo_10_even.mrc", "e/tomo_1_b_even.mrc"]
    with pytest.raises(IsonetError, match="--odd: no half tomogram named after a/tomo_10.mrc"):
        match_halves(tomos, ["e/tomo_1.mrc", "e/tomo_1_b.mrc"], "--odd")
    with pytest.raises(IsonetError, match="both match tomogram tomo_1"):
        match_halves(tomos, ["e/tomo_1_even.mrc", "e/tomo_1.mrc", "e/tomo_10.mrc", "e/tomo_1_b.mrc"], "--even")


def test_prepare_star_lists_halves_and_extract_cuts_the_same_centres(tmp_path):
    _write_halves_project(str(tmp_path), n_tomos=2)
    result = run_cli("prepare_star", "tomos", "--even", "even", "--odd", "odd/*_odd.mrc", "--number_subtomos", 3,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = read_star(tmp_path / "tomograms.star")
    assert list(table["rlnTomoReconstructedTomogramHalf1"]) == ["even/tomo_00.mrc", "even/tomo_01.mrc"]
    assert list(table["rlnTomoReconstructedTomogramHalf2"]) == ["odd/tomo_00_odd.mrc", "odd/tomo_01_odd.mrc"]
    bad = run_cli("prepare_star", "tomos", "--even", "even", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == "ERROR: --even and --odd: give both half-tomogram sets, or neither"

    result = run_cli("extract", "tomograms.star", "--cube_size", 16, "--crop_size", 24, "--seed", 3, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    subtomos = read_star(tmp_path / "subtomo.star")
    assert len(subtomos) == 6
    for _, row in subtomos.iterrows():
        z, y, x = (int(row[f"rlnCoordinate{a}"]) for a in "ZYX")
        window = (slice(z - 12, z + 12), slice(y - 12, y + 12), slice(x - 12, x + 12))
        root = os.path.splitext(os.path.basename(row["rlnMicrographName"]))[0]
        sources = [f"tomos/{root}.mrc", f"even/{root}.mrc", f"odd/{root}_odd.mrc"]
        names = [row["rlnImageName"], row["rlnImageNameHalf1"], row["rlnImageNameHalf2"]]
        assert names[1] == names[0].replace(".mrc", "_half1.mrc")
        for source, name, suffix in zip(sources, names, ("", "Half1", "Half2")):
            volume = read_volume(tmp_path / source)
            np.testing.assert_array_equal(read_volume(tmp_path / name), volume[window])
            mean, std = slab_statistics(volume)
            assert row[f"rlnNormMean{suffix}"] == pytest.approx(mean, rel=1e-5)  # STAR: 6 digits
            assert row[f"rlnNormStd{suffix}"] == pytest.approx(std, rel=1e-5)


def test_slab_statistics_use_the_central_third():
    volume = np.zeros((9, 4, 4), np.float32)
    volume[3:6] = np.arange(48, dtype=np.float32).reshape(3, 4, 4)
    volume[:3] = 1000
    mean, std = slab_statistics(volume)
    assert mean == pytest.approx(23.5) and std == pytest.approx(np.arange(48).std())
    np.testing.assert_allclose(apply_statistics(volume[3:6], mean, std), -(volume[3:6] - 23.5) / std, rtol=1e-6)


def test_deconv_processes_the_halves_like_the_full_tomogram(tmp_path, monkeypatch):
    from isonet.preprocess.deconv import deconv_tomograms
    _write_halves_project(str(tmp_path))
    table = pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomos/tomo_00.mrc"], "rlnPixelSize": [10.0],
                          "rlnDefocus": [30000.0], "rlnTomoReconstructedTomogramHalf1": ["even/tomo_00.mrc"],
                          "rlnTomoReconstructedTomogramHalf2": ["odd/tomo_00_odd.mrc"]})
    star = str(tmp_path / "tomograms.star")
    write_star(table, star)
    monkeypatch.chdir(tmp_path)
    deconv_tomograms(star, deconv_folder="deconv", ncpu=1)
    table = read_star(star)
    assert table["rlnDeconvTomoHalf1"][0] == os.path.join("deconv", "half1", "tomo_00.mrc")
    assert table["rlnDeconvTomoHalf2"][0] == os.path.join("deconv", "half2", "tomo_00_odd.mrc")
    # the filter is linear up to the intensity restoration: the same filter on every volume means
    # deconv(full) correlates with the average of deconv(halves) almost perfectly
    full = read_volume("deconv/tomo_00.mrc")
    average = (read_volume(table["rlnDeconvTomoHalf1"][0]) + read_volume(table["rlnDeconvTomoHalf2"][0])) / 2
    assert np.corrcoef(full.ravel(), average.ravel())[0, 1] > 0.999
    assert not np.allclose(read_volume("even/tomo_00.mrc"), read_volume(table["rlnDeconvTomoHalf1"][0]))
    # halves left out of deconv would be processed differently from the full tomogram: refused
    table["rlnDeconvTomoHalf2"] = [None]
    write_star(table, star)
    from isonet.preprocess.extract import extract_subtomograms
    with pytest.raises(IsonetError, match="its halves are not"):
        extract_subtomograms(star, cube_size=8, crop_size=16, seed=0)


# ----------------------------------------------------------------------------- masks, loss, pairs

def test_rotated_masks_hold_the_rotated_wedge():
    """A wedge-filtered cube rotated by orientation r has no power outside rotated_wedge_mask(r)."""
    from isonet.refine.fourier_weights import rotation_matrix
    from isonet.refine.rotations import rotate
    n, tilts = 16, (-45.0, 55.0)
    volume = _wedged(np.random.default_rng(2).normal(size=(n,) * 3).astype(np.float32), tilts)
    lab = rotated_wedge_mask(n, *tilts)
    np.testing.assert_array_equal(lab, np.broadcast_to(wedge_mask((n,) * 3, *tilts), (n,) * 3))
    inner = np.ones((n,) * 3, bool)  # Nyquist planes: sign conventions of -n/2 differ
    for axis in range(3):
        index = [slice(None)] * 3
        index[axis] = n // 2
        inner[tuple(index)] = False
    for r in (0, 5, 13, 19):
        mask = rotated_wedge_mask(n, *tilts, rotation_matrix(r))
        power = np.abs(np.fft.fftn(rotate(volume, r)))
        assert power[(mask == 0) & inner].max() < 1e-4 * power[mask == 1].mean()
        assert 0.3 < mask.mean() < 0.8


def _numpy_loss(prediction, target, weights):
    n = prediction.shape[-1]
    return (weights * np.abs(np.fft.fftn(prediction - target, axes=(1, 2, 3))) ** 2).sum(axis=(1, 2, 3)) / n ** 6


def test_masked_loss_matches_numpy():
    from isonet.refine.fourier_weights import loss_weights, rotation_matrix
    from isonet.refine.losses import masked_fourier_loss, stack_targets
    rng = np.random.default_rng(5)
    n = 16
    prediction, target = (rng.normal(size=(2, n, n, n)).astype(np.float32) for _ in range(2))
    weights = np.stack([loss_weights(rotated_wedge_mask(n, -60, 60),
                                     rotated_wedge_mask(n, -60, 60, rotation_matrix(r)), 3.0) for r in (1, 7)])
    assert set(np.unique(weights)) == {0.0, 1.0, 3.0}
    value = np.asarray(masked_fourier_loss(n)(stack_targets(target, weights), prediction[..., None]))
    np.testing.assert_allclose(value, _numpy_loss(prediction, target, weights), rtol=1e-4)
    # all weights 1: the mean squared error (Parseval)
    ones = stack_targets(target, np.ones((n,) * 3, np.float32))
    np.testing.assert_allclose(np.asarray(masked_fourier_loss(n)(ones, prediction[..., None])),
                               ((prediction - target) ** 2).mean(axis=(1, 2, 3)), rtol=1e-4)


class _FakeHalves:
    """Stands in for HalfSubtomograms: two known half cubes, already normalised."""

    def __init__(self, halves):
        self.halves = halves
        self.paths = [["a_half1.mrc"], ["a_half2.mrc"]]

    def normalised(self, half, index):
        return self.halves[half].copy()


def test_half_pair_maker_target_is_the_other_half_under_the_same_rotation():
    """The target is the other half where the input is measured, the mean of both halves in its extra wedge."""
    from isonet.refine.fourier_weights import pair_weights
    from isonet.refine.half_pairs import HalfPairMaker
    from isonet.refine.pairs import centre_crop
    from isonet.refine.rotations import rotate
    from isonet.refine.wedge_ops import apply_wedge, wedge_masks
    rng = np.random.default_rng(3)
    crop, cube, tilts = 24, 16, (-60.0, 60.0)
    halves = [rng.normal(size=(crop,) * 3).astype(np.float32) for _ in range(2)]
    maker = HalfPairMaker(_FakeHalves(halves), [0], [tilts], cube, mw_weight=2.0, seed=4, iteration=1)
    x, y = maker.pairs(0)
    assert x.shape == (20, cube, cube, cube) and y.shape == (20, cube, cube, cube, 2)
    lab_mask = wedge_masks((crop,) * 3, [tilts])[0]
    swaps = []
    for r in range(20):
        wedged = [apply_wedge(np.ascontiguousarray(rotate(half, r)), lab_mask) for half in halves]
        swap = np.allclose(x[r], centre_crop(wedged[1], cube), atol=1e-5)  # half 2 is the input
        other = halves[0] if swap else halves[1]
        mean = rotate(0.5 * (halves[0] + halves[1]), r)
        expected = apply_wedge(np.ascontiguousarray(rotate(other, r)), lab_mask) + apply_wedge(mean, lab_mask, 0, 1)
        np.testing.assert_allclose(y[r, ..., 0], centre_crop(expected, cube), atol=1e-5)
        np.testing.assert_allclose(x[r], centre_crop(wedged[1 if swap else 0], cube), atol=1e-5)
        np.testing.assert_array_equal(y[r, ..., 1], pair_weights(cube, tilts, 2.0, r))
        swaps.append(swap)
    assert 0 < sum(swaps) < 20  # both halves serve as input
    x2, y2 = maker.pairs(0, [3, 4])  # the same pair whenever it is made
    np.testing.assert_array_equal(x2, x[3:5])
    np.testing.assert_array_equal(y2, y[3:5])


def test_half_pair_maker_full_inputs_are_the_mean_with_the_loss_in_the_extra_wedge_only():
    from isonet.refine.fourier_weights import loss_weights, pair_weights, rotation_matrix
    from isonet.refine.half_pairs import HalfPairMaker
    from isonet.refine.pairs import centre_crop
    from isonet.refine.rotations import rotate
    from isonet.refine.wedge_ops import apply_wedge, wedge_masks
    rng = np.random.default_rng(8)
    crop, cube, tilts = 24, 16, (-60.0, 60.0)
    halves = [rng.normal(size=(crop,) * 3).astype(np.float32) for _ in range(2)]
    lab_mask = wedge_masks((crop,) * 3, [tilts])[0]
    mean = 0.5 * (halves[0] + halves[1])
    x, y = HalfPairMaker(_FakeHalves(halves), [0], [tilts], cube, mw_weight=2.0, seed=4,
                         full_input_fraction=1.0).pairs(0)
    for r in (0, 5, 13):
        rotated = np.ascontiguousarray(rotate(mean, r))
        np.testing.assert_allclose(x[r], centre_crop(apply_wedge(rotated, lab_mask), cube), atol=1e-5)
        np.testing.assert_allclose(y[r, ..., 0], centre_crop(rotated, cube), atol=1e-5)
        weights = pair_weights(cube, tilts, 2.0, r, measured_weight=0.0)
        np.testing.assert_array_equal(y[r, ..., 1], weights)
        # 2 where only the target is measured (the input's extra wedge), 0 elsewhere
        extra = rotated_wedge_mask(cube, *tilts, rotation_matrix(r)) * (1 - rotated_wedge_mask(cube, *tilts))
        np.testing.assert_array_equal(weights, 2.0 * extra)
        assert extra.sum() > 0
    np.testing.assert_array_equal(loss_weights(np.ones(3), np.ones(3), 2.0, 0.0), np.zeros(3))
    # a share of the pairs: some inputs are the mean, the rest one half with the full weights
    x, y = HalfPairMaker(_FakeHalves(halves), [0], [tilts], cube, mw_weight=2.0, seed=4,
                         full_input_fraction=0.5).pairs(0)
    full = [np.allclose(x[r], centre_crop(apply_wedge(np.ascontiguousarray(rotate(mean, r)), lab_mask), cube),
                        atol=1e-5) for r in range(20)]
    assert 0 < sum(full) < 20
    for r in range(20):
        np.testing.assert_array_equal(y[r, ..., 1], pair_weights(cube, tilts, 2.0, r,
                                                                  measured_weight=0.0 if full[r] else 1.0))


def test_half_pair_maker_full_inputs_learn_the_previous_predictions_where_measured(tmp_path):
    from isonet.refine.fourier_weights import pair_weights
    from isonet.refine.half_pairs import HalfPairMaker, half_prediction_path
    from isonet.refine.pairs import centre_crop
    from isonet.refine.rotations import rotate
    from isonet.refine.wedge_ops import apply_wedge, merge, wedge_masks
    rng = np.random.default_rng(9)
    crop, cube, tilts = 24, 16, (-60.0, 60.0)
    halves = [rng.normal(size=(crop,) * 3).astype(np.float32) for _ in range(2)]
    predicted = [rng.normal(size=(crop,) * 3).astype(np.float32) for _ in range(2)]
    fake = _FakeHalves(halves)
    for half in (0, 1):  # written as predict_halves does: dark density
        write_volume(half_prediction_path(str(tmp_path), fake, half, 0, 1), -predicted[half])
    lab_mask = wedge_masks((crop,) * 3, [tilts])[0]
    filled_mean = 0.5 * sum(merge(halves[h], predicted[h], lab_mask) for h in (0, 1))
    denoised = 0.5 * (predicted[0] + predicted[1])
    maker = HalfPairMaker(fake, [0], [tilts], cube, str(tmp_path), 1, mw_weight=2.0, seed=4, iteration=2,
                          full_input_fraction=1.0)
    x, y = maker.pairs(0, [0, 7])
    for k, r in enumerate((0, 7)):
        mean_r, denoised_r = (np.ascontiguousarray(rotate(v, r)) for v in (filled_mean, denoised))
        np.testing.assert_allclose(x[k], centre_crop(apply_wedge(mean_r, lab_mask), cube), atol=1e-5)
        # the previous predictions where the input is measured, the mean in its extra wedge
        expected = apply_wedge(denoised_r, lab_mask) + apply_wedge(mean_r, lab_mask, 0, 1)
        np.testing.assert_allclose(y[k, ..., 0], centre_crop(expected, cube), atol=1e-4)
        np.testing.assert_array_equal(y[k, ..., 1], pair_weights(cube, tilts, 2.0, r, measured_weight=1.0))
    # without a previous iteration: the mean everywhere, no loss where the input is measured
    x, y = HalfPairMaker(fake, [0], [tilts], cube, None, 0, mw_weight=2.0, seed=4, iteration=1,
                         full_input_fraction=1.0).pairs(0, [7])
    np.testing.assert_allclose(y[0, ..., 0], centre_crop(np.ascontiguousarray(rotate(0.5 * (halves[0] + halves[1]), 7)),
                                                      cube), atol=1e-5)
    np.testing.assert_array_equal(y[0, ..., 1], pair_weights(cube, tilts, 2.0, 7, measured_weight=0.0))


# ----------------------------------------------------------------------------- refine and predict

def test_predict_normalises_the_full_tomogram_at_the_halves_scale(tmp_path, caplog):
    """Identity network with a halves model JSON: -(the full tomogram normalised at the halves' scale), Wiener-
    filtered by the agreement of the halves (each normalised by its own slab); by its own slab and unfiltered
    where the halves are missing or differ in deconvolution."""
    import logging
    from isonet.io.model_info import write_model_info
    from isonet.predict.halves import half_scaled_statistics
    from isonet.predict.predict import predict_tomograms
    from isonet.predict.shell_weights import class_shell_correlation, filter_by_shell, wiener_weights
    from isonet.network.unet import build_unet, save_model
    _write_halves_project(str(tmp_path))
    table = pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomos/tomo_00.mrc"], "rlnPixelSize": [10.0],
                          "rlnTomoReconstructedTomogramHalf1": ["even/tomo_00.mrc"],
                          "rlnTomoReconstructedTomogramHalf2": ["odd/tomo_00_odd.mrc"]})
    write_star(table, tmp_path / "tomograms.star")
    model = build_unet(unet_depth=2, filter_base=4, convs_per_depth=2)
    head = model.get_layer("head")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # residual: exactly the identity
    save_model(model, str(tmp_path / "identity.h5"))
    write_model_info(str(tmp_path / "identity.h5"), {"method": "halves", "normalization": "slab_mean_std"})
    full = read_volume(tmp_path / "tomos" / "tomo_00.mrc")
    scaled = half_scaled_statistics(str(tmp_path / "tomos" / "tomo_00.mrc"),
                                    [str(tmp_path / p) for p in ("even/tomo_00.mrc", "odd/tomo_00_odd.mrc")])
    unfiltered = -apply_statistics(full, *scaled)
    own_scale = -apply_statistics(full, *slab_statistics(full))
    assert np.abs(unfiltered - own_scale).mean() > 0.05  # the two scales differ on these volumes
    halves = [read_volume(tmp_path / p) for p in ("even/tomo_00.mrc", "odd/tomo_00_odd.mrc")]
    centres, agreement = class_shell_correlation(*[-apply_statistics(h, *slab_statistics(h)) for h in halves],
                                                 (-60.0, 60.0))  # the whole volumes: smaller than 256 voxels
    weights = wiener_weights(agreement)
    assert 0.05 < weights.mean() < 0.95  # these halves agree in part: the filter changes the output
    expected = filter_by_shell(unfiltered, centres, weights, (-60.0, 60.0))

    def predict(out):
        predict_tomograms(str(tmp_path / "tomograms.star"), str(tmp_path / "identity.h5"),
                          output_dir=str(tmp_path / out), gpu_ids=[], cube_size=16, crop_size=24)
        return read_volume(tmp_path / out / "tomo_00_corrected.mrc")

    # the halves' outputs pass the network's float32 tiles (the unfiltered output matches to 1e-5): 1e-4 seen
    np.testing.assert_allclose(predict("default"), expected, atol=5e-4)
    assert read_star(tmp_path / "tomograms.star")["rlnCorrectedTomoName"][0].endswith("tomo_00_corrected.mrc")
    # a model JSON of the former method name: the same prediction, with one warning
    write_model_info(str(tmp_path / "identity.h5"), {"method": "isonet2", "normalization": "slab_mean_std"})
    with caplog.at_level(logging.WARNING, logger="isonet"):
        np.testing.assert_allclose(predict("former_name"), expected, atol=5e-4)
    assert [r.getMessage() for r in caplog.records if "former name" in r.getMessage()] == [
        f"{tmp_path / 'identity.h5'}: method isonet2 is the former name of halves: read as halves"]
    # a deconvolved full tomogram whose halves were not deconvolved: its own scale, not the raw halves'
    write_volume(tmp_path / "tomos" / "tomo_00_deconv.mrc", 3 * full)
    table["rlnDeconvTomoName"] = ["tomos/tomo_00_deconv.mrc"]
    write_star(table, tmp_path / "tomograms.star")
    predict_tomograms(str(tmp_path / "tomograms.star"), str(tmp_path / "identity.h5"),
                      output_dir=str(tmp_path / "mixed"), gpu_ids=[], cube_size=16, crop_size=24)
    np.testing.assert_allclose(read_volume(tmp_path / "mixed" / "tomo_00_deconv_corrected.mrc"),
                               -apply_statistics(3 * full, *slab_statistics(3 * full)), atol=1e-5)
    # a half file gone: its own scale, with a warning
    write_star(table.drop(columns=["rlnDeconvTomoName"]), tmp_path / "tomograms.star")
    os.remove(tmp_path / "odd" / "tomo_00_odd.mrc")
    np.testing.assert_allclose(predict("no_half"), own_scale, atol=1e-5)
    # a reversed tilt range: one error naming the STAR file and the row, nothing written
    write_star(table.drop(columns=["rlnDeconvTomoName"]).assign(rlnTiltMin=[70.0], rlnTiltMax=[10.0]),
               tmp_path / "tomograms.star")
    with pytest.raises(IsonetError, match=r"tomograms.star: rlnTiltMin/rlnTiltMax of rlnIndex 1: .*tilt_min=70"):
        predict("reversed_tilts")
    assert not (tmp_path / "reversed_tilts").exists()


def test_half_scaled_statistics_known_answer(tmp_path):
    """Full tomogram = sum of the halves: the mean is its own, the std twice the halves' root mean square."""
    from isonet.predict.halves import half_scaled_statistics
    rng = np.random.default_rng(8)
    signal = gaussian_filter(rng.normal(size=(12, 20, 20)), 2).astype(np.float32)
    halves = [signal + rng.normal(0, 0.5 + 0.2 * i, size=signal.shape).astype(np.float32) + 3 for i in range(2)]
    full = halves[0] + halves[1]
    paths = [str(tmp_path / f"{name}.mrc") for name in ("full", "h1", "h2")]
    for path, volume in zip(paths, [full, *halves]):
        write_volume(path, volume)
    mean, std = half_scaled_statistics(paths[0], paths[1:])
    assert mean == pytest.approx(slab_statistics(full)[0], rel=1e-6)
    half_rms = np.sqrt(np.mean([slab_statistics(h)[1] ** 2 for h in halves]))
    assert std == pytest.approx(2 * half_rms, rel=1e-5)
    assert std > 1.2 * slab_statistics(full)[1]  # noise-dominated: well above the full tomogram's own std
    write_volume(paths[2], halves[1][:8])
    with pytest.raises(IsonetError, match="h2.mrc: shape"):
        half_scaled_statistics(paths[0], paths[1:])


@pytest.fixture(scope="module")
def halves_run(tmp_path_factory):
    """prepare_star with halves, extract, and a 2-iteration refine with the default method."""
    folder = tmp_path_factory.mktemp("halves_refine")
    _write_halves_project(str(folder))
    for args in (("prepare_star", "tomos", "--even", "even", "--odd", "odd", "--number_subtomos", 4),
                 ("extract", "tomograms.star", "--cube_size", 16, "--crop_size", 24, "--seed", 1),
                 ("refine", "subtomo.star", "--iterations", 2, "--seed", 5, "--mw_weight", 2, *TINY)):
        result = run_in_process(*args, cwd=folder)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return str(folder), result


def test_refine_defaults_to_the_halves_method_and_writes_its_files(halves_run):
    folder, result = halves_run
    assert "Method: halves" in result.stdout
    results = os.path.join(folder, "results")
    state = _final_state(results)
    assert state["method"] == "halves" and state["mw_weight"] == 2
    assert [h["noise_level"] for h in state["history"]] == [0.0, 0.0]
    # Cosine decay from --learning_rate (0.004) to a tenth of it at the last iteration.
    assert state["final_learning_rate"] == pytest.approx(0.0004)
    assert [h["learning_rate"] for h in state["history"]] == [pytest.approx(0.004), pytest.approx(0.0004)]
    assert "Learning rate 0.0004" in result.stdout
    # Full-input pairs in the first two iterations.
    assert state["full_input_fraction"] == 0.75
    assert "in iterations 1-2, 0.75 of the inputs the mean of both halves)" in result.stdout
    with open(os.path.join(results, "model_iter02.json")) as handle:
        assert json.load(handle)["method"] == "halves"
    names = set(os.listdir(results))
    for j in range(4):
        assert {f"tomo_00_{j:06d}_half{h}_iter{it:02d}.mrc" for h in (1, 2) for it in (1, 2)} <= names


def test_halves_predictions_in_refine_are_the_saved_network_on_normalised_halves(halves_run):
    from isonet.network.unet import load_model
    folder, _ = halves_run
    row = read_star(os.path.join(folder, "subtomo.star")).iloc[0]
    half = apply_statistics(read_volume(os.path.join(folder, row["rlnImageNameHalf2"])),
                            row["rlnNormMeanHalf2"], row["rlnNormStdHalf2"])
    model = load_model(os.path.join(folder, "results", "model_iter02.h5"))
    output = np.asarray(model.predict(half[None, ..., None], verbose=0))[0, ..., 0]
    written = read_volume(os.path.join(folder, "results", "tomo_00_000000_half2_iter02.mrc"))
    np.testing.assert_allclose(-output, written, atol=1e-4)


def _final_state(results):
    with open(os.path.join(results, "refine_iter02.json")) as handle:
        return json.load(handle)


def test_continue_from_reproduces_the_halves_method(halves_run):
    folder, _ = halves_run
    resumed = os.path.join(folder, "resumed")
    os.makedirs(resumed)
    for name in ("model_iter01.h5", "refine_iter01.json", "model_iter01.json"):
        shutil.copy(os.path.join(folder, "results", name), resumed)
    for j in range(4):  # the half predictions of iteration 1 are made at the start of iteration 2 again
        assert not os.path.exists(os.path.join(resumed, f"tomo_00_{j:06d}_half1_iter01.mrc"))
    result = run_in_process("refine", "--continue_from", "resumed/refine_iter01.json", "--result_dir", "resumed",
                            cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    original, again = (_final_state(os.path.join(folder, path)) for path in ("results", "resumed"))
    assert again["method"] == "halves"
    assert (again["losses"], again["val_losses"]) == (pytest.approx(original["losses"], rel=1e-6),
                                                      pytest.approx(original["val_losses"], rel=1e-6))
    for j in range(4):
        name = f"tomo_00_{j:06d}_half1_iter02.mrc"
        np.testing.assert_allclose(read_volume(os.path.join(folder, "resumed", name)),
                                   read_volume(os.path.join(folder, "results", name)), atol=1e-5)


def test_half_pair_maker_fills_each_half_with_its_previous_prediction(tmp_path):
    from isonet.refine.half_pairs import HalfPairMaker, half_prediction_path
    from isonet.refine.wedge_ops import apply_wedge, wedge_masks
    rng = np.random.default_rng(5)
    halves = [rng.normal(size=(8, 8, 8)).astype(np.float32) for _ in range(2)]
    fake = _FakeHalves(halves)
    predicted = rng.normal(size=(8, 8, 8)).astype(np.float32)  # the previous iteration's output (dark density)
    write_volume(half_prediction_path(str(tmp_path), fake, 0, 0, 2), -predicted)
    maker = HalfPairMaker(fake, [0], [(-60.0, 60.0)], 8, str(tmp_path), 2, iteration=3)
    mask = wedge_masks((8, 8, 8), [(-60.0, 60.0)])[0]
    # the half where measured, the previous prediction in its wedge
    np.testing.assert_allclose(maker.merged(0, 0, maker.previous(0, 0)),
                               apply_wedge(halves[0], mask) + apply_wedge(predicted, mask, 0, 1), atol=1e-5)
    assert HalfPairMaker(fake, [0], [(-60.0, 60.0)], 8).previous(0, 0) is None  # iteration 1: nothing to fill


def _resolved(star, **options):
    from isonet.refine.config import RefineConfig
    return RefineConfig.from_cli(dict(subtomo_star=star, iterations=4, learning_rate=0.002, **options)).resolve(4, 1)


def test_method_defaults_follow_the_method_and_the_star_file(halves_run, tmp_path, caplog):
    """The method's derived defaults come from the config's resolve step; former names are read with a warning."""
    import logging
    folder, _ = halves_run
    star = os.path.join(folder, "subtomo.star")
    halves = _resolved(star)
    assert (halves.method, halves.full_input_fraction, halves.final_learning_rate) == ("halves", 0.75,
                                                                                       pytest.approx(0.0002))
    isonet1 = _resolved(star, method="isonet1")
    assert (isonet1.full_input_fraction, isonet1.final_learning_rate) == (0.0, 0.002)
    assert _resolved(star, full_input_fraction=0.25, final_learning_rate=0.001).full_input_fraction == 0.25
    table = read_star(star)
    write_star(table[["rlnImageName", "rlnCropSize", "rlnCubeSize"]], tmp_path / "full_only.star")
    assert _resolved(str(tmp_path / "full_only.star")).method == "isonet1"  # no halves listed
    with caplog.at_level(logging.WARNING, logger="isonet"):
        assert _resolved(star, method="isonet2").method == "halves"
        assert _resolved(star, method="isonet").method == "isonet1"
    assert [r.getMessage() for r in caplog.records] == [
        "--method isonet2 is the former name of halves: read as halves",
        "--method isonet is the former name of isonet1: read as isonet1"]


def test_halves_method_makes_full_input_pairs_in_the_first_two_iterations_only(halves_run):
    from isonet.refine.methods import REGISTRY
    from isonet.refine.subtomograms import Subtomograms
    folder, _ = halves_run
    star = os.path.join(folder, "subtomo.star")
    config = _resolved(star, result_dir=os.path.join(folder, "unused"))
    method = REGISTRY["halves"](config, Subtomograms(star), {})
    fractions = [method.pair_maker(it, [0, 1], filled=False).full_input_fraction for it in (1, 2, 3, 4)]
    assert fractions == [0.75, 0.75, 0.0, 0.0]
    assert method.description() == ("halves (Noise2Noise across half subtomograms plus the wedge task, masked "
                                     "Fourier loss, mw_weight 16; in iterations 1-2, 0.75 of the inputs the mean "
                                     "of both halves)")
    assert method.model_info()["method"] == "halves" and method.refreshes_batch_norm

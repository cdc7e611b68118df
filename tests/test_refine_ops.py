"""Refine's numpy parts: wedge geometry and operations, rotations, pairs, noise, schedule, settings."""

import json
import os

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from isonet.errors import UsageError
from isonet.io.mrc import write_volume
from isonet.normalize import normalize
from isonet.refine.config import RefineConfig, load_state, save_state
from isonet.refine.noise import NoiseBank, add_noise, backprojected_noise, noise_schedule
from isonet.refine.pairs import PairMaker, PairStream, centre_crop, validation_split
from isonet.refine.rotations import ROTATIONS, rotate, rotate_all
from isonet.refine.wedge_ops import apply_wedge, merge, wedge_masks
from isonet.wedge import measured_mask, wedge_mask

N = 32


def plane_wave(kz=0, ky=0, kx=0, n=N):
    z, y, x = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    return np.cos(2 * np.pi * (kz * z + ky * y + kx * x) / n).astype(np.float32)


def kept_energy(volume, tilts=(-60, 60)):
    filtered = apply_wedge(volume, wedge_masks(volume.shape, [tilts])[0])
    return float((filtered ** 2).sum() / (volume ** 2).sum())


@pytest.mark.parametrize("frequency, survives", [
    (dict(kx=5), True), (dict(ky=5), True), (dict(kz=5), False),
    (dict(kz=3, kx=3), True), (dict(kz=6, kx=3), False), (dict(kz=3, ky=6), False),
    (dict(kz=12, kx=12), False), (dict(kx=14), True), (dict(kx=16), True),
])
def test_wedge_geometry_matches_isonet1(frequency, survives):
    assert kept_energy(plane_wave(**frequency)) == pytest.approx(1.0 if survives else 0.0, abs=1e-5)


def test_wedge_kept_fraction_and_kz0_row():
    mask = wedge_mask((N, 1, N))[:, 0, :]
    assert mask.mean() == pytest.approx(0.52, abs=0.01)
    assert mask[0].all()  # the kz = 0 row is kept, beyond the circle too


def test_per_volume_tilt_ranges_in_one_batch():
    wave = plane_wave(kz=3, kx=4)  # tilt angle 36.9 degrees
    batch = np.stack([wave, wave])
    masks = wedge_masks(wave.shape, [(-60, 60), (-30, 30)])
    out = apply_wedge(batch, masks)
    assert np.allclose(out[0], wave, atol=1e-4)
    assert np.abs(out[1]).max() < 1e-4


def test_merge_keeps_measured_region_of_original(rng):
    original, prediction = rng.standard_normal((2, 3, 24, 24, 24)).astype(np.float32)
    masks = wedge_masks((24, 24, 24), [(-60, 60), (-45, 55), (-70, 40)])
    merged = merge(original, prediction, masks)
    spectrum = np.fft.rfftn(merged, axes=(1, 2, 3))
    measured = np.broadcast_to(masks > 0, spectrum.shape)
    assert np.allclose(spectrum[measured], np.fft.rfftn(original, axes=(1, 2, 3))[measured], atol=1e-3)
    assert np.allclose(spectrum[~measured], np.fft.rfftn(prediction, axes=(1, 2, 3))[~measured], atol=1e-3)
    both = apply_wedge(prediction, masks, 0, 1) + apply_wedge(original, masks, 1, 0)
    assert np.allclose(merged, both, atol=1e-5)


def _rotation_matrix(index):
    """Where the unit axes (z, y, x) go, read from the rotated index grid."""
    n = 3
    grid = np.arange(n ** 3).reshape(n, n, n)
    rotated = rotate(grid, index)
    centre = np.array([1, 1, 1])
    columns = []
    for axis in range(3):
        point = centre.copy()
        point[axis] += 1
        value = grid[tuple(point)]
        columns.append(np.argwhere(rotated == value)[0] - centre)
    return np.array(columns).T


def test_twenty_distinct_proper_rotations_without_wedge_symmetries(rng):
    volume = rng.standard_normal((6, 6, 6))
    copies = rotate_all(volume)
    assert copies.shape == (20, 6, 6, 6) and len(ROTATIONS) == 20
    excluded = [volume, np.rot90(volume, 2, (1, 2)), np.rot90(volume, 2, (0, 2)), np.rot90(volume, 2, (0, 1))]
    for i, copy in enumerate(copies):
        assert np.array_equal(np.sort(copy, axis=None), np.sort(volume, axis=None))  # cube onto itself
        assert not any(np.array_equal(copy, other) for other in excluded)
        assert not any(np.array_equal(copy, copies[j]) for j in range(i))
    matrices = [_rotation_matrix(i) for i in range(20)]
    assert all(round(np.linalg.det(m)) == 1 for m in matrices)
    # where the beam axis Z goes (spec §3.4.5): Y in 8, X in 8, stays on Z in 4
    destinations = [int(np.argmax(np.abs(m[:, 0]))) for m in matrices]
    assert [destinations.count(a) for a in (0, 1, 2)] == [4, 8, 8]


def _subtomograms(folder, rng, n=3, crop=24, tilts=(-60, 60)):
    paths, previous = [], []
    for i in range(n):
        volume = gaussian_filter(rng.standard_normal((crop,) * 3), 1.5).astype(np.float32)
        paths.append(os.path.join(folder, f"s{i}.mrc"))
        previous.append(os.path.join(folder, f"s{i}_iter00.mrc"))
        write_volume(paths[-1], volume)
        write_volume(previous[-1], volume + rng.standard_normal(volume.shape).astype(np.float32))
    return paths, previous


def test_pairs_follow_isonet1_recipe(tmp_path, rng):
    paths, previous = _subtomograms(str(tmp_path), rng, n=2)
    tilts = [(-60.0, 60.0), (-40.0, 50.0)]
    maker = PairMaker(paths, previous, tilts, cube_size=16, seed=3, iteration=2)
    x, y = maker.pairs(1)
    assert x.shape == y.shape == (20, 16, 16, 16) and x.dtype == np.float32
    # independent recomputation of spec §3.4.4 steps 1-6
    from isonet.io.mrc import read_volume
    iw = normalize(-read_volume(paths[1]))
    ow = normalize(-read_volume(previous[1]))
    mask = wedge_mask(iw.shape, *tilts[1], real=True)
    merged = normalize(apply_wedge(ow, mask, 0, 1) + apply_wedge(iw, mask, 1, 0))
    for r in (0, 7, 19):
        rotated = rotate(merged, r)
        assert np.allclose(y[r], rotated[4:20, 4:20, 4:20], atol=1e-5)
        assert np.allclose(x[r], apply_wedge(rotated, mask)[4:20, 4:20, 4:20], atol=1e-5)  # input = wedge(target)
    x_some, _ = maker.pairs(1, [7])
    assert np.array_equal(x_some[0], x[7])


def test_noise_added_to_inputs_only_and_reproducible(tmp_path, rng):
    paths, previous = _subtomograms(str(tmp_path), rng, n=1)
    bank = NoiseBank(str(tmp_path / "noise"), 16, (-60.0, 60.0), "ramp", seed=5, count=10)
    clean = PairMaker(paths, previous, [(-60.0, 60.0)], 16, seed=3, iteration=2)
    noisy = PairMaker(paths, previous, [(-60.0, 60.0)], 16, 0.2, {(-60.0, 60.0): bank}, seed=3, iteration=2)
    (x0, y0), (x1, y1) = clean.pairs(0), noisy.pairs(0)
    assert np.array_equal(y0, y1)
    assert np.std(x1 - x0) == pytest.approx(0.2, rel=0.15)
    assert np.array_equal(noisy.pairs(0)[0], x1)  # same seed, same pairs
    assert len(os.listdir(bank.folder)) >= 1


def test_backprojected_noise_has_wedge_geometry():
    for mode in ("noFilter", "ramp", "hamming"):
        cube = backprojected_noise(32, -30, 50, mode, np.random.default_rng(0))
        assert cube.shape == (32, 32, 32) and abs(cube.std() - 1) < 1e-4
        power = np.abs(np.fft.fftn(cube)) ** 2
        inside = np.broadcast_to(measured_mask(cube.shape, -34, 54), cube.shape)
        assert power[inside].sum() / power.sum() > 0.9
        # only one sign convention puts power at +35..48 degrees and none at -48..-35
        plus = np.broadcast_to(measured_mask(cube.shape, 35, 48), cube.shape)
        minus = np.broadcast_to(measured_mask(cube.shape, -48, -35), cube.shape)
        assert power[plus].sum() > 4 * power[minus].sum()
    ramp = backprojected_noise(32, rng=np.random.default_rng(1), mode="ramp")
    plain = backprojected_noise(32, rng=np.random.default_rng(1), mode="noFilter")
    high = lambda c: (np.abs(np.fft.fftn(c))[:, :, 8:25] ** 2).sum() / (np.abs(np.fft.fftn(c)) ** 2).sum()
    assert high(ramp) > 2 * high(plain)


def test_add_noise_level_is_absolute_std(rng):
    batch = np.zeros((2, 16, 16, 16), np.float32)
    noise = [rng.standard_normal((16, 16, 16)).astype(np.float32) * 7 for _ in range(2)]
    add_noise(batch, 0.1, noise, rng)
    assert batch.std(axis=(1, 2, 3)) == pytest.approx([0.1, 0.1], rel=1e-3)


def test_noise_schedule():
    schedule = noise_schedule(30, (0.05, 0.1, 0.15, 0.2), (11, 16, 21, 26))
    assert schedule[10] == 0 and schedule[11] == 0.05 and schedule[20] == 0.1 and schedule[30] == 0.2
    assert noise_schedule(3, 0.1, 2) == [0, 0, 0.1, 0.1]
    with pytest.raises(UsageError, match="noise_start_iter"):
        noise_schedule(30, 0.1, (11, 16, 21, 26))


def test_validation_split_counts():
    rng = np.random.default_rng(0)
    assert len(validation_split(3, 1, rng)) == 7   # int(0.1 * 60) = 6, rounded to devices, + 1
    assert len(validation_split(300, 4, rng)) == 604
    split = validation_split(10, 2, np.random.default_rng(1))
    assert np.array_equal(split, validation_split(10, 2, np.random.default_rng(1)))


def test_stream_splits_pairs_without_overlap(tmp_path, rng):
    paths, previous = _subtomograms(str(tmp_path), rng, n=2)
    stream = PairStream(PairMaker(paths, previous, [(-60.0, 60.0)] * 2, 16), 1, 4, 2)
    try:
        for s in range(2):
            train, test = set(stream.train_rotations.get(s, [])), set(stream.test_rotations.get(s, []))
            assert not train & test and train | test == set(range(20))
        x_val, y_val = stream.validation_arrays()
        assert x_val.shape == (stream.n_test, 16, 16, 16) == (5, 16, 16, 16)
        pairs = stream.train_pairs()
        first = [next(pairs) for _ in range(stream.n_train)]
        assert len({y.tobytes() for _, y in first}) == stream.n_train == 35  # each pair once per pass
    finally:
        stream.close()


def test_centre_crop_start():
    volume = np.arange(24 ** 3).reshape(24, 24, 24)
    assert centre_crop(volume, 16)[0, 0, 0] == volume[4, 4, 4]


def test_config_defaults_json_round_trip_and_continue(tmp_path):
    config = RefineConfig.from_cli({"subtomo_star": "s.star", "iterations": 5, "noise_level": (0.1,),
                                    "noise_start_iter": (3,), "epochs": None, "method": "isonet1"}).resolve(300, 1)
    assert (config.batch_size, config.steps_per_epoch, config.epochs) == (4, 200, 10)
    assert RefineConfig(method="isonet1").resolve(10, 4).batch_size == 8
    assert RefineConfig(method="isonet1").resolve(10, 1).steps_per_epoch == 15
    assert config.noise_dir == os.path.join("results", "training_noise") and isinstance(config.seed, int)
    path = str(tmp_path / "refine_iter02.json")
    history = [{"iteration": 2, "loss": [0.3, 0.2], "val_loss": [0.4, 0.3], "noise_level": 0.0,
                "seconds": {"pairs": 1.0}}]
    save_state(path, config, 2, history)
    with open(path) as handle:
        assert json.load(handle)["losses"] == [0.3, 0.2]
    saved, iter_count, restored = load_state(path)
    assert iter_count == 2 and restored == history and saved.to_dict() == config.to_dict()
    cli = RefineConfig.from_cli({"iterations": 8, "epochs": None, "result_dir": None})
    merged = cli.continued_from(saved)
    assert merged.iterations == 8 and merged.noise_level == (0.1,) and merged.seed == config.seed
    assert merged.subtomo_star == "s.star" and merged.kernel == (3, 3, 3)


def test_a_state_of_former_names_and_retired_settings_loads_with_warnings(tmp_path, caplog):
    """A refine_iterNN.json of an earlier version: the former method name is read as today's, every retired
    setting that differs from what the run now does is named once, and nothing else warns."""
    import logging
    config = RefineConfig.from_cli({"subtomo_star": "s.star", "iterations": 6, "full_input_fraction": 0.5,
                                    "method": "halves"})
    path = str(tmp_path / "refine_iter03.json")
    save_state(path, config, 3, [])
    with open(path) as handle:
        state = json.load(handle)
    state.update(method="isonet2", mw_target="other", fill_wedge=True, refresh_batch_norm=True, dc_weight=0.0)
    with open(path, "w") as handle:
        json.dump(state, handle)  # no full_input_stop: saved before it existed, full-input pairs in every iteration
    with caplog.at_level(logging.WARNING, logger="isonet"):
        saved, iter_count, _ = load_state(path)
    assert (iter_count, saved.method, saved.full_input_fraction) == (3, "halves", 0.5)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: method isonet2 is the former name of halves: read as halves",
        f"{path}: mw_target 'other' is no longer an option (docs/quality.md); the run continues with 'mean'",
        f"{path}: full_input_stop 6 is no longer an option (docs/quality.md); the run continues with 2"]


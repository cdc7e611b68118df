"""extract (spec §3.3, §1.5): centres inside the mask and the volume, STAR columns, halves, the command."""

import os

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from isonet.errors import IsonetError
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.preprocess.extract import half_star_names, random_halves, sample_centres

SHAPE = (24, 40, 36)
CROP = 16


def _blob_mask(shape=SHAPE):
    z, y, x = np.indices(shape)
    return (z - 12) ** 2 + (y - 20) ** 2 / 4 + (x - 10) ** 2 < 40


def test_centres_inside_mask_and_bounds_without_repeats():
    mask = _blob_mask()
    centres = sample_centres(SHAPE, CROP, 30, np.random.default_rng(0), mask)
    assert centres.shape == (30, 3)
    assert mask[tuple(centres.T)].all()
    for axis, n in enumerate(SHAPE):
        assert centres[:, axis].min() >= CROP // 2
        assert centres[:, axis].max() <= n - (CROP - CROP // 2)
    assert len({tuple(c) for c in centres}) == 30
    again = sample_centres(SHAPE, CROP, 30, np.random.default_rng(0), mask)
    np.testing.assert_array_equal(centres, again)


def test_centres_without_mask_cover_the_valid_box():
    centres = sample_centres((16, 16, 16), 16, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(centres, np.full((5, 3), 8))  # the only centre whose crop fits


def test_few_valid_voxels_repeat_centres():
    mask = np.zeros(SHAPE, bool)
    mask[12, 20, 18] = mask[10, 15, 12] = True
    centres = sample_centres(SHAPE, CROP, 6, np.random.default_rng(2), mask)
    assert {tuple(c) for c in centres} == {(12, 20, 18), (10, 15, 12)}


def test_thin_volume_and_empty_mask_are_errors():
    with pytest.raises(IsonetError, match="thinner than crop_size 16"):
        sample_centres((12, 40, 40), 16, 3, np.random.default_rng(0))
    mask = np.zeros(SHAPE, bool)
    mask[2, 2, 2] = True  # too close to the border
    with pytest.raises(IsonetError, match="no mask voxel"):
        sample_centres(SHAPE, CROP, 3, np.random.default_rng(0), mask)


def test_random_halves_disjoint_and_covering():
    first, second = random_halves(11, np.random.default_rng(3))
    assert len(first) == 6 and len(second) == 5
    assert set(first).isdisjoint(second) and set(first) | set(second) == set(range(11))
    assert half_star_names("out/sub.star") == ("out/sub_half1.star", "out/sub_half2.star")


def _project(tmp_path, rng, shape=SHAPE, with_mask=True, number=4):
    os.makedirs(tmp_path / "tomos", exist_ok=True)
    volume = rng.standard_normal(shape).astype(np.float32)
    write_volume(tmp_path / "tomos" / "a.b.mrc", volume, voxel_size=8.0)
    columns = {"rlnIndex": [1], "rlnMicrographName": ["tomos/a.b.mrc"], "rlnPixelSize": [8.0],
               "rlnNumberSubtomo": [number], "rlnTiltMin": [-50.0], "rlnTiltMax": [65.0]}
    if with_mask:
        write_volume(tmp_path / "tomos" / "a.b_mask.mrc", _blob_mask(shape).astype(np.int8))
        columns["rlnMaskName"] = ["tomos/a.b_mask.mrc"]
    write_star(pd.DataFrame(columns), tmp_path / "tomograms.star")
    return volume


def test_cli_extract_writes_traceable_subtomograms_and_halves(tmp_path, rng):
    volume = _project(tmp_path, rng, number=5)
    os.makedirs(tmp_path / "subtomo")
    (tmp_path / "subtomo" / "keep.txt").write_text("user file")
    result = run_cli("extract", "tomograms.star", "--cube_size", "8", "--crop_size", str(CROP), "--seed", "7",
                     "--split_halves", "True", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "subtomo~" / "keep.txt").read_text() == "user file"
    table = read_star(tmp_path / "subtomo.star")
    assert list(table["rlnSubtomoIndex"]) == [1, 2, 3, 4, 5]
    assert list(table["rlnImageName"]) == [os.path.join("subtomo", f"a.b_{j:06d}.mrc") for j in range(5)]
    assert set(table["rlnCubeSize"]) == {8} and set(table["rlnCropSize"]) == {CROP}
    assert set(table["rlnPixelSize"]) == {8.0}
    assert set(table["rlnTiltMin"]) == {-50.0} and set(table["rlnTiltMax"]) == {65.0}
    assert set(table["rlnMicrographName"]) == {"tomos/a.b.mrc"}
    mask = _blob_mask()
    for _, row in table.iterrows():
        x, y, z = int(row["rlnCoordinateX"]), int(row["rlnCoordinateY"]), int(row["rlnCoordinateZ"])
        assert mask[z, y, x]
        cube = read_volume(tmp_path / row["rlnImageName"])
        half = CROP // 2
        np.testing.assert_array_equal(cube, volume[z - half:z + half, y - half:y + half, x - half:x + half])
        assert read_header(tmp_path / row["rlnImageName"]).voxel_size == pytest.approx((8.0, 8.0, 8.0))
    first = read_star(tmp_path / "subtomo_half1.star")
    second = read_star(tmp_path / "subtomo_half2.star")
    names = set(first["rlnImageName"]), set(second["rlnImageName"])
    assert names[0].isdisjoint(names[1]) and names[0] | names[1] == set(table["rlnImageName"])
    assert len(first) == 3 and len(second) == 2
    # same seed, same centres; the previous folder is renamed aside again
    again = run_cli("extract", "tomograms.star", "--cube_size", "8", "--crop_size", str(CROP), "--seed", "7",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert os.path.isdir(tmp_path / "subtomo~2")
    repeat = read_star(tmp_path / "subtomo.star")
    np.testing.assert_array_equal(repeat["rlnCoordinateX"], table["rlnCoordinateX"])


def test_cli_extract_thin_tomogram_is_one_line_error(tmp_path, rng, run_main):
    _project(tmp_path, rng, shape=(12, 40, 36), with_mask=False)
    status, _, err = run_main("extract", "tomograms.star", "--cube_size", "8", "--crop_size", "16", cwd=tmp_path)
    assert status == 1  # an input error
    assert err.startswith("ERROR: ") and err.count("\n") == 1
    assert "a.b.mrc" in err and "thinner than crop_size 16" in err
    assert not os.path.exists(tmp_path / "subtomo.star") and not os.path.exists(tmp_path / "subtomo")


def test_extract_bad_inputs(tmp_path, rng, monkeypatch):
    from isonet.preprocess.extract import extract_subtomograms
    _project(tmp_path, rng)
    write_volume(tmp_path / "tomos" / "a.b_mask.mrc", np.ones((4, 4, 4), np.int8))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IsonetError, match="mask shape"):
        extract_subtomograms("tomograms.star", cube_size=8, crop_size=CROP)
    with pytest.raises(IsonetError, match="multiple of 8"):
        extract_subtomograms("tomograms.star", cube_size=12)
    with pytest.raises(IsonetError, match="larger than --cube_size"):
        extract_subtomograms("tomograms.star", cube_size=16, crop_size=16)
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnPixelSize": [8.0]}), "bad.star")
    with pytest.raises(IsonetError, match="rlnMicrographName"):
        extract_subtomograms("bad.star", cube_size=8)

"""STAR reading and writing: IsoNet 1 layout, None round trip, label checks, row selection."""

import os

import pandas as pd
import pytest
import starfile

from isonet.errors import IsonetError
from isonet.io.star import (SUBTOMO_REQUIRED, TOMOGRAM_REQUIRED, read_star, resolve_path, select_rows,
                            set_column, tilt_range, write_star)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def test_reads_isonet1_tomograms_star_by_name():
    table = read_star(os.path.join(FIXTURES, "isonet1_tomograms.star"), required=TOMOGRAM_REQUIRED)
    assert len(table) == 3
    assert list(table["rlnIndex"]) == [1, 2, 3]
    assert table.loc[0, "rlnMicrographName"] == "tomoset/TS01-wbp.rec"
    assert table.loc[1, "rlnDefocus"] == pytest.approx(25292.0)
    assert table.loc[2, "rlnNumberSubtomo"] == 80
    assert table.loc[0, "rlnSnrFalloff"] == pytest.approx(0.7)
    assert table.loc[2, "rlnMaskStdPercentage"] == pytest.approx(60.0)
    assert table.loc[0, "rlnMaskBoundary"] is None
    assert table.loc[2, "rlnMaskBoundary"] == "tomoset/TS45.mod"
    assert table.loc[0, "rlnDeconvTomoName"] == "deconv/TS01-wbp.rec"
    assert table.loc[1, "rlnDeconvTomoName"] is None


def test_reads_isonet1_subtomo_star():
    table = read_star(os.path.join(FIXTURES, "isonet1_subtomo.star"), required=SUBTOMO_REQUIRED)
    assert list(table["rlnImageName"]) == ["subtomo/TS01-wbp_000000.mrc", "subtomo/TS01-wbp_000001.mrc"]
    assert list(table["rlnCubeSize"]) == [64, 64] and list(table["rlnCropSize"]) == [80, 80]
    assert tilt_range(table.iloc[0]) == (-60.0, 60.0)  # absent columns: IsoNet 1's fixed wedge


def test_none_round_trips_and_file_is_plain_star(tmp_path):
    table = read_star(os.path.join(FIXTURES, "isonet1_tomograms.star"))
    path = tmp_path / "out.star"
    write_star(table, path)
    again = read_star(path)
    pd.testing.assert_frame_equal(table, again)
    text = path.read_text()
    assert "\tNone" in text and "<NA>" not in text and "nan" not in text.lower()
    assert list(starfile.read(path).columns) == list(table.columns)


def test_set_column_creates_text_and_numeric_columns(tmp_path):
    table = read_star(os.path.join(FIXTURES, "isonet1_subtomo.star"))
    set_column(table, "rlnMaskName", "m.mrc", rows=[1])
    set_column(table, "rlnTiltMin", -50.0)
    assert list(table["rlnMaskName"]) == [None, "m.mrc"]
    assert list(table["rlnTiltMin"]) == [-50.0, -50.0]
    write_star(table, tmp_path / "s.star")
    again = read_star(tmp_path / "s.star")
    assert list(again["rlnMaskName"]) == [None, "m.mrc"]
    assert tilt_range(again.iloc[0]) == (-50.0, 60.0)


def test_numeric_looking_paths_stay_text(tmp_path):
    table = pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["1"], "rlnPixelSize": [10.0]})
    write_star(table, tmp_path / "t.star")
    assert read_star(tmp_path / "t.star").loc[0, "rlnMicrographName"] == "1"


def test_missing_labels_named(tmp_path):
    with pytest.raises(IsonetError, match=r"isonet1_subtomo\.star: missing STAR label\(s\) rlnIndex, rlnMicrographName"):
        read_star(os.path.join(FIXTURES, "isonet1_subtomo.star"), required=TOMOGRAM_REQUIRED)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(IsonetError, match=r"none\.star: STAR file not found"):
        read_star(tmp_path / "none.star")
    garbage = tmp_path / "garbage.star"
    garbage.write_text("just some text\n")
    with pytest.raises(IsonetError, match=r"garbage\.star"):
        read_star(garbage)


def test_non_numeric_value_in_numeric_column(tmp_path):
    path = tmp_path / "bad.star"
    path.write_text("data_\n\nloop_\n_rlnIndex #1\n_rlnPixelSize #2\n1\tabc\n")
    with pytest.raises(IsonetError, match=r"bad\.star: column rlnPixelSize must hold numbers"):
        read_star(path)


def test_select_rows():
    table = read_star(os.path.join(FIXTURES, "isonet1_tomograms.star"))
    assert list(select_rows(table, None)["rlnIndex"]) == [1, 2, 3]
    assert list(select_rows(table, [1, 3])["rlnIndex"]) == [1, 3]
    with pytest.raises(IsonetError, match=r"--tomo_idx: rlnIndex value\(s\) \[7\] not in the STAR file"):
        select_rows(table, [1, 7])


def test_tilt_range_validation():
    with pytest.raises(IsonetError, match="tilt_min < tilt_max"):
        tilt_range(pd.Series({"rlnTiltMin": 40.0, "rlnTiltMax": 30.0}))
    with pytest.raises(IsonetError, match="-90 <= tilt_min"):
        tilt_range(pd.Series({"rlnTiltMin": -100.0, "rlnTiltMax": 30.0}))


def test_resolve_path_prefers_cwd_then_star_folder(tmp_path, monkeypatch):
    (tmp_path / "project" / "tomos").mkdir(parents=True)
    (tmp_path / "project" / "tomos" / "a.mrc").write_text("x")
    star = tmp_path / "project" / "tomograms.star"
    monkeypatch.chdir(tmp_path)
    assert resolve_path("tomos/a.mrc", star) == os.path.join(str(tmp_path / "project"), "tomos/a.mrc")
    monkeypatch.chdir(tmp_path / "project")
    assert resolve_path("tomos/a.mrc", star) == "tomos/a.mrc"
    assert resolve_path("missing.mrc", star) == "missing.mrc"

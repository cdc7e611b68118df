"""STAR reading and writing: IsoNet 1 layout, None round trip, label checks, row selection."""

import os
import threading
import time

import pandas as pd
import pytest
import starfile

from isonet.errors import IsonetError
from isonet.io import star
from isonet.io.lock import lock_path, output_lock
from isonet.io.star import (SUBTOMO_REQUIRED, TOMOGRAM_REQUIRED, read_star, resolve_path, select_rows,
                            set_column, tilt_range, update_star_rows, write_star)

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


def _three_tomograms(path):
    write_star(pd.DataFrame({"rlnIndex": [1, 2, 3], "rlnMicrographName": ["a.mrc", "b.mrc", "c.mrc"],
                             "rlnPixelSize": [10.0, 10.0, 10.0]}), path)


def test_update_star_rows_keeps_the_rows_other_commands_wrote_meanwhile(tmp_path):
    """Two array tasks read the STAR file before either writes; each writes its row, both rows stay."""
    path = tmp_path / "tomograms.star"
    _three_tomograms(path)
    first, third = read_star(path), read_star(path)
    set_column(first, "rlnDeconvTomoName", None)
    set_column(first, "rlnDeconvTomoName", "deconv/a.mrc", rows=[0])
    update_star_rows(path, first, [0])
    set_column(third, "rlnDeconvTomoName", None)
    set_column(third, "rlnSnrFalloff", 1.0)  # a column new to the file: every row gets this table's value
    set_column(third, "rlnDeconvTomoName", "deconv/c.mrc", rows=[2])
    set_column(third, "rlnSnrFalloff", 0.5, rows=[2])
    seen = []
    written = update_star_rows(path, third, [2], while_locked=lambda current: seen.append(
        (os.path.exists(lock_path(path)), list(current["rlnDeconvTomoName"]))))
    table = read_star(path)
    assert list(table["rlnDeconvTomoName"]) == ["deconv/a.mrc", None, "deconv/c.mrc"]
    assert list(table["rlnSnrFalloff"]) == [1.0, 1.0, 0.5]
    assert list(table["rlnMicrographName"]) == ["a.mrc", "b.mrc", "c.mrc"]
    assert seen == [(True, ["deconv/a.mrc", None, "deconv/c.mrc"])]  # called with the file's table, locked
    assert list(written["rlnDeconvTomoName"]) == list(table["rlnDeconvTomoName"])
    assert not os.path.exists(lock_path(path))


def test_update_star_rows_refuses_a_replaced_file(tmp_path):
    path = tmp_path / "tomograms.star"
    _three_tomograms(path)
    table = read_star(path)
    write_star(table.iloc[:2], path)  # rlnIndex 3 gone meanwhile
    with pytest.raises(IsonetError, match=r"tomograms.star: its rlnIndex values changed while this command ran "
                                          r"\(now \[1, 2\], read \[1, 2, 3\]\); run the command again"):
        update_star_rows(path, table, [0])


def test_update_star_rows_waits_for_the_lock_of_another_update(tmp_path, monkeypatch):
    """Another command holding the STAR file's lock delays the update (it does not fail it), up to
    STAR_UPDATE_WAIT seconds; past that, the usual one-line lock error."""
    path = tmp_path / "tomograms.star"
    _three_tomograms(path)
    table = read_star(path)
    set_column(table, "rlnMaskName", "mask/b_mask.mrc", rows=[1])
    locked, release = threading.Event(), threading.Event()

    def hold():
        with output_lock(path):  # another open file: flock locks conflict within one process too
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(10)
    monkeypatch.setattr(star, "STAR_UPDATE_WAIT", 0.2)
    with pytest.raises(IsonetError, match=r"tomograms.star is being written by another isonet command"):
        update_star_rows(path, table, [1])
    monkeypatch.setattr(star, "STAR_UPDATE_WAIT", 10.0)
    threading.Timer(0.3, release.set).start()
    start = time.monotonic()
    update_star_rows(path, table, [1])
    holder.join()
    assert time.monotonic() - start >= 0.25
    assert list(read_star(path)["rlnMaskName"]) == [None, "mask/b_mask.mrc", None]

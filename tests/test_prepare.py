"""prepare_star and prepare_subtomo_star, through the library and the console command."""

import numpy as np
import pytest
import starfile

from conftest import run_cli
from isonet.errors import IsonetError, UsageError
from isonet.io.mrc import write_volume
from isonet.io.star import read_star
from isonet.prepare import default_cube_size, prepare_star, prepare_subtomo_star


def _touch_volumes(folder, names, shape=(8, 8, 8)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_volume(folder / name, np.zeros(shape, np.float32))


def test_prepare_star_cli_writes_documented_columns(tmp_path):
    _touch_volumes(tmp_path / "tomos", ["b.rec", "a.mrc", "c.MRC", "notes.txt", "d.mrc.bak"])
    result = run_cli("prepare_star", "tomos", "--pixel_size", "10.8", "--defocus=25000",
                     "--tilt_min", "-50", "--tilt_max", "66", "--number_subtomos", "30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = starfile.read(tmp_path / "tomograms.star")
    assert list(table.columns) == ["rlnIndex", "rlnMicrographName", "rlnPixelSize", "rlnDefocus",
                                   "rlnNumberSubtomo", "rlnMaskBoundary", "rlnTiltMin", "rlnTiltMax", "rlnVoltage",
                                   "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnBrightDensity"]
    assert list(table["rlnIndex"]) == [1, 2]
    assert list(table["rlnMicrographName"]) == ["tomos/a.mrc", "tomos/b.rec"]  # sorted, .mrc/.rec only
    assert list(table["rlnPixelSize"]) == [10.8, 10.8]
    assert list(table["rlnDefocus"]) == [25000.0, 25000.0]
    assert list(table["rlnNumberSubtomo"]) == [30, 30]
    assert list(table["rlnMaskBoundary"]) == ["None", "None"]
    assert list(table["rlnTiltMin"]) == [-50.0, -50.0] and list(table["rlnTiltMax"]) == [66.0, 66.0]
    assert list(table["rlnVoltage"]) == [300.0, 300.0] and list(table["rlnSphericalAberration"]) == [2.7, 2.7]
    assert list(table["rlnAmplitudeContrast"]) == [0.07, 0.07] and list(table["rlnBrightDensity"]) == [0, 0]
    log = (tmp_path / "isonet.log").read_text()
    assert "--pixel_size 10.8 Å differs from the MRC header's 1 Å; using 10.8 Å" in log
    assert "assumed (not given, not found): voltage 300 kV, cs 2.7 mm, amplitude contrast 0.07" in log
    assert (tmp_path / "isonet.log").read_text().count("Wrote tomograms.star with 2 tomogram(s)") == 1


def test_prepare_star_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsonetError, match="empty: no tomograms found"):
        prepare_star(str(tmp_path / "empty"))
    with pytest.raises(IsonetError, match="folder not found"):
        prepare_star(str(tmp_path / "missing"))
    _touch_volumes(tmp_path / "t", ["a.mrc"])
    with pytest.raises(UsageError, match="--pixel_size: expected a value > 0 Å, got 0"):
        prepare_star(str(tmp_path / "t"), pixel_size=0)
    with pytest.raises(IsonetError, match="tilt_min < tilt_max"):
        prepare_star(str(tmp_path / "t"), tilt_min=60, tilt_max=-60)


def test_prepare_star_cli_error_is_one_line(tmp_path):
    result = run_cli("prepare_star", "missing_folder", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["ERROR: missing_folder: folder not found"]


@pytest.mark.parametrize("crop, expected", [(96, 64), (80, 48), (48, 32), (64, 32)])
def test_default_cube_size_rule(crop, expected):
    assert default_cube_size(crop) == expected


def test_prepare_subtomo_star(tmp_path):
    folder = tmp_path / "sub"
    _touch_volumes(folder, ["x_000001.mrc", "x_000000.mrc", "x_000002.mrc"], shape=(48, 48, 48))
    table = prepare_subtomo_star(str(folder), output_star=str(tmp_path / "s.star"), pixel_size=12.0)
    again = read_star(tmp_path / "s.star")
    assert list(again["rlnSubtomoIndex"]) == [1, 2, 3]  # no gaps
    assert [p.rsplit("/", 1)[1] for p in again["rlnImageName"]] == ["x_000000.mrc", "x_000001.mrc", "x_000002.mrc"]
    assert set(again["rlnCropSize"]) == {48} and set(again["rlnCubeSize"]) == {32}
    assert set(again["rlnPixelSize"]) == {12.0}
    assert len(table) == 3
    # an explicit cube size smaller than the subtomogram is kept; one that is too large falls back
    prepare_subtomo_star(str(folder), output_star=str(tmp_path / "s2.star"), cube_size=40)
    assert set(read_star(tmp_path / "s2.star")["rlnCubeSize"]) == {40}
    prepare_subtomo_star(str(folder), output_star=str(tmp_path / "s3.star"), cube_size=48)
    assert set(read_star(tmp_path / "s3.star")["rlnCubeSize"]) == {32}


def test_prepare_subtomo_star_rejects_bad_volumes(tmp_path):
    _touch_volumes(tmp_path / "a", ["s1.mrc"], shape=(32, 32, 40))
    with pytest.raises(IsonetError, match=r"s1\.mrc: subtomogram must be cubic, got shape \(z, y, x\) = \(32, 32, 40\)"):
        prepare_subtomo_star(str(tmp_path / "a"), output_star=str(tmp_path / "o.star"))
    _touch_volumes(tmp_path / "b", ["s1.mrc"], shape=(32, 32, 32))
    _touch_volumes(tmp_path / "b", ["s2.mrc"], shape=(40, 40, 40))
    with pytest.raises(IsonetError, match=r"s2\.mrc: edge 40 differs from 32"):
        prepare_subtomo_star(str(tmp_path / "b"), output_star=str(tmp_path / "o.star"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "junk.mrc").write_text("x")
    with pytest.raises(IsonetError, match=r"junk\.mrc: not an MRC file"):
        prepare_subtomo_star(str(tmp_path / "c"), output_star=str(tmp_path / "o.star"))
    _touch_volumes(tmp_path / "d", ["s.mrc"], shape=(32, 32, 32))
    with pytest.raises(IsonetError, match="--cube_size must be a positive multiple of 8"):
        prepare_subtomo_star(str(tmp_path / "d"), output_star=str(tmp_path / "o.star"), cube_size=20)
    assert not (tmp_path / "o.star").exists()

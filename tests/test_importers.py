"""prepare_star on RELION 5, IMOD, AreTomo and Warp metadata (fixtures in tests/data, documented layouts).

The fixtures hold the metadata files only; each test copies one into a temporary folder and puts the real
tomogram crops of tests/data/real (10.52 Å in their headers, bright density) where the metadata names them.
Half tomograms are stand-ins: the crop plus independent noise.
"""

import logging
import os
import shutil

import numpy as np
import pytest

from conftest import DATA, REAL_DATA, run_cli
from isonet.errors import IsonetError, UsageError
from isonet.io.importers.aretomo import read_aln_tilts
from isonet.io.importers.folder import half_kind, pair_halves
from isonet.io.importers.imod import lowest_tilt_defocus, read_ctfplotter_defocus, read_tlt
from isonet.io.importers.warp import read_warp_xml
from isonet.io.mrc import read_volume, write_volume
from isonet.io.star import read_star
from isonet.prepare import prepare_star

PIXEL = 10.52
RELION_STAR = os.path.join("Tomograms", "job010", "tomograms.star")


def _crop(which):
    return read_volume(os.path.join(REAL_DATA, f"mt{which}pf_crop.mrc"))


def _place(path, which, noise_seed=None):
    """Write crop ``which`` (13 or 14) at ``path``, plus independent noise for a half-tomogram stand-in."""
    volume = _crop(which)
    if noise_seed is not None:
        volume = volume + np.random.default_rng(noise_seed).normal(0, 0.2 * volume.std(), volume.shape)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_volume(path, volume.astype(np.float32), voxel_size=PIXEL)


def _copy_fixture(name, tmp_path):
    target = tmp_path / name
    shutil.copytree(os.path.join(DATA, name), target)
    return target


def relion_project(tmp_path):
    """The RELION 5 fixture project with its tomograms and halves in Tomograms/job010/tomograms/."""
    root = _copy_fixture("relion5", tmp_path)
    for seed, which in enumerate((13, 14)):
        folder = root / "Tomograms" / "job010" / "tomograms"
        _place(str(folder / f"rec_TS_{which}.mrc"), which)
        for half in (1, 2):
            _place(str(folder / f"rec_TS_{which}_half{half}.mrc"), which, noise_seed=10 * seed + half)
    return root


def test_relion5_values_land_in_tomograms_star(tmp_path, monkeypatch, caplog):
    relion_project(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the project folder: paths are found from the STAR file upwards
    with caplog.at_level(logging.INFO, logger="isonet"):
        table = prepare_star(relion5=os.path.join("relion5", RELION_STAR), output_star="tomograms.star",
                             bright_density=True)
    written = read_star(tmp_path / "tomograms.star")
    for frame in (table, written):
        assert list(frame["rlnMicrographName"]) == [f"relion5/Tomograms/job010/tomograms/rec_TS_{n}.mrc"
                                                    for n in (13, 14)]
        assert list(frame["rlnTomoReconstructedTomogramHalf1"]) == [
            f"relion5/Tomograms/job010/tomograms/rec_TS_{n}_half1.mrc" for n in (13, 14)]
        assert list(frame["rlnTomoReconstructedTomogramHalf2"]) == [
            f"relion5/Tomograms/job010/tomograms/rec_TS_{n}_half2.mrc" for n in (13, 14)]
        np.testing.assert_allclose(frame["rlnPixelSize"], [PIXEL, PIXEL], rtol=1e-6)  # the headers'
        assert list(frame["rlnTiltMin"]) == [-57.0, -59.0] and list(frame["rlnTiltMax"]) == [60.0, 55.0]
        assert list(frame["rlnDefocus"]) == [31000.0, 41900.0]  # (U + V) / 2 at 0° and at +1°
        assert list(frame["rlnVoltage"]) == [300.0, 200.0]
        assert list(frame["rlnSphericalAberration"]) == [2.7, 2.0]
        assert list(frame["rlnAmplitudeContrast"]) == [0.1, 0.07]
        assert list(frame["rlnBrightDensity"]) == [1, 1]
        assert list(frame["rlnTomoName"]) == ["TS_13", "TS_14"]  # for predict's RELION 5 tomograms.star
        assert list(frame["rlnTomoTomogramsFile"]) == [os.path.join("relion5", RELION_STAR)] * 2
    from isonet.predict.relion5 import relion5_rows
    rows = relion5_rows(written, "tomograms.star")  # RELION's row of each tilt series, every column
    assert [rows[index]["rlnTomoName"] for index in (1, 2)] == ["TS_13", "TS_14"]
    assert rows[2]["rlnTomoSizeZ"] == 352 and len(rows[2]) == 17
    text = caplog.text
    # TS_14: 1.35 Å x binning 8 = 10.8 Å in the STAR, 10.52 Å in the header: a warning naming both
    assert "pixel size 10.8 Å from tomograms.star (rlnTomoTiltSeriesPixelSize 1.35 x rlnTomoTomogramBinning 8) " \
           "differs from the MRC header's 10.52 Å" in text
    assert "tilt min -59°, tilt max 55° (TS_14.star (rlnTomoNominalStageTiltAngle of 39 images))" in text
    assert "voltage 200 kV, cs 2 mm, amplitude contrast 0.07 (tomograms.star)" in text
    assert "defocus 41900 Å (TS_14.star (rlnDefocusU/V at 1°))" in text
    assert "assumed" not in text
    assert "bright density, as the intensities suggest" in text


def test_relion5_fixture_runs_in_place(tmp_path, monkeypatch):
    """The command of docs/real_data.md, in the repository's RELION 5 fixture (tomograms linked to the crops)."""
    monkeypatch.chdir(os.path.join(DATA, "relion5"))
    table = prepare_star(relion5=RELION_STAR, bright_density=True, output_star=str(tmp_path / "t.star"))
    assert list(table["rlnMicrographName"]) == [f"Tomograms/job010/tomograms/rec_TS_{n}.mrc" for n in (13, 14)]
    np.testing.assert_allclose(table["rlnPixelSize"], [PIXEL, PIXEL], rtol=1e-6)
    assert list(table["rlnTiltMin"]) == [-57.0, -59.0] and list(table["rlnTiltMax"]) == [60.0, 55.0]


def test_relion5_errors(tmp_path):
    root = _copy_fixture("relion5", tmp_path)
    os.remove(root / "Tomograms" / "job010" / "tomograms" / "rec_TS_13.mrc")
    with pytest.raises(IsonetError, match="rec_TS_13.mrc not found"):
        prepare_star(relion5=str(root / RELION_STAR), output_star=str(tmp_path / "t.star"))
    with pytest.raises(UsageError, match="--relion5: give the RELION 5 tomograms.star alone"):
        prepare_star(str(root), relion5=str(root / RELION_STAR))
    series = root / "AlignTiltSeries" / "job008" / "tilt_series" / "TS_13.star"
    with pytest.raises(IsonetError, match="not a RELION 5 tomograms.star"):
        prepare_star(relion5=str(series))
    assert not (tmp_path / "t.star").exists()


def test_imod_folder(tmp_path, caplog):
    folder = _copy_fixture("imod", tmp_path)
    for which in (13, 14):
        _place(str(folder / f"TS_{which}_rec.mrc"), which)
    with caplog.at_level(logging.INFO, logger="isonet"):
        table = prepare_star(str(folder), output_star=str(tmp_path / "t.star"), bright_density=True)
    np.testing.assert_allclose(table["rlnPixelSize"], [PIXEL, PIXEL], rtol=1e-6)
    assert list(table["rlnTiltMin"]) == [-57.0, -59.0] and list(table["rlnTiltMax"]) == [60.0, 55.0]
    assert list(table["rlnDefocus"]) == [31000.0, 42100.0]  # ctfplotter v3 (astigmatic) and v2, nm -> Å
    assert list(table["rlnVoltage"]) == [300.0, 300.0]  # IMOD files carry no optics: defaults, said in the log
    assert "HalfTomogram" not in " ".join(table.columns)
    assert "assumed (not given, not found): voltage 300 kV, cs 2.7 mm, amplitude contrast 0.07" in caplog.text
    assert "TS_13.tlt (IMOD, 40 tilts)" in caplog.text and "TS_13.defocus (ctfplotter, range at 0°)" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="isonet"):
        table = prepare_star(str(folder), output_star=str(tmp_path / "t.star"), pixel_size=10.0, tilt_min=-60.0)
    assert list(table["rlnPixelSize"]) == [10.0, 10.0] and list(table["rlnTiltMin"]) == [-60.0, -60.0]
    assert "--pixel_size 10 Å differs from the MRC header's 10.52 Å; using 10 Å" in caplog.text
    assert "--tilt_min -60° differs from -57° read from" in caplog.text
    # dark density was set, the crops are bright: the estimate warns
    assert "the intensities suggest bright density" in caplog.text


def test_imod_readers():
    assert read_tlt(os.path.join(DATA, "imod", "TS_14.tlt"))[:2] == [-59.0, -56.0]
    assert lowest_tilt_defocus(os.path.join(DATA, "imod", "old_v1.defocus")) == (50000.0, 0.0)
    v3 = read_ctfplotter_defocus(os.path.join(DATA, "imod", "TS_13.defocus"))
    assert len(v3) == 40 and v3[0] == (-57.0, -57.0, pytest.approx(31870.0))  # (3237 + 3137) / 2 nm


def test_imod_reader_errors(tmp_path):
    bad = tmp_path / "a.tlt"
    bad.write_text("-60\nsixty\n")
    with pytest.raises(IsonetError, match="a.tlt: line 2: expected numbers"):
        read_tlt(str(bad))
    short = tmp_path / "a.defocus"
    short.write_text("1 0 0. 0. 0 3\n1 1 0.0 0.0 3000.0\n")
    with pytest.raises(IsonetError, match="expected at least 7 numbers per line"):
        read_ctfplotter_defocus(str(short))


def test_aretomo_folder_pairs_evn_odd(tmp_path, caplog):
    folder = _copy_fixture("aretomo", tmp_path)
    _place(str(folder / "Position_1_Vol.mrc"), 13)
    _place(str(folder / "Position_1_EVN_Vol.mrc"), 13, noise_seed=1)
    _place(str(folder / "Position_1_ODD_Vol.mrc"), 13, noise_seed=2)
    with caplog.at_level(logging.INFO, logger="isonet"):
        table = prepare_star(str(folder), output_star=str(tmp_path / "t.star"), bright_density=True)
    assert list(table["rlnMicrographName"]) == [str(folder / "Position_1_Vol.mrc")]
    assert list(table["rlnTomoReconstructedTomogramHalf1"]) == [str(folder / "Position_1_EVN_Vol.mrc")]
    assert list(table["rlnTomoReconstructedTomogramHalf2"]) == [str(folder / "Position_1_ODD_Vol.mrc")]
    assert list(table["rlnTiltMin"]) == [-54.0] and list(table["rlnTiltMax"]) == [57.0]  # dark frames left out
    assert list(table["rlnDefocus"]) == [0.0]
    assert "defocus 0 Å" in caplog.text and "Position_1.aln (AreTomo, 38 sections)" in caplog.text
    assert len(read_aln_tilts(str(folder / "Position_1.aln"))) == 38


def test_warp_layout(tmp_path):
    root = _copy_fixture("warp", tmp_path)
    reconstruction = root / "warp_tiltseries" / "reconstruction"
    _place(str(reconstruction / "TS_1_10.52Apx.mrc"), 14)
    _place(str(reconstruction / "even" / "TS_1_10.52Apx.mrc"), 14, noise_seed=1)
    _place(str(reconstruction / "odd" / "TS_1_10.52Apx.mrc"), 14, noise_seed=2)
    table = prepare_star(str(reconstruction), output_star=str(tmp_path / "t.star"), bright_density=True)
    assert list(table["rlnTomoReconstructedTomogramHalf1"]) == [str(reconstruction / "even" / "TS_1_10.52Apx.mrc")]
    assert list(table["rlnTomoReconstructedTomogramHalf2"]) == [str(reconstruction / "odd" / "TS_1_10.52Apx.mrc")]
    assert list(table["rlnTiltMin"]) == [-54.0] and list(table["rlnTiltMax"]) == [60.0]  # UseTilt False at -60, -57
    assert list(table["rlnDefocus"]) == [28500.0]  # GridCTF at 0°, 2.85 µm
    assert list(table["rlnVoltage"]) == [300.0] and list(table["rlnSphericalAberration"]) == [2.7]
    assert list(table["rlnAmplitudeContrast"]) == [0.07]
    xml = read_warp_xml(str(root / "warp_tiltseries" / "TS_1.xml"))
    assert len(xml["angles"]) == 39


def test_half_names_and_partial_halves(caplog):
    assert half_kind("a/TS_01_even.mrc") == (0, "TS_01.mrc")
    assert half_kind("Position_1_ODD_Vol.mrc") == (1, "Position_1_Vol.mrc")
    assert half_kind("odd.mrc") is None and half_kind("TS_01.mrc") is None
    fulls, halves = pair_halves(["t/a.mrc", "t/a_even.mrc", "t/a_odd.mrc", "t/b.mrc"])
    assert fulls == ["t/a.mrc", "t/b.mrc"] and halves == {}
    assert "half tomograms found for 1 of 2 tomograms (none for t/b.mrc)" in caplog.text


def test_cli_chain_from_relion5_without_typed_values(tmp_path):
    """prepare_star --relion5, then deconv, make_mask and extract, with no pixel size, defocus or tilt typed."""
    root = relion_project(tmp_path)
    run = lambda *args: run_cli(*args, cwd=root)  # noqa: E731  (RELION's convention: run in the project)
    result = run("prepare_star", "--relion5", RELION_STAR, "--bright_density", "True", "--number_subtomos", 2)
    assert result.returncode == 0, result.stderr
    result = run("deconv", "tomograms.star", "--ncpu", 1)
    assert result.returncode == 0, result.stderr
    log = (root / "isonet.log").read_text()
    assert "defocus 41900 Å, pixel 10.520 Å, 200 kV, Cs 2 mm, amplitude contrast 0.07" in log  # TS_14's optics
    assert "defocus 31000 Å, pixel 10.520 Å, 300 kV, Cs 2.7 mm, amplitude contrast 0.1" in log
    result = run("make_mask", "tomograms.star", "--density_percentage", 60, "--std_percentage", 60)
    assert result.returncode == 0, result.stderr
    result = run("extract", "tomograms.star", "--cube_size", 16, "--crop_size", 32, "--seed", 1)
    assert result.returncode == 0, result.stderr
    tomograms = read_star(root / "tomograms.star")
    subtomos = read_star(root / "subtomo.star")
    assert len(subtomos) == 4 and set(subtomos["rlnTiltMin"]) == {-57.0, -59.0}
    np.testing.assert_allclose(subtomos["rlnPixelSize"], PIXEL, rtol=1e-6)
    for _, row in subtomos.iterrows():  # bright density: subtomograms are the negated deconvolved tomogram
        source = tomograms.loc[tomograms["rlnMicrographName"] == row["rlnMicrographName"]].iloc[0]
        deconvolved = read_volume(root / source["rlnDeconvTomoName"])
        z, y, x = (int(row[f"rlnCoordinate{a}"]) for a in "ZYX")
        window = (slice(z - 16, z + 16), slice(y - 16, y + 16), slice(x - 16, x + 16))
        np.testing.assert_allclose(read_volume(root / row["rlnImageName"]), -deconvolved[window], rtol=1e-6)


@pytest.mark.parametrize("averaged", [False, True])
def test_predict_keeps_the_input_sign_and_feeds_the_network_dense_positive(tmp_path, averaged):
    """A bright-density tomogram reaches the network as a dark one does (dense matter positive) and comes
    out bright; with an identity network the output correlates positively with the input either way."""
    from isonet.predict.halves import correct_by_slab
    from isonet.predict.predict import correct_tomogram
    volume = _crop(13)[:32, :64, :64]
    write_volume(tmp_path / "bright.mrc", volume)
    write_volume(tmp_path / "dark.mrc", -volume)
    seen = {}

    def run(name, bright):
        tiles = []
        network = lambda batch: tiles.append(batch.copy()) or batch  # noqa: E731
        path = str(tmp_path / f"{name}.mrc")
        if averaged:
            corrected, _ = correct_by_slab(path, network, cube_size=16, crop_size=24, bright=bright)
        else:
            corrected, _ = correct_tomogram(path, network, cube_size=16, crop_size=24, bright=bright)
        seen[name] = np.concatenate(tiles)
        return corrected

    for name, bright, sign in (("bright", True, 1), ("dark", False, -1)):
        corrected = run(name, bright)
        assert np.corrcoef(corrected.ravel(), sign * volume.ravel())[0, 1] > 0.99
    np.testing.assert_allclose(seen["bright"], seen["dark"], atol=1e-5)

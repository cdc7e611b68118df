"""Whole-tomogram prediction: overlap tiling, the predict function and the command (spec §1.7, §3.5)."""

import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from conftest import run_cli
from isonet.errors import IsonetError
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.normalize import normalize
from isonet.predict.predict import predict_tomograms
from isonet.predict.tiling import (axis_weights, blend_margin, extract_tile, fitted_cores, grid_shape,
                                   predict_tiled, tile_positions, weight_sums)

TILE_CASES = [(16, 24), (48, 64), (64, 80), (64, 96), (96, 128), (16, 17), (8, 40)]


def _identity_model(path, depth=2):
    """A tiny U-Net whose head is zero, hence exactly the identity (residual), saved to ``path``."""
    from isonet.network.unet import build_unet, save_model
    model = build_unet(unet_depth=depth, filter_base=4, convs_per_depth=2)
    head = model.get_layer("head")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    save_model(model, path)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """identity.h5 and the scaled network (net.h5, net.keras), built once for the module: tests copy them."""
    folder = tmp_path_factory.mktemp("models")
    _identity_model(folder / "identity.h5")
    _scaled_network(folder / "net.h5", folder / "net.keras")
    return folder


def _project(tmp_path, models, shape=(20, 36, 28), deconv=False):
    """A tomogram, its STAR file, the identity model and the scaled network in ``tmp_path``."""
    volume = np.random.default_rng(7).normal(size=shape).astype(np.float32)
    write_volume(tmp_path / "tomo.v1.mrc", volume, voxel_size=(4.5, 4.5, 4.5), origin=(10.0, -20.0, 30.0))
    table = {"rlnIndex": [1, 2], "rlnMicrographName": ["tomo.v1.mrc", "absent.mrc"], "rlnPixelSize": [4.5, 4.5]}
    if deconv:
        write_volume(tmp_path / "tomo_deconv.mrc", 2 * volume, voxel_size=4.5)
        table["rlnDeconvTomoName"] = ["tomo_deconv.mrc", None]
    write_star(pd.DataFrame(table), tmp_path / "tomograms.star")
    for name in ("identity.h5", "net.h5", "net.keras"):
        shutil.copy(models / name, tmp_path / name)
    return volume


@pytest.mark.parametrize("fit_cores", [True, False])
@pytest.mark.parametrize("cube, crop", TILE_CASES + [(84, 96), (80, 96)])
def test_identity_network_reproduces_input(cube, crop, fit_cores, rng):
    for shape in [(37, 101, 83), (5, 7, 9)]:
        volume = rng.normal(size=shape).astype(np.float32)
        seen = []

        def identity(tiles):
            seen.append(tiles.shape)
            return tiles.copy()

        result = predict_tiled(volume, identity, cube, crop, batch_size=3, fit_cores=fit_cores)
        assert result.dtype == np.float32 and result.shape == shape
        np.testing.assert_allclose(result, volume, rtol=0, atol=1e-6 * np.abs(volume).max())
        assert sum(s[0] for s in seen) == np.prod(grid_shape(shape, cube))
        assert all(s[0] <= 3 and s[1:] == (crop,) * 3 for s in seen)


def test_fitted_cores_share_each_axis_evenly():
    assert fitted_cores((300, 1000, 64), 84) == (75, 84, 64)
    assert fitted_cores((37, 101, 83), 16) == (13, 15, 14)
    for n in range(1, 300):
        core = fitted_cores((n, n, n), 84)[0]
        tiles = -(-n // core)
        assert core <= 84 and tiles == -(-n // 84) and 0 <= tiles * core - n < tiles


def test_tiles_are_mirror_padded_windows(rng):
    volume = rng.normal(size=(7, 20, 13)).astype(np.float32)
    cube, crop = 8, 30  # the tile is larger than the volume: several reflections
    before = (crop - cube) // 2
    padded = np.pad(volume, [(before + 40, 40)] * 3, mode="symmetric")
    for position in tile_positions(volume.shape, cube):
        start = [i * cube + 40 for i in position]
        expected = padded[tuple(slice(s, s + crop) for s in start)]
        np.testing.assert_array_equal(extract_tile(volume, position, cube, crop), expected)


def test_blending_weights():
    assert blend_margin(64, 96) == 9  # IsoNet 1's edge with its defaults
    assert blend_margin(48, 64) == 4 and blend_margin(16, 17) == 0
    cube, margin = 16, 5
    left, right = axis_weights(0, 3, cube, margin), axis_weights(1, 3, cube, margin)
    assert left[0] == 1 and right[-1] < 1  # outer face of the first block is not ramped
    overlap = left[-2 * margin:] + right[:2 * margin]  # the two ramps over the shared 2*margin voxels
    np.testing.assert_allclose(overlap, 1, atol=1e-7)
    for sums in weight_sums((37, 50, 16), cube, cube + 2 * margin + 6):
        np.testing.assert_allclose(sums, 1, atol=1e-6)


def _ramp_volume(shape):
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    return (0.05 * z + 0.02 * y + np.sin(x / 6.0) + 0.01 * x * z / shape[0]).astype(np.float32)


@pytest.mark.parametrize("fit_cores", [True, False])
def test_no_seams_with_a_smoothing_network(fit_cores):
    """A 3x3x3 mean filter applied by tiles equals the filter applied to the whole volume."""
    import keras
    shape, cube, crop = (29, 45, 38), 16, 24
    volume = _ramp_volume(shape)
    model = keras.Sequential([keras.Input((None, None, None, 1)),
                              keras.layers.Conv3D(1, 3, padding="same", use_bias=False,
                                                  kernel_initializer=keras.initializers.Constant(1 / 27))])
    tiled = predict_tiled(volume, lambda t: model.predict_on_batch(t[..., None])[..., 0], cube, crop, 4,
                          fit_cores=fit_cores)
    whole = ndimage.uniform_filter(volume, 3, mode="reflect")  # same mirroring as the tiles
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    # no step at tile borders: the jumps across core borders are those of the whole-volume result
    for axis in range(3):
        core = fitted_cores(shape, cube)[axis] if fit_cores else cube
        borders = list(range(core - 1, shape[axis] - 1, core))
        jumps = np.take(np.diff(tiled, axis=axis), borders, axis=axis)
        np.testing.assert_allclose(jumps, np.take(np.diff(whole, axis=axis), borders, axis=axis), atol=2e-5)


def test_predict_tomograms_star_header_and_deconv(tmp_path, monkeypatch, models):
    volume = _project(tmp_path, models, deconv=True)
    monkeypatch.chdir(tmp_path)
    table = predict_tomograms("tomograms.star", "identity.h5", output_dir="out", cube_size=16, crop_size=20,
                              tomo_idx=[1], batch_size=3)
    output = os.path.join("out", "tomo_deconv_corrected.mrc")
    assert table.loc[0, "rlnCorrectedTomoName"] == output
    star = read_star("tomograms.star")
    assert star["rlnCorrectedTomoName"].tolist() == [output, None]
    assert star["rlnMicrographName"].tolist() == ["tomo.v1.mrc", "absent.mrc"]
    corrected, header = read_volume(output, return_header=True)
    assert header.voxel_size == (4.5, 4.5, 4.5) and header.dtype == np.float32
    assert header.origin == read_header("tomo_deconv.mrc").origin
    # identity network: -normalize(-x) of the deconvolved tomogram (normalised twice, a no-op the 2nd time)
    np.testing.assert_allclose(corrected, -normalize(-2 * volume), atol=1e-5)
    # the raw tomogram keeps its origin when predicted instead
    predict_tomograms("tomograms.star", "identity.h5", output_dir="out", cube_size=16, crop_size=24,
                      tomo_idx=[1], use_deconv_tomo=False, normalize_percentile=False)
    raw_out, raw_header = read_volume(os.path.join("out", "tomo.v1_corrected.mrc"), return_header=True)
    assert raw_header.origin == (10.0, -20.0, 30.0)
    np.testing.assert_allclose(raw_out, -normalize(-volume, percentile=False), atol=1e-5)
    np.testing.assert_array_equal(read_volume("tomo.v1.mrc"), volume)  # input untouched


def _scaled_network(*paths):
    """A tiny U-Net with kernels 15x the 0.02 initialisation (clearly not the identity), saved to ``paths``."""
    from isonet.network.unet import build_unet, save_model
    model = build_unet(unet_depth=2, filter_base=4, convs_per_depth=2)
    model.set_weights([w * 15 if w.ndim == 5 else w for w in model.get_weights()])
    for path in paths:
        save_model(model, path)


def test_mixed_precision_close_to_float32(tmp_path, monkeypatch, models):
    """bfloat16 (8-bit mantissa) keeps the corrected tomogram within a few % of float32.

    Measured mean relative differences: 0.013 with oneDNN (AVX-512/AMX), 0.021 without oneDNN
    (Eigen's bfloat16 kernels); the bound leaves room above both, and stays far below the
    network's own change of the volume (> 0.1 absolute). A fallback to float32 would differ by
    float32 rounding at most (~1e-7): the lower bound shows that bfloat16 did run.
    """
    from isonet.devices import cpu_bfloat16_supported
    if not cpu_bfloat16_supported():
        pytest.skip("this CPU cannot compute in bfloat16 with oneDNN (needs AVX-512F and AVX-512BW): "
                    "--mixed_precision falls back to float32, so there is no bfloat16 result to compare")
    volume = _project(tmp_path, models)
    monkeypatch.chdir(tmp_path)
    results = []
    for mixed in (False, True):
        predict_tomograms("tomograms.star", "net.keras", output_dir=f"out{mixed}", cube_size=16, crop_size=24,
                          tomo_idx=[1], mixed_precision=mixed)
        results.append(read_volume(f"out{mixed}/tomo.v1_corrected.mrc"))
    assert np.abs(results[0] - -normalize(-volume)).mean() > 0.1  # the network changes the volume
    relative = np.abs(results[1] - results[0]).mean() / np.abs(results[0]).mean()
    assert 1e-4 < relative < 0.04


def test_bad_inputs(tmp_path, monkeypatch, models):
    _project(tmp_path, models)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IsonetError, match="crop_size"):
        predict_tomograms("tomograms.star", "identity.h5", cube_size=32, crop_size=32, tomo_idx=[1])
    with pytest.raises(IsonetError, match="absent.mrc: tomogram not found"):
        predict_tomograms("tomograms.star", "identity.h5", cube_size=16, crop_size=24)
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF garbage" * 50)
    with pytest.raises(IsonetError, match="bad.h5"):
        predict_tomograms("tomograms.star", "bad.h5", cube_size=16, crop_size=24, tomo_idx=[1])
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnPixelSize": [1.0]}), tmp_path / "nolabel.star")
    with pytest.raises(IsonetError, match="rlnMicrographName"):
        predict_tomograms("nolabel.star", "identity.h5")
    with pytest.raises(IsonetError, match="tomo_idx"):
        predict_tomograms("tomograms.star", "identity.h5", tomo_idx=[5])
    assert not os.path.exists(tmp_path / "corrected_tomos")


def test_snapshot(tmp_path, monkeypatch, models):
    """The snapshot shows the raw tomogram, the corrected one and their difference, as save_snapshot draws them."""
    import matplotlib.image
    from isonet.evaluation.pictures import save_snapshot
    _project(tmp_path, models)
    monkeypatch.chdir(tmp_path)
    predict_tomograms("tomograms.star", "net.h5", output_dir="out", cube_size=16, crop_size=24,
                      tomo_idx=[1], snapshot=True)
    save_snapshot(["tomo.v1.mrc", "out/tomo.v1_corrected.mrc"], "expected.png", labels=["tomo.v1 (raw)", "corrected"],
                  difference=True)
    image = matplotlib.image.imread("out/tomo.v1_snapshot.png")
    np.testing.assert_array_equal(image, matplotlib.image.imread("expected.png"))
    rows = [image[460 * row:460 * (row + 1), 65:, :3] for row in range(3)]  # right of the row labels
    assert np.abs(rows[0] - rows[1]).mean() > 0.02  # the network changed the tomogram
    assert ((rows[2][..., 2] - rows[2][..., 0]) > 0.3).sum() > 1000  # the difference row: blue where lower


def test_cli_end_to_end(tmp_path, run_main, models):
    volume = _project(tmp_path, models, shape=(18, 40, 33))
    result = run_cli("predict", "tomograms.star", "identity.h5", "--cube_size", 16, "--crop_size", 22,
                     "--tomo_idx", 1, "--output_dir", "corrected", "--gpuID", -1, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "using 24" in result.stdout  # crop rounded up to a multiple of 2**depth
    # output to a pipe: progress is a whole log line on stdout, nothing on stderr, no carriage return
    assert re.search(r" INFO tomo\.v1: (\d+)/\1 tile \(100 %\), done in \d+ s, ", result.stdout)
    assert result.stderr == "" and "\r" not in result.stdout
    corrected = read_volume(tmp_path / "corrected" / "tomo.v1_corrected.mrc")
    np.testing.assert_allclose(corrected, -normalize(-volume), atol=1e-5)
    assert read_star(tmp_path / "tomograms.star")["rlnCorrectedTomoName"][0] == "corrected/tomo.v1_corrected.mrc"
    status, _, err = run_main("predict", "tomograms.star", "identity.h5", "--cube_size", 32, "--crop_size", 16,
                              cwd=tmp_path)
    assert status == 2 and "--crop_size (16) must be larger than --cube_size (32)" in err


MIRRORED_SCRIPT = """
import sys
import numpy as np
from isonet.devices import select_strategy
from isonet.network.runtime import Network
from isonet.predict.tiling import predict_tiled
strategy, replicas = select_strategy([], logical_cpus=2)
assert replicas == 2, replicas
network = Network.load(sys.argv[1], strategy, replicas)
volume = np.random.default_rng(3).normal(size=(20, 40, 24)).astype(np.float32)
mirrored = predict_tiled(volume, network.predict, 16, 24, batch_size=3)
single = predict_tiled(volume, lambda t: network.model(t[..., None], training=False).numpy()[..., 0], 16, 24, 1)
print("MAXDIFF", float(np.abs(mirrored - single).max()), float(np.abs(single - volume).max()),
      float(np.abs(single).max()))
"""


def test_mirrored_strategy_over_two_logical_cpus(models):
    """Batches (3 tiles, padded to 4) are split between two devices and give the single-device result.

    The outputs reach ~1e3 (weights x 15), so the comparison is relative: float32 kernels that group
    sums differently for another batch size differ by ~1e-6 of the output's scale, with oneDNN on or
    off (measured: up to 7e-6 without oneDNN, where the reported absolute difference was 0.01-0.02).
    """
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(models / "net.h5")], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    mirrored_vs_single, change, scale = map(float, done.stdout.split("MAXDIFF")[1].split())
    assert mirrored_vs_single < 1e-4 * scale and change > 1e-2 * scale


RELION_STAR = os.path.join("Tomograms", "job010", "tomograms.star")


def test_relion5_star_keeps_relion_columns_of_an_imported_project(tmp_path, monkeypatch):
    """A project made by prepare_star --relion5: RELION's row of the tilt series, every column, plus the
    corrected tomogram as rlnTomoReconstructedTomogramDenoised; RELION's own reader (ours) reads it back."""
    import starfile
    from conftest import DATA
    from isonet.io.importers.relion5 import read_relion5
    from isonet.predict.relion5 import relion5_rows, write_relion5_tomograms
    shutil.copytree(os.path.join(DATA, "relion5"), tmp_path / "project")
    monkeypatch.chdir(tmp_path / "project")
    table = pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": [
        f"Tomograms/job010/tomograms/rec_TS_{n}.mrc" for n in (13, 14)], "rlnPixelSize": [10.52, 10.8],
        "rlnTomoName": ["TS_13", "TS_14"], "rlnTomoTomogramsFile": [RELION_STAR, RELION_STAR],
        "rlnCorrectedTomoName": [None, "corrected/rec_TS_14_corrected.mrc"]})
    write_relion5_tomograms(table, relion5_rows(table, "tomograms.star"), "tomograms_relion5.star")
    with open("tomograms_relion5.star") as handle:
        assert handle.readline() == "# version 50001\n"
    written = starfile.read("tomograms_relion5.star", always_dict=True)
    assert list(written) == ["global"]
    original = starfile.read(RELION_STAR)
    expected = original.iloc[[1]].reset_index(drop=True).assign(
        rlnTomoReconstructedTomogramDenoised="corrected/rec_TS_14_corrected.mrc")
    pd.testing.assert_frame_equal(written["global"], expected)
    [record] = read_relion5("tomograms_relion5.star")
    assert record.path == "Tomograms/job010/tomograms/rec_TS_14.mrc" and record.tomo_name == "TS_14"
    assert record.pixel_size == pytest.approx(1.35 * 8) and (record.voltage, record.cs) == (200.0, 2.0)
    assert record.halves == tuple(f"Tomograms/job010/tomograms/rec_TS_14_half{h}.mrc" for h in (1, 2))


def test_relion5_star_of_a_project_from_a_folder(tmp_path, monkeypatch):
    """Without RELION 5 behind the project: the RELION 5 columns isonet knows."""
    import starfile
    from isonet.io.importers.relion5 import read_relion5
    from isonet.predict.relion5 import relion5_rows, write_relion5_tomograms
    monkeypatch.chdir(tmp_path)
    for name in ("tomos/t1.mrc", "tomos/t2.mrc", "out/t2_corrected.mrc"):
        os.makedirs(os.path.dirname(name), exist_ok=True)
        write_volume(name, np.zeros((4, 4, 4), np.float32), voxel_size=4.5)
    table = pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": ["tomos/t1.mrc", "tomos/t2.mrc"],
                          "rlnPixelSize": [4.5, 4.5], "rlnVoltage": [300.0, 300.0],
                          "rlnSphericalAberration": [2.7, 2.7], "rlnAmplitudeContrast": [0.07, 0.07],
                          "rlnCorrectedTomoName": [None, "out/t2_corrected.mrc"]})
    assert relion5_rows(table, "tomograms.star") == {}
    write_relion5_tomograms(table, {}, "out/tomograms_relion5.star")
    written = starfile.read("out/tomograms_relion5.star")
    assert written.to_dict("records") == [{
        "rlnTomoName": "t2", "rlnVoltage": 300.0, "rlnSphericalAberration": 2.7, "rlnAmplitudeContrast": 0.07,
        "rlnTomoTiltSeriesPixelSize": 4.5, "rlnTomoTomogramBinning": 1.0,
        "rlnTomoReconstructedTomogram": "tomos/t2.mrc",
        "rlnTomoReconstructedTomogramDenoised": "out/t2_corrected.mrc"}]
    [record] = read_relion5("out/tomograms_relion5.star")
    assert record.path == "tomos/t2.mrc" and record.tomo_name == "t2" and record.pixel_size == 4.5


def test_predict_writes_the_relion5_star_of_every_corrected_tomogram(tmp_path, monkeypatch, models):
    import starfile
    _project(tmp_path, models)
    monkeypatch.chdir(tmp_path)
    predict_tomograms("tomograms.star", "identity.h5", output_dir="out", cube_size=16, crop_size=24, tomo_idx=[1])
    written = starfile.read(os.path.join("out", "tomograms_relion5.star"))
    assert written.to_dict("records") == [{
        "rlnTomoName": "tomo.v1", "rlnTomoTiltSeriesPixelSize": 4.5, "rlnTomoTomogramBinning": 1.0,
        "rlnTomoReconstructedTomogram": "tomo.v1.mrc",
        "rlnTomoReconstructedTomogramDenoised": os.path.join("out", "tomo.v1_corrected.mrc")}]


def test_predict_checks_the_relion5_project_before_writing(tmp_path, monkeypatch):
    """The RELION 5 file of an imported project is read before anything is written (no network needed)."""
    write_volume(tmp_path / "t.mrc", np.zeros((8, 8, 8), np.float32), voxel_size=4.5)
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["t.mrc"], "rlnPixelSize": [4.5],
                             "rlnTomoName": ["TS_1"], "rlnTomoTomogramsFile": ["Tomograms/job010/tomograms.star"]}),
               tmp_path / "tomograms.star")
    (tmp_path / "model.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IsonetError, match="^Tomograms/job010/tomograms.star: STAR file not found$"):
        predict_tomograms("tomograms.star", "model.h5", output_dir="out")
    os.makedirs("out")
    with pytest.raises(IsonetError, match="^--relion5_star out: is a folder, expected a file name$"):
        predict_tomograms("tomograms.star", "model.h5", output_dir="corrected", relion5_star="out")
    assert sorted(os.listdir()) == ["model.h5", "out", "t.mrc", "tomograms.star"]

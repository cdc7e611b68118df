"""Even/odd halves end to end: prepare_star, extract, deconv, the halves method of refine, predict averaging."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from scipy.ndimage import gaussian_filter

from isonet.errors import IsonetError
from isonet.io.mrc import read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.normalize import apply_statistics, slab_statistics
from isonet.prepare import match_halves
from isonet.wedge import wedge_mask

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
    assert bad.returncode != 0 and "--even and --odd" in bad.stderr

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

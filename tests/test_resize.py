"""resize (spec §1.8, with anti-aliasing): Fourier cropping/padding and the command."""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from conftest import run_cli
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.preprocess.resize import fourier_resize, resized_shape


def _low_pass_volume(rng, shape):
    # periodic (wrap), as the discrete Fourier transform assumes
    return ndimage.gaussian_filter(rng.standard_normal(shape), 3.0, mode="wrap").astype(np.float32) + 2.0


def test_resized_shape():
    assert resized_shape((30, 100, 101), 10.0, 20.0) == (15, 50, 50)
    assert resized_shape((30, 100, 101), 10.0, 5.0) == (60, 200, 202)


def test_round_trip_preserves_low_frequencies(rng):
    volume = _low_pass_volume(rng, (24, 40, 36))
    small = fourier_resize(volume, (12, 20, 18))
    back = fourier_resize(small, volume.shape)
    assert small.mean() == pytest.approx(volume.mean(), rel=1e-5)
    assert np.corrcoef(back.ravel(), volume.ravel())[0, 1] > 0.99
    low = np.abs(np.fft.fftfreq(24))[:, None, None] < 0.15
    low = low & (np.abs(np.fft.fftfreq(40))[None, :, None] < 0.15) & (np.abs(np.fft.fftfreq(36))[None, None, :] < 0.15)
    np.testing.assert_allclose(np.fft.fftn(back)[low], np.fft.fftn(volume)[low], rtol=1e-3, atol=1e-2)


def test_sampled_cosine_is_resampled_exactly_and_aliasing_removed():
    z, y, x = np.indices((16, 32, 32))
    slow = np.cos(2 * np.pi * 3 * x / 32) + np.cos(2 * np.pi * 2 * z / 16)
    fast = np.cos(2 * np.pi * 12 * y / 32)  # above the Nyquist limit of the 16-sample grid
    result = fourier_resize((slow + fast).astype(np.float32), (8, 16, 16))
    z2, y2, x2 = np.indices((8, 16, 16))
    expected = np.cos(2 * np.pi * 3 * x2 / 16) + np.cos(2 * np.pi * 2 * z2 / 8)
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_cli_resize_writes_files_and_star(tmp_path, rng):
    os.makedirs(tmp_path / "tomos")
    volume = _low_pass_volume(rng, (20, 30, 40))
    for name in ("a.mrc", "b.mrc"):
        write_volume(tmp_path / "tomos" / name, volume, voxel_size=10.0, origin=(1.0, 2.0, 3.0))
    write_star(pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": ["tomos/a.mrc", "tomos/b.mrc"],
                             "rlnPixelSize": [10.0, 10.0], "rlnDefocus": [3e4, 3e4],
                             "rlnMaskName": ["mask/a_mask.mrc", None]}), tmp_path / "tomograms.star")
    result = run_cli("resize", "tomograms.star", "--apix", "20", "--tomo_idx", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = read_star(tmp_path / "tomograms_resized.star")
    assert list(table["rlnIndex"]) == [2]
    assert table.loc[0, "rlnMicrographName"] == os.path.join("tomograms_resized", "b.mrc")
    assert table.loc[0, "rlnPixelSize"] == 20.0 and table.loc[0, "rlnDefocus"] == 3e4
    header = read_header(tmp_path / "tomograms_resized" / "b.mrc")
    assert header.shape == (10, 15, 20) and header.voxel_size == pytest.approx((20.0, 20.0, 20.0))
    assert header.origin == pytest.approx((1.0, 2.0, 3.0))
    np.testing.assert_allclose(read_volume(tmp_path / "tomograms_resized" / "b.mrc"),
                               fourier_resize(volume, (10, 15, 20)), atol=1e-5)
    assert not os.path.exists(tmp_path / "tomograms_resized" / "a.mrc")


def test_cli_resize_missing_tomogram_is_one_line_error(tmp_path, run_main):
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["nope.mrc"], "rlnPixelSize": [10.0]}),
               tmp_path / "tomograms.star")
    status, _, err = run_main("resize", "tomograms.star", "--apix", "20", cwd=tmp_path)
    assert status == 1  # an input error
    assert err.startswith("ERROR: ") and err.count("\n") == 1 and "nope.mrc" in err
    assert sorted(os.listdir(tmp_path)) == ["tomograms.star"]

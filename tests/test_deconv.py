"""CTF deconvolution (spec §3.1): the filter curve, its application, chunking, the deconv command."""

import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from conftest import run_cli
from isonet.ctf import ctf
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.preprocess.deconv import deconvolve, wiener_curve


def spec_curve(pixel_size_a, defocus_a, voltage_kv, cs_mm, snrfalloff, deconvstrength, highpassnyquist):
    """The 1-D filter written directly from spec §3.1, in SI units as the original does."""
    p = pixel_size_a * 1e-10
    volts = voltage_kv * 1e3
    cs = cs_mm * 1e-3
    dz = -defocus_a / 1e4 * 1e-6
    wavelength = 12.2643247 / np.sqrt(volts * (1 + 0.978466e-6 * volts)) * 1e-10
    i = np.arange(2048)
    k = i / 4096 / p
    w = np.pi / 2 * (cs * wavelength ** 3 * k ** 4 + 2 * wavelength * dz * k ** 2)
    amplitude = 0.07
    ctf_values = -np.sqrt(1 - amplitude ** 2) * np.sin(w) + amplitude * np.cos(w)
    f = i / 2047
    highpass = 1 - np.cos(np.pi * np.minimum(1, f / highpassnyquist))
    snr = np.exp(-f * snrfalloff * 100 / pixel_size_a) * 10 ** deconvstrength * highpass + 1e-6
    return f, ctf_values / (ctf_values ** 2 + 1 / snr)


def spec_deconvolve(volume, f, curve):
    """Whole-volume application written directly from spec §3.1 (full complex grids, float64)."""
    axes = []
    for n in volume.shape:
        half = n // 2
        axes.append(np.arange(-half, n - half) / max(half, 1))
    z, y, x = np.meshgrid(*axes, indexing="ij")
    radius = np.fft.ifftshift(np.minimum(np.sqrt(x ** 2 + y ** 2 + z ** 2), 1))
    filtered = np.real(np.fft.ifftn(np.fft.fftn(volume) * np.interp(radius, f, curve)))
    return filtered / filtered.std() * volume.std() + volume.mean()


@pytest.mark.parametrize("params", [(10.0, 30000.0, 300.0, 2.7, 1.0, 1.0, 0.02),
                                    (5.4, 52000.0, 200.0, 2.0, 0.7, 1.5, 0.05)])
def test_curve_matches_spec_formula(params):
    f_ref, w_ref = spec_curve(*params)
    f, w = wiener_curve(*params)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w, w_ref, rtol=1e-9, atol=1e-12 * np.abs(w_ref).max())


def test_shared_ctf_sign_and_amplitude_contrast():
    """isonet.ctf.ctf: value A at k = 0, first lobe positive with underfocus, first zero where spec says."""
    assert ctf(0.0, 30000.0) == pytest.approx(0.07)
    k = np.linspace(0, 0.05, 2001)
    values = ctf(k, 30000.0)
    first_zero = k[np.argmax(values < 0)]
    wavelength = 12.2643247 / np.sqrt(300e3 * (1 + 0.978466e-6 * 300e3))
    # Cs is negligible at this resolution: pi * lambda * dz * k^2 ~= pi - atan(A / sqrt(1 - A^2))
    expected = np.sqrt((np.pi - np.arctan(0.07 / np.sqrt(1 - 0.07 ** 2))) / (np.pi * wavelength * 30000.0))
    assert first_zero == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("shape", [(12, 20, 16), (11, 17, 15), (1, 16, 18)])
def test_whole_volume_matches_spec_application(rng, shape):
    volume = (rng.standard_normal(shape) * 3 + 5).astype(np.float32)
    f, curve = wiener_curve(10.0, 30000.0, snrfalloff=0.7)
    expected = spec_deconvolve(volume.astype(np.float64), f, curve)
    result = deconvolve(volume, 10.0, 30000.0, snrfalloff=0.7)
    assert result.dtype == np.float32 and result.shape == shape
    np.testing.assert_allclose(result, expected, atol=2e-4 * volume.std())
    assert result.mean() == pytest.approx(volume.mean(), abs=1e-3)
    assert result.std() == pytest.approx(volume.std(), rel=1e-3)


def _ctf_modulated_phantom(rng, shape=(32, 48, 48), pixel_size=10.0, defocus=60000.0):
    """Dense blobs (ground truth) and the same blobs seen through the CTF plus a little noise."""
    truth = ndimage.gaussian_filter(rng.standard_normal(shape), 0.5)
    k = np.sqrt(sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in shape], indexing="ij"))) / pixel_size
    observed = np.real(np.fft.ifftn(np.fft.fftn(truth) * ctf(k, defocus)))
    observed += 0.05 * observed.std() * rng.standard_normal(shape)
    return truth.astype(np.float32), observed.astype(np.float32)


def test_deconvolution_restores_correlation_with_ctf_free_volume(rng):
    truth, observed = _ctf_modulated_phantom(rng)
    before = np.corrcoef(truth.ravel(), observed.ravel())[0, 1]
    result = deconvolve(observed, 10.0, 60000.0, snrfalloff=0.3, deconvstrength=1.0)
    after = np.corrcoef(truth.ravel(), result.ravel())[0, 1]
    assert before < 0.3
    assert after > 0.6


@pytest.mark.parametrize("chunk_size, overlap_rate", [(24, 0.25), (32, 0.5)])
def test_chunked_matches_whole_volume(rng, chunk_size, overlap_rate):
    _, observed = _ctf_modulated_phantom(rng, shape=(40, 80, 72), defocus=30000.0)
    whole = deconvolve(observed, 10.0, 30000.0)
    chunked = deconvolve(observed, 10.0, 30000.0, chunk_size=chunk_size, overlap_rate=overlap_rate, ncpu=2)
    assert chunked.shape == whole.shape and chunked.dtype == np.float32
    assert np.corrcoef(whole.ravel(), chunked.ravel())[0, 1] > 0.999
    assert chunked.mean() == pytest.approx(observed.mean(), abs=1e-3)
    assert chunked.std() == pytest.approx(observed.std(), rel=1e-3)


def _write_star(path, rows):
    write_star(pd.DataFrame(rows), path)


def _md5(path):
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def test_cli_deconv_writes_files_and_star_columns(tmp_path, rng):
    _, observed = _ctf_modulated_phantom(rng, shape=(16, 32, 32))
    os.makedirs(tmp_path / "tomos")
    write_volume(tmp_path / "tomos" / "t.a.mrc", observed, voxel_size=10.0, origin=(1.0, 2.0, 3.0))
    write_volume(tmp_path / "tomos" / "pp.mrc", observed, voxel_size=10.0)
    before = _md5(tmp_path / "tomos" / "t.a.mrc")
    _write_star(tmp_path / "tomograms.star", {
        "rlnIndex": [1, 2], "rlnMicrographName": ["tomos/t.a.mrc", "tomos/pp.mrc"],
        "rlnPixelSize": [10.0, 10.0], "rlnDefocus": [30000.0, 0.0]})
    result = run_cli("deconv", "tomograms.star", "--snrfalloff", "0.5", "--deconv_folder", "dec",
                     "--chunk_size", "16", "--ncpu", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rlnDefocus is 0" in result.stdout
    table = read_star(tmp_path / "tomograms.star")
    assert list(table["rlnDeconvTomoName"]) == [os.path.join("dec", "t.a.mrc"), None]
    assert list(table["rlnSnrFalloff"]) == [0.5, 1.0]
    assert list(table["rlnDeconvStrength"]) == [1.0, 1.0]
    assert not os.path.exists(tmp_path / "dec" / "pp.mrc")
    assert _md5(tmp_path / "tomos" / "t.a.mrc") == before
    header = read_header(tmp_path / "dec" / "t.a.mrc")
    assert header.voxel_size == pytest.approx((10.0, 10.0, 10.0)) and header.origin == pytest.approx((1, 2, 3))
    expected = deconvolve(observed, 10.0, 30000.0, snrfalloff=0.5)
    produced = read_volume(tmp_path / "dec" / "t.a.mrc")
    assert np.corrcoef(expected.ravel(), produced.ravel())[0, 1] > 0.999


def test_cli_deconv_missing_defocus_label_is_one_line_error(tmp_path, run_main):
    write_volume(tmp_path / "t.mrc", np.zeros((4, 4, 4), np.float32))
    _write_star(tmp_path / "tomograms.star", {"rlnIndex": [1], "rlnMicrographName": ["t.mrc"],
                                              "rlnPixelSize": [10.0]})
    status, _, err = run_main("deconv", "tomograms.star", cwd=tmp_path)
    assert status == 1  # an input error
    assert err.startswith("ERROR: ") and err.count("\n") == 1 and "rlnDefocus" in err
    assert sorted(os.listdir(tmp_path)) == ["t.mrc", "tomograms.star"]


def test_array_tasks_share_the_star_file_and_the_output_folder(tmp_path, rng, monkeypatch):
    """Task 1 deconvolves into dec/ while task 2 holds the lock of its own output there and writes its row
    into tomograms.star meanwhile: task 1 runs, and both rows end up in the STAR file."""
    from isonet.io.lock import output_lock
    from isonet.io.star import set_column, update_star_rows
    from isonet.preprocess import deconv as module
    _, observed = _ctf_modulated_phantom(rng, shape=(16, 32, 32))
    for name in ("a.mrc", "b.mrc"):
        write_volume(tmp_path / name, observed, voxel_size=10.0)
    _write_star(tmp_path / "tomograms.star", {"rlnIndex": [1, 2], "rlnMicrographName": ["a.mrc", "b.mrc"],
                                              "rlnPixelSize": [10.0, 10.0], "rlnDefocus": [30000.0, 30000.0]})
    monkeypatch.chdir(tmp_path)

    def second_task_finishes_meanwhile(*args, **kwargs):
        other = read_star("tomograms.star")
        set_column(other, "rlnDeconvTomoName", None)
        set_column(other, "rlnDeconvTomoName", os.path.join("dec", "b.mrc"), rows=[1])
        update_star_rows("tomograms.star", other, [1])
        return deconvolve(*args, **kwargs)

    monkeypatch.setattr(module, "deconvolve", second_task_finishes_meanwhile)
    with output_lock(tmp_path / "dec" / "b.mrc"):  # task 2 at work
        module.deconv_tomograms("tomograms.star", deconv_folder="dec", tomo_idx=[1])
    table = read_star("tomograms.star")
    assert list(table["rlnDeconvTomoName"]) == [os.path.join("dec", "a.mrc"), os.path.join("dec", "b.mrc")]
    assert list(table["rlnSnrFalloff"]) == [1.0, 1.0] and list(table["rlnDeconvStrength"]) == [1.0, 1.0]
    assert os.path.isfile(os.path.join("dec", "a.mrc"))

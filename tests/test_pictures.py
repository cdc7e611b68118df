"""PNG pictures (isonet.evaluation.pictures) and ``isonet.py snapshot``."""

import matplotlib.image
import numpy as np
import pytest
from conftest import run_cli

from isonet.errors import IsonetError
from isonet.evaluation.fourier import xz_power_spectrum
from isonet.evaluation.pictures import plot_fsc, plot_loss_curves, save_snapshot, snapshot_size
from isonet.io.mrc import write_volume
from isonet.wedge import measured_mask


def png_shape(path):
    """(height, width) in pixels of a PNG file."""
    return matplotlib.image.imread(path).shape[:2]


def only_file(folder, name):
    """The folder holds exactly ``name`` (atomic writes leave no temporary behind)."""
    return sorted(p.name for p in folder.iterdir()) == [name]


def test_xz_power_spectrum_shows_the_wedge(rng):
    volume = rng.standard_normal((16, 12, 20))
    power = xz_power_spectrum(volume, chunk=5)
    assert power.shape == (16, 20)
    # Parseval per XZ slice: sum |FFT2|^2 = nz * nx * sum(slice^2); averaged over Y.
    assert power.sum() == pytest.approx(16 * 20 * np.sum(volume ** 2) / 12, rel=1e-5)
    keep = measured_mask(volume.shape, -60, 60)
    filtered = np.fft.ifftn(np.fft.fftn(volume) * keep).real
    power = xz_power_spectrum(filtered)
    wedge = np.fft.fftshift(~keep[:, 0, :])
    assert power[wedge].max() < 1e-6 * power[~wedge].mean()


def test_save_snapshot_size_and_inputs(tmp_path, rng):
    volume = rng.standard_normal((8, 24, 32)).astype(np.float32)
    write_volume(tmp_path / "vol.mrc", volume)
    out = tmp_path / "pictures"
    save_snapshot([volume, str(tmp_path / "vol.mrc"), volume[:, :16]], out / "snap.png", labels=["a", "b", "c"])
    assert png_shape(out / "snap.png") == snapshot_size(3) == (900, 1200)
    assert only_file(out, "snap.png")
    save_snapshot([volume], out / "snap.png")  # replaces; default label
    assert png_shape(out / "snap.png") == (300, 1200)
    image = matplotlib.image.imread(out / "snap.png")
    assert image[..., :3].std() > 0.1  # something was drawn
    with pytest.raises(IsonetError, match="labels"):
        save_snapshot([volume, volume], out / "x.png", labels=["one"])


def test_plot_loss_curves(tmp_path):
    history = [{"iteration": i, "loss": [1.0 / i, 0.9 / i], "val_loss": [1.1 / i, 1.0 / i],
                "noise_level": 0.0 if i < 3 else 0.05 * (i - 2)} for i in range(1, 6)]
    plot_loss_curves(history, tmp_path / "loss.png", noise_changes=(2,))
    assert png_shape(tmp_path / "loss.png") == (500, 800) and only_file(tmp_path, "loss.png")
    # Missing validation loss and an empty history are drawn too.
    plot_loss_curves([{"iteration": 1, "loss": [0.5, 0.4], "noise_level": 0.0}], tmp_path / "b.png")
    plot_loss_curves([], tmp_path / "c.png")
    assert png_shape(tmp_path / "b.png") == png_shape(tmp_path / "c.png") == (500, 800)


def test_plot_fsc(tmp_path):
    frequency = np.linspace(0.005, 0.05, 10)
    plot_fsc(frequency, {"x": np.linspace(1, 0, 10), "z": np.linspace(0.5, -0.1, 10), "other": np.ones(10)},
             tmp_path / "fsc.png", title="test")
    assert png_shape(tmp_path / "fsc.png") == (500, 800)


def test_snapshot_cli(tmp_path, rng):
    for name in ("raw.mrc", "corrected.mrc"):
        write_volume(tmp_path / name, rng.standard_normal((8, 16, 16)).astype(np.float32))
    result = run_cli("snapshot", "raw.mrc", "corrected.mrc", "--out", "view.png", "--labels", "raw,corrected",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert png_shape(tmp_path / "view.png") == (600, 1200)
    bad = run_cli("snapshot", "raw.mrc", "corrected.mrc", "--labels", "raw", cwd=tmp_path)
    assert bad.returncode == 2 and "--labels" in bad.stderr
    missing = run_cli("snapshot", "absent.mrc", cwd=tmp_path)
    assert missing.returncode == 1 and "absent.mrc" in missing.stderr

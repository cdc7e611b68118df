"""PNG pictures (isonet.evaluation.pictures) and ``isonet.py snapshot``."""

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from isonet.errors import IsonetError
from isonet.evaluation.fourier import xz_power_spectrum
from isonet.evaluation.pictures import (loss_figure, plot_fsc, plot_loss_curves, save_snapshot, snapshot_figure,
                                        snapshot_size)
from isonet.io.mrc import write_volume
from isonet.normalize import normalize
from isonet.refine.monitor import IterationMonitor
from isonet.wedge import measured_mask


def png_shape(path):
    """(height, width) in pixels of a PNG file."""
    return matplotlib.image.imread(path).shape[:2]


def only_file(folder, name):
    """The folder holds exactly ``name`` (atomic writes leave no temporary behind)."""
    return sorted(p.name for p in folder.iterdir()) == [name]


def row_panels(image, row):
    """The pixels of snapshot row ``row`` right of the row label (which names the volume; 65 px wide)."""
    height = snapshot_size(2)[0] - snapshot_size(1)[0]
    return image[row * height:(row + 1) * height, 65:, :3]


def color_pixels(image, color):
    """Number of pixels of ``image`` (RGB or RGBA floats) drawn in the matplotlib colour ``color``."""
    return int(np.all(np.abs(image[..., :3] - matplotlib.colors.to_rgb(color)) < 0.02, axis=-1).sum())


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
    image = matplotlib.image.imread(out / "snap.png")
    assert image.shape[:2] == snapshot_size(3) == (3 * 460 + 30, 1150)
    assert only_file(out, "snap.png")
    # the array and its file are drawn alike; the cropped volume is not
    assert np.abs(row_panels(image, 0) - row_panels(image, 1)).mean() < 1e-4
    assert np.abs(row_panels(image, 0) - row_panels(image, 2)).mean() > 0.05
    save_snapshot([volume], out / "snap.png")  # replaces; default label
    assert png_shape(out / "snap.png") == (490, 1150)
    with pytest.raises(IsonetError, match="labels"):
        save_snapshot([volume, volume], out / "x.png", labels=["one"])
    with pytest.raises(IsonetError, match="difference"):
        save_snapshot([volume, volume[:, :16]], out / "x.png", difference=True)


def _panels(figure):
    """{title or x label: (axes, displayed array, pixels per voxel along x, along y)} of a snapshot figure."""
    figure.canvas.draw()
    panels = {}
    for axes in figure.axes:
        array = axes.images[0].get_array()
        box = axes.get_window_extent()
        name = axes.get_title() or axes.get_xlabel()
        panels[name] = (axes, np.asarray(array), box.width / array.shape[1], box.height / array.shape[0])
    return panels


def test_snapshot_panels_keep_square_voxels_and_zoom_the_depth(rng):
    """A thin slab (16 x 96 x 128) keeps its proportions: XZ is 8x wider than tall at the XY scale."""
    volume = rng.standard_normal((16, 96, 128)).astype(np.float32)
    volume[6:10, 40:44, 100:104] = -8.0  # the most detailed X window of the XZ slice (y 48) is around x 100
    volume[6:10, 46:50, 100:104] = -8.0
    panels = _panels(snapshot_figure([volume], ["slab"]))
    xy, xz, yz = (panels[name] for name in ("XY (z 8)", "XZ (y 48), Z up", "YZ (x 64), Z right"))
    scale = xy[2]
    for _, array, per_x, per_y in (xy, xz, yz):
        assert per_x == pytest.approx(per_y, rel=0.02) and per_x == pytest.approx(scale, rel=0.02)
    assert xz[1].shape == (16, 128) and yz[1].shape == (96, 16)
    assert np.array_equal(xz[1], volume[:, 48, :]) and np.array_equal(yz[1], volume[:, :, 64].T)
    (name, (_, zoom, per_x, per_y)), = [(n, p) for n, p in panels.items() if n.startswith("zoom")]
    assert zoom.shape == (16, 32) and per_x == pytest.approx(per_y, rel=0.02)
    assert per_x > 3 * scale and name.startswith(f"zoom x{per_x / scale:.1f}")  # enlarged, and says by how much
    start = int(name.split("x ")[-1].split("-")[0])
    assert start <= 100 and start + 32 >= 104 and np.array_equal(zoom, volume[:, 48, start:start + 32])


def test_snapshot_shows_values_with_their_sign_and_a_difference_row(rng):
    """Low values are drawn dark (no sign change), and the difference row is after minus before."""
    before = rng.standard_normal((16, 16, 16)).astype(np.float32)
    before[6:10, 6:10, 6:10] = -5.0  # dense particle, dark as in a tomogram
    after = before.copy()
    after[6:10, 6:10, 12:14] = -5.0  # the "network" added density
    figure = snapshot_figure([before, after], ["before", "after"], difference=True)
    xy_panels = [axes for axes in figure.axes if axes.get_title().startswith("XY")]
    assert len(xy_panels) == 3
    image = xy_panels[0].images[0]
    luminance = np.asarray(image.cmap(image.norm(image.get_array()))[..., :3]).mean(axis=-1)
    assert luminance[8, 8] < 0.05 and np.median(luminance) > 0.3
    difference = xy_panels[2].images[0]
    values = np.asarray(difference.get_array())
    expected = ((after - after.mean()) / after.std() - (before - before.mean()) / before.std())[8]
    assert np.allclose(values, expected, atol=1e-5)
    assert values[8, 12] < -1 and abs(np.median(values)) < 0.2
    low, high = difference.get_clim()
    assert low == pytest.approx(-high)


class _Identity:
    """A stand-in for the network: returns its input batch."""

    def predict(self, batch):
        return batch


def test_refine_snapshot_shows_the_subtomogram_as_in_the_file(tmp_path):
    """refine works on negated volumes; its snapshot must show the file's contrast (density dark)."""
    volume = np.ones((16, 16, 16), np.float32)
    volume[6:10, 6:10, 6:10] = -4.0  # dense particle dark, as extract writes it
    write_volume(tmp_path / "sub.mrc", volume)
    calls = []
    monitor = IterationMonitor(str(tmp_path), True)
    monitor._draw = lambda *args, **kwargs: calls.append((args, kwargs))
    monitor.snapshot(_Identity(), str(tmp_path / "sub.mrc"), 3)
    (name, volumes, path), kwargs = calls[0]
    assert name == "save_snapshot" and path.endswith("snapshot_iter03.png") and kwargs["difference"]
    for shown in volumes:
        assert shown[8, 8, 8] < shown[1, 1, 1]  # the particle is the low (dark) value, as in the file
        assert np.allclose(shown, normalize(volume), atol=1e-5)
    assert "density dark" in kwargs["contrast"]


def test_plot_loss_curves(tmp_path):
    """The PNG shows the training loss in blue and the validation loss in orange, each only where it exists."""
    history = [{"iteration": i, "loss": [1.0 / i, 0.9 / i], "val_loss": [1.1 / i, 1.0 / i],
                "noise_level": 0.0 if i < 3 else 0.05 * (i - 2)} for i in range(1, 6)]
    plot_loss_curves(history, tmp_path / "loss.png", noise_changes=(2,))
    assert png_shape(tmp_path / "loss.png") == (500, 800) and only_file(tmp_path, "loss.png")
    # Missing validation loss and an empty history are drawn too.
    plot_loss_curves([{"iteration": 1, "loss": [0.5, 0.4], "noise_level": 0.0}], tmp_path / "b.png")
    plot_loss_curves([], tmp_path / "c.png")
    images = {name: matplotlib.image.imread(tmp_path / f"{name}.png") for name in ("loss", "b", "c")}
    assert all(image.shape[:2] == (500, 800) for image in images.values())
    counts = {name: (color_pixels(image, "tab:blue"), color_pixels(image, "tab:orange"))
              for name, image in images.items()}
    assert counts["loss"][0] > 200 and counts["loss"][1] > 200  # two curves of five points and the legend
    assert counts["b"][0] > 20 and counts["b"][1] == 0  # one training point, no validation loss
    assert counts["c"] == (0, 0)


def test_loss_plot_has_one_point_per_iteration_on_integer_ticks():
    history = [{"iteration": i, "loss": [1.0 / i, 0.9 / i], "val_loss": [1.1 / i, 1.0 / i] if i != 4 else [],
                "noise_level": 0.0 if i < 3 else 0.1} for i in range(1, 8)]
    figure = loss_figure(history)
    figure.canvas.draw()
    axes = figure.axes[0]
    train, val = (line for line in axes.get_lines() if line.get_label() in ("training loss", "validation loss"))
    assert list(train.get_xdata()) == list(range(1, 8))
    assert np.allclose(train.get_ydata(), [0.9 / i for i in range(1, 8)])  # the last epoch of each iteration
    assert list(val.get_xdata()) == [1, 2, 3, 5, 6, 7]
    ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks) and axes.get_xlabel() == "iteration"
    dashed = [line.get_xdata()[0] for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert dashed == [2.5]  # the noise switch, between iterations 2 and 3


def test_plot_fsc(tmp_path, monkeypatch):
    """Each curve is drawn against frequency with its label and colour, beside the 0.5 and 0.143 thresholds."""
    import isonet.evaluation.pictures as pictures
    figures = []
    save = pictures._save
    monkeypatch.setattr(pictures, "_save", lambda figure, path: (figures.append(figure), save(figure, path)))
    frequency = np.linspace(0.005, 0.05, 10)
    curves = {"x": np.linspace(1, 0, 10), "z": np.linspace(0.5, -0.1, 10), "other": np.ones(10)}
    plot_fsc(frequency, curves, tmp_path / "fsc.png", title="test")
    assert png_shape(tmp_path / "fsc.png") == (500, 800) and only_file(tmp_path, "fsc.png")
    (axes,) = figures[0].axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    for label, name, color in (("X cone", "x", "tab:blue"), ("Z cone", "z", "tab:red"), ("other", "other", None)):
        np.testing.assert_array_equal(lines[label].get_xdata(), frequency)
        np.testing.assert_array_equal(lines[label].get_ydata(), curves[name])
        if color:
            assert matplotlib.colors.same_color(lines[label].get_color(), color)
    levels = sorted(line.get_ydata()[0] for line in axes.get_lines() if line.get_linestyle() == "-.")
    assert levels == [0.143, 0.5]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["X cone", "Z cone", "other"]
    assert axes.get_xlim() == (0.0, 0.05) and axes.get_ylim() == (-0.2, 1.05) and axes.get_title() == "test"
    assert axes.get_xlabel() == "spatial frequency (1/Å)" and axes.get_ylabel() == "FSC"
    image = matplotlib.image.imread(tmp_path / "fsc.png")
    assert color_pixels(image, "tab:red") > 100 and color_pixels(image, "tab:blue") > 100


def test_snapshot_cli(tmp_path, rng, run_main):
    """One row per volume, then the difference row in colour; bad arguments are refused with the right status."""
    for name in ("raw.mrc", "corrected.mrc"):
        write_volume(tmp_path / name, rng.standard_normal((8, 16, 16)).astype(np.float32))
    status, _, err = run_main("snapshot", "raw.mrc", "corrected.mrc", "--out", "view.png", "--labels",
                              "raw,corrected", cwd=tmp_path)
    assert status == 0, err
    view = matplotlib.image.imread(tmp_path / "view.png")
    assert view.shape[:2] == snapshot_size(2)
    status, _, err = run_main("snapshot", "raw.mrc", "corrected.mrc", "--difference", "--out", "diff.png",
                              cwd=tmp_path)
    assert status == 0, err
    diff = matplotlib.image.imread(tmp_path / "diff.png")
    assert diff.shape[:2] == snapshot_size(3)
    for row in (0, 1):  # the same volumes drawn the same way, whatever the labels (up to a few edge pixels)
        assert np.abs(row_panels(diff, row) - row_panels(view, row)).mean() < 1e-4
    assert np.abs(row_panels(view, 0) - row_panels(view, 1)).mean() > 0.05  # two different volumes

    def blue(image, row):
        panels = row_panels(image, row)
        return int((panels[..., 2] - panels[..., 0] > 0.3).sum())
    assert blue(diff, 0) == blue(diff, 1) == 0 and blue(diff, 2) > 1000  # grey rows, then the blue-red difference

    write_volume(tmp_path / "other.mrc", rng.standard_normal((8, 16, 12)).astype(np.float32))
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, status, text in [
            (("raw.mrc", "other.mrc", "--difference"), 2, "expected one shape"),
            (("raw.mrc", "--difference"), 2, "--difference: needs two or more volumes"),
            (("raw.mrc", "corrected.mrc", "--labels", "raw"), 2, "--labels: 1 labels for 2 volumes"),
            (("absent.mrc",), 1, "absent.mrc")]:
        code, _, err = run_main("snapshot", *argv, cwd=tmp_path)
        assert code == status and err.startswith("ERROR: ") and err.count("\n") == 1 and text in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before

"""PNG pictures: slice/spectrum snapshots, training-loss curves, FSC curves.

Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 = beam/Z, tilt axis =
Y). matplotlib is imported inside the functions only (headless: figures are
drawn with the Agg canvas through :class:`matplotlib.figure.Figure`, no
pyplot state), and every PNG is written atomically. Picture sizes are fixed
(see the constants) so that callers and tests know them.
"""

import logging
import os

import numpy as np

from isonet.commands import SNAPSHOT
from isonet.errors import IsonetError, UsageError
from isonet.evaluation.fourier import xz_power_spectrum
from isonet.io.atomic import atomic_output
from isonet.io.mrc import read_header, read_volume
from isonet.io.paths import check_output_folder

log = logging.getLogger("isonet")

#: Dots per inch of every PNG.
DPI = 100
#: Each snapshot panel (one volume x one view) is a square of this many inches.
SNAPSHOT_PANEL_INCHES = 3.0
#: Snapshot columns: central XY, XZ and YZ slices, then the XZ power spectrum.
SNAPSHOT_VIEWS = ("XY (central Z)", "XZ (central Y)", "YZ (central X)", "log power (kz, kx)")
#: Loss and FSC plots, inches (width, height).
PLOT_INCHES = (8.0, 5.0)
#: Robust contrast: slices and spectra are shown between these percentiles.
CONTRAST_PERCENTILES = (1.0, 99.0)


def snapshot_size(n_volumes):
    """Pixel size ``(height, width)`` of the PNG :func:`save_snapshot` writes for ``n_volumes`` rows."""
    panel = int(round(SNAPSHOT_PANEL_INCHES * DPI))
    return n_volumes * panel, len(SNAPSHOT_VIEWS) * panel


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")


def _limits(*images):
    values = np.concatenate([np.ravel(image) for image in images])
    low, high = np.percentile(values, CONTRAST_PERCENTILES)
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def save_snapshot(volumes, path, labels=None):
    """Central XY, XZ, YZ slices and the XZ log power spectrum, one row per volume.

    Slices keep the voxel proportions (equal aspect, Y and Z upwards, so a
    thin tomogram gives flat XZ and YZ panels), with grey levels between the 1st and 99th percentiles of the
    volume's three slices; the spectrum (:func:`isonet.evaluation.fourier.
    xz_power_spectrum`, log10) is drawn over kx, kz in [-0.5, 0.5] cycles per
    voxel with equal aspect, so the missing wedge appears at its true angles
    around the vertical kz axis. The PNG is :func:`snapshot_size` pixels.

    Parameters
    ----------
    volumes : list of ndarray (nz, ny, nx) or of str
        Volumes (``[z, y, x]``) or MRC paths; shapes may differ.
    path : str
        PNG written (atomically).
    labels : list of str, optional
        Row labels; default: file names for paths, 'volume N' for arrays.
    """
    from matplotlib.figure import Figure

    volumes = list(volumes)
    if not volumes:
        raise IsonetError("snapshot: no volume given")
    if labels is None:
        labels = [os.path.basename(v) if isinstance(v, (str, os.PathLike)) else f"volume {i + 1}"
                  for i, v in enumerate(volumes)]
    labels = [str(label) for label in labels]
    if len(labels) != len(volumes):
        raise IsonetError(f"snapshot: {len(labels)} labels for {len(volumes)} volumes")
    height, width = snapshot_size(len(volumes))
    figure = Figure(figsize=(width / DPI, height / DPI))
    n_rows, n_cols = len(volumes), len(SNAPSHOT_VIEWS)
    for row, (volume, label) in enumerate(zip(volumes, labels)):
        volume = read_volume(volume) if isinstance(volume, (str, os.PathLike)) else np.asarray(volume, np.float32)
        if volume.ndim != 3:
            raise IsonetError(f"snapshot: {label} is not a 3-D volume (shape {volume.shape})")
        nz, ny, nx = volume.shape
        slices = (volume[nz // 2], volume[:, ny // 2, :], volume[:, :, nx // 2])
        low, high = _limits(*slices)
        spectrum = np.log10(xz_power_spectrum(volume) + 1e-30)
        views = [(image, low, high, None) for image in slices]
        views.append((spectrum, *_limits(spectrum), (-0.5, 0.5, -0.5, 0.5)))
        for col, (image, vmin, vmax, extent) in enumerate(views):
            # Each cell: a top margin for the title, a left margin (wider in column 0) for the row label.
            left = 0.12 if col == 0 else 0.04
            axes = figure.add_axes([(col + left) / n_cols, (n_rows - row - 1 + 0.03) / n_rows,
                                    (0.96 - left) / n_cols, 0.86 / n_rows])
            axes.imshow(image, cmap="gray", origin="lower", vmin=vmin, vmax=vmax, extent=extent,
                        aspect="equal", interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(SNAPSHOT_VIEWS[col] if row == 0 else "", fontsize=9)
            if col == 0:
                axes.set_ylabel(f"{label}\n{nz}x{ny}x{nx}", fontsize=8)
    _save(figure, path)


@SNAPSHOT.implements
def snapshot_files(volumes, out, labels):
    """The ``snapshot`` command: :func:`save_snapshot` of MRC files, every header checked first.

    Parameters
    ----------
    volumes : list of str
        MRC volumes, one row each.
    out : str
        PNG written.
    labels : list of str or None
        One label per volume (default: the file names).
    """
    if labels is not None and len(labels) != len(volumes):
        raise UsageError(f"--labels: {len(labels)} labels for {len(volumes)} volumes")
    for path in volumes:
        read_header(path)
    check_output_folder(os.path.dirname(os.path.abspath(out)), "--out")
    save_snapshot(volumes, out, labels=labels)
    log.info("wrote %s", out)


def plot_loss_curves(history, path, noise_changes=()):
    """Training and validation loss per epoch across refine iterations (PNG, :data:`PLOT_INCHES`).

    The x axis counts epochs cumulatively over iterations (faint dotted lines
    separate iterations); a dashed vertical line, labelled with the new noise
    level, marks each iteration where the noise level changes (from one
    history entry to the next, plus the iterations listed in ``noise_changes``).

    Parameters
    ----------
    history : list of dict
        One per iteration, in order: ``{'iteration': int, 'loss': [per-epoch
        float], 'val_loss': [per-epoch float] (may be empty or absent),
        'noise_level': float}``.
    path : str
        PNG written (atomically).
    noise_changes : iterable of int
        Further iteration numbers at which the noise level changes.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=PLOT_INCHES)
    axes = figure.add_subplot(1, 1, 1)
    train_x, train_y, val_x, val_y, starts = [], [], [], [], {}
    epoch = 0
    for entry in history:
        starts[int(entry["iteration"])] = (epoch, entry.get("noise_level"))
        loss = list(entry.get("loss") or [])
        val_loss = list(entry.get("val_loss") or [])
        train_x += range(epoch + 1, epoch + len(loss) + 1)
        train_y += loss
        val_x += range(epoch + 1, epoch + len(val_loss) + 1)
        val_y += val_loss
        epoch += max(len(loss), len(val_loss))
    axes.plot(train_x, train_y, "-", color="tab:blue", label="training loss")
    if val_y:
        axes.plot(val_x, val_y, "-", color="tab:orange", label="validation loss")
    for start, _ in list(starts.values())[1:]:  # faint boundaries between iterations
        axes.axvline(start + 0.5, color="grey", linestyle=":", linewidth=0.6, alpha=0.6)
    levels = [entry.get("noise_level") for entry in history]
    changed = {int(history[i]["iteration"]) for i in range(1, len(history)) if levels[i] != levels[i - 1]}
    changed |= {int(i) for i in noise_changes if int(i) in starts}
    for iteration in sorted(changed):
        start, level = starts[iteration]
        axes.axvline(start + 0.5, color="grey", linestyle="--", linewidth=1)
        text = f"iter {iteration}" + ("" if level is None else f": noise {level:g}")
        axes.text(start + 0.5, 0.02, text, rotation=90, va="bottom", ha="right", fontsize=8,
                  transform=axes.get_xaxis_transform())
    axes.set_xlabel("epoch (cumulative over iterations)")
    axes.set_ylabel("loss")
    axes.set_title("refine: loss per epoch")
    if train_y or val_y:
        axes.legend(loc="upper right")
    axes.grid(alpha=0.3)
    _save(figure, path)


def plot_fsc(frequency_per_A, curves, path, title=""):
    """FSC curves against spatial frequency, with the 0.5 and 0.143 thresholds (PNG, :data:`PLOT_INCHES`).

    Parameters
    ----------
    frequency_per_A : ndarray, shape (n,)
        Shell frequencies in 1/Å.
    curves : dict of str -> ndarray, shape (n,)
        Named FSC curves (e.g. 'x', 'y', 'z', 'measured', 'missing_wedge', 'all').
    path : str
        PNG written (atomically).
    title : str
    """
    from matplotlib.figure import Figure

    styles = {"x": ("X cone", "tab:blue", "-"), "y": ("Y cone", "tab:green", "-"), "z": ("Z cone", "tab:red", "-"),
              "measured": ("measured region", "black", "--"), "missing_wedge": ("missing wedge", "tab:purple", "--"),
              "all": ("whole shells", "grey", ":")}
    figure = Figure(figsize=PLOT_INCHES)
    axes = figure.add_subplot(1, 1, 1)
    for name, fsc in curves.items():
        label, color, line = styles.get(name, (name, None, "-"))
        axes.plot(frequency_per_A, fsc, line, color=color, label=label)
    for threshold in (0.5, 0.143):
        axes.axhline(threshold, color="grey", linewidth=0.8, linestyle="-.")
        axes.text(frequency_per_A[-1], threshold, f" {threshold:g}", va="bottom", ha="right", fontsize=8)
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xlim(0, frequency_per_A[-1])
    axes.set_ylim(-0.2, 1.05)
    axes.set_xlabel("spatial frequency (1/Å)")
    axes.set_ylabel("FSC")
    axes.set_title(title or "Fourier shell correlation", fontsize=10)
    axes.legend(loc="best", fontsize=8)
    axes.grid(alpha=0.3)
    _save(figure, path)

"""PNG pictures: slice/spectrum snapshots, training-loss curves, FSC curves.

Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 = beam/Z, tilt axis =
Y). matplotlib is imported inside the functions only (headless: figures are
drawn with the Agg canvas through :class:`matplotlib.figure.Figure`, no
pyplot state), and every PNG is written atomically. Picture sizes are fixed
(see the constants) so that callers and tests know them; the ``*_figure``
functions return the figure itself, for tests and for callers that embed it.
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
#: Longer side (inches) of a snapshot row's orthogonal views: XY, XZ below it, YZ at its right.
ORTHO_INCHES = 4.0
#: Longer side (inches) of the zoom panel and side of the spectrum panel.
ZOOM_INCHES = 3.0
#: The zoom crop spans the whole depth and this many voxels along X at least (the depth if larger).
ZOOM_MIN_WIDTH = 32
#: Snapshot margins (inches): row label at the left, title above and label below each row, between
#: panels, the right edge, the contrast note at the bottom, between the orthogonal views.
_LEFT, _TOP, _BOTTOM, _GAP, _RIGHT, _FOOT, _ORTHO_GAP = 0.65, 0.35, 0.25, 0.35, 0.15, 0.3, 0.08
#: Snapshot row height and width, inches.
_ROW_INCHES = _TOP + ORTHO_INCHES + _BOTTOM
_WIDTH_INCHES = _LEFT + ORTHO_INCHES + _GAP + ZOOM_INCHES + _GAP + ZOOM_INCHES + _RIGHT
#: What the grey levels of a snapshot mean, written under it.
CONTRAST_AS_STORED = ("grey levels as stored in the files (low = dark; tomograms as IMOD writes them show "
                      "density dark), each row between its 1st and 99th percentiles")
#: Loss and FSC plots, inches (width, height).
PLOT_INCHES = (8.0, 5.0)
#: Robust contrast: slices and spectra are shown between these percentiles.
CONTRAST_PERCENTILES = (1.0, 99.0)


def snapshot_size(n_rows):
    """Pixel size ``(height, width)`` of the PNG :func:`save_snapshot` writes with ``n_rows`` rows."""
    return int(round((n_rows * _ROW_INCHES + _FOOT) * DPI)), int(round(_WIDTH_INCHES * DPI))


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")


def _limits(*images):
    values = np.concatenate([np.ravel(image) for image in images])
    low, high = np.percentile(values, CONTRAST_PERCENTILES)
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def _standardised(volume):
    return (volume - volume.mean()) / max(float(volume.std()), 1e-12)


def central_slices(volume):
    """The central slices of a ``[z, y, x]`` volume as drawn: ``{'XY': (ny, nx), 'XZ': (nz, nx), 'YZ': (ny, nz)}``.

    YZ is transposed (Z along the columns) to sit at the right of XY, sharing its Y axis.
    """
    nz, ny, nx = volume.shape
    return {"XY": volume[nz // 2], "XZ": volume[:, ny // 2, :], "YZ": volume[:, :, nx // 2].T}


def zoom_window(xz_slice, width):
    """First X index of the ``width``-voxel window of an XZ slice with the most variance (the most detail).

    Parameters
    ----------
    xz_slice : ndarray, shape (nz, nx)
    width : int
        Window width along X, ``<= nx``.
    """
    column_variance = np.concatenate([[0.0], np.cumsum(np.var(xz_slice, axis=0))])
    return int(np.argmax(column_variance[width:] - column_variance[:-width]))


def _add_image(figure, box_inches, image, vmin, vmax, cmap="gray"):
    """Axes at ``box_inches`` (left, bottom, width, height in figure inches) showing ``image`` unstretched.

    The box is sized by the caller to the image's proportions, so every voxel is square.
    """
    width, height = figure.get_size_inches()
    left, bottom, box_width, box_height = box_inches
    axes = figure.add_axes([left / width, bottom / height, box_width / width, box_height / height])
    axes.imshow(image, cmap=cmap, origin="lower", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    return axes


def snapshot_figure(volumes, labels, difference=False, contrast=CONTRAST_AS_STORED):
    """The figure of :func:`save_snapshot` (arguments as there); one row per volume, plus the difference row.

    Each row, left to right: the orthogonal views through the centre (XY with
    Y up; XZ below it with Z up, sharing X; YZ at its right with Z to the
    right, sharing Y), all at one scale with square voxels, so a tomogram 8
    times wider than thick shows XZ 8 times wider than tall; a zoom on the
    whole depth of the XZ slice over the window of X with the most detail
    (outlined in XZ; the same window in every row of the same shape), enlarged
    so that shapes along Z can be judged; the XZ log power spectrum.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows = []
    for volume, label in zip(volumes, labels):
        volume = read_volume(volume) if isinstance(volume, (str, os.PathLike)) else np.asarray(volume, np.float32)
        if volume.ndim != 3:
            raise IsonetError(f"snapshot: {label} is not a 3-D volume (shape {volume.shape})")
        rows.append((volume, label, "gray"))
    if difference:
        first, last = rows[0][0], rows[-1][0]
        if first.shape != last.shape:
            raise IsonetError(f"snapshot: difference of volumes of shapes {first.shape} and {last.shape}")
        rows.append((_standardised(last) - _standardised(first),
                     f"{rows[-1][1]} - {rows[0][1]}\n(standardised)", "RdBu_r"))
        # The difference is drawn on the scale of the first volume's contrast (standardised): a
        # network that changed little shows a pale row, not its small changes stretched to full scale.
        reach = _limits(*[np.abs(s) for s in central_slices(_standardised(first)).values()])[1]
    height, width = (pixels / DPI for pixels in snapshot_size(len(rows)))  # inches
    figure = Figure(figsize=(width, height))
    windows = {}
    for row, (volume, label, cmap) in enumerate(rows):
        nz, ny, nx = volume.shape
        slices = central_slices(volume)
        low, high = _limits(*slices.values()) if cmap == "gray" else (-reach, reach)
        top = height - row * _ROW_INCHES - _TOP
        scale = (ORTHO_INCHES - _ORTHO_GAP) / max(nx + nz, ny + nz)  # inches per voxel
        xz_bottom = top - (ny + nz) * scale - _ORTHO_GAP
        boxes = {"XY": (_LEFT, top - ny * scale, nx * scale, ny * scale),
                 "XZ": (_LEFT, xz_bottom, nx * scale, nz * scale),
                 "YZ": (_LEFT + nx * scale + _ORTHO_GAP, top - ny * scale, nz * scale, ny * scale)}
        axes = {view: _add_image(figure, boxes[view], image, low, high, cmap) for view, image in slices.items()}
        axes["XY"].set_title(f"XY (z {nz // 2})", fontsize=8)
        axes["XZ"].set_xlabel(f"XZ (y {ny // 2}), Z up", fontsize=8)
        axes["YZ"].set_title(f"YZ (x {nx // 2}), Z right", fontsize=8)
        figure.text(0.15 / width, (top - ORTHO_INCHES / 2) / height, f"{label}\n{nz}x{ny}x{nx}",
                    rotation=90, ha="left", va="center", fontsize=8)

        zoom_width = min(nx, max(nz, ZOOM_MIN_WIDTH))
        key = (volume.shape, zoom_width)
        if key not in windows:
            windows[key] = zoom_window(slices["XZ"], zoom_width)
        start = windows[key]
        zoom = ZOOM_INCHES / max(nz, zoom_width)
        left = _LEFT + ORTHO_INCHES + _GAP
        zoomed = _add_image(figure, (left, top - nz * zoom, zoom_width * zoom, nz * zoom),
                            slices["XZ"][:, start:start + zoom_width], low, high, cmap)
        zoomed.set_title(f"zoom x{zoom / scale:.1f}: XZ, x {start}-{start + zoom_width - 1}", fontsize=8)
        axes["XZ"].add_patch(Rectangle((start - 0.5, -0.5), zoom_width, nz, fill=False, edgecolor="gold",
                                       linewidth=1))

        spectrum = np.log10(xz_power_spectrum(volume) + 1e-30)
        left += ZOOM_INCHES + _GAP
        # kx and kz both span [-0.5, 0.5] cycles per voxel: a square panel keeps the wedge's angles.
        panel = _add_image(figure, (left, top - ZOOM_INCHES, ZOOM_INCHES, ZOOM_INCHES), spectrum,
                           *_limits(spectrum))
        panel.set_title("log power (kz up, kx right)", fontsize=8)
    note = "Contrast: " + contrast
    if difference:
        note += "; difference: blue where the last row is lower (darker), red where higher"
    figure.text(0.5, _FOOT / 2 / height, note, ha="center", va="center", fontsize=7, wrap=True)
    return figure


def save_snapshot(volumes, path, labels=None, difference=False, contrast=CONTRAST_AS_STORED):
    """Orthogonal central slices, a zoom on the XZ slice and the XZ log power spectrum, one row per volume.

    The slices keep the voxel proportions at one scale per row (see
    :func:`snapshot_figure`) and are drawn with the grey levels of the data
    as given (low values dark, no sign change), between the 1st and 99th
    percentiles of the row's three slices; ``contrast`` says so under the
    picture. The spectrum (:func:`isonet.evaluation.fourier.xz_power_spectrum`,
    log10) is drawn over kx, kz in [-0.5, 0.5] cycles per voxel, so the missing
    wedge appears at its true angles around the vertical kz axis. The PNG is
    :func:`snapshot_size` pixels.

    Parameters
    ----------
    volumes : list of ndarray (nz, ny, nx) or of str
        Volumes (``[z, y, x]``) or MRC paths; shapes may differ.
    path : str
        PNG written (atomically).
    labels : list of str, optional
        Row labels; default: file names for paths, 'volume N' for arrays.
    difference : bool
        Add a row: the last volume minus the first, each standardised (zero
        mean, unit standard deviation), on a blue-white-red scale centred at 0.
        Both must have one shape.
    contrast : str
        What the grey levels mean, written under the picture.
    """
    volumes = list(volumes)
    if not volumes:
        raise IsonetError("snapshot: no volume given")
    if labels is None:
        labels = [os.path.basename(v) if isinstance(v, (str, os.PathLike)) else f"volume {i + 1}"
                  for i, v in enumerate(volumes)]
    labels = [str(label) for label in labels]
    if len(labels) != len(volumes):
        raise IsonetError(f"snapshot: {len(labels)} labels for {len(volumes)} volumes")
    _save(snapshot_figure(volumes, labels, difference, contrast), path)


@SNAPSHOT.implements
def snapshot_files(volumes, out, labels, difference):
    """The ``snapshot`` command: :func:`save_snapshot` of MRC files, every header checked first.

    Parameters
    ----------
    volumes : list of str
        MRC volumes, one row each.
    out : str
        PNG written.
    labels : list of str or None
        One label per volume (default: the file names).
    difference : bool
        Add the row of the last volume minus the first.
    """
    if labels is not None and len(labels) != len(volumes):
        raise UsageError(f"--labels: {len(labels)} labels for {len(volumes)} volumes")
    if difference and len(volumes) < 2:
        raise UsageError(f"--difference: needs two or more volumes (the last minus the first), got {len(volumes)}")
    shapes = [read_header(path).shape for path in volumes]
    if difference and shapes[0] != shapes[-1]:
        raise UsageError(f"--difference: {volumes[0]} is {shapes[0]}, {volumes[-1]} is {shapes[-1]}; "
                         f"expected one shape")
    check_output_folder(os.path.dirname(os.path.abspath(out)), "--out")
    save_snapshot(volumes, out, labels=labels, difference=difference)
    log.info("wrote %s", out)


def loss_figure(history, noise_changes=()):
    """The figure of :func:`plot_loss_curves` (arguments as there)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=PLOT_INCHES)
    axes = figure.add_subplot(1, 1, 1)
    for key, label, color in (("loss", "training loss", "tab:blue"), ("val_loss", "validation loss", "tab:orange")):
        points = [(int(entry["iteration"]), float(entry[key][-1])) for entry in history if entry.get(key)]
        if points:
            axes.plot(*zip(*points), "o-", color=color, markersize=4, label=label)
    levels = {int(entry["iteration"]): entry.get("noise_level") for entry in history}
    order = [int(entry["iteration"]) for entry in history]
    changed = {b for a, b in zip(order, order[1:]) if levels[a] != levels[b]}
    changed |= {int(i) for i in noise_changes if int(i) in levels}
    for iteration in sorted(changed):
        axes.axvline(iteration - 0.5, color="grey", linestyle="--", linewidth=1)
        level = levels[iteration]
        text = f"iter {iteration}" + ("" if level is None else f": noise {level:g}")
        axes.text(iteration - 0.5, 0.02, text, rotation=90, va="bottom", ha="right", fontsize=8,
                  transform=axes.get_xaxis_transform())
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if order:
        axes.set_xlim(min(order) - 0.5, max(order) + 0.5)
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss (last epoch of the iteration)")
    axes.set_title("refine: loss per iteration")
    if history:
        axes.legend(loc="upper right")
    axes.grid(alpha=0.3)
    return figure


def plot_loss_curves(history, path, noise_changes=()):
    """Training and validation loss per refine iteration (PNG, :data:`PLOT_INCHES`).

    One point per iteration (x: the iteration number, integer ticks): the
    loss of its last epoch, the value the log prints when the iteration ends.
    A dashed vertical line, labelled with the new noise level, marks each
    iteration where the noise level changes (from one history entry to the
    next, plus the iterations listed in ``noise_changes``).

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
    _save(loss_figure(history, noise_changes), path)


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

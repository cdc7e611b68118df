"""Prediction with a network of the halves method (``refine --method halves``).

Such a network comes with ``model_iterNN.json`` (:mod:`isonet.io.model_info`).
The full tomogram is predicted, normalised as in training, ``-(x - mean) / std``
with its central slab's mean (:func:`isonet.normalize.slab_statistics`) and,
where the halves are listed, a standard deviation at the halves' scale
(:func:`half_scaled_statistics`: the network was trained on half tomograms,
whose noise variance is twice the full one's); the network's output is
negated back (dark density, normalised units). On the quality benchmark this
beat the full tomogram at its own scale on all 18 runs, and averaging the
outputs for the two halves (IsoNet 2's and DeepDeWedge's way) on every
dataset, in half the time of the latter (docs/quality.md).

The output is then filtered shell by shell with Wiener weights from the agreement
of the network's outputs for the two halves on the central region
(:func:`half_agreement_weights`, :mod:`isonet.predict.shell_weights`): the
network passes part of the noise through, and the halves show where.
"""

import logging
import os

import numpy as np

from isonet.errors import IsonetError
from isonet.fourier_grid import resolution_at
from isonet.io.mrc import read_volume
from isonet.io.paths import file_root, input_tomogram
from isonet.io.star import has_halves
from isonet.log import progress
from isonet.normalize import central_slab, slab_statistics
from isonet.predict.shell_weights import Y_ANGLES, class_shell_correlation, wiener_weights
from isonet.predict.tiling import grid_shape, predict_tiled

log = logging.getLogger("isonet")


def half_sources(rows, star_file, use_deconv_tomo):
    """Row label -> the two half tomograms of each row that lists both files, for :func:`half_scaled_statistics`.

    A row whose half files are missing is left out, with a warning: its tomogram is then normalised by
    its own slab.

    Parameters
    ----------
    rows : pandas.DataFrame
        Selected rows of tomograms.star.
    star_file : str
    use_deconv_tomo : bool
        Use ``rlnDeconvTomoHalf1/2`` where listed.
    """
    if not has_halves(rows):
        return {}
    sources = {}
    for label, row in rows.iterrows():
        paths = [input_tomogram(row, star_file, use_deconv_tomo, fallback=True, half=h) for h in (1, 2)]
        missing = [path for path in paths if not os.path.isfile(path)]
        if missing:
            log.warning("%s: half tomogram not found: rlnIndex %s normalised by its own slab", missing[0],
                        row["rlnIndex"])
            continue
        sources[label] = paths
    return sources


def half_scaled_statistics(path, half_paths, bright=False):
    """Slab mean of tomogram ``path`` and its standard deviation at the half tomograms' scale.

    A halves-method network learnt on halves normalised by their own slab
    standard deviation ``s_h``, which holds twice the noise variance of the
    full tomogram's: normalised by its own, the full tomogram's signal comes out
    larger than in training (by up to sqrt(2) at low signal-to-noise ratio).
    Dividing by ``s_h * s_full / s_avg`` instead, with ``s_avg`` that of the
    halves' average (the ratio absorbs a full tomogram that is their sum), gives
    the training amplitude with less noise.

    Parameters
    ----------
    path : str
        Full tomogram ``[z, y, x]``.
    half_paths : list of str
        Its two half tomograms (same shape).
    bright : bool
        Bright density (read negated, as the prediction does).

    Returns
    -------
    mean, std : float
    """
    volume = read_volume(path, negate=bright)
    shape = volume.shape
    mean, own_std = slab_statistics(volume)
    del volume
    total, variances = None, []
    for half_path in half_paths:  # only central slabs are kept: one tomogram in memory at a time
        half = read_volume(half_path, negate=bright)
        if half.shape != shape:
            raise IsonetError(f"{half_path}: shape {half.shape} differs from {path} {shape} (z, y, x)")
        slab = np.array(central_slab(half), dtype=np.float64)
        del half
        variances.append(slab_statistics(slab, fraction=1.0)[1] ** 2)
        total = slab if total is None else total + slab
    average_std = slab_statistics(total / len(half_paths), fraction=1.0)[1]
    half_std = float(np.sqrt(np.mean(variances)))
    std = half_std * own_std / max(average_std, 1e-20)
    log.info("%s: slab std %.4g, at the halves' scale %.4g (x%.3f)", path, own_std, std, std / max(own_std, 1e-20))
    return mean, std


def correct_by_slab(path, function, cube_size=64, crop_size=96, batch_size=1, bright=False, statistics=None):
    """The network's output for tomogram ``path`` normalised by its central slab (module docstring).

    Parameters
    ----------
    path : str
        Tomogram ``[z, y, x]``.
    function : callable
        Network on batches of tiles (:meth:`isonet.network.runtime.Network.predict`).
    cube_size, crop_size, batch_size : int
        As :func:`isonet.predict.predict.correct_tomogram`.
    bright : bool
        The tomogram has bright density: read negated, result negated back (the input's sign).
    statistics : (float, float) or None
        Mean and standard deviation (:func:`half_scaled_statistics`); None: its slab's.

    Returns
    -------
    corrected : ndarray of float32, shape (nz, ny, nx)
        ``-f(-(v - m) / s)``: normalised units, dark density.
    header : isonet.io.mrc.VolumeHeader
        The tomogram's header.
    """
    volume, header = read_volume(path, return_header=True, negate=bright)
    mean, std = statistics if statistics is not None else slab_statistics(volume)
    volume -= np.float32(mean)
    volume *= np.float32(-1.0 / (std + 1e-20))  # in place: the raw copy is not kept
    log.info("Predicting %s (slab mean %.4g, std %.4g) with tiles of %d (core %d)", path, mean, std,
             crop_size, cube_size)
    n_tiles = int(np.prod(grid_shape(volume.shape, cube_size)))
    with progress(total=n_tiles, unit="tile", desc=file_root(path)) as bar:
        output = predict_tiled(volume, function, cube_size, crop_size, batch_size, progress=bar.update)
    del volume
    if not bright:
        output *= np.float32(-1.0)
    return output, header


#: Largest edge (voxels) of the central region of the halves predicted for the Wiener weights: enough
#: Fourier samples per shell, a small cost next to a whole tomogram.
AGREEMENT_EDGE = 256


def central_region(shape, edge=AGREEMENT_EDGE):
    """Slices of the central box of ``shape`` with edges ``min(n, edge)``."""
    return tuple(slice((n - min(n, edge)) // 2, (n - min(n, edge)) // 2 + min(n, edge)) for n in shape)


def half_agreement_weights(half_paths, tilt_range, function, cube_size=64, crop_size=96, batch_size=1,
                           bright=False, pixel_size=None):
    """Wiener weights per shell from the network's outputs for the two halves (module docstring).

    Each half is normalised by its own central slab, as in training, and its central region
    (:func:`central_region`) is predicted with the same tiles as the tomogram.

    Parameters
    ----------
    half_paths : list of str
        The two half tomograms ``[z, y, x]``.
    tilt_range : (float, float)
        Degrees: the measured region and the missing wedge are weighed apart
        (:func:`isonet.predict.shell_weights.class_shell_correlation`).
    function, cube_size, crop_size, batch_size, bright :
        As :func:`correct_by_slab`.
    pixel_size : float, optional
        Å per voxel, for the log only (None: unknown).

    Returns
    -------
    centres : ndarray, shape (n,)
        Shell radii, cycles per voxel.
    weights : ndarray, shape (N_CLASSES, n)
        Per class of Fourier samples and shell (:func:`isonet.predict.shell_weights.filter_by_shell`).
    """
    outputs = []
    for path in half_paths:
        volume = read_volume(path, negate=bright)
        mean, std = slab_statistics(volume)
        region = np.array(volume[central_region(volume.shape)], dtype=np.float32)
        del volume
        region -= np.float32(mean)
        region *= np.float32(-1.0 / (std + 1e-20))
        log.info("Predicting the central %s of %s for the Wiener weights", "x".join(map(str, region.shape)), path)
        outputs.append(predict_tiled(region, function, cube_size, crop_size, batch_size))
    centres, fsc = class_shell_correlation(*outputs, tilt_range)
    weights = wiener_weights(fsc)

    def half_point(label):  # the origin (centres[0]) is left out: its weight says nothing of resolution
        found, crossed = resolution_at(centres, weights[label], 0.5, pixel_size or 1.0, low_frequency=centres[1])
        return f"{found:.3g}" if crossed else "-"

    bounds = [0.0, *Y_ANGLES]
    angles = ", ".join(f"{low:g}-{high:g}°" for low, high in zip(bounds, bounds[1:]))
    n = len(Y_ANGLES)
    log.info("Wiener weights from the halves' outputs fall below 0.5 at %s %s in the measured region and %s in "
             "the missing wedge (%s from the Y axis)", " / ".join(half_point(i) for i in range(n)),
             "Å" if pixel_size else "voxels", " / ".join(half_point(n + i) for i in range(n)), angles)
    return centres, weights

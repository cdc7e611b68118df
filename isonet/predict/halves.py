"""Prediction with a network of the halves method (``refine --method isonet2``).

Such a network comes with ``model_iterNN.json`` (:mod:`isonet.io.model_info`).
By default the full tomogram is predicted: normalised as in training,
``-(x - mean) / std`` with its central slab's mean
(:func:`isonet.normalize.slab_statistics`) and, where the halves are listed,
a standard deviation at the halves' scale (:func:`half_scaled_statistics`:
the network was trained on half tomograms, whose noise variance is twice the
full one's), and the network's output negated back (dark density, normalised
units). On the quality benchmark this beat the full tomogram at its own scale
on all 18 runs and averaging the outputs for the two halves on all six
datasets and both held-out ones (docs/quality.md, fourth round), in half the
time of the latter. predict's ``--average_halves`` does that (IsoNet 2's and
DeepDeWedge's way): each half normalised by its own slab.

Memory with ``--average_halves``: the half being predicted, its output and
the running sum, three tomogram-sized float32 arrays (IsoNet 1's predict:
two); time: twice one tomogram's prediction.
"""

import logging
import os

import numpy as np

from isonet.errors import IsonetError
from isonet.io.mrc import read_volume
from isonet.io.paths import file_root, input_tomogram
from isonet.io.star import HALF_TOMOGRAM_LABELS, has_halves
from isonet.log import progress
from isonet.normalize import central_slab, slab_statistics
from isonet.predict.tiling import grid_shape, predict_tiled

log = logging.getLogger("isonet")


def half_sources(info, rows, star_file, use_deconv_tomo, option="--average_halves", required=True):
    """Row label -> the half tomograms (``--average_halves``, ``--half_scale``), for a halves-method network.

    ``{}`` (each tomogram predicted whole, with a warning) for another network or without halves.

    Parameters
    ----------
    info : dict or None
        The network's model JSON.
    rows : pandas.DataFrame
        Selected rows of tomograms.star.
    star_file : str
    use_deconv_tomo : bool
        Use ``rlnDeconvTomoHalf1/2`` where listed.
    option : str
        The option that needs them, for the warnings.
    required : bool
        A missing half file is an error; False: that tomogram is left out of the result, with a
        warning (the default ``--half_scale``, which predict can do without).
    """
    if info is None or info.get("method") != "isonet2":
        log.warning("%s applies to networks of refine's halves method (--method isonet2) only: ignored", option)
        return {}
    if not has_halves(rows):
        log.warning("%s lists no half tomograms (%s): %s ignored, the halves network is applied to the full "
                    "tomograms", star_file, "/".join(HALF_TOMOGRAM_LABELS), option)
        return {}
    sources = {}
    for label, row in rows.iterrows():
        paths = [input_tomogram(row, star_file, use_deconv_tomo, fallback=True, half=h) for h in (1, 2)]
        missing = [path for path in paths if not os.path.isfile(path)]
        if missing and required:
            raise IsonetError(f"{missing[0]}: half tomogram not found (rlnIndex {row['rlnIndex']} of {star_file})")
        if missing:
            log.warning("%s: half tomogram not found: %s ignored for rlnIndex %s", missing[0], option,
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


def correct_averaged(paths, function, cube_size=64, crop_size=96, batch_size=1, bright=False, statistics=None):
    """Average of the network's outputs over ``paths``, each normalised by its central slab (module doc).

    Parameters
    ----------
    paths : list of str
        Tomograms ``[z, y, x]`` of one shape (the two halves, or one tomogram).
    function : callable
        Network on batches of tiles (:func:`isonet.predict.predict.network_function`).
    cube_size, crop_size, batch_size : int
        As :func:`isonet.predict.predict.correct_tomogram`.
    bright : bool
        The tomograms have bright density: read negated, result negated back (the input's sign).
    statistics : (float, float) or None
        Mean and standard deviation for the one path (:func:`half_scaled_statistics`); None: its slab's.

    Returns
    -------
    corrected : ndarray of float32, shape (nz, ny, nx)
        ``-mean_i f(-(v_i - m_i) / s_i)``: normalised units, dark density.
    header : isonet.io.mrc.VolumeHeader
        The first tomogram's header.
    """
    total, header = None, None
    for path in paths:
        volume, this_header = read_volume(path, return_header=True, negate=bright)
        if total is not None and volume.shape != total.shape:
            raise IsonetError(f"{path}: shape {volume.shape} differs from {paths[0]} {total.shape} (z, y, x)")
        header = header or this_header
        mean, std = statistics if statistics is not None else slab_statistics(volume)
        volume -= np.float32(mean)
        volume *= np.float32(-1.0 / (std + 1e-20))  # in place: the raw copy is not kept
        log.info("Predicting %s (slab mean %.4g, std %.4g) with tiles of %d (core %d)", path, mean, std,
                 crop_size, cube_size)
        n_tiles = int(np.prod(grid_shape(volume.shape, cube_size)))
        with progress(total=n_tiles, unit="tile", desc=file_root(path)) as bar:
            output = predict_tiled(volume, function, cube_size, crop_size, batch_size, progress=bar.update)
        del volume
        if total is None:
            total = output
        else:
            total += output
            del output
    total *= np.float32((1.0 if bright else -1.0) / len(paths))
    return total, header

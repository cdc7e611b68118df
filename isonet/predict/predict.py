"""Whole-tomogram correction with a trained network (spec §1.7, §3.5).

For each selected tomogram (volumes indexed ``[z, y, x]``):

1. read it (the deconvolved version if listed and ``use_deconv_tomo``),
   multiply by -1 (dark protein becomes positive, as in refine; a
   bright-density tomogram, ``rlnBrightDensity`` 1, is taken as it is) and
   normalise over the whole tomogram (4/96 percentiles or mean/std);
2. predict it by overlapping tiles streamed in batches into a float32
   accumulator (:mod:`isonet.predict.tiling`);
3. normalise the result the same way and undo the sign change, so the output
   keeps the input's contrast convention (a network of ``refine --method
   halves``, with its model JSON, instead takes the tomogram normalised by
   its central slab and returns the network's output in those units, see
   :mod:`isonet.predict.halves`);
4. write ``<output_dir>/<root>_corrected.mrc`` (float32, the input's voxel size
   and origin), record it as ``rlnCorrectedTomoName`` in the STAR file
   (:func:`isonet.io.star.update_star_rows`, which keeps the rows that other
   commands, e.g. the other tasks of a job array, update meanwhile) and
   rewrite the RELION 5 tomograms.star of every corrected tomogram
   (:mod:`isonet.predict.relion5`).

Memory: the normalised input, the output accumulator, the network and two
batches of tiles (one being cut while the other is predicted); normalisation
works in place, and the input is freed before the output is normalised.
"""

import logging
import os
import time

import numpy as np

from isonet.commands import PREDICT, REFINE
from isonet.devices import import_tensorflow, select_strategy
from isonet.errors import IsonetError, UsageError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.paths import check_output_folder, check_outputs, file_root, input_tomogram
from isonet.io.star import bright_density, read_star, select_rows, set_column, tilt_range, update_star_rows
from isonet.log import progress
from isonet.io.model_info import read_model_info
from isonet.normalize import normalize_in_place, warn_if_flat
from isonet.predict.halves import correct_by_slab, half_agreement_weights, half_scaled_statistics, half_sources
from isonet.predict.shell_weights import filter_by_shell
from isonet.predict.relion5 import RELION5_STAR_NAME, relion5_rows, write_relion5_tomograms
from isonet.predict.tiling import check_tile_sizes, grid_shape, predict_tiled, round_up

log = logging.getLogger("isonet")

#: Columns predict reads from the tomogram STAR file.
PREDICT_REQUIRED = ("rlnIndex", "rlnMicrographName")
#: Default largest core and tile edges (voxels), from the predict spec: tiles of IsoNet 1's size (96, the same
#: GPU memory) with cores of up to 84 fitted to the tomogram, i.e. at least 6 voxels of context per side; 2.2x
#: fewer tiles than IsoNet 1's 64/96 for a 300x1000x1000 tomogram (docs/benchmarks.md).
DEFAULT_CUBE, DEFAULT_CROP = PREDICT["cube_size"].default, PREDICT["crop_size"].default
#: Tiles per batch and GPU when --batch_size is not given (IsoNet 1's default).
TILES_PER_GPU = 4
#: Tiles per batch on the CPU when --batch_size is not given: one tile per call is faster per
#: tile than four on the CPU (docs/benchmarks.md) and keeps the network's activations small.
TILES_ON_CPU = 1


def default_batch_size(n_gpus):
    """Tiles per network call: 4 per GPU, or 1 on the CPU (``n_gpus == 0``)."""
    return TILES_PER_GPU * n_gpus if n_gpus else TILES_ON_CPU


def correct_tomogram(path, function, cube_size=DEFAULT_CUBE, crop_size=DEFAULT_CROP, batch_size=1,
                     normalize_percentile=True, fit_cores=True, bright=False):
    """Read one tomogram and correct it (steps 1-3 of the module description).

    The input is freed before the output is normalised, so that at most two
    tomogram-sized float32 arrays exist at a time.

    Parameters
    ----------
    path : str
        MRC tomogram, indexed ``[z, y, x]``, dark protein on bright background.
    function : callable
        Network on batches of tiles ``(b, crop, crop, crop)`` -> same shape, e.g.
        :meth:`isonet.network.runtime.Network.predict`.
    cube_size, crop_size : int
        Largest kept core and network tile edges in voxels (``crop_size > cube_size``).
    batch_size : int
        Tiles per network call.
    normalize_percentile : bool
        4/96-percentile normalisation (True) or mean/std, before and after the network.
    fit_cores : bool
        Cores fitted to the tomogram (:func:`isonet.predict.tiling.fitted_cores`); False for
        IsoNet 1's grid of cores of exactly ``cube_size``.
    bright : bool
        The tomogram has bright density (``rlnBrightDensity``): it is read negated and the
        result negated back, so the output has the input's sign.

    Returns
    -------
    corrected : ndarray of float32, shape (nz, ny, nx)
        Corrected tomogram, normalised, in the input's contrast convention.
    header : isonet.io.mrc.VolumeHeader
        The input's header.
    """
    volume, header = read_volume(path, return_header=True, negate=bright)
    warn_if_flat(volume, path)
    log.info("Predicting %s (%s voxels) with tiles of %d (core %d), %d per batch",
             path, "x".join(map(str, volume.shape)), crop_size, cube_size, batch_size)
    volume *= -1
    normalize_in_place(volume, normalize_percentile)
    n_tiles = int(np.prod(grid_shape(volume.shape, cube_size)))
    with progress(total=n_tiles, unit="tile", desc=file_root(path)) as bar:
        corrected = predict_tiled(volume, function, cube_size, crop_size, batch_size, progress=bar.update,
                                  fit_cores=fit_cores)
    del volume
    normalize_in_place(corrected, normalize_percentile)
    if not bright:
        corrected *= -1
    return corrected, header


def _load_network(model_path, strategy, n_replicas, mixed_precision, crop_size):
    """Load the model on the strategy's devices; returns (Network, crop_size fitted to its depth)."""
    from isonet.network.runtime import Network, precision_policy
    tf = import_tensorflow()
    policy = precision_policy(mixed_precision, bool(tf.config.list_logical_devices("GPU")))
    if mixed_precision:
        log.info("Mixed precision: %s", policy)
    network = Network.load(model_path, strategy, n_replicas, policy)
    multiple = network.size_multiple
    if crop_size % multiple:
        fitted = round_up(crop_size, multiple)
        log.warning("--crop_size %d is not a multiple of %d (the network down-samples %d times): using %d",
                    crop_size, multiple, int(np.log2(multiple)), fitted)
        crop_size = fitted
    return network, crop_size


def _deconvolved(path, row, star_file, half=None):
    """Whether ``path`` is not the row's original (non-deconvolved) tomogram or half ``half``."""
    return os.path.abspath(path) != os.path.abspath(input_tomogram(row, star_file, False, half=half))


@PREDICT.implements
def predict_tomograms(star_file, model, output_dir, relion5_star, gpu_ids, cube_size, crop_size, use_deconv_tomo,
                      batch_size, normalize_percentile, tomo_idx, mixed_precision, snapshot):
    """Correct the tomograms of a STAR file with a trained network; update the STAR file.

    Every tomogram header, the model file and the RELION 5 files of an
    imported project are checked before anything is written; the files
    written are locked against a second isonet command. Defaults and ranges:
    :data:`isonet.commands.PREDICT`.

    Parameters
    ----------
    star_file : str
        Tomogram STAR file (needs rlnIndex and rlnMicrographName); rewritten in
        place with rlnCorrectedTomoName after every tomogram.
    model : str
        Network file (.h5 or .keras) written by refine or by IsoNet 1.
    output_dir : str
        Folder of the ``<root>_corrected.mrc`` files (created if needed).
    relion5_star : str or None
        RELION 5 tomograms.star rewritten after every tomogram with all corrected tomograms of the STAR file
        (:func:`isonet.predict.relion5.write_relion5_tomograms`); None: ``<output_dir>/tomograms_relion5.star``.
    gpu_ids : list of int or None
        GPUs to use (None: all present; []: CPU). Several GPUs share each batch.
    cube_size : int
        Largest edge of the core kept from each tile (voxels); cores are fitted to the tomogram.
    crop_size : int
        Edge of the tiles fed to the network (> cube_size); rounded up to a
        multiple of ``2**depth`` of the network, with a warning.
    use_deconv_tomo : bool
        Predict rlnDeconvTomoName where listed.
    batch_size : int or None
        Tiles per network call; None: :func:`default_batch_size` (4 per GPU, 1 on the CPU).
    normalize_percentile : bool
        Percentile (True) or mean/std normalisation; use refine's setting.
    tomo_idx : list of int or None
        rlnIndex values to predict (None: all).
    mixed_precision : bool
        Compute in float16 (GPU) or bfloat16 (CPU).
    snapshot : bool
        Also save ``<root>_snapshot.png`` (central slices of raw, corrected and their difference).

    Returns
    -------
    pandas.DataFrame
        The updated STAR table.
    """
    if crop_size <= cube_size:
        raise UsageError(f"--crop_size ({crop_size}) must be larger than --cube_size ({cube_size})")
    check_tile_sizes(cube_size, crop_size)
    table = read_star(star_file, required=PREDICT_REQUIRED)
    rows = select_rows(table, tomo_idx)
    sources, tilts, needed = {}, {}, 0
    for label, row in rows.iterrows():
        path = input_tomogram(row, star_file, use_deconv_tomo)
        if not os.path.isfile(path):
            raise IsonetError(f"{path}: tomogram not found (rlnIndex {row['rlnIndex']} of {star_file})")
        sources[label] = path
        try:  # checked before anything is written (the Wiener filter's wedge)
            tilts[label] = tilt_range(row)
        except IsonetError as exc:
            raise IsonetError(f"{star_file}: rlnTiltMin/rlnTiltMax of rlnIndex {row['rlnIndex']}: {exc}") from None
        needed += 4 * int(np.prod(read_header(path).shape))
    if not sources:
        raise IsonetError(f"{star_file}: no tomogram to predict")
    if not os.path.isfile(model):
        raise IsonetError(f"{model}: model file not found")
    check_outputs(output_dir, "--output_dir", star_file, "STAR file", needed)
    relion5_star = relion5_star or os.path.join(output_dir, RELION5_STAR_NAME)
    if os.path.isdir(relion5_star):
        raise IsonetError(f"--relion5_star {relion5_star}: is a folder, expected a file name")
    check_output_folder(os.path.dirname(relion5_star) or ".", "--relion5_star")
    relion_rows = relion5_rows(table, star_file)
    info = read_model_info(model)  # halves-method networks: slab normalisation
    if info is not None:
        info["method"] = REFINE["method"].canonical(info["method"], model)
    slab_normalised = info is not None and info["method"] == "halves"
    halves = half_sources(rows, star_file, use_deconv_tomo) if slab_normalised else {}

    strategy, n_replicas = select_strategy(gpu_ids)
    if batch_size is None:
        batch_size = default_batch_size(len(import_tensorflow().config.list_logical_devices("GPU")))
    network, crop_size = _load_network(model, strategy, n_replicas, mixed_precision, crop_size)
    outputs = {label: os.path.join(output_dir, f"{file_root(source)}_corrected.mrc") for label, source in
               sources.items()}
    # The files written are locked, not their folder: array jobs predict other tomograms into it at once.
    with output_lock(*outputs.values()):
        os.makedirs(output_dir, exist_ok=True)
        os.makedirs(os.path.dirname(relion5_star) or ".", exist_ok=True)
        for label, source in sources.items():
            root, output = file_root(source), outputs[label]
            start = time.perf_counter()
            bright = bright_density(rows.loc[label])
            if slab_normalised:
                statistics = None
                if label in halves:
                    if _deconvolved(source, rows.loc[label], star_file) == _deconvolved(
                            halves[label][0], rows.loc[label], star_file, half=1):
                        statistics = half_scaled_statistics(source, halves[label], bright)
                    else:
                        log.warning("%s: the full tomogram and its halves differ in deconvolution: "
                                    "normalised by its own slab", source)
                corrected, header = correct_by_slab(source, network.predict, cube_size, crop_size, batch_size,
                                                    bright=bright, statistics=statistics)
                if statistics is not None:  # halves as the tomogram: their outputs' agreement weighs the shells
                    weights = half_agreement_weights(halves[label], tilts[label], network.predict, cube_size,
                                                     crop_size, batch_size, bright, float(header.voxel_size[0]) or None)
                    corrected = filter_by_shell(corrected, *weights, tilts[label])
            else:
                corrected, header = correct_tomogram(source, network.predict, cube_size, crop_size, batch_size,
                                                     normalize_percentile, bright=bright)
            seconds = time.perf_counter() - start
            write_volume(output, corrected, like=header)
            log.info("Wrote %s (%.1f s, %.3g voxels/s)", output, seconds, corrected.size / max(seconds, 1e-9))
            if snapshot:
                from isonet.evaluation.pictures import save_snapshot
                picture = os.path.join(output_dir, f"{root}_snapshot.png")
                save_snapshot([read_volume(source), corrected], picture, labels=[f"{root} (raw)", "corrected"],
                              difference=True)
                log.info("Wrote %s", picture)
            del corrected
            set_column(table, "rlnCorrectedTomoName", output, rows=[label])
            update_star_rows(star_file, table, [label], while_locked=lambda current: write_relion5_tomograms(
                current, relion_rows, relion5_star))
            log.info("Wrote %s", relion5_star)
    return table

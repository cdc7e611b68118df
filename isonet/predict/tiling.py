"""Overlap tiling of a whole tomogram for a cube-to-cube network (pure numpy).

Volumes are indexed ``[z, y, x]``. A volume of any shape is covered by a grid of
cores, ``core[a]`` voxels apart along axis ``a`` (the last core may stick out of
the volume). Each core is fed to the network with context around it: the
network sees a tile of edge ``crop`` starting ``(crop - core[a]) // 2`` voxels
before the core, read with mirror (symmetric) padding where it leaves the
volume, so that no copy of the padded volume is ever made.

``cube`` (``--cube_size``) is the largest core. By default the cores are
*fitted* to the volume (:func:`fitted_cores`): along an axis of ``n`` voxels
the ``ceil(n / cube)`` cores needed anyway share ``n`` evenly, so the last core
does not waste its tile on mirrored voxels and every core gets as much
context as the tile allows (e.g. 1000 voxels with cube 84: 12 cores of 84;
300 voxels: 4 cores of 75, 10 voxels of context on each side in a tile of 96).

From each output tile the core grown by ``margin`` voxels on every side is kept
and weighted by a separable linear ramp over the ``2 * margin`` voxels where
neighbouring kept blocks overlap; the ramps of two neighbours sum to one, and
faces on the volume border are not ramped. The weighted blocks are summed into
a float32 accumulator of the volume's shape and finally divided by the
(separable, one-dimensional) sum of the weights, so an identity network gives
back the input to float32 rounding for any ``crop > cube`` and any shape.

IsoNet 1 uses a fixed margin of 9, which leaves 7 voxels of context beyond the
kept block with its defaults (64/96) and assembles wrong volumes when
``crop - cube < 18``. Here the margin adapts (:func:`blend_margin`): 9 with
IsoNet 1's sizes, and for tighter tiles the context ``(crop - core) // 2`` is
shared between blending and context, so that the kept block never touches
the tile edge where the network sees its own zero padding.
"""

import itertools
import math

import numpy as np

from isonet.errors import IsonetError
from isonet.prefetch import read_ahead

#: Largest blending margin (voxels); IsoNet 1's fixed ``edge``.
MAX_MARGIN = 9


#: Context (voxels) left between the kept block and the tile edge when there is room (IsoNet 1's 16 - 9).
MIN_CONTEXT = 7


def blend_margin(cube, crop):
    """Voxels each kept block extends beyond its core.

    With ``context = (crop - cube) // 2``: ``min(9, max(context - 7, context // 2))``,
    and at most ``cube // 2``. Gives IsoNet 1's 9 for 64/96 (7 voxels of context
    left), and for small differences splits the context in halves, e.g. 4 for
    48/64 and 2 for 16/24.
    """
    context = (crop - cube) // 2
    return max(0, min(MAX_MARGIN, max(context - MIN_CONTEXT, context // 2), cube // 2))


def per_axis(cube):
    """``cube`` as a 3-tuple of ints (an int means the same core along every axis)."""
    if isinstance(cube, (tuple, list, np.ndarray)):
        return tuple(int(c) for c in cube)
    return (int(cube),) * 3


def fitted_cores(shape, cube):
    """Per-axis cores no larger than ``cube`` that share each axis evenly.

    Along an axis of ``n`` voxels: ``k = ceil(n / cube)`` cores (as many as
    cores of ``cube`` would need) of ``ceil(n / k)`` voxels each.

    >>> fitted_cores((300, 1000, 64), 84)
    (75, 84, 64)
    """
    return tuple(math.ceil(n / math.ceil(n / c)) for n, c in zip(shape, per_axis(cube)))


def check_tile_sizes(cube, crop):
    """Raise :class:`IsonetError` unless ``1 <= cube < crop``."""
    if not (isinstance(cube, (int, np.integer)) and isinstance(crop, (int, np.integer))):
        raise IsonetError(f"cube_size and crop_size must be integers, got {cube!r} and {crop!r}")
    if cube < 1 or crop <= cube:
        raise IsonetError(f"crop_size ({crop}) must be larger than cube_size ({cube}) (and cube_size >= 1)")


def round_up(value, multiple):
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // int(multiple)) * int(multiple)


def grid_shape(shape, cube):
    """Number of cores along each axis: ``ceil(n / cube)`` (``cube``: int or per-axis cores)."""
    return tuple(math.ceil(n / c) for n, c in zip(shape, per_axis(cube)))


def tile_positions(shape, cube):
    """Grid indices ``(iz, iy, ix)`` of every tile, Z-major (z slowest, x fastest); ``cube`` as :func:`grid_shape`."""
    return list(itertools.product(*(range(t) for t in grid_shape(shape, cube))))


def mirror_indices(start, length, n):
    """Indices ``start .. start+length-1`` folded into ``[0, n)`` by symmetric mirroring.

    Mirroring repeats the edge voxel (``-1 -> 0``, ``n -> n-1``), like
    ``numpy.pad(mode='symmetric')``, and works for any ``length`` and ``n >= 1``.
    Returns a slice when no folding is needed.
    """
    if start >= 0 and start + length <= n:
        return slice(start, start + length)
    index = np.arange(start, start + length) % (2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


def extract_tile(volume, position, cube, crop):
    """The network input tile of edge ``crop`` around core ``position``.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
    position : tuple of 3 int
        Grid index ``(iz, iy, ix)`` of the core.
    cube : int or tuple of 3 int
        Core edge(s) in voxels.
    crop : int
        Tile edge in voxels.

    Returns
    -------
    ndarray, shape (crop, crop, crop), dtype of ``volume``
    """
    box, folds = [], []
    for i, n, core in zip(position, volume.shape, per_axis(cube)):
        index = mirror_indices(i * core - (crop - core) // 2, crop, n)
        if isinstance(index, slice):
            box.append(index)
            folds.append(slice(None))
        else:  # cut the bounding box first so that fancy indexing copies only tile-sized data
            low = int(index.min())
            box.append(slice(low, int(index.max()) + 1))
            folds.append(index - low)
    tile = volume[tuple(box)]
    for axis, fold in enumerate(folds):
        if not isinstance(fold, slice):
            tile = tile[(slice(None),) * axis + (fold,)]
    return tile


def axis_weights(i, n_tiles, cube, margin):
    """One-dimensional blending weights of the kept block of core ``i`` along one axis (core edge ``cube``).

    The kept block spans ``[i*cube - margin, (i+1)*cube + margin)``. The weight
    rises as ``(k + 0.5) / (2 margin)`` over its first ``2 margin`` voxels and
    falls symmetrically over its last ``2 margin``; the first (last) block of an
    axis is not ramped on its outer face.

    Returns
    -------
    ndarray of float32, shape (cube + 2 * margin,)
    """
    weights = np.ones(cube + 2 * margin, dtype=np.float32)
    if margin:
        ramp = (np.arange(2 * margin) + 0.5) / (2 * margin)
        if i > 0:
            weights[:2 * margin] = ramp
        if i < n_tiles - 1:
            weights[-2 * margin:] = ramp[::-1]
    return weights


def _kept_span(i, n, cube, margin):
    """Start of the kept block of core ``i`` and its part ``[low, high)`` inside ``[0, n)``."""
    first = i * cube - margin
    return first, max(first, 0), min(first + cube + 2 * margin, n)


def _margins(cube, crop, margin):
    """Per-axis blending margins: ``margin`` if given, else :func:`blend_margin` of each core."""
    cores = per_axis(cube)
    return cores, tuple(blend_margin(c, crop) if margin is None else int(margin) for c in cores)


def add_tile(accumulator, tile, position, cube, crop, margin=None):
    """Add the weighted kept block of one output tile into ``accumulator`` (in place).

    Parameters
    ----------
    accumulator : ndarray of float32, shape (nz, ny, nx)
        Sum of weighted blocks, the shape of the volume being predicted.
    tile : ndarray, shape (crop, crop, crop)
        Network output for the tile :func:`extract_tile` gave for ``position``.
    position : tuple of 3 int
    cube : int or tuple of 3 int
        Core edge(s).
    crop : int
    margin : int, optional
        Blending margin; :func:`blend_margin` of each axis's core by default.
    """
    cores, margins = _margins(cube, crop, margin)
    grid = grid_shape(accumulator.shape, cores)
    target, source, weights = [], [], []
    for i, n, n_tiles, core, edge in zip(position, accumulator.shape, grid, cores, margins):
        offset = (crop - core) // 2 - edge  # first kept voxel of the tile
        first, low, high = _kept_span(i, n, core, edge)
        target.append(slice(low, high))
        source.append(slice(offset + low - first, offset + high - first))
        weights.append(axis_weights(i, n_tiles, core, edge)[low - first:high - first])
    block = tile[tuple(source)] * weights[0][:, None, None]
    block *= weights[1][None, :, None]
    block *= weights[2][None, None, :]
    accumulator[tuple(target)] += block


def weight_sums(shape, cube, crop, margin=None):
    """Per-axis sums of the blending weights over all tiles (float64, each of length ``n``)."""
    cores, margins = _margins(cube, crop, margin)
    sums = []
    for n, n_tiles, core, edge in zip(shape, grid_shape(shape, cores), cores, margins):
        total = np.zeros(n)
        for i in range(n_tiles):
            first, low, high = _kept_span(i, n, core, edge)
            total[low:high] += axis_weights(i, n_tiles, core, edge)[low - first:high - first]
        sums.append(total)
    return sums


def finish(accumulator, cube, crop, margin=None):
    """Divide the accumulated blocks by the sum of weights, in place; returns ``accumulator``."""
    sum_z, sum_y, sum_x = weight_sums(accumulator.shape, cube, crop, margin)
    accumulator /= sum_z.astype(np.float32)[:, None, None]
    accumulator /= sum_y.astype(np.float32)[None, :, None]
    accumulator /= sum_x.astype(np.float32)[None, None, :]
    return accumulator


def tile_batches(volume, cube, crop, batch_size):
    """Yield ``(positions, tiles)`` batches; ``tiles`` has shape ``(len(positions), crop, crop, crop)``.

    Tiles are cut batch by batch, never all at once.
    """
    positions = tile_positions(volume.shape, cube)
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        tiles = np.empty((len(chunk), crop, crop, crop), dtype=np.float32)
        for k, position in enumerate(chunk):
            tiles[k] = extract_tile(volume, position, cube, crop)
        yield chunk, tiles


def predict_tiled(volume, function, cube, crop, batch_size=4, progress=None, fit_cores=True):
    """Apply a cube-to-cube ``function`` to a whole volume by overlapping tiles.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Any shape; read only.
    function : callable
        Maps a float32 batch ``(b, crop, crop, crop)`` to an array of the same shape.
    cube : int
        Largest core edge; cores tile the volume at (about) this stride.
    crop : int
        Tile edge fed to ``function`` (> ``cube``).
    batch_size : int
        Tiles per call of ``function``.
    progress : callable, optional
        Called with the number of tiles done after each batch (e.g. ``tqdm.update``).
    fit_cores : bool
        Share each axis evenly between its cores (:func:`fitted_cores`); False
        keeps cores of exactly ``cube`` (IsoNet 1's grid).

    Returns
    -------
    ndarray of float32, shape (nz, ny, nx)
        Blended result; equals ``volume`` (to float32 rounding) if ``function`` is the identity.

    Notes
    -----
    Memory: the result accumulator (one float32 volume) plus two batches of
    tiles (the next batch is cut while ``function`` runs).
    """
    check_tile_sizes(cube, crop)
    if batch_size < 1:
        raise IsonetError(f"batch_size must be >= 1, got {batch_size}")
    cores = fitted_cores(volume.shape, cube) if fit_cores else per_axis(cube)
    accumulator = np.zeros(volume.shape, dtype=np.float32)
    for positions, tiles in read_ahead(tile_batches(volume, cores, crop, batch_size)):
        outputs = np.asarray(function(tiles))
        if outputs.shape != tiles.shape:
            raise IsonetError(f"the network returned tiles of shape {outputs.shape}, expected {tiles.shape}")
        for position, tile in zip(positions, outputs):
            add_tile(accumulator, tile, position, cores, crop)
        if progress is not None:
            progress(len(positions))
    return finish(accumulator, cores, crop)

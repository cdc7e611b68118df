"""Training pairs of the halves method (``--method halves``): Noise2Noise across even/odd halves plus the wedge task.

For subtomogram ``s``, orientation ``r`` (Noise2Noise after Lehtinen et al.
2018, with the missing-wedge task of DeepDeWedge, Wiedemann & Heckel 2024,
and IsoNet 2):

1. both half subtomograms are normalised with their source tomogram's
   central-slab statistics (``rlnNormMeanHalfN``/``rlnNormStdHalfN``, see
   :func:`isonet.normalize.slab_statistics`), density positive;
2. each half's own missing wedge is filled with the previous iteration's
   prediction of that half, as IsoNet 1 merges (none at iteration 1);
3. a coin seeded by ``(seed, iteration, s, r)`` picks the input half ``a``;
   the other half ``b`` is the target;
4. both are rotated by ``r``; the input gets the lab-frame wedge at crop size
   (an extra missing wedge), both are cut to the central cube;
5. the target is ``b`` where the input is measured and the mean of both
   halves in the input's extra wedge: the input holds nothing of ``a``
   there, so ``a``'s noise in those frequencies is independent of the input
   (up to the spectral leakage of the crop and what the previous iteration's
   fill carries of it), and the target has twice the signal-to-noise ratio
   of ``b`` alone (DeepDeWedge and IsoNet 2 use ``b``; docs/halves.md);
6. the loss (:mod:`isonet.refine.losses`) compares the spectra with weight 1
   where input and target are measured, ``mw_weight`` where only the target
   is, 0 where the target is not (its rotated wedge).

With ``full_input_fraction`` > 0 that share of the pairs (a seeded coin per
pair) takes the mean of both halves as input: the wedge task at the full
tomogram's noise level, which predict sees. Their target is that mean in the
input's extra wedge and, where the input is measured, the mean of the
previous iteration's predictions of both halves (the denoising learnt so far;
no loss there at iteration 1). Refine makes them in the first
:data:`FULL_INPUT_ITERATIONS` iterations and passes 0 afterwards, which
relearns the denoising they cost.

No noise is added to the inputs: the other half's independent noise does the
denoising. In refine the network is applied to each half separately (the
fills of step 2); predict applies it to the full tomogram
(:mod:`isonet.predict.halves`).
"""

import os
import threading
import time

import numpy as np

from isonet.errors import IsonetError
from isonet.io.mrc import read_volume, write_volume
from isonet.io.paths import file_root
from isonet.io.star import HALF_SUBTOMO_LABELS, NORM_LABELS, has_halves, read_star, resolve_path
from isonet.log import progress
from isonet.normalize import apply_statistics
from isonet.refine.fourier_weights import pair_weights
from isonet.refine.losses import stack_targets
from isonet.refine.pairs import N_ROTATIONS, centre_crop
from isonet.refine.rotations import rotate_all
from isonet.refine.wedge_ops import apply_wedge, merge, wedge_masks

_SALT_SWAP = 21
_SALT_FULL = 23
#: Iterations (from the first) whose pairs include full-input ones: with the first alone, 2 of 3 seeds of a
#: noisy cell tomogram ended with a worse Z resolution; later ones cost denoising (docs/quality.md).
FULL_INPUT_ITERATIONS = 2


def subtomo_star_has_halves(star_file):
    """True if ``star_file`` lists half subtomograms and their normalisation for every row."""
    table = read_star(star_file)
    return has_halves(table, HALF_SUBTOMO_LABELS) and all(label in table.columns for pair in NORM_LABELS[1:]
                                                           for label in pair)


class HalfSubtomograms:
    """Half subtomogram files and their normalisation (mean, std) from subtomo.star, in row order."""

    def __init__(self, star_file):
        table = read_star(star_file)
        if not subtomo_star_has_halves(star_file):
            raise IsonetError(f"{star_file}: --method halves needs half subtomograms "
                              f"({', '.join(HALF_SUBTOMO_LABELS)} and {NORM_LABELS[1][0]}...): extract from a "
                              "tomograms.star that lists rlnTomoReconstructedTomogramHalf1/2")
        self.paths = [[resolve_path(p, star_file) for p in table[label]] for label in HALF_SUBTOMO_LABELS]
        self.statistics = [[(float(m), float(s)) for m, s in zip(table[mean], table[std])]
                           for mean, std in NORM_LABELS[1:]]
        bad = [i + 1 for half in self.statistics for i, (_, s) in enumerate(half) if not s > 0]
        if bad:
            raise IsonetError(f"{star_file}: rlnNormStdHalf1/2 must be > 0 (row {bad[0]})")

    def normalised(self, half, index):
        """Half ``half`` (0 or 1) of subtomogram ``index``, normalised, density positive, float32."""
        mean, std = self.statistics[half][index]
        return apply_statistics(read_volume(self.paths[half][index]), mean, std)


def half_prediction_path(result_dir, subtomos, half, index, iteration):
    """``<result_dir>/<half file root>_iterNN.mrc``: the network's output for one half subtomogram."""
    return os.path.join(result_dir, f"{file_root(subtomos.paths[half][index])}_iter{iteration:02d}.mrc")


def predict_halves(predict, subtomos, used, result_dir, iteration, batch_size):
    """Predict both halves of the subtomograms ``used`` and write them (negated: dark density, as inputs).

    Parameters
    ----------
    predict : callable
        ``f(batch (B, n, n, n)) -> (B, n, n, n)``, the network on normalised cubes.
    subtomos : HalfSubtomograms
    used : sequence of int
        Rows predicted.
    result_dir : str
    iteration : int
        Number of the network (``_iterNN`` of the outputs).
    batch_size : int
        Volumes per network call.
    """
    jobs = [(half, int(i)) for i in used for half in (0, 1)]
    bar = progress(total=len(jobs), desc=f"predicting halves iter{iteration:02d}", unit="half")
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        output = predict(np.stack([subtomos.normalised(half, i) for half, i in chunk]))
        for (half, i), volume in zip(chunk, output):
            write_volume(half_prediction_path(result_dir, subtomos, half, i, iteration), -volume,
                         like=subtomos.paths[half][i])
        bar.update(len(chunk))
    bar.close()


def previous_paths(subtomos, used, result_dir, iteration):
    """The prediction files of iteration ``iteration`` of both halves of ``used`` (flat list)."""
    return [half_prediction_path(result_dir, subtomos, half, int(i), iteration) for i in used for half in (0, 1)]


class HalfPairMaker:
    """Makes the training pairs of one iteration of the halves method (module docstring).

    Same interface as :class:`isonet.refine.pairs.PairMaker` (``pairs``,
    ``len``, ``cube_size``, ``seed``, ``iteration``, ``noise_level``,
    ``busy_seconds``); the targets are ``y_true`` stacks of
    :func:`isonet.refine.losses.stack_targets`.

    Parameters
    ----------
    subtomos : HalfSubtomograms
    used : sequence of int
        Rows of subtomo.star used this iteration (pair ``k = 20 s + r`` for position ``s``).
    tilt_ranges : list of (float, float)
        Tilt range of each used subtomogram.
    cube_size : int
    previous_dir : str or None
        Folder of the previous iteration's half predictions (None: iteration 1, no fill).
    previous_iteration : int
    mw_weight : float
        Loss weight of the frequencies missing from the input and measured in the target.
    seed, iteration : int
    full_input_fraction : float
        Share of the pairs (a coin per pair) whose input is the mean of both halves (module docstring).
    """

    #: No noise is added: the other half's independent noise does the denoising.
    noise_level = 0.0
    #: Targets are stacked with their loss weights (:func:`isonet.refine.losses.stack_targets`).
    target_channels = 2

    def __init__(self, subtomos, used, tilt_ranges, cube_size, previous_dir=None, previous_iteration=0,
                 mw_weight=16.0, seed=0, iteration=1, full_input_fraction=0.0):
        self.subtomos = subtomos
        self.used = [int(i) for i in used]
        self.tilt_ranges = [tuple(map(float, r)) for r in tilt_ranges]
        self.cube_size = int(cube_size)
        self.previous_dir = previous_dir
        self.previous_iteration = int(previous_iteration)
        self.mw_weight = float(mw_weight)
        self.seed = int(seed)
        self.iteration = int(iteration)
        self.full_input_fraction = float(full_input_fraction)
        self.busy_seconds = 0.0
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.used)

    def previous(self, index, half):
        """The previous iteration's prediction of half ``half`` of used subtomogram ``index`` (None at iteration 1)."""
        if self.previous_dir is None:
            return None
        return -read_volume(half_prediction_path(self.previous_dir, self.subtomos, half, self.used[index],
                                                 self.previous_iteration))

    def merged(self, index, half, previous=None):
        """Normalised half ``half`` of used subtomogram ``index``, its wedge filled by ``previous`` (if given)."""
        row = self.used[index]
        volume = self.subtomos.normalised(half, row)
        if len(set(volume.shape)) != 1:
            raise IsonetError(f"{self.subtomos.paths[half][row]}: expected a cubic subtomogram, got {volume.shape}")
        if previous is None:
            return volume
        return merge(volume, previous, wedge_masks(volume.shape, [self.tilt_ranges[index]])[0])

    def pairs(self, index, rotations=None):
        """Inputs and ``y_true`` stacks of used subtomogram ``index`` for orientations ``rotations`` (0-19).

        Returns
        -------
        x : ndarray of float32, shape (len(rotations), cube, cube, cube)
        y : ndarray of float32, shape (len(rotations), cube, cube, cube, 2)
        """
        started = time.perf_counter()
        rotations = list(range(N_ROTATIONS) if rotations is None else rotations)
        previous = [self.previous(index, half) for half in (0, 1)]
        halves = [self.merged(index, half, previous[half]) for half in (0, 1)]
        denoised = None if previous[0] is None else 0.5 * (previous[0] + previous[1])
        tilts = self.tilt_ranges[index]
        lab_mask = wedge_masks(halves[0].shape, [tilts])[0]
        mean = 0.5 * (halves[0] + halves[1])
        inputs, targets, weights = [], [], []
        for r in rotations:
            full = np.random.default_rng([self.seed, self.iteration, _SALT_FULL, index, r]).random() \
                < self.full_input_fraction
            swap = np.random.default_rng([self.seed, self.iteration, _SALT_SWAP, index, r]).random() < 0.5
            weights.append(pair_weights(self.cube_size, tilts, self.mw_weight, r,
                                        measured_weight=0.0 if full and denoised is None else 1.0))
            if full:  # the mean is input and target in the extra wedge; the measured region: see the docstring
                source = target = rotate_all(mean, [r])[0]
                if denoised is not None:
                    target = merge(rotate_all(denoised, [r])[0], source, lab_mask)
            else:
                source, target = rotate_all(halves[1] if swap else halves[0], [r])[0], \
                    rotate_all(halves[0] if swap else halves[1], [r])[0]
                target = merge(target, 0.5 * (source + target), lab_mask)
            inputs.append(apply_wedge(source, lab_mask))
            targets.append(target)
        x = np.ascontiguousarray(centre_crop(np.stack(inputs), self.cube_size))
        y = stack_targets(centre_crop(np.stack(targets), self.cube_size), np.stack(weights))
        with self._lock:
            self.busy_seconds += time.perf_counter() - started
        return x, y

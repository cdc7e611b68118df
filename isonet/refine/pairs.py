"""Training pairs of one refine iteration, made in memory and streamed (spec §3.4.4).

For subtomogram ``s`` and orientation ``r`` the pair is made as IsoNet 1 does:
merge the measured region of the original with the rest of the previous
prediction, normalise, rotate, impose the wedge at crop size (in the lab
frame, with the subtomogram's own tilt range), crop both to the central cube
and add the scheduled noise to the input only. Pair ``k = 20 s + r``.

Instead of writing 20 N pairs to disk, a :class:`PairStream` makes them in a
thread pool (numpy/scipy FFTs release the GIL) a few subtomograms ahead of
training and feeds them to ``tf.data`` (shuffle buffer, batch, prefetch).
Memory: about ``2 x cube^3 x 4`` bytes per buffered pair (2 MiB at cube 64),
:data:`SHUFFLE_SUBTOMOS` x 20 pairs in the shuffle buffer plus the validation
pairs (10 %), instead of ``20 N`` pairs (12.6 GB for 300 subtomograms at cube
64). Every random choice is seeded from ``(seed, iteration, ...)``, so a pair
is the same whenever it is made, and a resumed run sees the same data.
"""

import collections
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from isonet.devices import available_cpus
from isonet.errors import IsonetError
from isonet.io.mrc import read_volume, write_volume
from isonet.normalize import normalize
from isonet.refine.noise import add_noise
from isonet.refine.rotations import ROTATIONS, rotate_all
from isonet.refine.wedge_ops import apply_wedge, merge, wedge_masks

log = logging.getLogger("isonet")

N_ROTATIONS = len(ROTATIONS)
#: Subtomograms' worth of pairs held in the shuffle buffer (more mixing, more memory).
SHUFFLE_SUBTOMOS = 16
#: Fraction of pairs held out for validation (IsoNet 1: 10 %).
VALIDATION_FRACTION = 0.1

# Salts that keep the random streams of one (seed, iteration) independent.
_SALT_SPLIT, _SALT_PASS, _SALT_NOISE, _SALT_SHUFFLE = 1, 2, 3, 4


def centre_crop(batch, cube):
    """Central ``cube^3`` of each volume of ``batch`` (start ``crop // 2 - cube // 2``, as IsoNet 1)."""
    crop = batch.shape[-1]
    start = crop // 2 - cube // 2
    window = slice(start, start + cube)
    return batch[..., window, window, window]


def validation_split(n_subtomos, n_replicas, rng):
    """Pair indices held out for validation (spec §3.4.4).

    ``n_test = int(0.1 x 20 N)``, rounded down to a multiple of ``n_replicas``
    and then increased by ``n_replicas`` (so at least one batch share per device).

    Returns
    -------
    ndarray of int, sorted
    """
    n_pairs = N_ROTATIONS * n_subtomos
    n_test = int(VALIDATION_FRACTION * n_pairs)
    n_test = min(n_pairs - 1, n_test - n_test % n_replicas + n_replicas)
    return np.sort(rng.choice(n_pairs, size=n_test, replace=False))


class PairMaker:
    """Makes the training pairs of one iteration.

    Parameters
    ----------
    originals : list of str
        Subtomogram files (crop^3, ``[z, y, x]``), as in subtomo.star.
    previous : list of str
        The previous iteration's predictions ``<root>_iter{it-1}.mrc``, same order.
    tilt_ranges : list of (float, float)
        Tilt range (degrees) of each subtomogram.
    cube_size : int
        Edge of the training cubes.
    noise_level : float
        Standard deviation of the noise added to the inputs (0: none).
    noise_banks : dict, optional
        Tilt range -> :class:`~isonet.refine.noise.NoiseBank`; needed if ``noise_level > 0``.
    percentile : bool
        4/96 percentile normalisation (else mean/std).
    seed, iteration : int
        Random streams are derived from ``(seed, iteration, subtomogram, orientation)``.
    """

    #: The targets are plain cubes (the mean absolute error needs no weights).
    target_channels = None

    def __init__(self, originals, previous, tilt_ranges, cube_size, noise_level=0.0, noise_banks=None,
                 percentile=True, seed=0, iteration=1):
        self.originals = list(originals)
        self.previous = list(previous)
        self.tilt_ranges = [tuple(map(float, r)) for r in tilt_ranges]
        self.cube_size = int(cube_size)
        self.noise_level = float(noise_level)
        self.noise_banks = noise_banks or {}
        self.percentile = percentile
        self.seed = int(seed)
        self.iteration = int(iteration)
        self.busy_seconds = 0.0
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.originals)

    def merged(self, index):
        """Normalised merge of original and previous prediction (density positive), crop^3."""
        original = normalize(-read_volume(self.originals[index]), self.percentile)
        previous = normalize(-read_volume(self.previous[index]), self.percentile)
        if original.shape != previous.shape or len(set(original.shape)) != 1:
            raise ValueError(f"{self.originals[index]}: expected cubic subtomograms of equal shape, got "
                             f"{original.shape} and {previous.shape} ({self.previous[index]})")
        mask = wedge_masks(original.shape, [self.tilt_ranges[index]])[0]
        return normalize(merge(original, previous, mask), self.percentile)

    def pairs(self, index, rotations=None):
        """Input and target cubes of subtomogram ``index`` for some orientations.

        Parameters
        ----------
        index : int
            Subtomogram number (position in the lists).
        rotations : sequence of int, optional
            Orientation numbers 0-19 (all by default).

        Returns
        -------
        x, y : ndarray of float32, shape (len(rotations), cube, cube, cube)
            ``x`` = central cube of the wedge-filtered rotated merge, plus noise;
            ``y`` = central cube of the rotated merge.
        """
        started = time.perf_counter()
        rotations = list(range(N_ROTATIONS) if rotations is None else rotations)
        rotated = rotate_all(self.merged(index), rotations)
        mask = wedge_masks(rotated.shape[1:], [self.tilt_ranges[index]])[0]
        x = np.ascontiguousarray(centre_crop(apply_wedge(rotated, mask), self.cube_size))
        y = np.ascontiguousarray(centre_crop(rotated, self.cube_size))
        if self.noise_level > 1e-7:
            bank = self.noise_banks[self.tilt_ranges[index]]
            for i, r in enumerate(rotations):
                rng = np.random.default_rng([self.seed, self.iteration, _SALT_NOISE, index, r])
                add_noise(x[i:i + 1], self.noise_level, [bank.cube(int(rng.integers(bank.count)))], rng)
        with self._lock:
            self.busy_seconds += time.perf_counter() - started
        return x, y


def calibration_batches(maker, batch_size, n_subtomograms=16, rotations=(0, 5, 10, 15)):
    """Training inputs for :meth:`isonet.network.runtime.BatchStatistics.refresh`, batch by batch.

    The same every time: ``rotations`` of up to ``n_subtomograms`` subtomograms
    spread evenly over the maker's list.

    Parameters
    ----------
    maker : PairMaker or a maker with the same ``pairs`` and ``len``
    batch_size : int
    n_subtomograms : int
    rotations : sequence of int
        Orientations 0-19.

    Yields
    ------
    ndarray of float32, shape (batch_size or fewer, cube, cube, cube)
    """
    count = min(len(maker), n_subtomograms)
    inputs = [x for index in np.linspace(0, len(maker) - 1, count).round().astype(int)
              for x in maker.pairs(int(index), list(rotations))[0]]
    for start in range(0, len(inputs), batch_size):
        yield np.stack(inputs[start:start + batch_size])


def _ordered_parallel(function, items, pool, lookahead):
    """``map(function, items)`` on ``pool`` with at most ``lookahead`` results pending, in order."""
    pending = collections.deque()
    items = iter(items)
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= lookahead:
            break
    while pending:
        result = pending.popleft().result()
        for item in items:
            pending.append(pool.submit(function, item))
            break
        yield result


class PairStream:
    """The pairs of one iteration as ``tf.data`` datasets (training stream and validation set).

    Parameters
    ----------
    maker : PairMaker
    n_replicas : int
        Devices (the validation split keeps a share per device).
    batch_size : int
        Global batch size.
    workers : int
        Threads making pairs (``--preprocessing_ncpus``, at most the CPU count).
    share : (int, int)
        ``(index, count)``: this refine worker streams every ``count``-th training subtomogram and validation
        pair from ``index`` on (several machines, :mod:`isonet.refine.workers`); ``(0, 1)``: all of them.
    """

    def __init__(self, maker, n_replicas, batch_size, workers, share=(0, 1)):
        self.maker = maker
        self.batch_size = int(batch_size)
        self.workers = max(1, min(int(workers), available_cpus()))
        seed, iteration = maker.seed, maker.iteration
        test = validation_split(len(maker), n_replicas, np.random.default_rng([seed, iteration, _SALT_SPLIT]))
        self.train_rotations, self.test_rotations = {}, {}
        is_test = np.zeros(N_ROTATIONS * len(maker), dtype=bool)
        is_test[test] = True
        for s in range(len(maker)):
            flags = is_test[N_ROTATIONS * s: N_ROTATIONS * (s + 1)]
            if (~flags).any():
                self.train_rotations[s] = [int(r) for r in np.flatnonzero(~flags)]
            if flags.any():
                self.test_rotations[s] = [int(r) for r in np.flatnonzero(flags)]
        self.share = tuple(share)
        index, count = self.share
        if count > 1:
            if len(self.train_rotations) < count:
                raise IsonetError(f"{count} refine workers need at least {count} training subtomograms per "
                                  f"iteration, got {len(self.train_rotations)} (--select_subtomo_number)")
            self.train_rotations = {s: self.train_rotations[s] for s in sorted(self.train_rotations)[index::count]}
        self.n_train = sum(len(rotations) for rotations in self.train_rotations.values())
        self.n_test = int(is_test.sum()) // count
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="isonet-pairs")
        self._closed = False

    def validation_arrays(self):
        """This worker's validation pairs in memory, ``(x, y)`` each of shape (n_test, cube, cube, cube)."""
        order = sorted(self.test_rotations)
        parts = list(self._pool.map(lambda s: self.maker.pairs(s, self.test_rotations[s]), order))
        index, count = self.share
        return (np.concatenate([p[0] for p in parts])[index::count],
                np.concatenate([p[1] for p in parts])[index::count])

    def train_pairs(self):
        """Endless generator of training pairs ``(x, y)`` (each (cube, cube, cube)).

        Each pass visits every subtomogram once in a seeded random order; pairs of
        one subtomogram come together and are mixed by the shuffle buffer.
        """
        maker = self.maker
        passes = 0
        while not self._closed:
            order = np.random.default_rng([maker.seed, maker.iteration, _SALT_PASS, passes]).permutation(
                sorted(self.train_rotations))
            made = _ordered_parallel(lambda s: maker.pairs(int(s), self.train_rotations[int(s)]), order,
                                     self._pool, lookahead=2 * self.workers)
            for x, y in made:
                for i in range(len(x)):
                    yield x[i], y[i]
                if self._closed:
                    return
            passes += 1

    def datasets(self):
        """``(train, validation)`` tf.data datasets of batches ``(B, cube, cube, cube, 1)`` float32.

        The training set is endless: shuffle buffer of :data:`SHUFFLE_SUBTOMOS`
        subtomograms' pairs, batches with the remainder dropped, prefetch.
        """
        return self.training_set(self.batch_size), self.validation_set(self.batch_size)

    def _specs(self):
        """Element specs of the pairs and the dataset options (each device gets its own batches: no sharding)."""
        import tensorflow as tf
        cube = self.maker.cube_size
        spec = tf.TensorSpec((cube, cube, cube), tf.float32)
        channels = self.maker.target_channels  # None: plain target cubes; else stacked with loss weights
        target_spec = spec if channels is None else tf.TensorSpec((cube, cube, cube, channels), tf.float32)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        shuffle_seed = int(np.random.default_rng([self.maker.seed, self.maker.iteration, _SALT_SHUFFLE])
                           .integers(2 ** 31))
        return spec, target_spec, options, shuffle_seed

    def training_set(self, batch_size):
        """The endless training dataset (see :meth:`datasets`) in batches of ``batch_size``."""
        import tensorflow as tf
        spec, target_spec, options, shuffle_seed = self._specs()
        buffer = min(self.n_train, max(SHUFFLE_SUBTOMOS * N_ROTATIONS, 4 * self.batch_size))
        return (tf.data.Dataset.from_generator(self.train_pairs, output_signature=(spec, target_spec))
                .shuffle(buffer, seed=shuffle_seed)
                .map(_add_channel)
                .batch(batch_size, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE)
                .with_options(options))

    def validation_set(self, batch_size):
        """The endless validation dataset (see :meth:`datasets`) in batches of ``batch_size``."""
        import tensorflow as tf
        _, _, options, shuffle_seed = self._specs()
        x_val, y_val = self.validation_arrays()
        repeats = -(-batch_size // len(x_val))  # a validation batch needs at least batch_size pairs
        return (tf.data.Dataset.from_tensor_slices((x_val, y_val))
                .repeat(repeats)
                .shuffle(len(x_val) * repeats, seed=shuffle_seed, reshuffle_each_iteration=True)
                .map(_add_channel)
                .batch(batch_size, drop_remainder=True)
                .repeat()
                .prefetch(tf.data.AUTOTUNE)
                .with_options(options))

    def close(self):
        """Stop making pairs and release the threads."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def _add_channel(x, y):
    return x[..., None], (y if y.shape.rank == 4 else y[..., None])


def dump_pairs(maker, stream, data_dir):
    """Write every pair of the iteration as MRC for inspection (``--data_dir``).

    Files: ``data_dir/{train,test}_{x,y}/{x,y}_<k>.mrc`` with ``k = 20 s + r``
    (IsoNet 1's layout). Existing files of the same names are replaced.
    """
    for s in range(len(maker)):
        for split, rotations in (("train", stream.train_rotations.get(s, [])),
                                 ("test", stream.test_rotations.get(s, []))):
            if not rotations:
                continue
            x, y = maker.pairs(s, rotations)
            for i, r in enumerate(rotations):
                k = N_ROTATIONS * s + r
                for name, data in (("x", x[i]), ("y", y[i] if y.ndim == 4 else y[i, ..., 0])):  # target only
                    folder = os.path.join(data_dir, f"{split}_{name}")
                    os.makedirs(folder, exist_ok=True)
                    write_volume(os.path.join(folder, f"{name}_{k}.mrc"), data)

"""IsoNet 1's method (``--method isonet1``): one tomogram; the network learns to undo an extra missing wedge.

Iteration ``it`` trains on pairs made from each subtomogram with its missing
wedge filled by the prediction of the network of iteration ``it - 1``
(iteration 1: the wedge-filtered subtomogram itself), rotated, given an
extra wedge and, from ``--noise_start_iter``, added noise
(:class:`isonet.refine.pairs.PairMaker`); the loss is the mean absolute
error over the whole cube.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from isonet.io.mrc import read_volume, write_volume
from isonet.log import progress
from isonet.normalize import normalize
from isonet.prefetch import read_ahead
from isonet.refine.methods.base import RefineMethod
from isonet.refine.noise import NoiseBank
from isonet.refine.outputs import prediction_path
from isonet.refine.pairs import PairMaker
from isonet.refine.wedge_ops import apply_wedge, wedge_masks

log = logging.getLogger("isonet")


def predict_subtomograms(network, paths, out_paths, batch_size, percentile=True, desc="predicting"):
    """Predict whole subtomograms in batches and write them.

    Each volume ``[z, y, x]`` is read, negated (density positive), normalised,
    predicted by ``network`` (:class:`isonet.network.runtime.Network`),
    normalised again, negated and written with the input's voxel size. Reading
    the next batch and writing the last one happen in a worker thread while
    the network runs.
    """
    def load(chunk):
        return np.stack([normalize(-read_volume(p), percentile) for p in chunk])

    def store(chunk, targets, output):
        for path, out_path, volume in zip(chunk, targets, output):
            write_volume(out_path, -normalize(volume, percentile), like=path)

    starts = range(0, len(paths), batch_size)
    batches = ((paths[s:s + batch_size], out_paths[s:s + batch_size]) for s in starts)
    bar = progress(total=len(paths), desc=desc, unit="subtomo")
    with ThreadPoolExecutor(max_workers=1) as worker:
        writing = None
        for (chunk, targets), volumes in read_ahead(((c, t), load(c)) for c, t in batches):
            output = network.predict(volumes)
            if writing is not None:
                writing.result()
            writing = worker.submit(store, chunk, targets, output)
            bar.update(len(chunk))
        if writing is not None:
            writing.result()
    bar.close()


def write_wedge_filtered(paths, out_paths, tilt_ranges, percentile=True):
    """Iteration-0 stand-ins for the predictions: ``-normalize(wedge(normalize(-s)))`` of each subtomogram."""
    for path, out_path, tilts in zip(paths, out_paths, tilt_ranges):
        volume = normalize(-read_volume(path), percentile)
        filtered = apply_wedge(volume, wedge_masks(volume.shape, [tilts])[0])
        write_volume(out_path, -normalize(filtered, percentile), like=path)


class IsoNet1Method(RefineMethod):
    """IsoNet 1's method (module docstring)."""

    name = "isonet1"

    def __init__(self, config, subtomos, settings):
        super().__init__(config, subtomos, settings)
        if config.full_input_fraction > 0:
            log.warning("--full_input_fraction applies to --method halves only: ignored")

    def description(self):
        return "isonet1 (IsoNet 1: the network learns to undo an extra missing wedge; mean absolute error)"

    def loss(self):
        return "mae"

    def write_pair_sources(self, network, iteration, used, filled):
        if filled:
            self.predict_set(network, iteration - 1, used)
        else:
            originals, tilts, previous = self._sources(iteration, used)
            write_wedge_filtered(originals, previous, tilts, self.config.normalize_percentile)

    def _sources(self, iteration, used):
        """Originals, tilt ranges and previous predictions of the subtomograms ``used``."""
        paths = self.subtomos.paths
        originals = [paths[i] for i in used]
        return (originals, [self.subtomos.tilt_ranges[i] for i in used],
                [prediction_path(self.result_dir, p, iteration - 1) for p in originals])

    def pair_maker(self, iteration, used, filled, writes=True):
        config = self.config
        originals, tilts, previous = self._sources(iteration, used)
        level = self.noise_schedule[iteration]
        log.info("Noise level: %g", level)
        banks = None
        if level > 1e-7:
            banks = {r: NoiseBank(config.noise_dir, self.subtomos.cube_size, r, config.noise_mode, config.seed,
                                  cache=writes) for r in set(tilts)}
        return PairMaker(originals, previous, tilts, self.subtomos.cube_size, level, banks,
                         config.normalize_percentile, config.seed, iteration)

    def predict_set(self, network, number, rows):
        paths = self.subtomos.paths
        outputs = {int(i): prediction_path(self.result_dir, paths[i], number) for i in rows}
        self._record(number).predict_missing(
            [(i, [(paths[i], output)]) for i, output in outputs.items()],
            lambda todo: predict_subtomograms(network, [paths[i] for i in todo], [outputs[i] for i in todo],
                                              self.config.batch_size, self.config.normalize_percentile,
                                              desc=f"predicting iter{number:02d}"))

    def set_files(self, number):
        return [prediction_path(self.result_dir, p, number) for p in self.subtomos.paths]

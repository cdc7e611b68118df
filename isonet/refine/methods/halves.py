"""The halves method (``--method halves``): the even/odd half subtomograms train each other, plus the wedge task.

Pairs: :mod:`isonet.refine.half_pairs`; loss: the masked Fourier loss of
:mod:`isonet.refine.losses`; between iterations the network predicts both
halves of every subtomogram, which fill their missing wedges in the next
iteration's pairs. Its networks come with ``model_iterNN.json``: predict
normalises tomograms by their central slab, as here
(:mod:`isonet.predict.halves`).
"""

import logging

from isonet.normalize import SLAB_FRACTION
from isonet.refine.half_pairs import (FULL_INPUT_ITERATIONS, HalfPairMaker, HalfSubtomograms, predict_halves,
                                      previous_paths)
from isonet.refine.losses import masked_fourier_loss
from isonet.refine.methods.base import RefineMethod

log = logging.getLogger("isonet")

#: The cosine learning-rate decay ends at a tenth of --learning_rate: at a constant rate the result swung from
#: iteration to iteration (docs/quality.md).
FINAL_RATE_DIVISOR = 10.0
#: Share of full-input pairs in the first iterations, chosen on the quality benchmark (docs/quality.md).
FULL_INPUT_FRACTION = 0.75


class HalvesMethod(RefineMethod):
    """The halves method (module docstring)."""

    name = "halves"
    #: With few steps per iteration Keras's moving averages lag behind the weights (docs/quality.md).
    refreshes_batch_norm = True

    def __init__(self, config, subtomos, settings):
        super().__init__(config, subtomos, settings)
        self.halves = HalfSubtomograms(config.subtomo_star)
        if any(level > 1e-7 for level in self.noise_schedule[1:]):
            log.info("Halves method: no noise is added (--noise_level/--noise_start_iter are IsoNet 1's); the "
                     "independent noise of the two halves teaches the network to denoise")

    @staticmethod
    def derived_defaults(config):
        return {"final_learning_rate": config.learning_rate / FINAL_RATE_DIVISOR,
                "full_input_fraction": FULL_INPUT_FRACTION}

    def description(self):
        fraction = self.config.full_input_fraction
        full = (f"; in iterations 1-{FULL_INPUT_ITERATIONS}, {fraction:g} of the inputs the mean of both halves"
                if fraction > 0 else "")
        return (f"halves (Noise2Noise across half subtomograms plus the wedge task, masked Fourier loss, "
                f"mw_weight {self.config.mw_weight:g}{full})")

    def loss(self):
        return masked_fourier_loss(self.subtomos.cube_size)

    def write_pair_sources(self, network, iteration, used, filled):
        if filled:
            self.predict_set(network, iteration - 1, used)

    def pair_maker(self, iteration, used, filled, writes=True):
        config = self.config
        fraction = config.full_input_fraction if iteration <= FULL_INPUT_ITERATIONS else 0.0
        return HalfPairMaker(self.halves, used, [self.subtomos.tilt_ranges[i] for i in used],
                             self.subtomos.cube_size, self.result_dir if filled else None, iteration - 1,
                             config.mw_weight, config.seed, iteration, full_input_fraction=fraction)

    def predict_set(self, network, number, rows):
        halves = self.halves
        jobs = [(int(i), list(zip((halves.paths[0][i], halves.paths[1][i]),
                                  previous_paths(halves, [i], self.result_dir, number)))) for i in rows]
        self._record(number).predict_missing(jobs, lambda todo: predict_halves(
            network.predict, halves, todo, self.result_dir, number, self.config.batch_size))

    def set_files(self, number):
        return previous_paths(self.halves, range(len(self.subtomos)), self.result_dir, number)

    def model_info(self):
        return {"method": self.name, "normalization": "slab_mean_std", "slab_fraction": SLAB_FRACTION}

"""What refine's loop does differently for ``--method isonet2`` and for IsoNet 1's optional variants.

:mod:`isonet.refine.loop` calls these at a few points; with ``--method
isonet`` and no variant the loop runs IsoNet 1's code unchanged.
"""

import logging

from isonet.errors import UsageError
from isonet.io.model_info import write_model_info as _write_info
from isonet.normalize import SLAB_FRACTION
from isonet.refine.halves import (HalfPairMaker, HalfSubtomograms, default_method, predict_halves,
                                  previous_paths)
from isonet.refine.losses import masked_fourier_loss
from isonet.refine.variants import VariantPairMaker

log = logging.getLogger("isonet")

#: The halves method ends its cosine learning-rate decay at a tenth of --learning_rate: at a constant rate
#: its result swung from iteration to iteration (docs/quality.md).
FINAL_RATE_DIVISOR = 10.0
#: The halves method's share of full-input pairs (in the iterations up to --full_input_stop, by default the
#: first two), chosen on the quality benchmark (docs/quality.md, eighth round).
FULL_INPUT_FRACTION = 0.75

__all__ = ["prepare", "loss", "pair_maker", "predict_halves", "previous_paths", "write_model_info"]


def prepare(config):
    """Settle ``config.method`` (default from the STAR file) and return the half subtomograms, or None."""
    if config.method is None:
        config.method = default_method(config.subtomo_star)
    if config.refresh_batch_norm is None:
        config.refresh_batch_norm = config.method == "isonet2"
    if config.full_input_fraction is None:
        config.full_input_fraction = FULL_INPUT_FRACTION if config.method == "isonet2" else 0.0
    if config.final_learning_rate is None:
        config.final_learning_rate = config.learning_rate / (FINAL_RATE_DIVISOR if config.method == "isonet2" else 1)
    if config.method == "isonet2" and config.full_input_fraction > 0 and config.full_input_start > config.full_input_stop:
        raise UsageError(f"--full_input_start {config.full_input_start} is after --full_input_stop "
                         f"{config.full_input_stop}: expected start <= stop (full-input pairs in iterations start-stop)")
    detail = ""
    if config.method == "isonet2":
        guard = f" beyond {config.mw_guard:g} degrees" if config.mw_guard > 0 and config.mw_target == "mean" else ""
        span = (f"iteration {config.full_input_start}" if config.full_input_start == config.full_input_stop
                else f"iterations {config.full_input_start}-{config.full_input_stop}")
        full = (f", {config.full_input_fraction:g} of the inputs the mean of both halves in {span}"
                + (" (measured region: the previous predictions)" if config.full_input_measured == "previous"
                   and config.full_input_stop > 1 and config.fill_wedge else "")
                if config.full_input_fraction > 0 else "")
        detail = (" (Noise2Noise across half subtomograms, masked Fourier loss, "
                  f"mw_weight {config.mw_weight}, wedge target: {config.mw_target}{guard}{full})")
    log.info("Method: %s%s", config.method, detail)
    if not config.fill_wedge:
        if config.method != "isonet2":
            log.warning("--fill_wedge False applies to --method isonet2 only: ignored (IsoNet 1 always fills)")
        else:
            log.info("--fill_wedge False: the halves' missing wedges stay unfilled in every iteration")
    if config.mw_guard > 0 and (config.method != "isonet2" or config.mw_target != "mean"):
        log.warning("--mw_guard applies to --method isonet2 --mw_target mean only: ignored")
    if config.full_input_fraction > 0 and config.method != "isonet2":
        log.warning("--full_input_fraction applies to --method isonet2 only: ignored")
    if config.method != "isonet2":
        return None
    if config.masked_loss:
        log.info("--masked_loss: the halves method always uses the masked loss")
    return HalfSubtomograms(config.subtomo_star)


def full_input_iteration(config, iteration):
    """Whether ``iteration`` trains on full-input pairs (``--full_input_start`` to ``--full_input_stop``)."""
    return config.full_input_start <= iteration <= config.full_input_stop


def loss(config, cube_size):
    """The Keras loss of this run: IsoNet 1's ``"mae"``, or the masked Fourier loss."""
    if config.method == "isonet2" or config.masked_loss or config.dc_weight > 0:
        return masked_fourier_loss(cube_size, data_consistency=config.dc_weight > 0)
    return "mae"


def pair_maker(config, halves, used, originals, previous, tilts, cube_size, level, banks, previous_dir, iteration):
    """The pair maker of one iteration: :class:`HalfPairMaker` or IsoNet 1's with variants."""
    if halves is not None:
        return HalfPairMaker(halves, used, tilts, cube_size, previous_dir if config.fill_wedge else None,
                             iteration - 1, config.mw_weight,
                             config.dc_weight, config.random_rotations, config.seed, iteration,
                             mw_target=config.mw_target, mw_guard=config.mw_guard,
                             full_input_fraction=config.full_input_fraction if full_input_iteration(config, iteration)
                             else 0.0,
                             full_input_measured=config.full_input_measured)
    return VariantPairMaker(originals, previous, tilts, cube_size, level, banks, config.normalize_percentile,
                            config.seed, iteration, masked_loss=config.masked_loss, mw_weight=config.mw_weight,
                            dc_weight=config.dc_weight, random_rotations=config.random_rotations)


def write_model_info(config, model_path):
    """For the halves method, ``model_iterNN.json`` beside the network (see :mod:`isonet.io.model_info`)."""
    if config.method == "isonet2":
        _write_info(model_path, {"method": "isonet2", "normalization": "slab_mean_std",
                                 "slab_fraction": SLAB_FRACTION})

"""End to end: simulate -> make_mask -> extract -> refine -> predict -> evaluate, both methods.

Does the product do its job? One small simulated tomogram with half tomograms and ground truth
(:data:`DATASET`); each method trained with the same tiny budget (:data:`BUDGET`); the whole
tomogram corrected and scored against the truth by :func:`isonet.evaluation.metrics.evaluate`.
The corrected tomogram must beat the raw one in the missing wedge (correlation in the 10-30° band
beyond the tilt limits) and along Z (FSC 0.143 resolution in the Z cone, which for ±60° lies
inside the missing wedge). Two checks on training pairs rebuilt from the prediction sets the same
runs keep (``--keep_last 0``) cover what the scores cannot see at this budget: IsoNet 1's targets take the
previous iteration's predictions into their missing wedge (the merge), and the halves method's
inputs and targets are the two halves of one subtomogram (the pairing).

Training seeds 0-3 on the same data (2 cores of an AMD EPYC with AVX-512, shared with other jobs;
seconds: refine + predict, wall clock). The tests train seed 0 (:data:`SEED`) once per method. Raw
tomogram: band -0.009, Z 106.7 Å (the first shell scored: the raw Z cone never reaches 0.143).
IsoNet 1's network is predicted with settled batch statistics (:data:`SETTLE_BATCH_STATISTICS`).

====  =========================  =========================
seed  isonet1: band / Z Å / s    halves: band / Z Å / s
====  =========================  =========================
0     0.281 / 72.0 / 44          0.747 / 67.6 / 45
1     0.291 / 64.0 / 46          0.517 / 67.6 / 43
2     0.430 / 51.6 / 38          0.765 / 81.0 / 43
3     0.578 / 49.6 / 41          0.709 / 87.6 / 36
====  =========================  =========================

Smallest improvements over the raw tomogram: isonet1 band +0.290, Z -34.7 Å (seed 0); halves band
+0.526 (seed 1), Z -19.0 Å (seed 3). Margins (:data:`MARGINS`): half of those (isonet1 band 0.14,
Z 17 Å; halves Z 9.5 Å), except the halves' band: 0.43, halfway between its worst seed (+0.526) and
the best seed with the masked loss's wedge weight at 0 (+0.331; seeds 0-3 of that break: band
0.322 / 0.026 / 0.042 / 0.246), so that the break fails the test with 0.1 of room either side. The
pairs (:data:`CHECKED_ROTATIONS` of all 40 subtomograms): IsoNet 1's targets of iteration 4 differ
from those of iteration 1 by 0.28-0.30 of their norm (median over the pairs), 0.74-0.76 of that
change in the missing wedge (0.48 of the frequencies); the halves' input/target correlation at
iteration 4 is 0.30-0.31. Thresholds: 0.15, 0.6 and 0.17.

Deliberate breaks, seed 0 (run by hand, not committed):

* the wedge merge returning the original (``wedge_ops.merge``, or only in IsoNet 1's
  ``PairMaker.merged``): ``test_isonet1_trains_on_merged_subtomograms`` fails (change 0.000).
  The scores do not see it at this budget (halves band 0.756 / 0.184 on seeds 0 / 1): a 32-voxel
  crop leaks as much power into its wedge as the fills of 160 steps put there.
* the masked loss's wedge weight 0 (``fourier_weights.pair_weights``): ``test_halves_restores``
  fails (band 0.323 against 0.421 required).
* half 2 replaced by noise (``half_pairs.HalfSubtomograms.normalised``):
  ``test_halves_pairs_the_two_halves`` fails (correlation -0.000). The scores do not see it (band
  0.637 / 0.579 on seeds 0 / 1): the target in the input's extra wedge is the mean of both halves,
  which still holds the input half's own wedge; and at this budget the network does not denoise
  (measured-region correlation 0.92-0.94 against the raw 0.94).
"""

import os
import shutil
import time

import numpy as np
import pytest

from isonet.evaluation.metrics import evaluate
from isonet.io.mrc import read_volume
from isonet.io.star import resolve_path
from isonet.wedge import wedge_mask

#: The refine ``--method`` of each method (the names change in one place).
METHODS = {"isonet1": "isonet1", "halves": "halves"}

#: The simulated tomogram: (z, y, x) voxels at 10 Å, ±60° every 3°, no CTF. SNR 10 per projection: at
#: this budget IsoNet 1's network fills nothing reliably from noisier data (SNR 1-5, seeds 0-1: band
#: between -0.12 and 0.49 from one iteration to the next).
DATASET = dict(shape=(32, 96, 96), pixel_size=10.0, tilt_min=-60.0, tilt_max=60.0, tilt_step=3.0, snr=10.0,
               defocus=0.0, number_subtomos=40, seed=0, scene="cell", halves=True)
CUBE_SIZE, CROP_SIZE = 16, 32
PREDICT_CUBE, PREDICT_CROP = 32, 48
#: The training budget of both methods: 160 steps of 16-voxel cubes.
BUDGET = dict(iterations=4, epochs=1, steps_per_epoch=40, batch_size=4, filter_base=8)
#: IsoNet 1's method keeps Keras's moving batch statistics (as IsoNet 1 does). After 40 steps per iteration
#: they lag behind the weights, and its output in inference mode swings from run to run (seeds 0/1: band
#: 0.364/0.060 with 2 x 100 steps, 0.159/0.008 with 3 x 60 steps, the last a blow-up: wedge power 7.5);
#: users train 10 x 200 steps per iteration, where the averages settle. So the test re-estimates the final
#: network's statistics from its training inputs before predicting (:func:`settle_batch_statistics`), as
#: the halves method does after every iteration.
SETTLE_BATCH_STATISTICS = {"isonet1": True, "halves": False}
#: The training seed of the tests.
SEED = 0
#: Orientations (of refine's 20) whose training pairs the checks of the merge and the pairing rebuild, for
#: each of the 40 subtomograms.
CHECKED_ROTATIONS = (0, 7, 13)

#: Least improvement over the raw tomogram (see the module docstring): 10-30° band, and Z FSC 0.143 in Å.
MARGINS = {"isonet1": dict(band=0.14, z=17.0), "halves": dict(band=0.43, z=9.5)}


def simulate_dataset(folder):
    """Simulate, mask and extract the dataset into ``folder``; returns its paths and the raw scores."""
    from isonet.preprocess.extract import extract_subtomograms
    from isonet.preprocess.mask import make_masks
    from isonet.simulate import run_simulation

    star = os.path.join(folder, "tomograms.star")
    run_simulation(folder, n_tomos=1, **DATASET)
    make_masks(star, mask_folder=os.path.join(folder, "mask"), patch_size=4, density_percentage=50,
               std_percentage=50, z_crop=0.2)
    subtomo_star = os.path.join(folder, "subtomo.star")
    extract_subtomograms(star, subtomo_folder=os.path.join(folder, "subtomo"), subtomo_star=subtomo_star,
                         cube_size=CUBE_SIZE, crop_size=CROP_SIZE, seed=0)
    truth = read_volume(os.path.join(folder, "ground_truth", "tomo_01.mrc"))
    raw = scores(read_volume(os.path.join(folder, "tomograms", "tomo_01.mrc")), truth)
    return dict(folder=folder, star=star, subtomo_star=subtomo_star, truth=truth, raw=raw)


def scores(volume, truth):
    """The numbers the tests compare: 10-30° wedge band, Z and X FSC 0.143 (Å), measured region, wedge power."""
    result = evaluate(volume, truth, DATASET["pixel_size"], DATASET["tilt_min"], DATASET["tilt_max"])
    return dict(band=result["wedge_bands"]["10-30"], z=result["fsc"]["z"]["0.143"], x=result["fsc"]["x"]["0.143"],
                measured=result["correlation"]["measured"], wedge_power=result["wedge_power"]["relative"])


def train_and_score(dataset, name, seed, folder):
    """refine -> predict -> evaluate one method; returns the scores, ``seconds`` and the checks of its pairs.

    refine keeps every prediction set (``--keep_last 0``): the checks rebuild training pairs of the
    first and the last iteration from them (``merge``: :func:`merge_change` of IsoNet 1's,
    ``pairing``: :func:`pair_correlation` of the halves method's).
    """
    from isonet.predict.predict import predict_tomograms
    from isonet.refine.config import RefineConfig
    from isonet.refine.loop import refine
    from isonet.refine.outputs import model_path
    from isonet.refine.subtomograms import Subtomograms

    result_dir, last = os.path.join(folder, "results"), BUDGET["iterations"]
    started = time.perf_counter()
    refine(RefineConfig.from_cli(dict(BUDGET, method=METHODS[name], seed=seed, gpuID=[], keep_last=0,
                                      subtomo_star=dataset["subtomo_star"], result_dir=result_dir)))
    subtomos = Subtomograms(dataset["subtomo_star"])
    model = model_path(result_dir, last)
    if SETTLE_BATCH_STATISTICS[name]:
        model = settle_batch_statistics(isonet1_pair_maker(subtomos, result_dir, last), result_dir, last)
    checks = {"isonet1": lambda: dict(merge=merge_change(subtomos, result_dir, last)),
              "halves": lambda: dict(pairing=pair_correlation(subtomos, dataset["subtomo_star"], result_dir, last))}
    checks = checks[name]()
    # predict records its output in the STAR file it reads: a copy beside the data (relative paths).
    star = os.path.join(dataset["folder"], f"tomograms_{os.path.basename(folder)}.star")
    shutil.copy(dataset["star"], star)
    table = predict_tomograms(star, model, output_dir=os.path.join(folder, "corrected"), gpu_ids=[],
                              cube_size=PREDICT_CUBE, crop_size=PREDICT_CROP)
    seconds = time.perf_counter() - started
    corrected = read_volume(resolve_path(table["rlnCorrectedTomoName"].iloc[0], star))
    return dict(scores(corrected, dataset["truth"]), seconds=seconds, **checks)


def isonet1_pair_maker(subtomos, result_dir, iteration):
    """IsoNet 1's pair maker of ``iteration``, as refine made it: the subtomograms merged with prediction set
    ``iteration - 1`` (at iteration 1, the wedge-filtered subtomograms that stand in for it)."""
    from isonet.refine.outputs import prediction_path
    from isonet.refine.pairs import PairMaker

    return PairMaker(subtomos.paths, [prediction_path(result_dir, p, iteration - 1) for p in subtomos.paths],
                     subtomos.tilt_ranges, subtomos.cube_size, seed=SEED, iteration=iteration)


def settle_batch_statistics(maker, result_dir, iteration):
    """IsoNet 1's network of ``iteration`` with its batch statistics re-estimated from its training inputs.

    ``maker`` makes the pairs of ``iteration``; :class:`isonet.network.runtime.BatchStatistics` sets the
    statistics. Returns the path of the network saved beside the original.
    """
    from isonet.network.runtime import BatchStatistics, load, save
    from isonet.refine.outputs import model_path
    from isonet.refine.pairs import calibration_batches

    model = load(model_path(result_dir, iteration))
    assert BatchStatistics(model).refresh(calibration_batches(maker, BUDGET["batch_size"])) > 0
    settled = os.path.join(result_dir, "settled.h5")
    save(model, settled)
    return settled


def unrotate(volume, index):
    """Undo orientation ``index`` of refine's 20 (:mod:`isonet.refine.rotations`)."""
    from isonet.refine.rotations import ROTATIONS

    (axes1, k1), (axes2, k2) = ROTATIONS[index]
    return np.rot90(np.rot90(volume, -k2, axes=axes2), -k1, axes=axes1)


def merge_change(subtomos, result_dir, last):
    """How IsoNet 1's targets changed from iteration 1 (no predictions yet) to ``last``.

    Over the :data:`CHECKED_ROTATIONS` of every subtomogram, returns the median of (the part of the
    target of ``last`` not explained by that of iteration 1, relative to the target) and of (the share
    of that part's power in the lab-frame missing wedge, the rotation undone), and the fraction of the
    frequencies in that wedge. The merge puts the previous predictions into the missing wedge only: a
    large change, most of it in the wedge.
    """
    first, final = (isonet1_pair_maker(subtomos, result_dir, it) for it in (1, last))
    shape = (subtomos.cube_size,) * 3
    wedge = np.broadcast_to(wedge_mask(shape, DATASET["tilt_min"], DATASET["tilt_max"]) == 0, shape)
    changes, shares = [], []
    for index in range(len(subtomos)):
        befores, afters = first.pairs(index, CHECKED_ROTATIONS)[1], final.pairs(index, CHECKED_ROTATIONS)[1]
        for rotation, before, after in zip(CHECKED_ROTATIONS, befores.astype(np.float64), afters.astype(np.float64)):
            before, after = before - before.mean(), after - after.mean()
            residual = after - (np.vdot(before, after) / np.vdot(before, before)) * before
            changes.append(np.linalg.norm(residual) / np.linalg.norm(after))
            power = np.abs(np.fft.fftn(unrotate(residual, rotation))) ** 2
            shares.append(power[wedge].sum() / max(power.sum(), 1e-30))
    return float(np.median(changes)), float(np.median(shares)), float(wedge.mean())


def pair_correlation(subtomos, subtomo_star, result_dir, last):
    """Median correlation between the halves method's input and target cubes of iteration ``last``.

    The pairs are those refine made (:class:`isonet.refine.half_pairs.HalfPairMaker`, the halves filled
    with prediction set ``last - 1``), over the :data:`CHECKED_ROTATIONS` of every subtomogram.
    """
    from isonet.refine.half_pairs import HalfPairMaker, HalfSubtomograms

    maker = HalfPairMaker(HalfSubtomograms(subtomo_star), range(len(subtomos)), subtomos.tilt_ranges,
                          subtomos.cube_size, result_dir, last - 1, seed=SEED, iteration=last)
    values = []
    for index in range(len(subtomos)):
        inputs, targets = maker.pairs(index, CHECKED_ROTATIONS)
        values += [np.corrcoef(x.ravel(), y[..., 0].ravel())[0, 1] for x, y in zip(inputs, targets)]
    return float(np.median(values))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return simulate_dataset(str(tmp_path_factory.mktemp("e2e_data")))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """``trained(name)``: :func:`train_and_score` of method ``name`` with :data:`SEED` (once per module)."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = train_and_score(dataset, name, SEED, str(tmp_path_factory.mktemp(name)))
        return runs[name]
    return get


def check_restores(dataset, run, name):
    raw, margin = dataset["raw"], MARGINS[name]
    summary = (f"{name} (seed {SEED}): band {run['band']:.3f}, Z {run['z']:.1f} Å; raw: band {raw['band']:.3f}, "
               f"Z {raw['z']:.1f} Å; measured {run['measured']:.3f} (raw {raw['measured']:.3f}), wedge power "
               f"{run['wedge_power']:.3f} (raw {raw['wedge_power']:.3f})")
    assert run["band"] >= raw["band"] + margin["band"], "missing wedge not restored: " + summary
    assert run["z"] <= raw["z"] - margin["z"], "Z resolution not improved: " + summary


def test_isonet1_restores(dataset, trained):
    check_restores(dataset, trained("isonet1"), "isonet1")


def test_halves_restores(dataset, trained):
    check_restores(dataset, trained("halves"), "halves")


def test_isonet1_trains_on_merged_subtomograms(trained):
    """From iteration 2 IsoNet 1's targets hold the previous predictions in their missing wedge."""
    change, share, wedge = trained("isonet1")["merge"]
    assert change >= 0.15 and share >= 0.6, (
        f"targets of iteration {BUDGET['iterations']} against iteration 1: change {change:.3f}, {share:.2f} of it "
        f"in the missing wedge ({wedge:.2f} of the frequencies)")


def test_halves_pairs_the_two_halves(trained):
    """The halves method's inputs and targets are the two halves of one subtomogram: they correlate."""
    correlation = trained("halves")["pairing"]
    assert correlation >= 0.17, f"input/target correlation {correlation:.3f} at iteration {BUDGET['iterations']}"

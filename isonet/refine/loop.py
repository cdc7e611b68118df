"""Refine's loop: IsoNet 1's iterative training, the same for every method (:mod:`isonet.refine.methods`).

Iteration ``it`` (1 .. iterations):

1. draw the subtomograms used (all, or ``select_subtomo_number`` of them);
2. the method writes what its pairs are made from (the predictions of the
   network of iteration ``it-1``; IsoNet 1's method at iteration 1: the
   wedge-filtered originals) and returns its pair maker;
3. train with a fresh Adam optimizer on the pairs, made in memory
   (:mod:`isonet.refine.training`); if the method asks, re-estimate the batch
   normalisation statistics from training inputs -> ``model_iter{it}.h5``
   (and the method's ``model_iter{it}.json`` for predict);
4. write ``refine_iter{it}.json`` (all settings, losses, timings), the
   pictures and the report.

On several machines (:mod:`isonet.refine.workers`) every worker trains on its
share of the pairs and only the chief writes: steps 2 (the files), 3 (the
files) and 4 are the chief's, and the others wait for its files at a barrier.

After the last iteration the subtomograms are predicted once more unless
``remove_intermediate``. Only the newest ``keep_last`` sets of predictions
stay on disk, and predictions whose network and inputs are unchanged are
reused, not made again (:mod:`isonet.refine.intermediate`). Every random
choice of iteration ``it`` derives from ``(seed, it)``, dropout masks
included, so ``--continue_from`` reproduces an uninterrupted run.
"""

import logging
import os
import time

import numpy as np

from isonet.devices import import_tensorflow
from isonet.errors import IsonetError, UsageError
from isonet.io.model_info import write_model_info
from isonet.io.paths import rename_aside
from isonet.network.runtime import BatchStatistics, precision_policy, save
from isonet.refine.config import iteration_json_path, load_state, save_state
from isonet.refine.intermediate import prune_predictions
from isonet.refine.methods import REGISTRY
from isonet.refine.monitor import IterationMonitor
from isonet.refine.outputs import model_path
from isonet.refine.pairs import calibration_batches
from isonet.refine.progress import RunClock
from isonet.refine.schedule import learning_rate_at
from isonet.refine.subtomograms import Subtomograms
from isonet.refine.training import fit_iteration, import_keras, open_network, restart_training
from isonet.refine.validate import validate_refine
from isonet.refine.workers import start_workers

log = logging.getLogger("isonet")

_SALT_SUBSET, _SALT_TF = 11, 12


def _seed_for(seed, iteration, salt):
    return int(np.random.default_rng([seed, iteration, salt]).integers(2 ** 31))


def refine(config, continue_from=None, logical_cpus=0):
    """Run refine: train the network iteratively on the subtomograms of ``config.subtomo_star``.

    Parameters
    ----------
    config : isonet.refine.config.RefineConfig
        Settings; ``config.explicit`` names those given on the command line.
    continue_from : str, optional
        ``refine_iterNN.json`` of an earlier run: its settings are restored
        (explicit values of ``config`` win) and the run continues at NN + 1.
    logical_cpus : int
        Without GPUs, split the CPU into this many devices (tests of the
        multi-device path); must be set before TensorFlow initialises.

    Returns
    -------
    list of dict
        History: one entry per iteration (``iteration``, ``loss``, ``val_loss``,
        ``noise_level``, ``learning_rate``, ``seconds``).
    """
    config, start, history = _settings(config, continue_from)
    machines = start_workers(config.gpuID, logical_cpus)  # several workers: the strategy before other TF use
    subtomos = Subtomograms(config.subtomo_star)
    validate_refine(config, subtomos, continue_from)
    machines.choose_devices()  # before TensorFlow lists its devices, which fixes them
    keras = import_keras()
    policy = precision_policy(config.mixed_precision, bool(import_tensorflow().config.list_logical_devices("GPU")))
    config.resolve(len(subtomos), machines.n_replicas)
    if start > config.iterations:
        raise UsageError(f"--iterations {config.iterations}: {continue_from} already finished iteration "
                         f"{start - 1}; ask for more iterations to continue")
    star = os.path.abspath(config.subtomo_star)
    method = REGISTRY[config.method](config, subtomos, {
        "normalize_percentile": config.normalize_percentile, "precision": policy,
        "subtomo_star": [star, os.stat(star).st_size, os.stat(star).st_mtime_ns]})
    result_dir, pretrained = _open_result_dir(config, start, continue_from, machines.chief)
    log.info("Refine: %d subtomograms (crop %d, cube %d), iterations %d..%d, batch %d, %d steps x %d epochs, "
             "%d device(s)%s, %s, seed %d", len(subtomos), subtomos.crop_size, subtomos.cube_size, start,
             config.iterations, config.batch_size, config.steps_per_epoch, config.epochs, machines.n_replicas,
             machines.describe(), policy,
             config.seed)
    log.info("Method: %s", method.description())
    try:
        _iterate(config, start, history, subtomos, method, machines, policy, result_dir, pretrained)
    except machines.failures() as exc:
        last = iteration_json_path(result_dir, history[-1]["iteration"]) if history else None
        raise machines.lost(exc, last) from None
    keras.backend.clear_session()  # frees the model and its traced functions for the caller
    log.info("Refine finished: %s", result_dir)
    return history


def _iterate(config, start, history, subtomos, method, machines, policy, result_dir, pretrained):
    """Iterations ``start .. config.iterations`` (the module docstring); appends to ``history``."""
    keras = import_keras()
    writes = machines.chief
    monitor, clock = IterationMonitor(result_dir, config.normalize_percentile), RunClock(start, config.iterations)
    model = None
    for iteration in range(start, config.iterations + 1):
        clock.start(iteration)
        keras.utils.set_random_seed(_seed_for(config.seed, iteration, _SALT_TF))
        used = np.sort(np.random.default_rng([config.seed, iteration, _SALT_SUBSET]).choice(
            len(subtomos), size=config.select_subtomo_number or len(subtomos), replace=False))
        started = time.perf_counter()
        if model is None:
            model, network, fresh_optimizer = open_network(config, machines, policy, iteration, pretrained,
                                                           subtomos.cube_size, method.loss())
            statistics = BatchStatistics(model)
        rate = learning_rate_at(iteration, config.iterations, config.learning_rate, config.final_learning_rate)
        restart_training(model, fresh_optimizer, config.seed, iteration, rate)
        if config.final_learning_rate != config.learning_rate:
            log.info("Learning rate %.3g", rate)
        filled = not (iteration == 1 and pretrained is None)
        if writes:
            method.write_pair_sources(network, iteration, used, filled)
        machines.barrier()  # the others read the files just written
        maker = method.pair_maker(iteration, used, filled, writes)
        pretrained = None
        seconds = {"predicting": time.perf_counter() - started}
        fitted = fit_iteration(model, maker, config, machines, iteration, seconds)
        if method.refreshes_batch_norm:  # every worker, with the same batches: the statistics stay equal
            started = time.perf_counter()
            statistics.refresh(calibration_batches(maker, config.batch_size))
            seconds["refresh_batch_norm"] = time.perf_counter() - started
        newest = _save_network(config, iteration, method, model, network, result_dir, used, seconds) if writes else 0
        history.append({"iteration": iteration, "loss": [float(v) for v in fitted["loss"]],
                        "val_loss": [float(v) for v in fitted.get("val_loss", [])], "noise_level": maker.noise_level,
                        "learning_rate": rate, "seconds": {k: round(v, 4) for k, v in seconds.items()}})
        if writes:
            save_state(iteration_json_path(result_dir, iteration), config, iteration, history)
        _log_iteration(history[-1], config.iterations, clock.done(iteration))
        if writes:
            if config.remove_intermediate:  # the set just used; no final set is made
                prune_predictions(method.set_files, iteration, 1, result_dir)
            else:
                prune_predictions(method.set_files, newest, config.keep_last, result_dir)
            monitor.after_iteration(history, network, subtomos.paths[used[0]], iteration)
    machines.barrier()  # the others end with the chief, which wrote the last files


def _save_network(config, iteration, method, model, network, result_dir, used, seconds):
    """Save the network of ``iteration`` and, after the last, its predictions; returns the newest prediction set."""
    save(model, model_path(result_dir, iteration))
    info = method.model_info()
    if info is not None:
        write_model_info(model_path(result_dir, iteration), info)
    if iteration == config.iterations and not config.remove_intermediate:
        started = time.perf_counter()
        method.predict_set(network, iteration, used)
        seconds["final_predicting"] = time.perf_counter() - started
        return iteration
    return iteration - 1


def _settings(config, continue_from):
    """``(config, first iteration, history)``: the settings merged with a resumed run's, before any check."""
    history, start = [], 1
    if continue_from is not None:
        saved, iter_count, history = load_state(continue_from)
        config = config.continued_from(saved)
        start = iter_count + 1
    if not config.subtomo_star:
        raise UsageError("refine: SUBTOMO_STAR is required (or --continue_from a refine_iterNN.json)")
    return config, start, history


def _open_result_dir(config, start, continue_from, writes=True):
    """Create ``result_dir`` for a new run (an old one renamed aside) if ``writes``; returns it and the pretrained
    model."""
    result_dir = config.result_dir
    if continue_from is None:
        if not writes:
            return result_dir, config.pretrained_model
        rename_aside(result_dir)
        os.makedirs(result_dir)
        return result_dir, config.pretrained_model
    if not os.path.isfile(model_path(result_dir, start - 1)):
        raise IsonetError(f"--continue_from: {model_path(result_dir, start - 1)} not found")
    return result_dir, None


def _log_iteration(entry, iterations, eta):
    seconds = entry["seconds"]
    log.info("iteration %d/%d done: loss %.4f, val_loss %.4f; seconds: pairs %.1f (threads), training %.1f, "
             "predicting %.1f, median step %.3f%s", entry["iteration"], iterations, entry["loss"][-1],
             entry["val_loss"][-1] if entry["val_loss"] else float("nan"), seconds["pairs"], seconds["training"],
             seconds["predicting"], seconds["step_median"], "; " + eta if eta else "")

"""IsoNet 1's refine loop (spec §3.4.1) with in-memory pairs, per-subtomogram wedges and exact resume.

Iteration ``it`` (1 .. iterations):

1. draw the subtomograms used (all, or ``select_subtomo_number`` of them);
2. write the subtomograms predicted by the network of iteration ``it-1``,
   ``<root>_iter{it-1}.mrc`` (iteration 1: the wedge-filtered originals, spec
   §3.4.3);
3. train with a fresh Adam optimizer on pairs made from the originals and
   those predictions (:mod:`isonet.refine.pairs`); with ``refresh_batch_norm``
   (the halves method's default) re-estimate the batch normalisation
   statistics from training inputs
   (:func:`isonet.network.runtime.refresh_batch_norm`) -> ``model_iter{it}.h5``;
4. write ``refine_iter{it}.json`` (all settings, losses, timings).

After the last iteration the subtomograms are predicted once more
(``<root>_iter{iterations}.mrc``) unless ``remove_intermediate``. Only the
newest ``keep_last`` sets of predictions stay on disk, and predictions whose
network and inputs are unchanged are reused, not made again
(:mod:`isonet.refine.intermediate`). Progress: :mod:`isonet.refine.progress`.

The network is loaded once per run (``model_iter{start-1}.h5``; for a new run
a new network saved as ``model_iter00.h5``, or ``--pretrained_model``) and
compiled once: later iterations continue with the same model, whose weights
are those just saved, and restart its optimizer in place (see
:func:`restart_training`), so Keras traces its train and validation functions
once per run instead of once per iteration. Subtomograms are predicted through
:class:`isonet.network.runtime.Network` (one fixed-shape graph per input size).
Every random choice of iteration ``it`` derives from ``(seed, it)``, dropout
masks included, so ``--continue_from`` reproduces an uninterrupted run.
"""

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from isonet.devices import import_tensorflow, select_strategy
from isonet.errors import IsonetError, UsageError
from isonet.io.mrc import read_volume, write_volume
from isonet.io.paths import file_root, rename_aside
from isonet.io.star import SUBTOMO_REQUIRED, read_star, resolve_path, tilt_range
from isonet.log import progress
from isonet.network.runtime import Network, load, precision_policy, refresh_batch_norm, save
from isonet.normalize import normalize
from isonet.prefetch import read_ahead
from isonet.refine import method_hooks
from isonet.refine.config import iteration_json_path, load_state, save_state
from isonet.refine.intermediate import PredictionSet, prune_predictions
from isonet.refine.noise import NOISE_MODES, NoiseBank, noise_schedule
from isonet.refine.pairs import PairMaker, PairStream, calibration_batches, dump_pairs
from isonet.refine.progress import RunClock, training_progress
from isonet.refine.schedule import learning_rate_at
from isonet.refine.validate import validate_refine
from isonet.refine.wedge_ops import apply_wedge, wedge_masks

log = logging.getLogger("isonet")

_SALT_SUBSET, _SALT_TF, _SALT_DROPOUT = 11, 12, 13


def model_path(result_dir, iteration):
    """``<result_dir>/model_iterNN.h5``."""
    return os.path.join(result_dir, f"model_iter{iteration:02d}.h5")


def prediction_path(result_dir, subtomo_path, iteration):
    """``<result_dir>/<root>_iterNN.mrc`` (root = file name without its extension)."""
    return os.path.join(result_dir, f"{file_root(subtomo_path)}_iter{iteration:02d}.mrc")


class Subtomograms:
    """Subtomogram files, tilt ranges and sizes from subtomo.star (crop and cube from the first row)."""

    def __init__(self, star_file):
        table = read_star(star_file, required=SUBTOMO_REQUIRED)
        if len(table) == 0:
            raise IsonetError(f"{star_file}: no subtomograms listed")
        self.paths = [resolve_path(p, star_file) for p in table["rlnImageName"]]
        self.tilt_ranges = [tilt_range(row) for _, row in table.iterrows()]
        self.crop_size = int(table["rlnCropSize"].iloc[0])
        self.cube_size = int(table["rlnCubeSize"].iloc[0])
        roots = [file_root(p) for p in self.paths]
        if len(set(roots)) != len(roots):
            raise IsonetError(f"{star_file}: subtomogram file names must be unique (outputs are named after them)")
        if not 0 < self.cube_size <= self.crop_size:
            raise IsonetError(f"{star_file}: rlnCubeSize {self.cube_size} must be in 1..rlnCropSize "
                              f"({self.crop_size})")

    def __len__(self):
        return len(self.paths)


def _seed_for(seed, iteration, salt):
    return int(np.random.default_rng([seed, iteration, salt]).integers(2 ** 31))


def _keras():
    import_tensorflow()
    import keras
    return keras


def compile_for_training(model, strategy, learning_rate, loss="mae"):
    """Compile ``model`` as IsoNet 1 does (Adam, MAE loss, MSE and MAE metrics) and build the optimizer.

    Parameters
    ----------
    model : keras.Model
        The U-Net, built or loaded inside ``strategy.scope()``.
    strategy : tf.distribute.Strategy
        From :func:`isonet.devices.select_strategy`; the optimizer's variables are made in its scope.
    learning_rate : float
        Adam's learning rate.
    loss : str or callable
        ``"mae"`` (IsoNet 1, with its metrics) or a Keras loss of
        :mod:`isonet.refine.losses` (no metrics: its targets carry weights).

    Returns
    -------
    list of numpy.ndarray
        The optimizer's variables as built (zero moments, iteration 0, the
        learning rate; a loss scale under mixed_float16): the state of a fresh
        optimizer, for :func:`restart_training`.
    """
    keras = _keras()
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss,
                      metrics=["mse", "mae"] if loss == "mae" else None)
        model.optimizer.build(model.trainable_variables)
    return [variable.numpy() for variable in model.optimizer.variables]


def _seed_generators(model):
    """The random states of ``model``'s layers (Dropout's ``seed_generator``)."""
    keras = _keras()
    return [value for layer in model.layers for value in vars(layer).values()
            if isinstance(value, keras.random.SeedGenerator)]


def restart_training(model, fresh_optimizer, seed, iteration, learning_rate=None):
    """Start iteration ``iteration`` of training ``model`` compiled by :func:`compile_for_training`.

    IsoNet 1 compiles a new Adam every iteration; restoring the optimizer's
    variables to ``fresh_optimizer`` gives the same state while keeping the
    traced Keras functions (tracing again costs 10-25 s per iteration on a
    CPU). The dropout layers' random states are set from ``(seed, iteration)``
    so that a run resumed with ``--continue_from`` (a freshly loaded model)
    draws the same masks as an uninterrupted one.

    Parameters
    ----------
    model : keras.Model
        Compiled by :func:`compile_for_training`; its weights are kept.
    fresh_optimizer : list of numpy.ndarray
        Returned by :func:`compile_for_training`.
    seed, iteration : int
        Run seed and iteration number (1-based).
    learning_rate : float, optional
        This iteration's rate (:func:`isonet.refine.schedule.learning_rate_at`); None keeps the compiled one.
    """
    for variable, value in zip(model.optimizer.variables, fresh_optimizer):
        variable.assign(value)
    if learning_rate is not None:
        model.optimizer.learning_rate.assign(learning_rate)
    generators = _seed_generators(model)
    seeds = np.random.default_rng([seed, iteration, _SALT_DROPOUT]).integers(2 ** 31, size=len(generators))
    for generator, layer_seed in zip(generators, seeds):
        generator.state.assign(np.array([layer_seed, 0], dtype=generator.state.dtype))


def predict_subtomograms(network, paths, out_paths, batch_size, percentile=True, desc="predicting"):
    """Predict whole subtomograms in batches (spec §3.4.9) and write them.

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
    """Iteration-0 subtomograms (spec §3.4.3): ``-normalize(wedge(normalize(-s)))``."""
    for path, out_path, tilts in zip(paths, out_paths, tilt_ranges):
        volume = normalize(-read_volume(path), percentile)
        filtered = apply_wedge(volume, wedge_masks(volume.shape, [tilts])[0])
        write_volume(out_path, -normalize(filtered, percentile), like=path)


class _Pictures:
    """Loss curves and before/after snapshots, if :mod:`isonet.evaluation.pictures` is available."""

    def __init__(self):
        self.warned = False

    def __call__(self, function_name, *args, **kwargs):
        try:
            from isonet.evaluation import pictures
            getattr(pictures, function_name)(*args, **kwargs)
        except Exception as exc:  # pictures are a convenience: never stop training for them
            if not self.warned:
                log.warning("Pictures not written (%s: %s)", type(exc).__name__, exc)
                self.warned = True


def refine(config, continue_from=None, logical_cpus=0):
    """Run IsoNet 1's refine (spec §1.6, §3.4).

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
        ``noise_level``, ``seconds``).
    """
    history, start = [], 1
    if continue_from is not None:
        saved, iter_count, history = load_state(continue_from)
        config = config.continued_from(saved)
        start = iter_count + 1
    if not config.subtomo_star:
        raise UsageError("refine: SUBTOMO_STAR is required (or --continue_from a refine_iterNN.json)")
    if config.noise_mode not in NOISE_MODES:
        raise UsageError(f"--noise_mode: expected one of {', '.join(NOISE_MODES)}, got {config.noise_mode!r}")
    schedule = noise_schedule(config.iterations, config.noise_level, config.noise_start_iter)
    subtomos = Subtomograms(config.subtomo_star)
    validate_refine(config, subtomos, continue_from)
    halves = method_hooks.prepare(config)  # --method isonet2: the half subtomograms, else None
    if halves is not None and any(level > 1e-7 for level in schedule[1:]):
        log.info("Halves method: no noise is added (--noise_level/--noise_start_iter are IsoNet 1's); the "
                 "independent noise of the two halves teaches the network to denoise")
    keras = _keras()
    strategy, n_replicas = select_strategy(config.gpuID, logical_cpus=logical_cpus)
    import tensorflow as tf
    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    policy = precision_policy(config.mixed_precision, on_gpu)
    config.resolve(len(subtomos), n_replicas)
    if start > config.iterations:
        raise UsageError(f"--iterations {config.iterations}: {continue_from} already finished iteration "
                         f"{start - 1}; ask for more iterations to continue")
    result_dir = config.result_dir
    pretrained = config.pretrained_model if continue_from is None else None
    if continue_from is None:
        rename_aside(result_dir)
        os.makedirs(result_dir)
    elif not os.path.isfile(model_path(result_dir, start - 1)):
        raise IsonetError(f"--continue_from: {model_path(result_dir, start - 1)} not found")
    log.info("Refine: %d subtomograms (crop %d, cube %d), iterations %d..%d, batch %d, %d steps x %d epochs, "
             "%d device(s), %s, seed %d", len(subtomos), subtomos.crop_size, subtomos.cube_size, start,
             config.iterations, config.batch_size, config.steps_per_epoch, config.epochs, n_replicas, policy,
             config.seed)
    pictures = _Pictures()
    n_used = config.select_subtomo_number or len(subtomos)
    settings = {"method": config.method, "normalize_percentile": config.normalize_percentile, "precision": policy,
                "subtomo_star": [os.path.abspath(config.subtomo_star), os.stat(config.subtomo_star).st_size,
                                 os.stat(config.subtomo_star).st_mtime_ns]}

    def set_paths(number):
        """Every file prediction set ``number`` may hold (all subtomograms, both halves)."""
        if halves is not None:
            return method_hooks.previous_paths(halves, range(len(subtomos)), result_dir, number)
        return [prediction_path(result_dir, p, number) for p in subtomos.paths]

    def predict_set(number, rows):
        """Prediction set ``number`` of the subtomograms ``rows`` by ``network`` (see intermediate)."""
        record = PredictionSet(result_dir, number, model_path(result_dir, number), settings)
        if halves is not None:
            jobs = [(int(i), list(zip((halves.paths[0][i], halves.paths[1][i]),
                                      method_hooks.previous_paths(halves, [i], result_dir, number))))
                    for i in rows]
            record.predict_missing(jobs, lambda todo: method_hooks.predict_halves(
                network.predict, halves, todo, result_dir, number, config.batch_size))
        else:
            jobs = [(int(i), [(subtomos.paths[i], prediction_path(result_dir, subtomos.paths[i], number))])
                    for i in rows]
            record.predict_missing(jobs, lambda todo: predict_subtomograms(
                network, [subtomos.paths[i] for i in todo],
                [prediction_path(result_dir, subtomos.paths[i], number) for i in todo],
                config.batch_size, config.normalize_percentile, desc=f"predicting iter{number:02d}"))

    model = network = None
    clock = RunClock(start, config.iterations)
    for iteration in range(start, config.iterations + 1):
        clock.start(iteration)
        keras.utils.set_random_seed(_seed_for(config.seed, iteration, _SALT_TF))
        used = np.sort(np.random.default_rng([config.seed, iteration, _SALT_SUBSET])
                       .choice(len(subtomos), size=n_used, replace=False))
        originals = [subtomos.paths[i] for i in used]
        tilts = [subtomos.tilt_ranges[i] for i in used]
        previous = [prediction_path(result_dir, p, iteration - 1) for p in originals]
        seconds = {}

        started = time.perf_counter()
        if model is None:
            with strategy.scope():
                if iteration == 1 and pretrained is None:
                    from isonet.network.unet import build_unet
                    save(build_unet(**config.network_options()), model_path(result_dir, 0))
                elif pretrained is not None:
                    save(load(pretrained), model_path(result_dir, iteration - 1))
                model = load(model_path(result_dir, iteration - 1), policy)
            network = Network(model, strategy, n_replicas)
            if subtomos.cube_size % network.size_multiple:
                raise IsonetError(f"{config.subtomo_star}: rlnCubeSize {subtomos.cube_size} must be a multiple "
                                  f"of {network.size_multiple} for this network")
            fresh_optimizer = compile_for_training(model, strategy, config.learning_rate,
                                                   method_hooks.loss(config, subtomos.cube_size))

        rate = learning_rate_at(iteration, config.iterations, config.learning_rate, config.final_learning_rate)
        restart_training(model, fresh_optimizer, config.seed, iteration, rate)
        if config.final_learning_rate != config.learning_rate:
            log.info("Learning rate %.3g", rate)
        filled = not (iteration == 1 and pretrained is None)  # a network predicted the previous iteration
        if halves is not None:
            if filled:
                predict_set(iteration - 1, used)
            previous = method_hooks.previous_paths(halves, used, result_dir, iteration - 1)
        elif iteration == 1 and pretrained is None:
            write_wedge_filtered(originals, previous, tilts, config.normalize_percentile)
        else:
            predict_set(iteration - 1, used)
        pretrained = None
        seconds["predicting"] = time.perf_counter() - started

        level = schedule[iteration] if halves is None else 0.0  # halves: the other half's noise denoises
        if halves is None:  # the halves method said once at the start that it adds no noise
            log.info("Noise level: %g", level)
        banks = None
        if level > 1e-7:
            banks = {r: NoiseBank(config.noise_dir, subtomos.cube_size, r, config.noise_mode, config.seed)
                     for r in set(tilts)}
        if halves is None and not config.uses_variants():
            maker = PairMaker(originals, previous, tilts, subtomos.cube_size, level, banks,
                              config.normalize_percentile, config.seed, iteration)
        else:
            maker = method_hooks.pair_maker(config, halves, used, originals, previous, tilts, subtomos.cube_size,
                                            level, banks, result_dir if filled else None, iteration)
        stream = PairStream(maker, n_replicas, config.batch_size, config.preprocessing_ncpus)
        try:
            if config.data_dir:
                dump_pairs(maker, stream, os.path.join(config.data_dir, f"iter{iteration:02d}"))
            started = time.perf_counter()
            train, validation = stream.datasets()
            seconds["validation_pairs"] = time.perf_counter() - started
            log.info("Pairs: %d training, %d validation (made in memory)", stream.n_train, stream.n_test)
            timer = training_progress(iteration, config.iterations)
            log.info("Start training")
            started = time.perf_counter()
            fitted = model.fit(train, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                               validation_data=validation,
                               validation_steps=max(1, math.ceil(0.1 * config.steps_per_epoch)),
                               shuffle=False, callbacks=[timer], verbose=0)
            seconds["training"] = time.perf_counter() - started
        finally:
            stream.close()
        seconds["pairs"] = maker.busy_seconds
        seconds["step_median"] = float(np.median(timer.step_seconds)) if timer.step_seconds else 0.0
        if config.refresh_batch_norm:
            started = time.perf_counter()
            refresh_batch_norm(model, calibration_batches(maker, config.batch_size))
            seconds["refresh_batch_norm"] = time.perf_counter() - started
        save(model, model_path(result_dir, iteration))
        method_hooks.write_model_info(config, model_path(result_dir, iteration))
        newest = iteration - 1
        if iteration == config.iterations and not config.remove_intermediate:
            started = time.perf_counter()
            predict_set(iteration, used)
            seconds["final_predicting"] = time.perf_counter() - started
            newest = iteration
        entry = {"iteration": iteration, "loss": [float(v) for v in fitted.history["loss"]],
                 "val_loss": [float(v) for v in fitted.history.get("val_loss", [])],
                 "noise_level": level, "learning_rate": rate,
                 "seconds": {k: round(v, 4) for k, v in seconds.items()}}
        history.append(entry)
        save_state(iteration_json_path(result_dir, iteration), config, iteration, history)
        eta = clock.done(iteration)
        log.info("iteration %d/%d done: loss %.4f, val_loss %.4f; seconds: pairs %.1f (threads), training %.1f, "
                 "predicting %.1f, median step %.3f%s", iteration, config.iterations, entry["loss"][-1],
                 entry["val_loss"][-1] if entry["val_loss"] else float("nan"), seconds["pairs"],
                 seconds["training"], seconds["predicting"], seconds["step_median"],
                 "; " + eta if eta else "")
        if config.remove_intermediate:
            prune_predictions(set_paths, iteration, 1, result_dir)  # the set just used; no final set is made
        else:
            prune_predictions(set_paths, newest, config.keep_last, result_dir)
        changes = [h["iteration"] for a, h in zip(history, history[1:]) if h["noise_level"] != a["noise_level"]]
        pictures("plot_loss_curves", history, os.path.join(result_dir, "loss.png"), noise_changes=changes)
        _snapshot(pictures, network, originals[0], result_dir, iteration, config.normalize_percentile)
        from isonet.evaluation.report import refresh_report  # evaluation layer, imported late like the pictures
        refresh_report(result_dir)
    del model, network
    keras.backend.clear_session()  # frees the model and its traced functions for the caller
    log.info("Refine finished: %s", result_dir)
    return history


def _snapshot(pictures, network, path, result_dir, iteration, percentile):
    """``snapshot_iterNN.png``: one subtomogram before and after the network of this iteration, and the difference.

    The network works on negated volumes (density positive); both are drawn negated back, as in the file.
    """
    try:
        volume = normalize(-read_volume(path), percentile)
        output = network.predict(volume[None])[0]
    except Exception as exc:  # a picture must never stop training
        log.warning("Snapshot not made (%s)", exc)
        return
    pictures("save_snapshot", [-volume, -output], os.path.join(result_dir, f"snapshot_iter{iteration:02d}.png"),
             labels=["subtomogram", f"iteration {iteration}"], difference=True,
             contrast="as in the subtomogram file (density dark for tomograms as IMOD writes them), each row "
                      "between its 1st and 99th percentiles")

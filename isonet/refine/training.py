"""One iteration's training of refine: the network, its optimizer restarted, and ``fit`` on the streamed pairs.

The network is loaded once per run (``model_iter{start-1}.h5``; for a new run
a new network saved as ``model_iter00.h5``, or ``--pretrained_model``) and
compiled once: later iterations continue with the same model, whose weights
are those just saved, and restart its optimizer in place
(:func:`restart_training`), so Keras traces its train and validation
functions once per run instead of once per iteration.
"""

import logging
import math
import os
import time

import numpy as np

from isonet.devices import import_tensorflow
from isonet.errors import IsonetError
from isonet.network.runtime import load, save
from isonet.refine.outputs import model_path
from isonet.refine.pairs import PairStream, dump_pairs
from isonet.refine.progress import training_progress

log = logging.getLogger("isonet")

_SALT_DROPOUT = 13


def import_keras():
    """Keras, imported after TensorFlow's CPU settings (:func:`isonet.devices.import_tensorflow`)."""
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
    keras = import_keras()
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss,
                      metrics=["mse", "mae"] if loss == "mae" else None)
        model.optimizer.build(model.trainable_variables)
    return [variable.numpy() for variable in model.optimizer.variables]


def _seed_generators(model):
    """The random states of ``model``'s layers (Dropout's ``seed_generator``)."""
    keras = import_keras()
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


def open_network(config, machines, policy, iteration, pretrained, cube_size, loss):
    """The model trained from iteration ``iteration`` on, compiled, and the :class:`Network` that predicts with it.

    Parameters
    ----------
    config : isonet.refine.config.RefineConfig
        Resolved settings (network shape, learning rate, result_dir).
    machines : isonet.refine.workers.OneMachine or isonet.refine.workers.Workers
        Where the run trains (:func:`isonet.refine.workers.start_workers`).
    policy : str
        Keras precision policy.
    iteration : int
        First iteration of this run: the model is ``model_iter{iteration-1}.h5``, written first for a new
        network (iteration 1) or from ``pretrained``.
    pretrained : str or None
        ``--pretrained_model``, for a new run.
    cube_size : int
        Training cube edge (must fit the network's down-sampling).
    loss : str or callable
        The method's loss.

    Returns
    -------
    model : keras.Model
    network : isonet.network.runtime.Network
    fresh_optimizer : list of numpy.ndarray
        For :func:`restart_training`.
    """
    start_file = model_path(config.result_dir, iteration - 1)
    model, network = machines.open_model(lambda: _write_start_model(config, iteration, pretrained, start_file),
                                         start_file, policy)
    if cube_size % network.size_multiple:
        raise IsonetError(f"{config.subtomo_star}: rlnCubeSize {cube_size} must be a multiple of "
                          f"{network.size_multiple} for this network")
    return model, network, compile_for_training(model, machines.strategy, config.learning_rate, loss)


def _write_start_model(config, iteration, pretrained, start_file):
    """Write ``model_iter{iteration-1}.h5`` of a new run: a new network, or ``pretrained``."""
    if iteration == 1 and pretrained is None:
        from isonet.network.unet import build_unet
        save(build_unet(**config.network_options()), start_file)
    elif pretrained is not None:
        save(load(pretrained), start_file)


def _dump_every_pair(maker, stream, n_replicas, folder):
    """``--data_dir``: every pair of the iteration, also those of the other workers' shares of ``stream``."""
    whole = stream if stream.share[1] == 1 else PairStream(maker, n_replicas, stream.batch_size, stream.workers)
    try:
        dump_pairs(maker, whole, folder)
    finally:
        if whole is not stream:
            whole.close()


def fit_iteration(model, maker, config, machines, iteration, seconds):
    """Train ``model`` for one iteration on the pairs of ``maker``, streamed; returns Keras's history dict.

    ``seconds`` (a dict) receives the times of the validation pairs, the training, the pair making
    (threads) and the median step. With ``--data_dir`` every pair is written first (by the chief).
    On several ``machines`` (:class:`isonet.refine.workers.Workers`) each streams its share of the pairs in
    batches of its devices' share of ``--batch_size``.
    """
    share = (machines.index, machines.count)
    stream = PairStream(maker, machines.n_replicas, config.batch_size, config.preprocessing_ncpus, share)
    try:
        if config.data_dir and machines.chief:
            _dump_every_pair(maker, stream, machines.n_replicas,
                             os.path.join(config.data_dir, f"iter{iteration:02d}"))
        started = time.perf_counter()
        train, validation = machines.datasets(stream, config.batch_size)
        seconds["validation_pairs"] = time.perf_counter() - started
        log.info("Pairs: %d training, %d validation (made in memory)", stream.n_train, stream.n_test)
        timer = training_progress(iteration, config.iterations)
        log.info("Start training")
        started = time.perf_counter()
        with machines.fit_scope():
            fitted = model.fit(train, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                               validation_data=validation,
                               validation_steps=max(1, math.ceil(0.1 * config.steps_per_epoch)),
                               shuffle=False, callbacks=[timer], verbose=0)
        seconds["training"] = time.perf_counter() - started
    finally:
        stream.close()
    seconds["pairs"] = maker.busy_seconds
    seconds["step_median"] = float(np.median(timer.step_seconds)) if timer.step_seconds else 0.0
    return fitted.history

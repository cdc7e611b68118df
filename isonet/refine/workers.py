"""Where refine runs: one machine (:class:`OneMachine`) or several (:class:`Workers`), behind one interface.

:func:`start_workers` picks the variant. On several machines there is one worker
process per machine, trained through ``MultiWorkerMirroredStrategy``.

A run has several workers when it is started with a ``TF_CONFIG`` listing
several tasks, or by ``srun`` over several SLURM tasks (``SLURM_NTASKS`` > 1
inside a job step). Every worker trains the same network on its own share
of the training pairs; the gradients are summed across workers each step.

Only the chief (task 0) writes files: the result folder, models, prediction
sets, state, pictures and report. The others read the chief's files (on a
shared file system) after a :meth:`Workers.barrier`, a collective that
every worker calls in the same order. Between iterations the chief alone
predicts, with the trained weights but without the strategy, since a
distributed prediction is a collective the other workers would have to join.

A worker that dies makes the collectives of the others fail after
:data:`PEER_TIMEOUT_SECONDS` at most; :meth:`Workers.lost` turns that
error into one message naming the lost worker.
"""

import contextlib
import json
import logging
import os
import re

from isonet.devices import choose_gpus, import_tensorflow, select_strategy
from isonet.errors import IsonetError, UsageError
from isonet.network.runtime import Network, load

log = logging.getLogger("isonet")

#: Seconds a collective waits for a silent peer before failing (the whole run then stops).
PEER_TIMEOUT_SECONDS = 60
#: How TensorFlow names a task in its errors, e.g. ``/job:worker/replica:0/task:1``.
_TASK_NAME = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def worker_task(environ=None):
    """``(index, count, launcher)`` of this process among refine's workers, read from the environment only.

    Index 0 is the chief (``TF_CONFIG``'s "chief" task if it has one, else worker 0; SLURM task 0).

    Parameters
    ----------
    environ : dict, optional
        Environment (``os.environ`` by default).

    Returns
    -------
    index : int
    count : int
        1 for a run on one machine.
    launcher : str or None
        ``"tf_config"``, ``"slurm"`` or None (one worker).

    Raises
    ------
    UsageError
        ``TF_CONFIG`` is not valid JSON or does not name this task.
    """
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG", "").strip():
        try:
            config = json.loads(environ["TF_CONFIG"])
            cluster, task = config.get("cluster", {}), config["task"]
            chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
            index = int(task["index"]) + (chiefs if task["type"] == "worker" else 0)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"TF_CONFIG: expected JSON with 'cluster' and 'task' (type, index) ({exc})") from None
        if chiefs + workers > 1:
            return index, chiefs + workers, "tf_config"
    if int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_STEP_ID" in environ:
        return int(environ.get("SLURM_PROCID", "0")), int(environ["SLURM_NTASKS"]), "slurm"
    return 0, 1, None


def is_chief(environ=None):
    """Whether this process writes refine's files (always, on one machine)."""
    return worker_task(environ)[0] == 0


def start_workers(gpu_ids=None, logical_cpus=0):
    """The machines of this run: :class:`Workers` when several are listed (:func:`worker_task`), else
    :class:`OneMachine`. Call it before any other TensorFlow work: several workers' strategy must come
    first; one machine's is made by its ``choose_devices``, once the inputs are checked.

    Parameters
    ----------
    gpu_ids : list of int or None
        ``--gpuID`` (:func:`isonet.devices.select_strategy`).
    logical_cpus : int
        One machine without GPUs: split the CPU into this many devices (tests of the multi-device path).
    """
    index, count, launcher = worker_task()
    if count == 1:
        return OneMachine(gpu_ids, logical_cpus)
    return Workers.start(gpu_ids, index, count, launcher)


class OneMachine:
    """Refine on one machine (one device or several, mirrored): this process writes every file.

    The interface of :class:`Workers`; here the barrier has nobody to wait for and no peer can be lost.

    Parameters
    ----------
    gpu_ids, logical_cpus :
        For :func:`isonet.devices.select_strategy`, called by :meth:`choose_devices`.
    """

    index, count, chief = 0, 1, True

    def __init__(self, gpu_ids=None, logical_cpus=0):
        self._devices = (gpu_ids, logical_cpus)
        self.strategy, self.n_replicas = None, None

    def choose_devices(self):
        """Make the strategy over this machine's devices (:func:`isonet.devices.select_strategy`): after the
        inputs are checked, before TensorFlow lists its devices."""
        gpu_ids, logical_cpus = self._devices
        self.strategy, self.n_replicas = select_strategy(gpu_ids, logical_cpus=logical_cpus)

    def describe(self):
        """What the run log adds to the device count (nothing on one machine)."""
        return ""

    def barrier(self):
        """Nothing to wait for."""

    def failures(self):
        """No collective can lose a peer: an empty tuple (catches nothing)."""
        return ()

    def open_model(self, write_start_model, start_file, policy):
        """``(model, network)``: ``write_start_model()`` writes ``start_file``, loaded in the strategy's scope."""
        with self.strategy.scope():
            write_start_model()
            model = load(start_file, policy)
        return model, Network(model, self.strategy, self.n_replicas)

    def datasets(self, stream, batch_size):
        """The training and validation datasets of ``stream`` (:class:`isonet.refine.pairs.PairStream`)."""
        return stream.datasets()

    def fit_scope(self):
        """The context ``fit`` runs in."""
        return contextlib.nullcontext()


class Workers:
    """This process among refine's several workers: who writes, the barrier, and what a lost peer means.

    Parameters
    ----------
    strategy : tf.distribute.MultiWorkerMirroredStrategy
    index, count : int
        From :func:`worker_task`.
    """

    def __init__(self, strategy, index, count):
        self.strategy = strategy
        self.index, self.count = int(index), int(count)
        self.chief = self.index == 0
        self._barrier = None

    @classmethod
    def start(cls, gpu_ids, index, count, launcher):
        """Make the strategy of a multi-worker run, before any other TensorFlow work (:func:`worker_task`'s
        ``index``, ``count`` and ``launcher``)."""
        tf = import_tensorflow()
        choose_gpus(gpu_ids)  # before the strategy starts TensorFlow's runtime, which fixes the devices
        resolver = (tf.distribute.cluster_resolver.SlurmClusterResolver() if launcher == "slurm"
                    else tf.distribute.cluster_resolver.TFConfigClusterResolver())
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=PEER_TIMEOUT_SECONDS)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                             communication_options=options)
        log.info("Refine worker %d of %d (%s): devices %s", index, count, launcher,
                 ", ".join(strategy.extended.worker_devices))
        return cls(strategy, index, count)

    @property
    def n_replicas(self):
        """Devices over all workers (the global batch is split between them)."""
        return self.strategy.num_replicas_in_sync

    def choose_devices(self):
        """Nothing: the strategy of several workers was made first (:meth:`start`)."""

    def describe(self):
        """What the run log adds to the device count."""
        return f" on {self.count} workers (this is worker {self.index})"

    def barrier(self):
        """Return once every worker has called it (a tiny all-reduce)."""
        if self._barrier is None:
            tf, strategy = import_tensorflow(), self.strategy
            self._barrier = tf.function(lambda: strategy.reduce(
                "SUM", strategy.run(lambda: tf.constant(1.0)), axis=None))
        self._barrier()

    def failures(self):
        """The TensorFlow errors a lost peer causes in a collective (for ``except``)."""
        errors = import_tensorflow().errors
        return (errors.UnavailableError, errors.DeadlineExceededError, errors.CancelledError, errors.AbortedError)

    def lost(self, error, continue_from):
        """The one-line error of a collective failed by a lost peer.

        Parameters
        ----------
        error : Exception
            One of :meth:`failures`.
        continue_from : str or None
            The last finished iteration's ``refine_iterNN.json``, if any.

        Returns
        -------
        IsonetError
        """
        own = f"task:{self.index}"
        names = sorted({f"/job:{job}/replica:0/task:{task}" for job, task in _TASK_NAME.findall(str(error))
                        if f"task:{task}" != own})
        peers = ", ".join(names) or "another worker"
        resume = (f"resubmit the job with --continue_from {continue_from}" if continue_from
                  else "resubmit the job (no iteration finished yet)")
        return IsonetError(f"refine worker {self.index} of {self.count}: lost worker {peers} "
                           f"({type(error).__name__}); {resume}")

    def open_model(self, write_start_model, start_file, policy):
        """``(model, network)``: the chief writes ``start_file`` and every worker loads it; the network predicts
        on this worker's devices only (a distributed prediction would be a collective the others must join)."""
        if self.chief:  # outside the strategy: its variables would be collectives the others do not join
            write_start_model()
        self.barrier()
        with self.strategy.scope():
            model = load(start_file, policy)
        _fit_across_workers(model)
        return model, Network(model, import_tensorflow().distribute.get_strategy(), 1)

    def datasets(self, stream, batch_size):
        """This worker's shares of the training and validation pairs, in batches of its devices' share of
        ``batch_size`` (the global batch)."""
        strategy = self.strategy
        return tuple(strategy.distribute_datasets_from_function(
            lambda context, make=make: make(context.get_per_replica_batch_size(batch_size)))
            for make in (stream.training_set, stream.validation_set))

    def fit_scope(self):
        """The context ``fit`` runs in: the strategy's."""
        return self.strategy.scope()


def _fit_across_workers(model):
    """Let Keras 3 (3.15) ``fit`` ``model`` under MultiWorkerMirroredStrategy, called in the strategy's scope.

    Two of its steps fail there: the model's build from a first batch averages the batch across workers
    (``strategy.reduce`` of a tuple of tensors), skipped for a model without its own strategy, which then
    uses the one in scope; and the logs of each step are averaged with ``axis=0``, which needs vectors.
    """
    tf = import_tensorflow()

    def as_vectors(step):
        return lambda data: {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    model.train_step, model.test_step = as_vectors(model.train_step), as_vectors(model.test_step)
    model._distribute_strategy = None

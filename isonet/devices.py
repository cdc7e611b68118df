"""Choosing the devices TensorFlow trains and predicts on.

``--gpuID`` selects GPUs by their CUDA index; several GPUs are used through
``tf.distribute.MirroredStrategy``. Without a GPU the work runs on the CPU
with a warning. Import of TensorFlow is deferred to the call.

:func:`set_cpu_defaults` runs when :mod:`isonet` is imported, before any
TensorFlow import: TensorFlow's wheels enable oneDNN only on CPUs with
AVX-512 features, and without it a training step on an AVX2 CPU is 5-6x
slower (docs/benchmarks.md).
"""

import logging
import os

from isonet.errors import IsonetError

log = logging.getLogger("isonet")

#: Environment variable that switches TensorFlow's oneDNN CPU kernels on ("1") or off ("0").
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
#: CPU instruction-set flags worth reporting (Linux /proc/cpuinfo names).
CPU_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def set_cpu_defaults(environ=None):
    """Turn TensorFlow's oneDNN CPU kernels on unless the user has chosen (``TF_ENABLE_ONEDNN_OPTS``).

    Must run before TensorFlow is first imported; it has no effect afterwards.
    The user's own setting, ``0`` included, is always kept.

    Parameters
    ----------
    environ : dict, optional
        Environment to update (``os.environ`` by default).

    Returns
    -------
    bool
        True if this call set the variable.
    """
    environ = os.environ if environ is None else environ
    if ONEDNN_VARIABLE in environ:
        return False
    environ[ONEDNN_VARIABLE] = "1"
    return True


def onednn_enabled(environ=None):
    """Whether oneDNN is on for this process, as TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS``."""
    value = (os.environ if environ is None else environ).get(ONEDNN_VARIABLE, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def cpu_description(cpuinfo="/proc/cpuinfo"):
    """``(model name, [reported features present])`` of this machine's CPU (empty where unknown)."""
    name, flags = "", set()
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, [feature for feature in CPU_FEATURES if feature in flags]


def cpu_bfloat16_supported(environ=None, features=None):
    """Whether TensorFlow can compute in bfloat16 on this CPU.

    Eigen's kernels (oneDNN off) handle bfloat16 on any CPU; oneDNN needs at
    least AVX-512 (F and BW) and refuses bfloat16 convolutions below it
    ("could not create a primitive descriptor"), also when ``ONEDNN_MAX_CPU_ISA``
    limits it to AVX2.
    """
    environ = os.environ if environ is None else environ
    if not onednn_enabled(environ):
        return True
    limit = environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit and not limit.startswith(("AVX512", "AVX10", "ALL", "DEFAULT")):
        return False
    features = cpu_description()[1] if features is None else features
    return "avx512f" in features and "avx512bw" in features


def available_cpus():
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def import_tensorflow(debug=False):
    """Import TensorFlow quietly (its C++ INFO lines are noise for users) and return it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise IsonetError(f"TensorFlow cannot be imported ({exc}); run 'pip install tensorflow'") from exc
    return tf


def select_strategy(gpu_ids=None, logical_cpus=0):
    """Make the visible GPUs those of ``gpu_ids`` and return a distribution strategy.

    Parameters
    ----------
    gpu_ids : list of int or None
        CUDA indices (PCI bus order). ``None``: every GPU present; ``[]``: CPU only.
    logical_cpus : int
        If > 1 and no GPU is used, split the CPU into this many logical devices
        and mirror over them (to exercise the multi-device path without GPUs).

    Returns
    -------
    strategy : tf.distribute.Strategy
        MirroredStrategy for several devices, the default strategy otherwise.
    n_replicas : int
        Number of devices the batch is split over.

    Raises
    ------
    IsonetError
        A requested GPU id does not exist.
    """
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpu_ids is None:
        chosen = gpus
    else:
        missing = [i for i in gpu_ids if i >= len(gpus)]
        if missing:
            raise IsonetError(f"--gpuID {','.join(map(str, gpu_ids))}: GPU(s) {missing} not found; "
                              f"TensorFlow sees {len(gpus)} GPU(s)")
        chosen = [gpus[i] for i in gpu_ids]
    try:
        tf.config.set_visible_devices(chosen, "GPU")
        for gpu in chosen:
            tf.config.experimental.set_memory_growth(gpu, True)
        if not chosen and logical_cpus > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)])
    except RuntimeError as exc:  # devices were initialised earlier in this process
        log.debug("device configuration unchanged: %s", exc)
    if chosen:
        names = [d.name for d in tf.config.list_logical_devices("GPU")]
    else:
        where = f"{available_cpus()} CPU cores, oneDNN {'on' if onednn_enabled() else 'off'}"
        if gpu_ids != []:
            log.warning("No GPU found: running on the CPU (%s; much slower, fine for small tests)", where)
        else:
            log.info("Running on the CPU (%s)", where)
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(names) > 1:
        strategy = tf.distribute.MirroredStrategy(devices=names)
    else:
        strategy = tf.distribute.get_strategy()
    log.info("Devices: %s", ", ".join(names))
    return strategy, max(1, len(names))

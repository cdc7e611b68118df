"""Choosing the devices TensorFlow trains and predicts on.

``--gpuID`` selects GPUs by their CUDA index; several GPUs are used through
``tf.distribute.MirroredStrategy``. Without a GPU the work runs on the CPU
with a warning. Import of TensorFlow is deferred to the call.

:func:`set_cpu_defaults` runs when :mod:`isonet` is imported, before any
TensorFlow import: TensorFlow's wheels enable oneDNN only on CPUs with
AVX-512 features, and without it a training step on an AVX2 CPU is 5-6x
slower (docs/benchmarks.md).

:func:`import_tensorflow` keeps TensorFlow's start-up chatter off stderr:
its C++ library prints INFO lines before its log level applies, and on a
machine without an NVIDIA GPU an ``E0000 ... failed call to cuInit`` line
that looks like a failure. Those lines are dropped; every other line is
passed on, and with ``TF_CPP_MIN_LOG_LEVEL=0`` (``--log_level debug``)
everything is.
"""

import contextlib
import glob
import logging
import os
import re
import sys
import tempfile

from isonet.errors import IsonetError

log = logging.getLogger("isonet")

#: Environment variable that switches TensorFlow's oneDNN CPU kernels on ("1") or off ("0").
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
#: CPU instruction-set flags worth reporting (Linux /proc/cpuinfo names).
#: TensorFlow start-up lines that are information only (they ignore TF_CPP_MIN_LOG_LEVEL).
STARTUP_NOISE = re.compile(r"All log messages before absl::InitializeLog\(\) is called|"
                           r"oneDNN custom operations are on|cpu_feature_guard\.cc|"
                           r"^To enable the following instructions")
#: Lines about CUDA, noise on a machine that has no NVIDIA GPU (cudart_stub, cuInit, cuDNN/cuFFT/cuBLAS factories).
CUDA_NOISE = re.compile(r"cuda|cuInit|cuDNN|cuFFT|cuBLAS|GPU will not be used", re.IGNORECASE)
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


def nvidia_gpu_visible(environ=None, device_glob="/dev/nvidia[0-9]*"):
    """Whether this process may see an NVIDIA GPU: a GPU device file exists and CUDA_VISIBLE_DEVICES allows one.

    WSL's ``/dev/dxg`` counts as a GPU device. ``CUDA_VISIBLE_DEVICES`` set to
    '' or '-1' hides every GPU.
    """
    environ = os.environ if environ is None else environ
    if environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    return bool(glob.glob(device_glob)) or os.path.exists("/dev/dxg")


def quiet_lines(text, gpu_visible):
    """``text`` (TensorFlow's start-up stderr) without the lines that are noise (see the module docstring)."""
    kept = [line for line in text.splitlines(keepends=True)
            if not STARTUP_NOISE.search(line) and (gpu_visible or not CUDA_NOISE.search(line))]
    return "".join(kept)


@contextlib.contextmanager
def _filtered_stderr(gpu_visible):
    """Capture file descriptor 2 (C++ libraries write there) in the block, then pass on what is not noise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = quiet_lines(captured.read().decode(errors="replace"), gpu_visible)
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def import_tensorflow(debug=False):
    """Import TensorFlow quietly (see the module docstring) and return it.

    The first call imports it and lists the devices (where CUDA initialises)
    with stderr filtered; TensorFlow's C++ log level is 2 unless set
    (0 with ``debug``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() not in ("", "0")
    try:
        with _filtered_stderr(nvidia_gpu_visible()) if quiet else contextlib.nullcontext():
            import tensorflow as tf
            tf.config.list_physical_devices()
    except ImportError as exc:
        raise IsonetError(f"TensorFlow cannot be imported ({exc}); run 'pip install tensorflow'") from exc
    return tf


def choose_gpus(gpu_ids=None):
    """Make the GPUs of ``gpu_ids`` the only visible ones (memory allocated as needed); returns them.

    Parameters
    ----------
    gpu_ids : list of int or None
        CUDA indices (PCI bus order). ``None``: every GPU present; ``[]``: CPU only.

    Returns
    -------
    list of tf.config.PhysicalDevice

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
    except RuntimeError as exc:  # devices were initialised earlier in this process
        log.debug("GPU configuration unchanged: %s", exc)
    return chosen


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
    chosen = choose_gpus(gpu_ids)
    try:
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

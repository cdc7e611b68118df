"""``check``: report versions and devices, and run a tiny Conv3D forward pass."""

import logging
import os
import platform
import time

import numpy as np

import isonet
from isonet.errors import IsonetError

log = logging.getLogger("isonet")


def check_installation():
    """Print versions of isonet and its main dependencies, the devices TensorFlow sees,
    and run a Conv3D forward pass on a 16^3 volume.

    Returns
    -------
    dict
        ``{'tensorflow', 'keras'`` (versions), ``'gpus'`` (count), ``'output_shape'``, ``'onednn'``
        (bool), ``'cpu_features'`` (list of str)``}``.

    Raises
    ------
    IsonetError
        TensorFlow or Keras cannot be imported, or the forward pass fails or
        gives a wrong result.
    """
    from importlib.metadata import version

    from isonet.devices import available_cpus, cpu_description, import_tensorflow, onednn_enabled

    tf = import_tensorflow()
    import keras

    log.info("isonet %s (python %s, %s)", isonet.__version__, platform.python_version(), os.path.dirname(isonet.__file__))
    log.info("tensorflow %s, keras %s (backend %s), numpy %s, scipy %s, mrcfile %s, starfile %s",
             tf.__version__, keras.__version__, keras.backend.backend(), np.__version__, version("scipy"),
             version("mrcfile"), version("starfile"))
    if keras.backend.backend() != "tensorflow":
        raise IsonetError(f"Keras backend is {keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow")
    cpus = tf.config.list_physical_devices("CPU")
    gpus = tf.config.list_physical_devices("GPU")
    log.info("TensorFlow sees %d CPU device(s) (%d cores) and %d GPU(s)%s", len(cpus), available_cpus(),
             len(gpus), (": " + ", ".join(g.name for g in gpus)) if gpus else "")
    cpu_name, features = cpu_description()
    log.info("CPU: %s; features: %s; oneDNN %s (TF_ENABLE_ONEDNN_OPTS=%s)", cpu_name or "unknown",
             ", ".join(features) or "none reported", "on" if onednn_enabled() else "OFF",
             os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"))
    if not onednn_enabled():
        log.warning("oneDNN is off: CPU training is several times slower (unset TF_ENABLE_ONEDNN_OPTS or set it to 1)")
    if not gpus:
        log.warning("No GPU visible to TensorFlow: refine and predict will run on the CPU (slow)")

    # A Conv3D whose kernel sums its 3x3x3 neighbourhood: interior voxels of a ones volume give 27.
    start = time.perf_counter()
    layer = keras.layers.Conv3D(1, 3, padding="same", use_bias=False, kernel_initializer="ones")
    output = np.asarray(layer(np.ones((1, 16, 16, 16, 1), dtype=np.float32)))
    seconds = time.perf_counter() - start
    if output.shape != (1, 16, 16, 16, 1) or not np.allclose(output[0, 1:-1, 1:-1, 1:-1, 0], 27.0):
        raise IsonetError(f"Conv3D smoke test gave a wrong result (shape {output.shape})")
    log.info("Conv3D forward pass on 16^3: OK (%.2f s)", seconds)
    log.info("isonet is ready")
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "gpus": len(gpus),
            "output_shape": output.shape, "onednn": onednn_enabled(), "cpu_features": features}

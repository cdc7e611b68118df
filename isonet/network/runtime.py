"""One model runtime for refine and predict: loading, precision, devices and fast inference.

:class:`Network` wraps a Keras U-Net for inference on batches of volumes
indexed ``[z, y, x]``. It replaces ``model.predict`` / ``predict_on_batch``,
which cost 3-4x the bare forward pass on small inputs (a new call setup per
batch, a generic-shape graph) and, under ``tf.distribute.MirroredStrategy``,
give *every* device the whole batch (Keras 3.15 returns ``n_devices`` copies
of the outputs), so several GPUs did not predict faster than one.

Here each input shape gets its own ``tf.function`` traced once with a fixed
signature, and with several devices the batch is split between them through
the strategy (``experimental_distribute_values_from_function`` and
``strategy.run``). A graph depends only on its input shape, never on what
was predicted before, so predictions are reproducible across processes
(``refine --continue_from`` stays bitwise exact).
"""

import logging

import numpy as np

from isonet.devices import cpu_bfloat16_supported, import_tensorflow

log = logging.getLogger("isonet")

#: Layers kept in float32 under a mixed policy: the 1x1x1 head and the residual sum (the output).
FLOAT32_TAIL = 2


def _keras():
    import_tensorflow()
    import keras
    return keras


class BatchStatistics:
    """Re-estimates the moving mean and variance of a model's BatchNormalization layers.

    Keras keeps moving averages of the training batches' statistics (momentum
    0.99: a memory of about 100 steps, starting from mean 0 and variance 1).
    With tens of steps per iteration and weights that still change fast they
    lag behind the network, which then computes something else in inference
    mode than in training: on the quality benchmark (50 steps per iteration) a
    network whose training loss was normal gave 70x too large outputs in
    inference mode, and the subtomograms it filled spoiled the following
    iterations (docs/quality.md). :meth:`refresh` makes each layer's moving
    statistics the mean of its batch statistics over some batches, from one
    forward pass per batch in training mode with dropout off (as in
    inference). The weights do not change.

    The forward pass is traced once per batch shape and kept for the model's
    later refreshes: run eagerly it costs 0.1-0.2 s per batch on a CPU. In the
    traced pass the layers' momentum is a variable, so that the k-th batch
    still gets weight 1/k.

    Parameters
    ----------
    model : keras.Model
        Single-channel cube-to-cube network.
    """

    def __init__(self, model):
        keras, tf = _keras(), import_tensorflow()
        self.model = model
        self.norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        self.drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        self._momentum = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self._training_pass = tf.function(self._forward)
        self._tf = tf

    def _forward(self, batch):
        return self.model(batch, training=True)

    def refresh(self, batches):
        """Set the moving statistics from ``batches``.

        Parameters
        ----------
        batches : iterable of ndarray, each (B, z, y, x)
            Training inputs, indexed ``[z, y, x]``.

        Returns
        -------
        int
            Number of batches used (0: the network has no BatchNormalization).
        """
        if not self.norms:
            return 0
        momenta, rates = [layer.momentum for layer in self.norms], [layer.rate for layer in self.drops]
        count = 0
        try:
            # What the pass is traced with: no dropout, and the momentum read from the variable.
            for layer in self.drops:
                layer.rate = 0.0
            for layer in self.norms:
                layer.momentum = self._momentum
            for count, batch in enumerate(batches, start=1):
                self._momentum.assign((count - 1.0) / count)  # running mean: the k-th batch gets weight 1/k
                self._training_pass(self._tf.constant(np.asarray(batch, dtype=np.float32)[..., None]))
        finally:
            for layer, momentum in zip(self.norms, momenta):
                layer.momentum = momentum
            for layer, rate in zip(self.drops, rates):
                layer.rate = rate
        return count


def precision_policy(mixed_precision, on_gpu):
    """Keras dtype policy: float32, or mixed_float16 (GPU) / mixed_bfloat16 (CPU).

    On a CPU where bfloat16 cannot run (oneDNN below AVX-512, see
    :func:`isonet.devices.cpu_bfloat16_supported`) the policy is float32, with a warning.
    """
    if not mixed_precision:
        return "float32"
    if on_gpu:
        return "mixed_float16"
    if not cpu_bfloat16_supported():
        log.warning("--mixed_precision: this CPU cannot compute in bfloat16 with oneDNN (needs AVX-512); "
                    "computing in float32")
        return "float32"
    return "mixed_bfloat16"


def with_precision(model, policy):
    """A copy of ``model`` computing under the Keras dtype ``policy`` (e.g. 'mixed_bfloat16').

    The last :data:`FLOAT32_TAIL` layers (head and residual sum) stay float32, so
    outputs are float32. Weights are copied. Call inside the strategy scope.
    ``policy == 'float32'`` on a float32 model returns ``model`` itself.
    """
    keras = _keras()
    if policy == "float32" and all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    keep = {layer.name for layer in model.layers[-FLOAT32_TAIL:]}
    # Rebuilt from the architecture alone: cloning a compiled model would also rebuild its loss, which
    # fails for the halves method's loss (a closure Keras cannot deserialise).
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer":
            layer["config"]["dtype"] = "float32" if layer["config"]["name"] in keep else policy
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        copy = model.__class__.from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def load(path, policy="float32"):
    """Load a model file (.h5 or .keras, ours or IsoNet 1's) computing under ``policy``.

    Call inside ``strategy.scope()`` to mirror the weights over several devices.
    """
    from isonet.network.unet import load_model
    return with_precision(load_model(path), policy)


def save(model, path):
    """Save ``model`` atomically with float32 weights and computation, whatever its policy."""
    from isonet.network.unet import save_model
    save_model(with_precision(model, "float32"), path)


class Network:
    """A U-Net ready for inference on volumes ``(batch, z, y, x)`` on the strategy's devices.

    Parameters
    ----------
    model : keras.Model
        Single-channel cube-to-cube network (built or loaded in ``strategy.scope()``).
    strategy : tf.distribute.Strategy, optional
        From :func:`isonet.devices.select_strategy` (default: the current strategy).
    n_replicas : int
        Devices of ``strategy``; batches are padded to a multiple of it so that
        every device gets an equal share.
    """

    def __init__(self, model, strategy=None, n_replicas=1):
        self.tf = import_tensorflow()
        self.model = model
        self.strategy = strategy or self.tf.distribute.get_strategy()
        self.n_replicas = max(1, int(n_replicas))
        self._graphs = {}
        from isonet.network.unet import size_multiple
        self.size_multiple = size_multiple(model)

    @classmethod
    def load(cls, path, strategy=None, n_replicas=1, policy="float32"):
        """Load ``path`` in the strategy's scope (see :func:`load`) and wrap it."""
        tf = import_tensorflow()
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            model = load(path, policy)
        return cls(model, strategy, n_replicas)

    def _forward(self, batch):
        return self.model(batch, training=False)

    def _graph(self, shape):
        """The traced forward pass for input ``shape`` (B, z, y, x, 1), B a multiple of the devices."""
        if shape not in self._graphs:
            tf = self.tf
            if self.n_replicas == 1:
                self._graphs[shape] = tf.function(self._forward,
                                                  input_signature=[tf.TensorSpec(shape, tf.float32)])
            else:
                strategy = self.strategy

                @tf.function
                def distributed(shares):
                    outputs = strategy.run(self._forward, args=(shares,))
                    return strategy.experimental_local_results(outputs)

                self._graphs[shape] = distributed
        return self._graphs[shape]

    def _run(self, batch):
        """Forward pass of a padded batch ``(B, z, y, x, 1)`` float32; returns a numpy array."""
        graph = self._graph(batch.shape)
        if self.n_replicas == 1:
            return graph(self.tf.constant(batch)).numpy()
        share = len(batch) // self.n_replicas
        shares = self.strategy.experimental_distribute_values_from_function(
            lambda context: batch[context.replica_id_in_sync_group * share:
                                  (context.replica_id_in_sync_group + 1) * share])
        return np.concatenate([part.numpy() for part in graph(shares)])

    def predict(self, volumes):
        """Network output for a batch of volumes, shape ``(B, z, y, x)`` -> same shape, float32.

        Volumes whose edges are not multiples of :attr:`size_multiple` are padded
        by reflection and cropped back; the batch is padded with copies of its
        first volume to a multiple of the devices.
        """
        volumes = np.asarray(volumes, dtype=np.float32)
        count, shape = len(volumes), volumes.shape[1:]
        spare = -count % self.n_replicas
        batch = np.concatenate([volumes, np.repeat(volumes[:1], spare, axis=0)]) if spare else volumes
        pad = [(0, -n % self.size_multiple) for n in shape]
        if any(after for _, after in pad):
            batch = np.pad(batch, [(0, 0)] + pad, mode="reflect")
        output = self._run(np.ascontiguousarray(batch[..., None]))
        return np.asarray(output[:count, :shape[0], :shape[1], :shape[2], 0], dtype=np.float32)

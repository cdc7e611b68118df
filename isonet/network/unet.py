"""IsoNet 1's residual 3-D U-Net (spec §3.4.6), saving and loading.

The network maps a batch of single-channel cubes, shape ``(batch, z, y, x, 1)``
(channels last, float32), to cubes of the same shape. Each spatial edge must be
divisible by ``2**unet_depth`` (see :func:`size_multiple`).

Topology, with ``c_n = filter_base * 2**n``:

* conv block: Conv3D(same, Normal(0, 0.02) init, bias) -> BatchNorm -> Dropout
  -> LeakyReLU(0.05) (BatchNorm and Dropout only where enabled);
* encoder level ``n = 0 .. depth-1``: ``convs_per_depth`` conv blocks with
  ``c_n`` channels, kept as skip, then down-sampling by a stride-2 conv block
  without BatchNorm/Dropout (or MaxPooling3D if ``pool`` is given);
* bottleneck: ``convs_per_depth - 2`` conv blocks with ``c_depth`` channels and
  no BatchNorm/Dropout, then one conv with ``c_(depth-1)`` channels and no
  activation;
* decoder level ``n = depth-1 .. 0``: Conv3DTranspose(c_n, 3, stride 2) ->
  concat(skip) -> LeakyReLU(0.05) (or UpSampling3D + concat in pool mode),
  then ``convs_per_depth`` conv blocks with ``c_n`` channels;
* head: 1x1x1 linear Conv3D to one channel, plus the input (residual).

The defaults have 27,333,121 parameters (BatchNorm moving statistics included).
"""

import logging
import os
import warnings

from isonet.devices import import_tensorflow
from isonet.errors import IsonetError
from isonet.io.atomic import atomic_output

#: Slope of the LeakyReLU activations.
LEAKY_SLOPE = 0.05
#: Standard deviation of the Normal kernel initialiser.
INIT_STDDEV = 0.02
#: File suffixes Keras chooses the format by.
MODEL_SUFFIXES = (".h5", ".hdf5", ".keras")


def _keras():
    import_tensorflow()
    import keras
    return keras


def _init(keras):
    return keras.initializers.RandomNormal(mean=0.0, stddev=INIT_STDDEV)


def _conv_block(keras, x, filters, kernel, name, strides=1, batch_normalization=True, drop_out=0.0,
                activation=True):
    """Conv3D (+ BatchNorm + Dropout) (+ LeakyReLU) on ``x``."""
    layers = keras.layers
    x = layers.Conv3D(filters, kernel, strides=strides, padding="same", kernel_initializer=_init(keras),
                      name=f"{name}_conv")(x)
    if batch_normalization:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if drop_out > 0:
        x = layers.Dropout(drop_out, name=f"{name}_dropout")(x)
    if activation:
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_act")(x)
    return x


def build_unet(unet_depth=3, filter_base=64, convs_per_depth=3, kernel=(3, 3, 3), pool=None,
               batch_normalization=True, drop_out=0.3):
    """Build IsoNet 1's residual U-Net (uncompiled).

    Call it inside ``strategy.scope()`` to place the variables on several devices.

    Parameters
    ----------
    unet_depth : int
        Number of down-sampling steps (>= 1); input edges must be multiples of ``2**unet_depth``.
    filter_base : int
        Channels of the first level; level ``n`` has ``filter_base * 2**n``.
    convs_per_depth : int
        Conv blocks per encoder/decoder level (>= 2; the bottleneck has ``convs_per_depth - 2``
        blocks plus one linear conv).
    kernel : int or tuple of 3 int
        Kernel size of the conv blocks (the transposed convs always use 3).
    pool : int or tuple of 3 int or None
        None: down-sample by stride-2 convs and up-sample by transposed convs (IsoNet 1's
        default); else MaxPooling3D / UpSampling3D with this pool size (must be 2).
    batch_normalization : bool
        BatchNorm in the encoder and decoder conv blocks.
    drop_out : float
        Dropout rate in the encoder and decoder conv blocks (0 for none).

    Returns
    -------
    keras.Model
        Input and output shape ``(None, None, None, None, 1)``, float32, named
        ``isonet_unet_depth<unet_depth>``.
    """
    keras = _keras()
    layers = keras.layers
    if int(unet_depth) < 1 or int(convs_per_depth) < 2 or int(filter_base) < 1:
        raise IsonetError(f"U-Net: need unet_depth >= 1, convs_per_depth >= 2, filter_base >= 1; got "
                          f"{unet_depth}, {convs_per_depth}, {filter_base}")
    kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (int(kernel),) * 3
    if pool is not None:
        pool = tuple(pool) if isinstance(pool, (tuple, list)) else (int(pool),) * 3
        if pool != (2, 2, 2):
            raise IsonetError(f"U-Net: --pool must be 2 (or None), got {pool}")
    depth = int(unet_depth)

    inputs = keras.Input(shape=(None, None, None, 1), name="input", dtype="float32")
    x = inputs
    skips = []
    for level in range(depth):
        channels = filter_base * 2 ** level
        for i in range(convs_per_depth):
            x = _conv_block(keras, x, channels, kernel, f"down{level}_{i}",
                            batch_normalization=batch_normalization, drop_out=drop_out)
        skips.append(x)
        if pool is None:
            x = _conv_block(keras, x, channels, kernel, f"down{level}_stride", strides=2,
                            batch_normalization=False)
        else:
            x = layers.MaxPooling3D(pool, name=f"down{level}_pool")(x)

    for i in range(convs_per_depth - 2):
        x = _conv_block(keras, x, filter_base * 2 ** depth, kernel, f"bottom_{i}", batch_normalization=False)
    x = _conv_block(keras, x, filter_base * 2 ** (depth - 1), kernel, "bottom_out", batch_normalization=False,
                    activation=False)

    for level in reversed(range(depth)):
        channels = filter_base * 2 ** level
        if pool is None:
            x = layers.Conv3DTranspose(channels, 3, strides=2, padding="same", kernel_initializer=_init(keras),
                                       name=f"up{level}_transpose")(x)
            x = layers.Concatenate(axis=-1, name=f"up{level}_concat")([x, skips[level]])
            x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"up{level}_act")(x)
        else:
            x = layers.UpSampling3D(pool, name=f"up{level}_upsample")(x)
            x = layers.Concatenate(axis=-1, name=f"up{level}_concat")([x, skips[level]])
        for i in range(convs_per_depth):
            x = _conv_block(keras, x, channels, kernel, f"up{level}_{i}",
                            batch_normalization=batch_normalization, drop_out=drop_out)

    x = layers.Conv3D(1, 1, padding="same", kernel_initializer=_init(keras), name="head")(x)
    outputs = layers.Add(name="residual", dtype="float32")([x, inputs])
    return keras.Model(inputs, outputs, name=f"isonet_unet_depth{depth}")


def network_depth(model):
    """Number of 2x down-sampling steps of a U-Net (ours or IsoNet 1's).

    Counted as the layers that reduce resolution: convolutions with stride > 1
    and pooling layers. Input edges must be multiples of ``2**depth``.
    """
    keras = _keras()
    depth = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.MaxPooling3D, keras.layers.AveragePooling3D)):
            depth += 1
        elif isinstance(layer, keras.layers.Conv3D) and not isinstance(layer, keras.layers.Conv3DTranspose):
            if max(layer.strides) > 1:
                depth += 1
    return depth


def size_multiple(model):
    """Edge multiple required by ``model``'s input: ``2**network_depth(model)``."""
    return 2 ** network_depth(model)


def _check_suffix(path):
    if not str(path).lower().endswith(MODEL_SUFFIXES):
        raise IsonetError(f"{path}: model files must end in .h5 or .keras")


def save_model(model, path):
    """Save ``model`` to ``path`` (.h5 or .keras, chosen by the suffix) atomically.

    The optimizer state is not needed for prediction but is kept by Keras when
    the model is compiled; :func:`load_model` reloads without compiling.
    """
    path = os.fspath(path)
    _check_suffix(path)
    # Keras logs that .h5 is a legacy format; it is IsoNet 1's format, kept on purpose.
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    try:
        with atomic_output(path) as tmp:
            model.save(tmp, overwrite=True)
    finally:
        absl_log.setLevel(level)


def load_model(path):
    """Load a U-Net saved by :func:`save_model` or by IsoNet 1 (``.h5``), uncompiled.

    Load inside ``strategy.scope()`` to mirror the weights over several devices.
    Compile the result before training (refine does).

    Raises
    ------
    IsonetError
        Missing file, wrong suffix, or a file that is not a readable Keras model;
        the message names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: model file not found")
    _check_suffix(path)
    keras = _keras()
    try:
        with warnings.catch_warnings():  # tf.keras 2 files name LeakyReLU's slope 'alpha'
            warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated")
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # h5py, zipfile and Keras raise many kinds for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IsonetError(f"{path}: not a readable Keras model ({reason[:200]})") from exc
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise IsonetError(f"{path}: expected a network with one input and one output")
    return model

"""The U-Net builder (spec §3.4.6), saving and loading."""

import os

import numpy as np
import pytest

from isonet.errors import IsonetError
from isonet.network.unet import build_unet, load_model, network_depth, save_model, size_multiple


def _tiny(**kwargs):
    options = dict(unet_depth=2, filter_base=4, convs_per_depth=3, drop_out=0.3)
    options.update(kwargs)
    return build_unet(**options)


def _randomise_batchnorm(model, rng):
    """Give BatchNorm non-trivial statistics so that a reload that dropped them would show."""
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def test_default_parameter_count_matches_isonet1():
    model = build_unet()
    assert model.count_params() == 27_333_121
    assert network_depth(model) == 3 and size_multiple(model) == 8
    assert model.name == "isonet_unet_depth3"


def test_pool_variant_and_depth():
    model = _tiny(unet_depth=3, pool=2)
    assert network_depth(model) == 3
    names = [layer.__class__.__name__ for layer in model.layers]
    assert names.count("MaxPooling3D") == 3 and names.count("UpSampling3D") == 3
    assert "Conv3DTranspose" not in names
    with pytest.raises(IsonetError, match="pool"):
        build_unet(filter_base=4, pool=3)


def test_topology_of_one_level():
    """Layer order of the strided variant: BN/dropout only in encoder/decoder blocks."""
    model = _tiny(unet_depth=1, convs_per_depth=3)
    kinds = [layer.__class__.__name__ for layer in model.layers]
    block = ["Conv3D", "BatchNormalization", "Dropout", "LeakyReLU"]
    expected = (["InputLayer"] + block * 3 + ["Conv3D", "LeakyReLU"]  # encoder + strided down
                + ["Conv3D", "LeakyReLU", "Conv3D"]  # bottleneck: 1 block + linear conv
                + ["Conv3DTranspose", "Concatenate", "LeakyReLU"] + block * 3 + ["Conv3D", "Add"])
    assert kinds == expected
    bottom = model.get_layer("bottom_out_conv")
    assert bottom.filters == 4  # filter_base * 2**(depth-1)
    assert model.get_layer("bottom_0_conv").filters == 8
    assert model.get_layer("down0_0_act").negative_slope == pytest.approx(0.05)


@pytest.mark.parametrize("edge", [16, 24])
def test_forward_shape_and_residual(edge, rng):
    model = _tiny(unet_depth=3 if edge == 16 else 2)
    x = rng.normal(size=(2, edge, edge + 8, edge, 1)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    # Output = input + head(features). An untrained network's head adds only ~1e-7 (the 0.02-stddev
    # initialisation shrinks the features), too little to tell from rounding: set the head instead.
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.5)])
    np.testing.assert_allclose(model.predict(x, verbose=0), x + 0.5, rtol=0, atol=1e-6)
    head.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_save_load_round_trip(tmp_path, suffix, rng):
    model = _tiny()
    _randomise_batchnorm(model, rng)
    model.compile(optimizer="adam", loss="mae", metrics=["mse"])  # as refine does
    path = tmp_path / f"model{suffix}"
    save_model(model, path)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left
    loaded = load_model(path)
    x = rng.normal(size=(1, 16, 16, 16, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert network_depth(loaded) == 2
    assert loaded.count_params() == model.count_params()


def test_load_under_mirrored_strategy(tmp_path, rng):
    """A model loaded inside a strategy scope (as refine and predict load it) predicts what the saved one did."""
    import tensorflow as tf
    model = _tiny()
    _randomise_batchnorm(model, rng)
    model.set_weights([w * 15 if w.ndim == 5 else w for w in model.get_weights()])  # far from the identity
    save_model(model, tmp_path / "m.h5")
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        loaded = load_model(tmp_path / "m.h5")
    x = rng.normal(size=(1, 16, 16, 16, 1)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    assert np.abs(expected - x).mean() > 0.1 * np.abs(x).mean()  # so a weight lost in loading would show
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)


def test_bad_model_files(tmp_path):
    with pytest.raises(IsonetError, match="not found"):
        load_model(tmp_path / "missing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(IsonetError, match="corrupt.h5: not a readable Keras model") as info:
        load_model(corrupt)
    assert "\n" not in str(info.value)
    truncated = tmp_path / "truncated.keras"
    save_model(_tiny(), tmp_path / "good.keras")
    truncated.write_bytes((tmp_path / "good.keras").read_bytes()[:300])
    with pytest.raises(IsonetError, match="truncated.keras"):
        load_model(truncated)
    wrong_suffix = tmp_path / "model.mrc"
    wrong_suffix.write_bytes(b"x")
    with pytest.raises(IsonetError, match=r"\.h5 or \.keras"):
        load_model(wrong_suffix)


def _as_tf_keras2(config):
    """Rewrite a Keras 3 model config in the style tf.keras 2.x (IsoNet 1's era) wrote to .h5 files."""
    if isinstance(config, list):
        return [_as_tf_keras2(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        return config["config"]["name"]
    out = {k: _as_tf_keras2(v) for k, v in config.items() if k not in ("module", "registered_name", "optional")}
    if "batch_shape" in out:
        out["batch_input_shape"] = out.pop("batch_shape")
    if "negative_slope" in out:
        out["alpha"] = out.pop("negative_slope")
    if "inbound_nodes" in config:
        nodes = []
        for node in config["inbound_nodes"]:
            tensors = node["args"][0] if isinstance(node["args"][0], list) else [node["args"][0]]
            nodes.append([[*t["config"]["keras_history"], {}] for t in tensors])
        out["inbound_nodes"] = nodes
    return out


def test_loads_isonet1_era_h5(tmp_path, rng):
    """A .h5 whose config and weight names follow tf.keras 2 (LeakyReLU alpha, batch_input_shape, ':0')."""
    import json

    import h5py
    model = _tiny()
    _randomise_batchnorm(model, rng)
    path = tmp_path / "model_iter30.h5"
    save_model(model, path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        old = _as_tf_keras2(config)
        old["config"]["input_layers"] = [["input", 0, 0]]
        old["config"]["output_layers"] = [["residual", 0, 0]]
        handle.attrs["model_config"] = json.dumps(old)
        handle.attrs["keras_version"] = "2.4.0"
        for name in handle["model_weights"].attrs["layer_names"]:
            group = handle["model_weights"][name]
            names = [w.decode() if isinstance(w, bytes) else w for w in group.attrs["weight_names"]]
            for weight in names:
                group.move(weight, f"{weight}:0")
            group.attrs["weight_names"] = [f"{w}:0" for w in names]
    assert "alpha" in json.dumps(old) and "negative_slope" not in json.dumps(old)
    loaded = load_model(path)
    x = rng.normal(size=(1, 16, 16, 16, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert network_depth(loaded) == 2


def test_runtime_one_graph_per_shape_independent_of_history(rng):
    """Network.predict traces each input shape once, and a result never depends on earlier calls."""
    from isonet.network.runtime import Network
    model = build_unet(unet_depth=2, filter_base=4, convs_per_depth=2)
    cubes = rng.normal(size=(2, 16, 16, 16)).astype(np.float32)
    odd = rng.normal(size=(1, 18, 24, 16)).astype(np.float32)  # z padded to 20 (multiple of 4)
    network = Network(model)
    first = network.predict(cubes)
    network.predict(odd)
    odd_result = network.predict(odd)
    np.testing.assert_array_equal(network.predict(cubes), first)
    assert sorted(network._graphs) == [(1, 20, 24, 16, 1), (2, 16, 16, 16, 1)]
    assert all(graph.experimental_get_tracing_count() == 1 for graph in network._graphs.values())
    other_order = Network(model)
    other_order.predict(odd)
    np.testing.assert_array_equal(other_order.predict(cubes), first)
    padded = np.pad(odd, [(0, 0), (0, 2), (0, 0), (0, 0)], mode="reflect")
    expected = model(padded[..., None], training=False).numpy()[:, :18, :, :, 0]
    np.testing.assert_allclose(odd_result, expected, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(first, model(cubes[..., None], training=False).numpy()[..., 0],
                               atol=1e-5 * np.abs(first).max())


def test_with_precision_keeps_head_and_output_float32():
    from isonet.network.runtime import with_precision
    model = build_unet(unet_depth=1, filter_base=4, convs_per_depth=2)
    assert with_precision(model, "float32") is model
    mixed = with_precision(model, "mixed_bfloat16")
    assert [layer.dtype_policy.name for layer in mixed.layers[-2:]] == ["float32", "float32"]
    assert mixed.get_layer("down0_0_conv").dtype_policy.name == "mixed_bfloat16"
    assert all(np.array_equal(a, b) for a, b in zip(mixed.get_weights(), model.get_weights()))
    # a mixed network compiled with the halves method's loss (a closure Keras cannot rebuild) still converts
    # back to float32 for saving, with its weights
    import keras
    from isonet.refine.losses import masked_fourier_loss
    mixed.compile(optimizer=keras.optimizers.Adam(1e-3), loss=masked_fourier_loss(8))
    back = with_precision(mixed, "float32")
    assert {layer.dtype_policy.name for layer in back.layers} == {"float32"}
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), model.get_weights()))
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(model(x)))


def test_refresh_batch_norm_sets_the_mean_batch_statistics_with_dropout_off(rng):
    import keras
    from isonet.network.runtime import BatchStatistics
    model = _tiny(drop_out=0.5)
    statistics = BatchStatistics(model)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    first = norms[0]
    # the first BatchNorm's input: the first convolution of the raw input, no dropout before it
    probe = keras.Model(model.inputs, first.input)
    batches = [rng.normal(size=(2, 8, 8, 8)).astype(np.float32) * scale for scale in (1.0, 3.0)]
    before = model.get_weights()
    assert statistics.refresh(iter(batches)) == 2
    activations = [np.asarray(probe(b[..., None])) for b in batches]
    np.testing.assert_allclose(first.moving_mean.numpy(), np.mean([a.mean(axis=(0, 1, 2, 3)) for a in activations],
                                                                   axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(first.moving_variance.numpy(),
                               np.mean([a.var(axis=(0, 1, 2, 3)) for a in activations], axis=0), rtol=1e-3)
    # only the moving statistics changed; momentum and dropout rates are restored
    changed = [i for i, (a, b) in enumerate(zip(before, model.get_weights())) if not np.array_equal(a, b)]
    assert len(changed) == 2 * len(norms)
    assert all(layer.momentum == 0.99 for layer in norms) and all(layer.rate == 0.5 for layer in drops)
    # refreshed again (the traced pass reused) on one batch, inference gives what training mode without
    # dropout gives on that batch
    assert statistics.refresh([batches[1]]) == 1
    for layer in drops:
        layer.rate = 0.0
    batch = batches[1][..., None]
    train = np.asarray(model(batch, training=True))
    np.testing.assert_allclose(np.asarray(model(batch, training=False)), train, atol=1e-3 * train.std())
    assert BatchStatistics(build_unet(unet_depth=1, filter_base=2, batch_normalization=False)).refresh(batches) == 0

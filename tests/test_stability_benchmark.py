"""benchmarks/stability.py: batch-norm statistics read from a saved network, the sanity verdict, the quick run."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest
from conftest import REPO

_SPEC = importlib.util.spec_from_file_location("stability_benchmark", os.path.join(REPO, "benchmarks",
                                                                                    "stability.py"))
stability = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(stability)


def test_batch_norm_statistics_of_known_weights(tmp_path):
    from isonet.network.unet import build_unet, save_model
    model = build_unet(unet_depth=1, filter_base=2, convs_per_depth=2)
    layers = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    channels = sum(int(np.prod(layer.moving_mean.shape)) for layer in layers)
    means = np.linspace(-3.0, 2.0, channels)
    variances = np.linspace(0.5, 4.0, channels)
    variances[1] = np.nan  # a diverged channel: counted, left out of the other figures
    start = 0
    for layer in layers:
        n = int(np.prod(layer.moving_mean.shape))
        layer.moving_mean.assign(means[start:start + n].astype("float32"))
        layer.moving_variance.assign(variances[start:start + n].astype("float32"))
        start += n
    path = str(tmp_path / "model.h5")
    save_model(model, path)
    found = stability.batch_norm_statistics(path)
    kept = np.delete(variances, 1)
    assert found["channels"] == channels and found["non_finite"] == 1
    assert found["max_abs_mean"] == pytest.approx(3.0)
    assert (found["min_variance"], found["max_variance"]) == pytest.approx((0.5, 4.0))
    assert found["median_variance"] == pytest.approx(float(np.median(kept)), rel=1e-6)
    for layer in layers:  # all diverged: counted, no crash
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, np.nan, dtype="float32"))
    save_model(model, path)
    diverged = stability.batch_norm_statistics(path)
    assert diverged["non_finite"] == channels and math.isnan(diverged["min_variance"])


def test_sanity_verdict():
    fine = {"loss": [3.0, 2.0, 2.5], "val_loss": [3.1, 2.2, 2.4],
            "batch_norm": [{"non_finite": 0, "min_variance": 0.1}]}
    assert stability.finite_and_bounded(fine)
    assert not stability.finite_and_bounded(dict(fine, loss=[3.0, math.nan]))
    assert not stability.finite_and_bounded(dict(fine, loss=[3.0, 31.0]))  # grew more than 10 x
    assert not stability.finite_and_bounded(dict(fine, batch_norm=[{"non_finite": 2, "min_variance": 0.1}]))
    assert not stability.finite_and_bounded(dict(fine, batch_norm=[{"non_finite": 0, "min_variance": 0.0}]))


def test_quick_run(tmp_path, capsys):
    assert stability.main(["--quick", "--work", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    with open(tmp_path / "stability.json") as handle:
        result = json.load(handle)
    schedule = stability.SCHEDULES["quick"]
    epochs = schedule["iterations"] * schedule["epochs"]
    assert [(r["method"], r["filter_base"]) for r in result["runs"]] == [
        ("halves", 8), ("halves", 4), ("isonet1", 8), ("isonet1", 4)]
    for run in result["runs"]:
        assert len(run["loss"]) == epochs and all(0 < v < 1e3 for v in run["loss"])
        assert len(run["batch_norm"]) == schedule["iterations"]
        assert all(s["non_finite"] == 0 and s["min_variance"] > 0 for s in run["batch_norm"])
        assert 0 < run["step_median_seconds"] < run["seconds"]
        assert f"| {run['method']} | {run['filter_base']} | {run['step_median_seconds']:.2f} |" in table
    # the wider network has more batch-norm channels (twice, all levels doubling)
    assert result["runs"][0]["batch_norm"][0]["channels"] == 2 * result["runs"][1]["batch_norm"][0]["channels"]
    assert os.path.getsize(tmp_path / "stability_loss.png") > 1000

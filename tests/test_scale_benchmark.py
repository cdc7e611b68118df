"""benchmarks/scale.py: the FLOP count behind docs/scale.md, and the cost model's arithmetic."""

import importlib.util
import os

import pytest
from conftest import REPO

_SPEC = importlib.util.spec_from_file_location("scale_benchmark", os.path.join(REPO, "benchmarks", "scale.py"))
scale = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(scale)


def test_flops_grow_with_the_volume_and_the_square_of_the_width():
    small = scale.forward_flops(8, 3, 32)
    assert scale.forward_flops(8, 3, 64) == 8 * small  # convolutions only: exactly proportional to voxels
    # channels squared, except the 1-channel input and output convolutions
    assert 3.9 < scale.forward_flops(16, 3, 32) / small < 4.0


def test_production_figures_of_docs_scale():
    step = 3 * 4 * scale.forward_flops(64, 3, 64)
    voxel = scale.forward_flops(64, 3, 96) / 84 ** 3
    assert round(step / 1e12, 2) == 8.10 and round(voxel / 1e6, 2) == 3.84
    rows, memory = scale.dataset_costs(step, voxel, 10e12)
    assert [r["count"] for r in rows] == [100, 1_000, 10_000]
    assert rows[0]["refine_gpu_hours"] == pytest.approx(60_000 * step / 10e12 / 3600)
    assert rows[2]["predict_gpu_hours"] == pytest.approx(10_000 * 5e8 * voxel / 10e12 / 3600)
    assert rows[1]["disk_bytes"] == 1_000 * 8.5e9  # 4 float32 volumes and an 8-bit mask per tomogram
    assert memory["predict"] / 2 ** 30 == pytest.approx(4.6, abs=0.05)

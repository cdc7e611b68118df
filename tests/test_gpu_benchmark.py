"""benchmarks/gpu.sh --quick on the CPU: every figure of the one-GPU benchmark is produced and sane."""

import importlib.util
import json
import os
import subprocess

import pytest
from conftest import REPO

_SPEC = importlib.util.spec_from_file_location("gpu_benchmark", os.path.join(REPO, "benchmarks", "gpu.py"))


def test_quick_run_measures_both_precisions_and_the_quality(tmp_path, capsys):
    from isonet.network.runtime import precision_policy
    gpu = importlib.util.module_from_spec(_SPEC)
    _SPEC.loader.exec_module(gpu)
    assert gpu.main(["--quick", "--work", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    with open(tmp_path / "gpu_benchmark.json") as handle:
        result = json.load(handle)
    assert result["quick"] and result["device"].startswith("CPU only")
    speed = {case["precision"]: case for case in result["speed"]}
    assert list(speed) == ["float32", "mixed"]
    assert speed["float32"]["policy"] == "float32" and speed["mixed"]["policy"] == precision_policy(True, False)
    for case in speed.values():
        assert (case["filter_base"], case["steps"], case["batch_size"], case["cube"]) == (8, 4, 4, 16)
        assert 0 < case["step_median_seconds"] < case["iteration_seconds"]
        assert case["predict_voxels"] == 32 * 96 * 96 and case["predict_seconds"] > 0
        # seconds rounded to 0.01 in the JSON
        assert case["predict_ns_per_voxel"] == pytest.approx(1e9 * case["predict_seconds"] / case["predict_voxels"],
                                                             rel=0.01)
        assert case["refine_peak_bytes"] > 2 ** 27 and case["predict_peak_bytes"] > 2 ** 27  # TensorFlow alone
    scores = result["quality"]
    assert scores["dataset"] == "cell_snr02_ctf" and scores["budget"]["iterations"] == 1
    for name in ("raw", "deconv", "halves"):  # a CTF dataset: the deconvolved tomogram is scored too
        assert -1 <= scores[name]["band_10_30"] <= 1 and scores[name]["z_0.143"] > 0
        assert f"| {name} | {scores[name]['band_10_30']:.3f} |" in table
    assert f"| mixed ({speed['mixed']['policy']}) | {speed['mixed']['iteration_seconds']:.1f} | 4 |" in table


def test_shell_script_passes_its_options():
    done = subprocess.run(["bash", os.path.join(REPO, "benchmarks", "gpu.sh"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--quick" in done.stdout and "--work" in done.stdout

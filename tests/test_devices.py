"""CPU defaults set before TensorFlow loads (oneDNN), CPU description, available cores."""

import os
import subprocess
import sys

from conftest import REPO

from isonet.devices import (available_cpus, cpu_bfloat16_supported, cpu_description, onednn_enabled,
                            set_cpu_defaults)


def test_onednn_switched_on_unless_the_user_chose():
    environ = {}
    assert set_cpu_defaults(environ) and environ["TF_ENABLE_ONEDNN_OPTS"] == "1" and onednn_enabled(environ)
    for choice in ("0", "1"):
        environ = {"TF_ENABLE_ONEDNN_OPTS": choice}
        assert not set_cpu_defaults(environ) and environ["TF_ENABLE_ONEDNN_OPTS"] == choice
        assert onednn_enabled(environ) == (choice == "1")


def test_importing_isonet_sets_onednn_before_tensorflow():
    script = "import os, isonet, tensorflow; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    for user, expected in ((None, "1"), ("0", "0")):
        if user is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = user
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-1] == expected


def test_cpu_description_reads_model_and_features(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: other\nflags\t\t: avx512f\n")
    assert cpu_description(str(cpuinfo)) == ("AMD EPYC 7B13", ["avx", "avx2", "fma"])
    assert cpu_description(str(tmp_path / "absent")) == ("", [])


def test_available_cpus_is_the_affinity_mask():
    assert 1 <= available_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert available_cpus() == len(os.sched_getaffinity(0))


def test_bfloat16_needs_avx512_under_onednn():
    avx512 = ["avx", "avx2", "avx512f", "avx512bw"]
    assert cpu_bfloat16_supported({"TF_ENABLE_ONEDNN_OPTS": "1"}, avx512)
    assert not cpu_bfloat16_supported({"TF_ENABLE_ONEDNN_OPTS": "1"}, ["avx", "avx2", "fma"])
    assert not cpu_bfloat16_supported({"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}, avx512)
    assert cpu_bfloat16_supported({"TF_ENABLE_ONEDNN_OPTS": "0"}, ["avx2"])  # Eigen's kernels

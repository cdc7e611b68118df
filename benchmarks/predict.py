"""Speed and memory of ``predict`` (docs/benchmarks.md, section "Predict").

Each case predicts one synthetic tomogram with default tiling (cube 64, crop 96,
default batch size) in its own subprocess, so that the peak resident memory
(VmHWM) is that case's alone, and reports:

* voxels per second: tomogram voxels / wall time of ``predict_tomograms``
  (reading, normalising, all tiles, writing);
* peak RSS, the RSS right after importing TensorFlow (baseline), and the peak
  as a multiple of the tomogram's float32 size (target: below 3.5).

Cases (the CPU machine cannot run the full-size tomogram through a real network
in minutes, so sizes differ per case, as printed):

* ``pipeline``: 300x1000x1000 through a 1x1x1 linear network, i.e. the memory
  and overhead of reading, normalising, tiling, blending and writing at full size;
* ``unet16`` / ``unet64``: the default U-Net with filter_base 16 / 64 on smaller
  tomograms (speed, and the network's own memory).

Usage::

    python benchmarks/predict.py           # CPU-sized cases, a few minutes on 2 cores
    python benchmarks/predict.py --full    # every case at 300x1000x1000 (for GPU machines)
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

FULL_SHAPE = (300, 1000, 1000)
CPU_CASES = [
    {"name": "pipeline", "network": "linear", "shape": FULL_SHAPE},
    {"name": "unet16", "network": 16, "shape": (128, 256, 256)},
    {"name": "unet64", "network": 64, "shape": (64, 128, 128)},
]


def _peak_rss_bytes():
    """Peak resident memory of this process since it started (exec), in bytes.

    Linux: VmHWM, because ``ru_maxrss`` is inherited from the parent across
    fork and exec and would report the parent's (tomogram-making) peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def make_tomogram(path, shape, seed=0):
    """Write a synthetic tomogram: Gaussian noise plus dark spheres (dark protein convention)."""
    from isonet.io.mrc import write_volume
    rng = np.random.default_rng(seed)
    volume = rng.standard_normal(shape, dtype=np.float32)
    for _ in range(200):
        centre = [rng.integers(0, n) for n in shape]
        radius = int(rng.integers(3, 12))
        box = tuple(slice(max(c - radius, 0), c + radius) for c in centre)
        volume[box] -= 2.0
    write_volume(path, volume, voxel_size=10.0)


def make_network(path, network):
    """Save the network of a case: 'linear' (one 1x1x1 conv) or a U-Net with this filter_base."""
    from isonet.network.unet import build_unet, save_model
    if network == "linear":
        import keras
        model = keras.Sequential([keras.Input((None, None, None, 1)), keras.layers.Conv3D(1, 1)])
    else:
        model = build_unet(filter_base=int(network))
    save_model(model, path)


def run_case(case_json):
    """Child process: predict one tomogram and print the measurements as JSON."""
    case = json.loads(case_json)
    from isonet.devices import import_tensorflow
    import_tensorflow()
    import keras  # noqa: F401  (counted in the baseline, as in any predict run)
    from isonet.predict.predict import predict_tomograms
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    predict_tomograms(case["star"], case["model"], output_dir=case["output_dir"])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss": _peak_rss_bytes(), "baseline_rss": baseline}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run every case at 300x1000x1000")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
        return
    import pandas as pd

    from isonet.io.star import write_star
    cases = [dict(case, shape=FULL_SHAPE) for case in CPU_CASES] if args.full else CPU_CASES
    rows = []
    with tempfile.TemporaryDirectory(prefix="isonet_bench_predict_") as work:
        for case in cases:
            shape = tuple(case["shape"])
            tomogram = os.path.join(work, f"tomo_{'x'.join(map(str, shape))}.mrc")
            if not os.path.exists(tomogram):
                make_tomogram(tomogram, shape)
            star = os.path.join(work, f"{case['name']}.star")
            write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": [tomogram], "rlnPixelSize": [10.0]}),
                       star)
            model = os.path.join(work, f"{case['name']}.h5")
            make_network(model, case["network"])
            child = json.dumps({"star": star, "model": model, "output_dir": os.path.join(work, case["name"])})
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            done = subprocess.run([sys.executable, __file__, "--case", child], capture_output=True, text=True,
                                  env=env)
            if done.returncode:
                sys.exit(f"case {case['name']} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            size = int(np.prod(shape)) * 4
            rows.append((case, shape, size, result))
            print(f"{case['name']}: {result}", file=sys.stderr, flush=True)

    import tensorflow as tf
    print(f"Machine: {_cpu_name()}, {os.cpu_count()} CPUs, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, TensorFlow {tf.__version__}; "
          "cube 64, crop 96, default batch size.\n")
    print("| case | network | tomogram (z,y,x) | float32 size | wall time | voxels/s "
          "| peak RSS | baseline RSS | peak / tomogram | (peak - baseline) / tomogram |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case, shape, size, result in rows:
        network = "1x1x1 linear conv" if case["network"] == "linear" else f"U-Net filter_base {case['network']}"
        print(f"| {case['name']} | {network} | {'x'.join(map(str, shape))} | {size / 2**30:.2f} GiB "
              f"| {result['seconds']:.1f} s | {np.prod(shape) / result['seconds']:.3g} "
              f"| {result['peak_rss'] / 2**30:.2f} GiB | {result['baseline_rss'] / 2**30:.2f} GiB "
              f"| {result['peak_rss'] / size:.2f} | {(result['peak_rss'] - result['baseline_rss']) / size:.2f} |")


if __name__ == "__main__":
    main()

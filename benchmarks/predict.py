"""Speed and memory of ``predict``, and the default tiling against IsoNet 1's (docs/benchmarks.md).

Each case predicts one synthetic tomogram in its own subprocess, so that the
peak resident memory (VmHWM) is that case's alone, and reports:

* voxels per second: tomogram voxels / wall time of the prediction (loading the
  network, reading, normalising, all tiles, writing);
* peak RSS, the RSS right after importing TensorFlow (baseline), and the peak
  as a multiple of the tomogram's float32 size (target: below 3.5).

Cases (the CPU machine cannot run a full-size tomogram through the default
network in minutes, so networks and sizes differ per case, as printed):

* ``pipeline``: 300x1000x1000 through a 1x1x1 linear network with the default
  tiling: memory and overhead of reading, normalising, tiling, blending, writing;
* ``isonet1-tiling`` / ``default-tiling``: one 300x500x500 tomogram through the
  same small U-Net (filter_base 4), with IsoNet 1's tiling (cores of 64 in tiles
  of 96) and with the default (cores of up to 84 fitted to the tomogram, tiles
  of 96): the speed-up is their ratio (target >= 2);
* ``unet16``: the default U-Net at filter_base 16 on a smaller tomogram (speed).

Then the seam check: a 3x3x3 mean filter applied by the default tiling equals
the filter applied to the whole volume. And a table of tile counts for common
tomogram sizes (the speed-up is the ratio of tile counts: every tile costs the same).

Usage::

    python benchmarks/predict.py           # CPU-sized cases, about 10 minutes on 2 cores
    python benchmarks/predict.py --full    # every network at 300x1000x1000 (for GPU machines)
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
#: Tiling comparison on the CPU: a quarter of FULL_SHAPE in Y and X, with the same tile-count ratio (2.22).
TILING_SHAPE = (300, 500, 500)
ISONET1_TILING = {"cube": 64, "crop": 96, "fit_cores": False}
CPU_CASES = [
    {"name": "pipeline", "network": "linear", "shape": FULL_SHAPE},
    {"name": "isonet1-tiling", "network": 4, "shape": TILING_SHAPE, **ISONET1_TILING},
    {"name": "default-tiling", "network": 4, "shape": TILING_SHAPE},
    {"name": "unet16", "network": 16, "shape": (128, 256, 256)},
]
#: Tomogram sizes (z, y, x) for the tile-count table.
COMMON_SHAPES = [(150, 512, 512), (200, 928, 928), (300, 1000, 1000), (300, 1024, 1440), (500, 2000, 2000)]


def peak_rss_bytes():
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
    from isonet.io.mrc import write_volume
    from isonet.network.runtime import Network
    from isonet.predict.predict import DEFAULT_CROP, DEFAULT_CUBE, correct_tomogram
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    network = Network.load(case["model"])
    corrected, header = correct_tomogram(case["tomogram"], network.predict, case.get("cube", DEFAULT_CUBE),
                                         case.get("crop", DEFAULT_CROP), 1, fit_cores=case.get("fit_cores", True))
    write_volume(case["output"], corrected, like=header)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss_bytes(), "baseline_rss": baseline}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run every case at 300x1000x1000")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
        return
    cases = [dict(case, shape=FULL_SHAPE) for case in CPU_CASES] if args.full else CPU_CASES
    rows = []
    with tempfile.TemporaryDirectory(prefix="isonet_bench_predict_") as work:
        for case in cases:
            shape = tuple(case["shape"])
            tomogram = os.path.join(work, f"tomo_{'x'.join(map(str, shape))}.mrc")
            if not os.path.exists(tomogram):
                make_tomogram(tomogram, shape)
            model = os.path.join(work, f"{case['name']}.h5")
            make_network(model, case["network"])
            child = json.dumps(dict(case, tomogram=tomogram, model=model,
                                    output=os.path.join(work, f"{case['name']}_corrected.mrc")))
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            done = subprocess.run([sys.executable, __file__, "--case", child], capture_output=True, text=True,
                                  env=env)
            if done.returncode:
                sys.exit(f"case {case['name']} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            size = int(np.prod(shape)) * 4
            rows.append((case, shape, size, result))
            print(f"{case['name']}: {result}", file=sys.stderr, flush=True)

    from isonet.predict.predict import DEFAULT_CROP, DEFAULT_CUBE
    import tensorflow as tf
    print(f"Machine: {_cpu_name()}, {os.cpu_count()} CPUs, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, TensorFlow {tf.__version__}; "
          f"default tiling: cores of up to {DEFAULT_CUBE} fitted to the tomogram, tiles of {DEFAULT_CROP}; "
          "1 tile per batch (the CPU default).\n")
    print("| case | network | tiling (core/tile) | tomogram (z,y,x) | float32 size | wall time | voxels/s "
          "| peak RSS | baseline RSS | peak / tomogram | (peak - baseline) / tomogram |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    seconds = {}
    for case, shape, size, result in rows:
        network = "1x1x1 linear conv" if case["network"] == "linear" else f"U-Net filter_base {case['network']}"
        tiling = (f"{case['cube']}/{case['crop']} (IsoNet 1)" if "cube" in case
                  else f"<={DEFAULT_CUBE} fitted/{DEFAULT_CROP}")
        seconds[case["name"]] = result["seconds"]
        print(f"| {case['name']} | {network} | {tiling} | {'x'.join(map(str, shape))} | {size / 2**30:.2f} GiB "
              f"| {result['seconds']:.1f} s | {np.prod(shape) / result['seconds']:.3g} "
              f"| {result['peak_rss'] / 2**30:.2f} GiB | {result['baseline_rss'] / 2**30:.2f} GiB "
              f"| {result['peak_rss'] / size:.2f} | {(result['peak_rss'] - result['baseline_rss']) / size:.2f} |")
    if "isonet1-tiling" in seconds and "default-tiling" in seconds:
        print(f"\nTiling speed-up (IsoNet 1 tiling time / default tiling time, same network and tomogram): "
              f"{seconds['isonet1-tiling'] / seconds['default-tiling']:.2f}x")
    seam = seam_check()
    print(f"\nSeam check (3x3x3 mean filter by default tiles vs whole volume, max |difference|): "
          f"{seam:.2e} ({'PASS' if seam < 2e-5 else 'FAIL'}, limit 2e-5)")
    print("\n| tomogram (z,y,x) | tiles, IsoNet 1 64/96 | tiles, default | speed-up |")
    print("|---|---|---|---|")
    for shape in COMMON_SHAPES:
        old, new = tile_count(shape, **ISONET1_TILING), tile_count(shape, DEFAULT_CUBE, DEFAULT_CROP)
        print(f"| {'x'.join(map(str, shape))} | {old} | {new} | {old / new:.2f}x |")


def tile_count(shape, cube, crop, fit_cores=True):
    """Tiles the tiling cuts for a tomogram of ``shape`` (``crop`` does not change the count)."""
    from isonet.predict.tiling import fitted_cores, grid_shape
    cores = fitted_cores(shape, cube) if fit_cores else cube
    return int(np.prod(grid_shape(shape, cores)))


def seam_check(shape=(61, 203, 190)):
    """Max difference between a 3x3x3 mean filter applied by default tiles and to the whole volume."""
    from scipy import ndimage
    from isonet.predict.predict import DEFAULT_CROP, DEFAULT_CUBE
    from isonet.predict.tiling import predict_tiled
    volume = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    tiled = predict_tiled(volume, lambda tiles: ndimage.uniform_filter(tiles, (1, 3, 3, 3), mode="constant"),
                          DEFAULT_CUBE, DEFAULT_CROP, batch_size=2)
    return float(np.abs(tiled - ndimage.uniform_filter(volume, 3, mode="reflect")).max())


if __name__ == "__main__":
    main()

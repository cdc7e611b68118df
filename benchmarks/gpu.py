"""GPU benchmark of the production default: speed, memory, mixed precision and quality on one device.

Run it through ``benchmarks/gpu.sh`` on a machine with one GPU (it uses GPU 0; without a GPU it runs
on the CPU and says so). In one process:

1. **Speed and memory**, for mixed precision off and on: a simulated crowded-cell tomogram
   (:data:`SPEED_SIZES`) is masked, subtomograms are extracted with the production cube and crop,
   and refine trains one iteration of the production network (``filter_base`` 64, depth 3, the
   default epochs, steps and batch size); then predict corrects the tomogram with the production
   tiles. Figures: seconds of the iteration and its median step, seconds per predicted tomogram
   and per voxel, and the peak GPU memory of each (``tf.config.experimental.get_memory_info``;
   on the CPU, the process's peak resident memory so far, which never decreases).
2. **Quality**: the default method at the quality benchmark's budget on its ``cell_snr02_ctf``
   dataset (``benchmarks/quality.py``, same scores as docs/quality.md): 10-30° wedge band and
   Z FSC 0.143 of the corrected tomogram, and of the raw one.

``--quick`` shrinks everything (tomograms, network, steps) so that the whole run takes about a
minute on 2 CPU cores; the tests run it so. Writes ``<work>/gpu_benchmark.json`` and prints the
table of docs/benchmarks.md ("One GPU").

Usage::

    benchmarks/gpu.sh [--quick] [--work DIR]
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS)

import quality  # noqa: E402  (benchmarks/quality.py; puts the repository on sys.path)
from predict import peak_rss_bytes  # noqa: E402

from isonet.io.atomic import atomic_write_text  # noqa: E402
from isonet.log import setup_logging  # noqa: E402

#: Sizes of the speed part: tomogram (z, y, x), extract cube/crop, predict cube/crop, refine options.
SPEED_SIZES = {
    "full": dict(shape=(128, 384, 384), cube=64, crop=96, predict_cube=84, predict_crop=96, number_subtomos=60,
                 refine={}),
    "quick": dict(shape=(32, 96, 96), cube=16, crop=24, predict_cube=16, predict_crop=24, number_subtomos=8,
                  refine=dict(filter_base=8, epochs=1, steps_per_epoch=4, batch_size=4)),
}
#: The quality part: dataset of benchmarks/quality.py, and for --quick a small one and the quick budget.
QUALITY_DATASET = "cell_snr02_ctf"
QUICK_QUALITY_SPEC = dict(quality.DATASETS[QUALITY_DATASET], shape=(48, 96, 96))


def device_memory():
    """``(reset, peak)``: functions to restart and read the peak memory of GPU 0, or of the process (CPU)."""
    from isonet.devices import import_tensorflow
    tf = import_tensorflow()
    if tf.config.list_physical_devices("GPU"):
        return (lambda: tf.config.experimental.reset_memory_stats("GPU:0"),
                lambda: tf.config.experimental.get_memory_info("GPU:0")["peak"])
    return (lambda: None), peak_rss_bytes


def prepare_speed_data(folder, sizes):
    """Simulate (with halves), mask and extract the speed tomogram; returns (tomograms.star, subtomo.star)."""
    from isonet.preprocess.extract import extract_subtomograms
    from isonet.preprocess.mask import make_masks
    from isonet.simulate import run_simulation

    star, subtomo_star = os.path.join(folder, "tomograms.star"), os.path.join(folder, "subtomo.star")
    run_simulation(folder, n_tomos=1, shape=sizes["shape"], pixel_size=quality.PIXEL_SIZE, tilt_min=-60.0,
                   tilt_max=60.0, tilt_step=3.0, snr=0.5, defocus=0.0, number_subtomos=sizes["number_subtomos"],
                   seed=0, scene="cell", halves=True)
    make_masks(star, mask_folder=os.path.join(folder, "mask"), patch_size=4, density_percentage=50,
               std_percentage=50, z_crop=0.2)
    extract_subtomograms(star, subtomo_folder=os.path.join(folder, "subtomo"), subtomo_star=subtomo_star,
                         cube_size=sizes["cube"], crop_size=sizes["crop"], seed=0)
    return star, subtomo_star


def speed_case(folder, star, subtomo_star, sizes, mixed_precision, gpu_ids):
    """One refine iteration and one predict at one precision; returns the figures."""
    from isonet.network.runtime import precision_policy
    from isonet.predict.predict import predict_tomograms
    from isonet.refine.config import RefineConfig
    from isonet.refine.loop import refine
    from isonet.refine.outputs import model_path

    reset, peak = device_memory()
    name = "mixed" if mixed_precision else "float32"
    result_dir = os.path.join(folder, f"results_{name}")
    reset()
    history = refine(RefineConfig.from_cli(dict(sizes["refine"], subtomo_star=subtomo_star, result_dir=result_dir,
                                                iterations=1, mixed_precision=mixed_precision, gpuID=gpu_ids)))
    refine_peak = peak()
    with open(os.path.join(result_dir, "refine_iter01.json")) as handle:
        state = json.load(handle)
    reset()
    started = time.perf_counter()
    predict_tomograms(star, model_path(result_dir, 1), output_dir=os.path.join(folder, f"corrected_{name}"),
                      gpu_ids=gpu_ids, cube_size=sizes["predict_cube"], crop_size=sizes["predict_crop"],
                      mixed_precision=mixed_precision)
    predict_seconds = time.perf_counter() - started
    voxels = int(np.prod(sizes["shape"]))
    seconds = history[-1]["seconds"]
    return {"precision": name, "policy": precision_policy(mixed_precision, bool(gpu_ids)),
            "filter_base": state["filter_base"], "batch_size": state["batch_size"],
            "steps": state["epochs"] * state["steps_per_epoch"], "cube": sizes["cube"],
            "iteration_seconds": round(sum(v for k, v in seconds.items() if k != "step_median"), 2),
            "step_median_seconds": seconds["step_median"], "refine_peak_bytes": int(refine_peak),
            "predict_seconds": round(predict_seconds, 2), "predict_voxels": voxels,
            "predict_ns_per_voxel": round(1e9 * predict_seconds / voxels, 2), "predict_peak_bytes": int(peak())}


def quality_case(work, quick, gpu_ids):
    """The default method on the quality dataset at the benchmark's budget; returns its and the raw scores."""
    spec = QUICK_QUALITY_SPEC if quick else quality.DATASETS[QUALITY_DATASET]
    budget = dict(quality.QUICK_BUDGET, iterations=1) if quick else quality.BUDGET
    started = time.perf_counter()
    results = quality.benchmark_dataset(QUALITY_DATASET, spec, ["halves"], budget, os.path.join(work, "quality"),
                                        force=True, gpu_ids=gpu_ids)
    return {"dataset": QUALITY_DATASET, "shape": list(spec["shape"]), "budget": budget,
            "seconds": round(time.perf_counter() - started, 1),
            **{name: {"band_10_30": results[name]["wedge_bands"]["10-30"], "z_0.143": results[name]["fsc_0.143"]["z"]}
               for name in ("raw", "deconv", "halves") if name in results}}


def device_line():
    """The device the run used, in words."""
    from isonet.devices import import_tensorflow
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU 0: {details.get('device_name', 'unknown')} (of {len(gpus)})"
    return f"CPU only ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def markdown(result):
    """The table of docs/benchmarks.md for one run."""
    lines = [f"Device: {result['device']}; TensorFlow {result['tensorflow']}.", "",
             "| precision (policy) | refine iteration (s) | steps | median step (s) | refine peak memory (GiB) | "
             "predict (s per tomogram) | predict (ns per voxel) | predict peak memory (GiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for case in result["speed"]:
        lines.append(f"| {case['precision']} ({case['policy']}) | {case['iteration_seconds']:.1f} | {case['steps']} | "
                     f"{case['step_median_seconds']:.3f} | {case['refine_peak_bytes'] / 2 ** 30:.2f} | "
                     f"{case['predict_seconds']:.1f} | {case['predict_ns_per_voxel']:.1f} | "
                     f"{case['predict_peak_bytes'] / 2 ** 30:.2f} |")
    scores = result["quality"]
    lines += ["", f"Quality, {scores['dataset']} (budget {scores['budget']['iterations']} x "
                  f"{scores['budget']['steps_per_epoch']} steps, {scores['seconds']:.0f} s):", "",
              "| tomogram | 10-30° band | Z FSC 0.143 (Å) |", "|---|---|---|"]
    lines += [f"| {name} | {scores[name]['band_10_30']:.3f} | {scores[name]['z_0.143']:.1f} |"
              for name in ("raw", "deconv", "halves") if name in scores]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (about a minute on 2 CPU cores)")
    parser.add_argument("--work", default=os.path.join(BENCHMARKS, "gpu_work"), help="working folder")
    args = parser.parse_args(argv)
    setup_logging("warning", None)
    from isonet.devices import import_tensorflow
    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")  # retracing notes: each case trains a new network on purpose
    gpu_ids = [0] if tf.config.list_physical_devices("GPU") else []
    sizes = SPEED_SIZES["quick" if args.quick else "full"]
    speed_folder = os.path.join(args.work, "speed")
    os.makedirs(speed_folder, exist_ok=True)
    star, subtomo_star = prepare_speed_data(speed_folder, sizes)
    result = {"device": device_line(), "tensorflow": tf.__version__, "quick": args.quick,
              "speed": [speed_case(speed_folder, star, subtomo_star, sizes, mixed, gpu_ids) for mixed in (False, True)],
              "quality": quality_case(args.work, args.quick, gpu_ids)}
    path = os.path.join(args.work, "gpu_benchmark.json")
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    print(f"\n(written to {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

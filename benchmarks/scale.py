"""Inputs of docs/scale.md: FLOPs of the U-Net, their speed on this CPU, and the cost of whole datasets.

* FLOPs: counted from the layers of the network (every Conv3D and Conv3DTranspose: 2 FLOPs per
  multiply-add; batch normalisation, activations and sums are left out, under 2 % here). A training
  step costs 3x the forward pass (forward, gradients of the activations and of the weights).
* Speed: Keras's train function on one in-memory batch (``benchmarks/refine.py``'s bare step), for
  the small network of the tests and the production network (batch 1 here: a step of batch 4
  takes minutes on 2 cores), against the CPU's peak (cores x clock x FP32 FLOPs per cycle: 32 with
  AVX2 FMA, 64 with AVX-512).
* Dataset cost: :func:`dataset_costs` turns these and the measured figures of docs/benchmarks.md into
  GPU-hours, disk and memory for 100, 1,000 and 10,000 tomograms.

Usage: ``python benchmarks/scale.py [--no_timing]``; prints the tables of docs/scale.md.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS)

from refine import bare_train_step  # noqa: E402  (benchmarks/refine.py; puts the repository on sys.path)

#: Networks timed: name -> (filter_base, cube, batch).
TIMED = {"tests' network (filter_base 8, 32³, batch 4)": (8, 32, 4),
         "production network (filter_base 64, 64³, batch 1)": (64, 64, 1)}
#: The production settings the dataset costs assume.
PRODUCTION = dict(filter_base=64, unet_depth=3, cube=64, batch=4, predict_tile=96, predict_core=84,
                  refine_steps=60_000)
#: Tomograms of the cost table: (z, y, x) voxels, and the counts.
TOMOGRAM = (500, 1000, 1000)
COUNTS = (100, 1_000, 10_000)
#: Assumed sustained FP32 throughput of one GPU (FLOP/s): an H100 reaches about 50 TFLOP/s in FP32
#: matrix products through TF32; 3D convolutions of 64 channels reach far less. Not measured here.
GPU_FLOPS = {"low (10 TFLOP/s)": 10e12, "high (40 TFLOP/s)": 40e12}
#: Measured (docs/benchmarks.md, preprocessing, 2 cores): seconds per voxel of deconv and make_mask, and
#: the peak host memory per float32 tomogram byte of deconv, make_mask and predict (pipeline).
DECONV_SECONDS_PER_VOXEL = 45.7 / 3e8
MASK_SECONDS_PER_VOXEL = 36.2 / 3e8
PEAK_PER_BYTE = {"deconv": 2.18, "make_mask": 1.40, "predict": 2.04}
TENSORFLOW_BASELINE_BYTES = 0.78 * 2 ** 30


def forward_flops(filter_base, unet_depth, cube):
    """FLOPs of one forward pass of the U-Net on one ``cube``³ volume (convolutions only)."""
    import keras
    from isonet.network.unet import build_unet
    config = build_unet(unet_depth=unet_depth, filter_base=filter_base).get_config()
    for layer in config["layers"]:  # the same network with a fixed input shape: every layer's shapes known
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, cube, cube, cube, 1]
    total = 0
    for layer in keras.Model.from_config(config).layers:
        if isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose)):
            inputs, outputs = layer.input.shape, layer.output.shape
            computed = outputs if isinstance(layer, keras.layers.Conv3D) else inputs  # voxels the kernel visits
            total += 2 * int(np.prod(layer.kernel_size)) * inputs[-1] * outputs[-1] * int(np.prod(computed[1:4]))
    return total


def cpu_peak_flops():
    """``(FLOP/s, description)``: cores x clock x FP32 FLOPs per cycle of this CPU."""
    flags, mhz = "", 0.0
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("flags") and not flags:
                flags = line
            if line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":")[1])
    per_cycle = 64 if " avx512f" in flags else 32 if " fma" in flags else 16
    cores = len(os.sched_getaffinity(0))
    return cores * mhz * 1e6 * per_cycle, f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} FLOP/cycle"


def timed_step(filter_base, cube, batch, steps=3):
    """Median seconds of a bare training step of a fresh network (see the module docstring)."""
    from isonet.network.runtime import save
    from isonet.network.unet import build_unet
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch,) + (cube,) * 3 + (1,)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.h5")
        save(build_unet(filter_base=filter_base), path)
        return bare_train_step(path, x, np.roll(x, 1, axis=1), steps)


def dataset_costs(step_flops, voxel_flops, gpu_flops):
    """Cost rows for :data:`COUNTS` tomograms of :data:`TOMOGRAM` voxels (see docs/scale.md for the model)."""
    voxels = int(np.prod(TOMOGRAM))
    tomogram_bytes = 4 * voxels
    refine_hours = PRODUCTION["refine_steps"] * step_flops / gpu_flops / 3600
    rows = []
    for count in COUNTS:
        predict_hours = count * voxels * voxel_flops / gpu_flops / 3600
        cpu_hours = count * voxels * (DECONV_SECONDS_PER_VOXEL + MASK_SECONDS_PER_VOXEL) * 2 / 3600  # 2 cores
        # written per tomogram: deconvolved full and half tomograms (float32), mask (uint8), corrected (float32)
        disk = count * (3 * tomogram_bytes + voxels + tomogram_bytes)
        rows.append(dict(count=count, refine_gpu_hours=refine_hours, predict_gpu_hours=predict_hours,
                         preprocess_core_hours=cpu_hours, disk_bytes=disk))
    memory = {name: ratio * tomogram_bytes + (TENSORFLOW_BASELINE_BYTES if name == "predict" else 0)
              for name, ratio in PEAK_PER_BYTE.items()}
    return rows, memory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no_timing", action="store_true", help="only count FLOPs and cost (no training steps)")
    args = parser.parse_args(argv)
    p = PRODUCTION
    step_flops = 3 * p["batch"] * forward_flops(p["filter_base"], p["unet_depth"], p["cube"])
    voxel_flops = forward_flops(p["filter_base"], p["unet_depth"], p["predict_tile"]) / p["predict_core"] ** 3
    print(f"Production training step (batch {p['batch']} of {p['cube']}³): {step_flops / 1e12:.2f} TFLOP; "
          f"predict: {voxel_flops / 1e3:.1f} kFLOP per output voxel ({p['predict_tile']}³ tiles, "
          f"{p['predict_core']}³ kept)\n")
    if not args.no_timing:
        peak, description = cpu_peak_flops()
        print(f"CPU peak: {peak / 1e9:.0f} GFLOP/s ({description})\n")
        print("| network | FLOPs per step | median step (s) | GFLOP/s | of the CPU's peak |\n|---|---|---|---|---|")
        for name, (filter_base, cube, batch) in TIMED.items():
            flops = 3 * batch * forward_flops(filter_base, 3, cube)
            seconds = timed_step(filter_base, cube, batch)
            print(f"| {name} | {flops / 1e9:.1f} G | {seconds:.3f} | {flops / seconds / 1e9:.1f} | "
                  f"{100 * flops / seconds / peak:.0f} % |")
        print()
    for label, gpu in GPU_FLOPS.items():
        rows, memory = dataset_costs(step_flops, voxel_flops, gpu)
        print(f"GPU throughput {label}:\n\n| tomograms | refine (GPU-hours, once) | predict (GPU-hours) | "
              "deconv + make_mask (CPU core-hours) | disk written (TB) |\n|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['count']:,} | {row['refine_gpu_hours']:.1f} | {row['predict_gpu_hours']:,.0f} | "
                  f"{row['preprocess_core_hours']:,.0f} | {row['disk_bytes'] / 1e12:.1f} |")
        print()
    print("Peak host memory per tomogram: " + ", ".join(f"{name} {value / 2 ** 30:.1f} GiB"
                                                        for name, value in memory.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

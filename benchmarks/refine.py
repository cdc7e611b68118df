"""Benchmark of refine: per-iteration time split and training-step overhead (docs/benchmarks.md, "Refine").

For each case a refine iteration runs on synthetic subtomograms through
:func:`isonet.refine.loop.refine` (pairs made in threads and streamed through
tf.data), then the same network trains with a bare ``model.train_on_batch`` on
one batch of the same pairs. Printed: seconds spent making pairs (thread time),
training and predicting; median step time inside refine vs bare; and the
speed of mixed_bfloat16 against float32 training on this CPU.

Usage: ``python benchmarks/refine.py [--quick]`` (``--quick``: only the small case).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from isonet.io.mrc import write_volume
from isonet.log import setup_logging
from isonet.prepare import prepare_subtomo_star

CASES = [
    # name, crop, cube, filter_base, subtomograms, steps
    ("cube 32, filter_base 16", 48, 32, 16, 8, 12),
    ("cube 64, default network (filter_base 64)", 96, 64, 64, 2, 3),
]


def make_subtomograms(folder, n, crop, seed=0):
    rng = np.random.default_rng(seed)
    sub = os.path.join(folder, "subtomo")
    os.makedirs(sub)
    for i in range(n):
        volume = gaussian_filter((rng.random((crop,) * 3) > 0.97).astype(np.float32), 1.5)
        write_volume(os.path.join(sub, f"s{i:03d}.mrc"), -volume)
    return sub


def bare_steps(model_file, x, y, steps, policy="float32"):
    """Median seconds of ``train_on_batch`` on one batch (first call, which traces, excluded)."""
    import keras
    from isonet.refine.loop import _load
    model = _load(model_file, policy)
    model.compile(optimizer=keras.optimizers.Adam(4e-4), loss="mae", metrics=["mse", "mae"])
    model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def run_case(name, crop, cube, filter_base, n, steps, workdir):
    from isonet.refine.config import RefineConfig
    from isonet.refine.loop import refine
    from isonet.refine.pairs import PairMaker
    folder = tempfile.mkdtemp(dir=workdir)
    prepare_subtomo_star(make_subtomograms(folder, n, crop), os.path.join(folder, "subtomo.star"), cube_size=cube)
    os.chdir(folder)
    config = RefineConfig.from_cli(dict(subtomo_star="subtomo.star", iterations=1, epochs=1, steps_per_epoch=steps,
                                        filter_base=filter_base, seed=1, preprocessing_ncpus=os.cpu_count()))
    started = time.perf_counter()
    history = refine(config)
    total = time.perf_counter() - started
    seconds = history[-1]["seconds"]
    paths = [os.path.join("subtomo", f"s{i:03d}.mrc") for i in range(2)]
    previous = [os.path.join("results", f"s{i:03d}_iter00.mrc") for i in range(2)]
    x, _ = PairMaker(paths, previous, [(-60.0, 60.0)] * 2, cube).pairs(0, [0, 1, 2, 3])
    y = x.copy()
    bare = bare_steps(os.path.join("results", "model_iter00.h5"), x[..., None], y[..., None], max(2, steps // 3))
    return dict(name=name, total=total, pairs=seconds["pairs"], training=seconds["training"],
                validation_pairs=seconds["validation_pairs"], predicting=seconds["final_predicting"],
                step=seconds["step_median"], bare=bare, subtomos=n, steps=steps)


def precision_case(workdir, steps=6):
    """float32 vs mixed_bfloat16 train step, filter_base 16, cube 32, batch 4."""
    from isonet.network.unet import build_unet, save_model
    path = os.path.join(tempfile.mkdtemp(dir=workdir), "m.h5")
    save_model(build_unet(filter_base=16), path)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 32, 1)).astype(np.float32)
    return {policy: bare_steps(path, x, x, steps, policy) for policy in ("float32", "mixed_bfloat16")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small case")
    args = parser.parse_args()
    setup_logging("warning", None)
    workdir = tempfile.mkdtemp(prefix="isonet_bench_refine_")
    here = os.getcwd()
    rows = []
    for case in CASES[:1] if args.quick else CASES:
        rows.append(run_case(*case, workdir))
        os.chdir(here)
        print(f"done: {case[0]}", file=sys.stderr, flush=True)
    precision = precision_case(workdir)
    print("| case | subtomos | steps | iteration total (s) | pairs, thread time (s) | validation pairs "
          "up front (s) | training (s) | predicting (s) | step in refine (s) | bare train_on_batch (s) "
          "| overhead |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['subtomos']} | {r['steps']} | {r['total']:.1f} | {r['pairs']:.1f} | "
              f"{r['validation_pairs']:.1f} | {r['training']:.1f} | {r['predicting']:.1f} | {r['step']:.3f} | "
              f"{r['bare']:.3f} | {100 * (r['step'] / r['bare'] - 1):+.0f} % |")
    print()
    print("| precision (filter_base 16, cube 32, batch 4, CPU) | train step (s) |")
    print("|---|---|")
    for policy, seconds in precision.items():
        print(f"| {policy} | {seconds:.3f} |")
    print(f"\nmixed_bfloat16 / float32 step time: {precision['mixed_bfloat16'] / precision['float32']:.2f}")


if __name__ == "__main__":
    main()

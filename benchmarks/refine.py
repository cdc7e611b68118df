"""Benchmark of refine: training step and in-loop prediction against bare TensorFlow (docs/benchmarks.md).

For each case, one refine iteration (1 epoch, ``--pretrained_model`` so that
the network predicts at both ends of the iteration) runs on synthetic
subtomograms through :func:`isonet.refine.loop.refine`, in this process. Then,
in the same process and on the same model:

* bare train step: Keras's train function of the same compiled model on one
  in-memory batch of the same pairs, repeated (no pair making, no data
  pipeline); the median step time is compared with the median step inside
  refine (pairs made in threads and streamed through tf.data, data waits
  included). Target: ratio <= 1.15.
* bare inference: the same traced forward pass on the same subtomograms,
  already normalised in memory, in batches of the refine batch size; compared
  with refine's final in-loop prediction (reading, normalising, predicting,
  writing every subtomogram). Target: ratio <= 1.3.

* oneDNN: the bare train step of a filter_base 8 U-Net (batch 4 of 32^3) in
  two child processes, with ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's default on
  CPUs without AVX-512) and ``=1`` (isonet's default everywhere).

Usage: ``python benchmarks/refine.py [--quick]`` (``--quick``: only the small case).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from isonet.io.mrc import read_volume, write_volume
from isonet.log import setup_logging
from isonet.normalize import normalize
from isonet.prepare import prepare_subtomo_star

CASES = [
    # name, crop, cube, filter_base, subtomograms, steps
    ("cube 32 (crop 48), filter_base 16", 48, 32, 16, 24, 40),
    ("cube 64 (crop 96), filter_base 32", 96, 64, 32, 8, 8),
]


def make_subtomograms(folder, n, crop, seed=0):
    rng = np.random.default_rng(seed)
    sub = os.path.join(folder, "subtomo")
    os.makedirs(sub)
    for i in range(n):
        volume = gaussian_filter((rng.random((crop,) * 3) > 0.97).astype(np.float32), 1.5)
        write_volume(os.path.join(sub, f"s{i:03d}.mrc"), -volume)
    return [os.path.join(sub, f"s{i:03d}.mrc") for i in range(n)]


def bare_train_step(model_file, x, y, steps, learning_rate=4e-4):
    """Median seconds of Keras's train function on one in-memory batch (first step, which traces, excluded)."""
    import tensorflow as tf
    from isonet.network.runtime import load
    from isonet.refine.progress import training_progress
    from isonet.refine.training import compile_for_training
    strategy = tf.distribute.get_strategy()
    model = load(model_file)
    compile_for_training(model, strategy, learning_rate)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = training_progress(1, 1)
    model.fit(data, epochs=1, steps_per_epoch=steps + 1, callbacks=[timer], verbose=0)
    return float(np.median(timer.step_seconds[1:]))


def bare_inference(model_file, paths, batch_size):
    """Seconds of the traced forward pass over ``paths`` (normalised in memory), after a warm-up batch."""
    from isonet.network.runtime import Network
    network = Network.load(model_file)
    volumes = np.stack([normalize(-read_volume(p)) for p in paths])
    batches = [volumes[s:s + batch_size] for s in range(0, len(volumes), batch_size)]
    for batch in {len(b): b for b in batches}.values():
        network.predict(batch)  # trace every batch shape once, as refine's earlier prediction did
    started = time.perf_counter()
    for batch in batches:
        network.predict(batch)
    return time.perf_counter() - started


def run_case(name, crop, cube, filter_base, n, steps, workdir):
    from isonet.network.runtime import save
    from isonet.network.unet import build_unet
    from isonet.refine.config import RefineConfig
    from isonet.refine.loop import refine
    from isonet.refine.pairs import PairMaker
    folder = tempfile.mkdtemp(dir=workdir)
    paths = make_subtomograms(folder, n, crop)
    prepare_subtomo_star(os.path.join(folder, "subtomo"), os.path.join(folder, "subtomo.star"), cube_size=cube)
    pretrained = os.path.join(folder, "start.h5")
    save(build_unet(filter_base=filter_base), pretrained)
    here = os.getcwd()
    os.chdir(folder)
    try:
        config = RefineConfig.from_cli(dict(subtomo_star="subtomo.star", iterations=1, epochs=1,
                                            steps_per_epoch=steps, filter_base=filter_base, seed=1,
                                            pretrained_model=pretrained, preprocessing_ncpus=os.cpu_count()))
        started = time.perf_counter()
        history = refine(config)
        total = time.perf_counter() - started
        seconds = history[-1]["seconds"]
        previous = [os.path.join("results", f"s{i:03d}_iter00.mrc") for i in range(n)]
        x, y = PairMaker(paths[:1], previous[:1], [(-60.0, 60.0)], cube).pairs(0, list(range(config.batch_size)))
        bare_step = bare_train_step(os.path.join("results", "model_iter00.h5"), x[..., None], y[..., None], steps)
        bare_predict = bare_inference(os.path.join("results", "model_iter01.h5"), paths, config.batch_size)
    finally:
        os.chdir(here)
    return dict(name=name, total=total, pairs=seconds["pairs"], training=seconds["training"],
                predicting=seconds["final_predicting"], step=seconds["step_median"], bare_step=bare_step,
                bare_predict=bare_predict, subtomos=n, steps=steps, batch=config.batch_size)


ONEDNN_CHILD = """
import json, os, sys, tempfile
import numpy as np
sys.path.insert(0, sys.argv[1])
from refine import bare_train_step
from isonet.network.runtime import save
from isonet.network.unet import build_unet
path = os.path.join(tempfile.mkdtemp(), "m.h5")
save(build_unet(filter_base=8), path)
x = np.random.default_rng(0).standard_normal((4, 32, 32, 32, 1)).astype(np.float32)
print(json.dumps(bare_train_step(path, x, x, 8)))
"""


def onednn_comparison():
    """Bare train step (filter_base 8, batch 4, 32^3) with oneDNN off and on, each in a fresh process."""
    seconds = {}
    for setting in ("0", "1"):
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, "-c", ONEDNN_CHILD, os.path.dirname(os.path.abspath(__file__))],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            sys.exit(f"oneDNN={setting} child failed:\n{done.stderr[-3000:]}")
        seconds[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds


def cpu_line():
    from isonet.devices import cpu_description, onednn_enabled
    import tensorflow as tf
    name, features = cpu_description()
    return (f"CPU: {name or 'unknown'} ({os.cpu_count()} cores; {', '.join(features) or 'no features reported'}); "
            f"oneDNN {'on' if onednn_enabled() else 'OFF'}; GPUs: {len(tf.config.list_physical_devices('GPU'))}; "
            f"TensorFlow {tf.__version__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small case")
    args = parser.parse_args()
    setup_logging("warning", None)
    workdir = tempfile.mkdtemp(prefix="isonet_bench_refine_")
    rows = []
    for case in CASES[:1] if args.quick else CASES:
        rows.append(run_case(*case, workdir))
        print(f"done: {case[0]}", file=sys.stderr, flush=True)
    onednn = onednn_comparison()
    print(cpu_line())
    print()
    print("| case | subtomos | batch | steps | iteration (s) | pairs, thread time (s) | training (s) "
          "| step in refine (s) | bare step (s) | step ratio | in-loop predict (s) | bare inference (s) "
          "| predict ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['subtomos']} | {r['batch']} | {r['steps']} | {r['total']:.1f} | {r['pairs']:.1f} "
              f"| {r['training']:.1f} | {r['step']:.3f} | {r['bare_step']:.3f} | {r['step'] / r['bare_step']:.2f} "
              f"| {r['predicting']:.2f} | {r['bare_predict']:.2f} | {r['predicting'] / r['bare_predict']:.2f} |")
    print()
    print("| bare train step, filter_base 8, batch 4 of 32^3 | seconds |")
    print("|---|---|")
    print(f"| oneDNN off (TF_ENABLE_ONEDNN_OPTS=0) | {onednn['0']:.3f} |")
    print(f"| oneDNN on (isonet's default) | {onednn['1']:.3f} |")
    print(f"\noneDNN speed-up: {onednn['0'] / onednn['1']:.2f}x")


if __name__ == "__main__":
    main()

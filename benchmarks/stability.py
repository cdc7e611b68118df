"""Training stability at the size users run: loss and batch-norm statistics of the production default network.

The defaults (learning rate 0.002, mw_weight 16, full-input pairs, batch-norm refresh) were chosen with the
quality benchmark's small network (``filter_base`` 8, 32³ cubes); users train ``filter_base`` 64 on 64³ cubes.
This trains the production default network (``filter_base`` 64, depth 3, cube 64 from crops of 96, batch 4) on
the simulated crowded-cell tomogram of ``benchmarks/gpu.py`` (halves, 60 subtomograms) for a few hundred steps
per method, at the learning rate of the first iterations (0.002, held constant: the riskiest part of the
schedule), and records

* the training and validation loss of every epoch (a point every ``steps_per_epoch`` steps);
* per iteration, the moving statistics of every batch-normalisation channel of the saved network: the largest
  ``|moving mean|``, the smallest, median and largest moving variance, and how many are not finite.

The same schedule with the benchmark's width (``filter_base`` 8, same data) is the reference: a wider network
whose loss diverges, or whose statistics drift away from the narrow one's, needs another learning rate.

Usage::

    python benchmarks/stability.py [--quick] [--methods halves,isonet1] [--work DIR]

``--quick``: tiny sizes, a few minutes on 2 CPU cores (the tests run it so). Writes
``<work>/stability.json`` and ``<work>/stability_loss.png`` and prints the tables of docs/benchmarks.md.
On a GPU the full run takes minutes; on 2 CPU cores, hours (a production step is tens of seconds).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS)

from gpu import SPEED_SIZES, device_line, prepare_speed_data  # noqa: E402  (puts the repository on sys.path)

from isonet.io.atomic import atomic_output, atomic_write_text  # noqa: E402
from isonet.log import setup_logging  # noqa: E402

#: Steps of each run: iterations x epochs x steps per epoch, and the two widths compared.
SCHEDULES = {
    "full": dict(iterations=4, epochs=5, steps_per_epoch=10, batch_size=4, learning_rate=0.002),
    "quick": dict(iterations=2, epochs=2, steps_per_epoch=2, batch_size=4, learning_rate=0.002),
}
WIDTHS = {"full": (64, 8), "quick": (8, 4)}


def batch_norm_statistics(path):
    """Summary of the moving statistics of every BatchNormalization channel of the network saved at ``path``.

    Returns
    -------
    dict
        ``channels`` (count), ``max_abs_mean``, ``min_variance``, ``median_variance``, ``max_variance`` and
        ``non_finite`` (channels whose mean or variance is NaN or infinite).
    """
    from isonet.network.unet import load_model

    means, variances = [], []
    for layer in load_model(path).layers:
        if type(layer).__name__ == "BatchNormalization":
            means.append(np.asarray(layer.moving_mean).ravel())
            variances.append(np.asarray(layer.moving_variance).ravel())
    mean, variance = np.concatenate(means), np.concatenate(variances)
    finite = np.isfinite(mean) & np.isfinite(variance)
    summary = {"channels": int(mean.size), "non_finite": int((~finite).sum())}
    if not finite.any():  # a diverged network: nothing else to report
        return dict(summary, max_abs_mean=math.nan, min_variance=math.nan, median_variance=math.nan,
                    max_variance=math.nan)
    mean, variance = mean[finite], variance[finite]
    return dict(summary, max_abs_mean=float(np.abs(mean).max()), min_variance=float(variance.min()),
                median_variance=float(np.median(variance)), max_variance=float(variance.max()))


def train_run(folder, subtomo_star, method, filter_base, schedule, gpu_ids):
    """Refine ``method`` with ``filter_base`` for the schedule's steps; returns losses, BN statistics and times."""
    from isonet.refine.config import RefineConfig
    from isonet.refine.loop import refine
    from isonet.refine.outputs import model_path

    result_dir = os.path.join(folder, f"{method}_filter_base{filter_base}")
    started = time.perf_counter()
    history = refine(RefineConfig.from_cli(dict(
        schedule, final_learning_rate=schedule["learning_rate"], method=method, filter_base=filter_base,
        subtomo_star=subtomo_star, result_dir=result_dir, gpuID=gpu_ids, seed=0)))
    seconds = time.perf_counter() - started
    return {"method": method, "filter_base": filter_base, "seconds": round(seconds, 1),
            "step_median_seconds": float(np.median([h["seconds"]["step_median"] for h in history])),
            "loss": [float(v) for h in history for v in h["loss"]],
            "val_loss": [float(v) for h in history for v in h.get("val_loss", [])],
            "batch_norm": [batch_norm_statistics(model_path(result_dir, h["iteration"])) for h in history]}


def finite_and_bounded(run, growth=10.0):
    """Whether a run stayed sane: every loss finite and the last one at most ``growth`` times the first,
    every batch-norm statistic finite with a positive variance."""
    losses = run["loss"] + run["val_loss"]
    statistics = run["batch_norm"]
    return (all(math.isfinite(v) for v in losses) and run["loss"][-1] <= growth * run["loss"][0]
            and all(s["non_finite"] == 0 and s["min_variance"] > 0 for s in statistics))


def markdown(result):
    """The tables of docs/benchmarks.md: losses per run, then batch-norm statistics per iteration."""
    schedule = result["schedule"]
    every = schedule["steps_per_epoch"]
    lines = [f"Device: {result['device']}. {schedule['iterations']} iterations x {schedule['epochs']} epochs x "
             f"{every} steps, batch {schedule['batch_size']}, learning rate {schedule['learning_rate']} constant, "
             f"cube {result['cube']}.", "",
             "| method | filter_base | median step (s) | loss, first -> last epoch | lowest loss | "
             "val_loss, first -> last | sane |", "|---|---:|---:|---|---:|---|---|"]
    for run in result["runs"]:
        val = run["val_loss"]
        lines.append(f"| {run['method']} | {run['filter_base']} | {run['step_median_seconds']:.2f} | "
                     f"{run['loss'][0]:.4g} -> {run['loss'][-1]:.4g} | {min(run['loss']):.4g} | "
                     + (f"{val[0]:.4g} -> {val[-1]:.4g}" if val else "-")
                     + f" | {'yes' if finite_and_bounded(run) else 'NO'} |")
    lines += ["", "| method | filter_base | iteration | max \\|moving mean\\| | moving variance min / median / max | "
              "not finite |", "|---|---:|---:|---:|---|---:|"]
    for run in result["runs"]:
        for iteration, s in enumerate(run["batch_norm"], start=1):
            lines.append(f"| {run['method']} | {run['filter_base']} | {iteration} | {s['max_abs_mean']:.3g} | "
                         f"{s['min_variance']:.3g} / {s['median_variance']:.3g} / {s['max_variance']:.3g} | "
                         f"{s['non_finite']} |")
    return "\n".join(lines)


def plot_losses(result, path):
    """Training (solid) and validation (dashed) loss per epoch against step, one panel per method (PNG)."""
    from matplotlib.figure import Figure

    methods = list(dict.fromkeys(run["method"] for run in result["runs"]))
    figure = Figure(figsize=(4.5 * len(methods), 3.5))
    every = result["schedule"]["steps_per_epoch"]
    for column, method in enumerate(methods):
        axes = figure.add_subplot(1, len(methods), column + 1)
        for colour, run in enumerate(r for r in result["runs"] if r["method"] == method):
            steps = every * np.arange(1, len(run["loss"]) + 1)
            axes.plot(steps, run["loss"], color=f"C{colour}", label=f"filter_base {run['filter_base']}")
            if len(run["val_loss"]) == len(steps):
                axes.plot(steps, run["val_loss"], color=f"C{colour}", linestyle="--")
        axes.set(xlabel="step", ylabel="loss (solid: training, dashed: validation)", yscale="log",
                 title=f"--method {method}")
        axes.legend()
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a few minutes on 2 CPU cores)")
    parser.add_argument("--methods", default="halves,isonet1", help="comma-separated refine methods")
    parser.add_argument("--work", default=os.path.join(BENCHMARKS, "stability_work"), help="working folder")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    if not set(methods) <= {"halves", "isonet1"}:
        parser.error(f"--methods: {args.methods!r}; expected halves and/or isonet1, comma-separated")
    setup_logging("warning", None)
    from isonet.devices import import_tensorflow
    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")
    gpu_ids = [0] if tf.config.list_physical_devices("GPU") else []
    size = "quick" if args.quick else "full"
    folder = os.path.join(args.work, size)
    os.makedirs(folder, exist_ok=True)
    _, subtomo_star = prepare_speed_data(folder, SPEED_SIZES[size])
    schedule = SCHEDULES[size]
    result = {"device": device_line(), "quick": args.quick, "schedule": schedule, "cube": SPEED_SIZES[size]["cube"],
              "runs": []}
    path = os.path.join(args.work, "stability.json")
    for method in methods:
        for filter_base in WIDTHS[size]:
            result["runs"].append(train_run(folder, subtomo_star, method, filter_base, schedule, gpu_ids))
            atomic_write_text(path, json.dumps(result, indent=1) + "\n")  # a long CPU run keeps what it has
    plot_losses(result, os.path.join(args.work, "stability_loss.png"))
    print(markdown(result))
    print(f"\n(written to {path} and stability_loss.png)")
    return 0 if all(finite_and_bounded(run) for run in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())

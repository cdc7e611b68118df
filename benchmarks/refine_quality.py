"""Does refine restore the missing wedge? Score its in-loop predictions against ground truth.

For a finished tutorial run (``tutorial/run_tutorial.sh``), every subtomogram
listed in subtomo.star is traced back to its tomogram and centre
(rlnMicrographName, rlnCoordinateX/Y/Z); the same crop of the simulated ground
truth is compared with refine's prediction of that subtomogram after each
iteration (``results/<root>_iterNN.mrc``; NN = 00 is the wedge-filtered input)
by :func:`isonet.evaluation.metrics.evaluate`. Prints, per iteration, the mean
missing-wedge and measured-region correlations over the subtomograms.

Usage: python benchmarks/refine_quality.py [WORK_DIR]   (default ./tutorial_run)
"""

import glob
import os
import re
import sys

import numpy as np

from isonet.evaluation.metrics import evaluate
from isonet.io.mrc import read_volume
from isonet.io.star import read_star, resolve_path
from isonet.preprocess.extract import crop


def ground_truth_path(tomogram_path, work_dir):
    """The ground truth simulate wrote for a tomogram: ground_truth/<same file name>."""
    return os.path.join(work_dir, "ground_truth", os.path.basename(tomogram_path))


def main(work_dir="tutorial_run"):
    star_file = os.path.join(work_dir, "subtomo.star")
    table = read_star(star_file, required=("rlnImageName", "rlnMicrographName", "rlnCoordinateX"))
    truths = {}
    iterations = sorted({int(m.group(1)) for p in glob.glob(os.path.join(work_dir, "results", "*_iter*.mrc"))
                         for m in [re.search(r"_iter(\d+)\.mrc$", p)] if m})
    print(f"{'iteration':>9}  {'missing wedge':>13}  {'measured':>8}  (mean over {len(table)} subtomograms)")
    for iteration in iterations:
        wedge, measured = [], []
        for _, row in table.iterrows():
            root = os.path.splitext(os.path.basename(row["rlnImageName"]))[0]
            prediction = os.path.join(work_dir, "results", f"{root}_iter{iteration:02d}.mrc")
            if not os.path.isfile(prediction):
                continue
            source = row["rlnMicrographName"]
            if source not in truths:
                truths[source] = read_volume(ground_truth_path(resolve_path(source, star_file), work_dir))
            centre = (int(row["rlnCoordinateZ"]), int(row["rlnCoordinateY"]), int(row["rlnCoordinateX"]))
            truth = crop(truths[source], centre, int(row["rlnCropSize"]))
            tilt = (float(row.get("rlnTiltMin", -60.0)), float(row.get("rlnTiltMax", 60.0)))
            scores = evaluate(read_volume(prediction), truth, float(row["rlnPixelSize"]), *tilt)["correlation"]
            wedge.append(scores["missing_wedge"])
            measured.append(scores["measured"])
        if wedge:
            print(f"{iteration:>9}  {np.mean(wedge):>13.3f}  {np.mean(measured):>8.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Time and peak memory of deconv (whole and chunked), make_mask and extract on a large tomogram.

Usage: ``python benchmarks/preprocess.py [--shape 300,1000,1000] [--work DIR] [--ncpu 2]``

A synthetic float32 tomogram (noise with dark spheres) is written once; each
step then runs as the real ``isonet.py`` command in its own subprocess, whose
peak resident memory is read from ``os.wait4``. Prints a markdown table (the
one recorded in docs/benchmarks.md) with the peak RSS also as a multiple of
the tomogram's float32 size.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from isonet.io.star import write_star  # noqa: E402


def make_tomogram(path, shape, seed=0):
    """Write noise (std 1) with 2000 dark spheres of radius 4-12 voxels, a few planes at a time."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    spheres = np.column_stack([rng.integers(0, n, 2000) for n in shape] + [rng.integers(4, 13, 2000)])
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        mrc.voxel_size = 10.0
        for z0 in range(0, nz, 20):
            z1 = min(z0 + 20, nz)
            block = rng.standard_normal((z1 - z0, ny, nx), dtype=np.float32)
            for cz, cy, cx, r in spheres:
                if cz + r < z0 or cz - r >= z1:
                    continue
                zz, yy, xx = np.ogrid[z0:z1, max(cy - r, 0):min(cy + r + 1, ny), max(cx - r, 0):min(cx + r + 1, nx)]
                inside = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                block[:, max(cy - r, 0):min(cy + r + 1, ny), max(cx - r, 0):min(cx + r + 1, nx)][inside] -= 2.0
            mrc.data[z0:z1] = block


def run_step(name, args, cwd):
    """Run ``isonet.py ARGS`` in ``cwd``; return (wall seconds, peak RSS in bytes)."""
    command = [sys.executable, os.path.join(REPO, "bin", "isonet.py"), *args, "--log_file", ""]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{name} failed ({process.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="300,1000,1000", help="tomogram shape z,y,x")
    parser.add_argument("--work", default="/tmp/isonet_bench_preprocess", help="scratch folder (replaced)")
    parser.add_argument("--ncpu", default="2", help="--ncpu for deconv")
    parser.add_argument("--chunk_size", default="128", help="--chunk_size for the chunked deconv")
    options = parser.parse_args()
    shape = tuple(int(v) for v in options.shape.split(","))
    if os.path.exists(options.work):
        shutil.rmtree(options.work)
    os.makedirs(os.path.join(options.work, "tomos"))
    start = time.perf_counter()
    make_tomogram(os.path.join(options.work, "tomos", "tomo.mrc"), shape)
    print(f"synthetic tomogram {shape} written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    volume_bytes = 4 * int(np.prod(shape))
    table = pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomos/tomo.mrc"], "rlnPixelSize": [10.0],
                          "rlnDefocus": [30000.0], "rlnNumberSubtomo": [100]})
    write_star(table, os.path.join(options.work, "tomograms.star"))
    write_star(table, os.path.join(options.work, "chunked.star"))
    steps = [
        ("deconv (whole volume)", ["deconv", "tomograms.star", "--ncpu", options.ncpu]),
        (f"deconv (chunk_size {options.chunk_size}, overlap 0.25)",
         ["deconv", "chunked.star", "--deconv_folder", "deconv_chunked", "--ncpu", options.ncpu,
          "--chunk_size", options.chunk_size]),
        ("make_mask", ["make_mask", "tomograms.star"]),
        ("extract (100 subtomograms, crop 80)", ["extract", "tomograms.star", "--seed", "0"]),
    ]
    rows = []
    for name, args in steps:
        elapsed, peak = run_step(name, args, options.work)
        rows.append((name, elapsed, peak))
        print(f"{name}: {elapsed:.1f} s, {peak / 2 ** 30:.2f} GiB", file=sys.stderr)
    print(f"Tomogram {shape[0]}x{shape[1]}x{shape[2]} (z, y, x) float32 = {volume_bytes / 1e9:.2f} GB; "
          f"{os.cpu_count()} CPU cores.\n")
    print("| step | wall time (s) | peak RSS (GB) | peak RSS / volume size |")
    print("|---|---|---|---|")
    for name, elapsed, peak in rows:
        print(f"| {name} | {elapsed:.1f} | {peak / 1e9:.2f} | {peak / volume_bytes:.2f}x |")


if __name__ == "__main__":
    main()

#!/bin/bash
# The production default on one GPU: refine iteration and predict times, peak GPU memory, mixed precision
# off and on, quality on one benchmark dataset (benchmarks/gpu.py), then the training stability of the
# production network, loss and batch-norm statistics per method (benchmarks/stability.py). Run from anywhere:
#     benchmarks/gpu.sh            # one GPU (not yet timed there)
#     benchmarks/gpu.sh --quick    # tiny sizes, a few minutes on 2 CPU cores
# Uses GPU 0 (set CUDA_VISIBLE_DEVICES to choose another); without a GPU it runs on the CPU and says so.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python "$HERE/gpu.py" "$@"
python "$HERE/stability.py" "$@"

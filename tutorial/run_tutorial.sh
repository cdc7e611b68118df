#!/usr/bin/env bash
# The isonet tutorial in one command, on simulated data with ground truth:
#   simulate -> deconv -> make_mask -> extract -> refine -> predict -> evaluate
# then the scores of the raw and of the corrected tomogram side by side.
#
# Usage: tutorial/run_tutorial.sh [WORK_DIR]      (default ./tutorial_run; any current folder)
#
# The settings below are sized for a laptop CPU (about 7 minutes on 2 cores). The
# "GPU:" notes give the settings of a real run (see tutorial/README.md); edit the
# variables, or export them before calling (e.g. ITERATIONS=30 tutorial/run_tutorial.sh).
set -euo pipefail

WORK_DIR=${1:-./tutorial_run}

# ---- simulate: the dataset ----------------------------------------------------------------
N_TOMOS=${N_TOMOS:-1}                    # GPU: 3
SHAPE=${SHAPE:-64,256,256}               # z,y,x voxels; GPU: 96,512,512
PIXEL_SIZE=${PIXEL_SIZE:-10}             # Å/px (sizes of the simulated objects are physical)
TILT_MIN=${TILT_MIN:--60}
TILT_MAX=${TILT_MAX:-60}
TILT_STEP=${TILT_STEP:-3}
SNR=${SNR:-0.5}                          # per projection: signal variance / noise variance
DEFOCUS=${DEFOCUS:-30000}                # Å underfocus (3 µm); 0 = no CTF, and deconv is skipped
SEED=${SEED:-0}
NUMBER_SUBTOMOS=${NUMBER_SUBTOMOS:-60}   # per tomogram; GPU: 100 per tomogram (300 in all)
# ---- deconv -----------------------------------------------------------------------------------
SNRFALLOFF=${SNRFALLOFF:-1.0}
DECONVSTRENGTH=${DECONVSTRENGTH:-1.0}
# ---- make_mask --------------------------------------------------------------------------------
PATCH_SIZE=${PATCH_SIZE:-4}
DENSITY_PERCENTAGE=${DENSITY_PERCENTAGE:-50}
STD_PERCENTAGE=${STD_PERCENTAGE:-50}
Z_CROP=${Z_CROP:-0.2}                    # the simulated slab has empty ice at top and bottom
# ---- extract ----------------------------------------------------------------------------------
CUBE_SIZE=${CUBE_SIZE:-32}               # GPU: 64
CROP_SIZE=${CROP_SIZE:-48}               # GPU: 80 (cube + 16)
# ---- refine -----------------------------------------------------------------------------------
GPU_ID=${GPU_ID:-}                       # empty: all GPUs, else the CPU (with a warning); GPU: 0 or 0,1,...
ITERATIONS=${ITERATIONS:-10}             # GPU: 30
EPOCHS=${EPOCHS:-2}                      # GPU: 10
STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-25}   # GPU: default (min(6 N / batch, 200))
BATCH_SIZE=${BATCH_SIZE:-4}              # GPU: default (max(4, 2 x GPUs))
FILTER_BASE=${FILTER_BASE:-8}            # GPU: 64 (the default)
NOISE_LEVEL=${NOISE_LEVEL:-0.05}         # GPU: 0.05,0.1,0.15,0.2
NOISE_START_ITER=${NOISE_START_ITER:-8}  # GPU: 11,16,21,26
REFINE_SEED=${REFINE_SEED:-0}
COMPARE_ISONET1=${COMPARE_ISONET1:-1}    # 1: also train IsoNet 1's method (--method isonet1) on the same
                                         # subtomograms and budget, for the side-by-side table; 0: skip
# ---- predict ----------------------------------------------------------------------------------
PREDICT_CUBE=${PREDICT_CUBE:-48}         # GPU: the default (84, cores fitted to the tomogram)
PREDICT_CROP=${PREDICT_CROP:-64}         # GPU: the default (96)
# ---- evaluate ---------------------------------------------------------------------------------
RESOLUTION=${RESOLUTION:-30}             # Å: region correlations use frequencies up to 1/RESOLUTION

# ---- the isonet command: isonet.py on PATH, else this checkout's bin/isonet.py ---------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if command -v isonet.py >/dev/null 2>&1; then
    ISONET=(isonet.py)
else
    ISONET=("${PYTHON:-python3}" "$REPO/bin/isonet.py")
fi
AVAILABLE=$("${ISONET[@]}" --help | awk '/^Commands:/ {listing = 1; next} listing && NF {print $1}')
MISSING=()
has() { grep -qx "$1" <<<"$AVAILABLE"; }

TIMES=()
run_step() {  # run_step NAME COMMAND... : run one isonet command, timed
    local name=$1 start end
    shift
    if ! has "$name"; then
        MISSING+=("$name")
        echo ">>> $name: not available in this isonet yet, skipped"
        return 0
    fi
    echo
    echo ">>> ${ISONET[*]} $name $*"
    start=$(date +%s)
    "${ISONET[@]}" "$name" "$@"
    end=$(date +%s)
    TIMES+=("$(printf '%-10s %5d s' "$name" $((end - start)))")
}

mkdir -p "$WORK_DIR"
cd "$WORK_DIR"
echo "Tutorial folder: $(pwd)"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

# 1. simulate: tomograms/ (dark density), ground_truth/ (positive), tomograms.star
run_step simulate . --n_tomos "$N_TOMOS" --shape "$SHAPE" --pixel_size "$PIXEL_SIZE" \
    --tilt_min "$TILT_MIN" --tilt_max "$TILT_MAX" --tilt_step "$TILT_STEP" --snr "$SNR" \
    --defocus "$DEFOCUS" --number_subtomos "$NUMBER_SUBTOMOS" --seed "$SEED"
if [ ! -f tomograms.star ]; then
    echo "No tomograms.star: 'simulate' is needed for everything else." >&2
    exit 1
fi

# 2. deconv: deconv/*.mrc and rlnSnrFalloff, rlnDeconvStrength, rlnDeconvTomoName
if [ "$DEFOCUS" != "0" ]; then
    run_step deconv tomograms.star --snrfalloff "$SNRFALLOFF" --deconvstrength "$DECONVSTRENGTH" --ncpu 2
else
    echo ">>> deconv: skipped (DEFOCUS=0: the simulated data have no CTF)"
fi

# 3. make_mask: mask/*_mask.mrc and rlnMaskDensityPercentage, rlnMaskStdPercentage, rlnMaskName
run_step make_mask tomograms.star --patch_size "$PATCH_SIZE" --density_percentage "$DENSITY_PERCENTAGE" \
    --std_percentage "$STD_PERCENTAGE" --z_crop "$Z_CROP"

# 4. extract: subtomo/*.mrc and subtomo.star
run_step extract tomograms.star --cube_size "$CUBE_SIZE" --crop_size "$CROP_SIZE" --seed "$SEED"

# 5. refine: results/model_iterNN.h5, refine_iterNN.json, <subtomo>_iterNN.mrc
REFINE_OPTIONS=(--iterations "$ITERATIONS" --epochs "$EPOCHS" --steps_per_epoch "$STEPS_PER_EPOCH"
                --batch_size "$BATCH_SIZE" --filter_base "$FILTER_BASE" --noise_level "$NOISE_LEVEL"
                --noise_start_iter "$NOISE_START_ITER" --seed "$REFINE_SEED")
[ -n "$GPU_ID" ] && REFINE_OPTIONS+=(--gpuID "$GPU_ID")
if [ -f subtomo.star ]; then
    run_step refine subtomo.star "${REFINE_OPTIONS[@]}" --result_dir results
elif has refine; then
    echo ">>> refine: skipped (no subtomo.star)"
    MISSING+=("refine (no subtomo.star)")
fi

# 6. predict: corrected_tomos/*_corrected.mrc and rlnCorrectedTomoName
MODEL=$(ls results/model_iter*.h5 results/model_iter*.keras 2>/dev/null | sort | tail -n 1 || true)
if ! has predict; then
    run_step predict  # reports it as not available
elif [ -n "$MODEL" ]; then
    PREDICT_OPTIONS=(--cube_size "$PREDICT_CUBE" --crop_size "$PREDICT_CROP")
    [ -n "$GPU_ID" ] && PREDICT_OPTIONS+=(--gpuID "$GPU_ID")
    run_step predict tomograms.star "$MODEL" "${PREDICT_OPTIONS[@]}"
else
    echo ">>> predict: skipped (no trained model in results/)"
    MISSING+=("predict (no model)")
fi

# 6b. the same budget with IsoNet 1's method (one tomogram, no halves), for comparison
if [ "$COMPARE_ISONET1" = "1" ] && [ -f subtomo.star ] && [ -n "$MODEL" ] && has refine; then
    run_step refine subtomo.star "${REFINE_OPTIONS[@]}" --method isonet1 --result_dir results_isonet1
    MODEL_ISONET1=$(ls results_isonet1/model_iter*.h5 2>/dev/null | sort | tail -n 1 || true)
    if [ -n "$MODEL_ISONET1" ]; then
        cp tomograms.star tomograms_isonet1.star  # predict records its output in the STAR file it reads
        run_step predict tomograms_isonet1.star "$MODEL_ISONET1" "${PREDICT_OPTIONS[@]}" \
            --output_dir corrected_isonet1
    fi
fi

# 7. evaluate every stage of the first tomogram against its ground truth
mkdir -p evaluation
COLUMNS_JSON=()
for stage in raw:tomograms/tomo_01.mrc deconv:deconv/tomo_01.mrc \
             isonet1:corrected_isonet1/tomo_01_corrected.mrc corrected:corrected_tomos/tomo_01_corrected.mrc; do
    label=${stage%%:*}
    volume=${stage#*:}
    [ -f "$volume" ] || continue
    run_step evaluate "$volume" ground_truth/tomo_01.mrc --tilt_min "$TILT_MIN" --tilt_max "$TILT_MAX" \
        --resolution "$RESOLUTION" --json "evaluation/$label.json"
    [ -f "evaluation/$label.json" ] && COLUMNS_JSON+=("$label=evaluation/$label.json")
done

if [ ${#COLUMNS_JSON[@]} -gt 0 ]; then
    echo
    echo "=== tomo_01 against its ground truth ==="
    "${PYTHON:-python3}" - "${COLUMNS_JSON[@]}" <<'EOF'
import json
import sys

columns = [(item.split("=", 1)[0], json.load(open(item.split("=", 1)[1]))) for item in sys.argv[1:]]


def number(result, *keys, digits=3):
    for key in keys:
        result = result.get(key) if isinstance(result, dict) else None
    return "-" if result is None else f"{result:.{digits}f}"


limit = columns[0][1].get("resolution_limit")
rows = [("correlation, overall", ("correlation", "overall"), 3),
        (f"correlation, missing wedge (to {limit:g} Å)", ("correlation", "missing_wedge"), 3),
        (f"correlation, measured (to {limit:g} Å)", ("correlation", "measured"), 3)]
for axis in "xyz":
    for threshold in ("0.5", "0.143"):
        rows.append((f"FSC {threshold} resolution along {axis.upper()} (Å)", ("fsc", axis, threshold), 1))
rows += [("Z/X resolution ratio at 0.143", ("z_over_x", "0.143"), 2)]
print(f"{'':46}" + "".join(f"{name:>12}" for name, _ in columns))
for title, keys, digits in rows:
    print(f"{title:46}" + "".join(f"{number(result, *keys, digits=digits):>12}" for _, result in columns))
EOF
fi

echo
echo "=== step times ==="
printf '%s\n' "${TIMES[@]}"
if [ ${#MISSING[@]} -gt 0 ]; then
    echo
    echo "Not run (not available yet, or their input is missing): $(printf '%s\n' "${MISSING[@]}" | awk '!seen[$0]++' | paste -sd ' ')"
fi
echo "Everything is in $(pwd)"

"""Bad inputs and faults across every command: one clear ERROR line, the right exit status, nothing touched.

Every case runs ``isonet.cli.main(argv)`` in-process inside one shared tiny
project and checks: the exit status (2 usage/parameter error, 1 input or
runtime error), exactly one ``ERROR:`` line, last on stderr, naming the file
or parameter at fault, no traceback, and every file and folder of the project
byte-identical afterwards (inputs unchanged, no output created, renamed or
written, no lock or temporary file left). None of these cases reaches
TensorFlow. The lock tests hold an output's lock and check that a second
command is refused; the kill -9 test interrupts a tiny refine and resumes it.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_cli
from isonet.cli import main
from isonet.io.mrc import write_volume
from isonet.io.star import read_star, set_column, write_star

SHAPE = (32, 48, 40)


def _write_star(path, rows):
    import pandas as pd
    write_star(pd.DataFrame(rows), path)


def _tomogram_rows(names, **extra):
    rows = {"rlnIndex": list(range(1, len(names) + 1)), "rlnMicrographName": names,
            "rlnPixelSize": [10.0] * len(names), "rlnDefocus": [20000.0] * len(names),
            "rlnNumberSubtomo": [3] * len(names)}
    rows.update({k: v if isinstance(v, list) else [v] * len(names) for k, v in extra.items()})
    return rows


def _truncate(path, nbytes=64):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - nbytes)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project with good and bad inputs and existing outputs (subtomo/, results/)."""
    root = tmp_path_factory.mktemp("project")
    rng = np.random.default_rng(5)
    os.chdir(root)
    try:
        os.makedirs("tomos")
        for name in ("t1", "t2"):
            write_volume(f"tomos/{name}.mrc", rng.normal(size=SHAPE).astype(np.float32), voxel_size=10.0)
        os.makedirs("bad")
        shutil.copy("tomos/t1.mrc", "bad/trunc.mrc")
        _truncate("bad/trunc.mrc")
        with open("bad/text.mrc", "w") as handle:
            handle.write("not a volume\n" * 200)
        write_volume("bad/thin.mrc", rng.normal(size=(12, 48, 40)).astype(np.float32))
        write_volume("bad/small.mrc", np.zeros((16, 16, 16), np.float32))
        write_volume("bad/mask_wrong.mrc", np.ones((8, 8, 8), np.int8))
        write_volume("mask_t1.mrc", np.ones(SHAPE, np.int8))
        os.makedirs("withtext")
        shutil.copy("tomos/t1.mrc", "withtext/a.mrc")
        shutil.copy("bad/text.mrc", "withtext/b.mrc")
        os.makedirs("emptydir")
        os.makedirs("noncubic")
        write_volume("noncubic/s.mrc", np.zeros((24, 24, 32), np.float32))
        os.makedirs("mixed")
        write_volume("mixed/s1.mrc", np.zeros((24,) * 3, np.float32))
        write_volume("mixed/s2.mrc", np.zeros((32,) * 3, np.float32))
        os.makedirs("cubes")
        write_volume("cubes/s1.mrc", np.zeros((24,) * 3, np.float32))
        os.makedirs("cubetext")
        write_volume("cubetext/s1.mrc", np.zeros((24,) * 3, np.float32))
        shutil.copy("bad/text.mrc", "cubetext/s2.mrc")

        _write_star("tomograms.star", _tomogram_rows(["tomos/t1.mrc", "tomos/t2.mrc"]))
        _write_star("trunc2.star", _tomogram_rows(["tomos/t1.mrc", "bad/trunc.mrc"]))
        _write_star("text.star", _tomogram_rows(["bad/text.mrc"]))
        _write_star("thin.star", _tomogram_rows(["bad/thin.mrc"]))
        _write_star("negdefocus.star", _tomogram_rows(["tomos/t1.mrc", "tomos/t2.mrc"], rlnDefocus=[20000.0, -5.0]))
        _write_star("pixel0.star", _tomogram_rows(["tomos/t1.mrc"], rlnPixelSize=0.0))
        _write_star("count0.star", _tomogram_rows(["tomos/t1.mrc"], rlnNumberSubtomo=0))
        _write_star("maskwrong.star", _tomogram_rows(["tomos/t1.mrc"], rlnMaskName="bad/mask_wrong.mrc"))
        _write_star("boundary.star", _tomogram_rows(["tomos/t1.mrc"], rlnMaskBoundary="boundary_missing.mod"))
        _write_star("nodefocus.star", {"rlnIndex": [1], "rlnMicrographName": ["tomos/t1.mrc"],
                                       "rlnPixelSize": [10.0]})
        _write_star("noname.star", {"rlnIndex": [1], "rlnPixelSize": [10.0]})
        with open("garbage.star", "w") as handle:
            handle.write("this is not a STAR file\n")

        from isonet.preprocess.extract import extract_subtomograms
        extract_subtomograms("tomograms.star", cube_size=16, crop_size=24, seed=1)  # subtomo/, subtomo.star
        table = read_star("subtomo.star")
        shutil.copy(table["rlnImageName"][0], "bad/sub_trunc.mrc")
        _truncate("bad/sub_trunc.mrc")
        bad = table.copy()
        set_column(bad, "rlnImageName", "bad/sub_trunc.mrc", rows=[bad.index[-1]])
        write_star(bad, "sub_trunc.star")
        bad = table.copy()
        set_column(bad, "rlnImageName", "bad/small.mrc", rows=[bad.index[-1]])
        write_star(bad, "sub_wrongsize.star")
        write_star(table.drop(columns=["rlnCropSize"]), "sub_nolabel.star")
        os.makedirs("results")
        with open("results/mine.txt", "w") as handle:
            handle.write("keep me\n")
        write_volume("a.mrc", rng.normal(size=(24, 24, 24)).astype(np.float32), voxel_size=10.0)
        write_volume("b.mrc", rng.normal(size=(24, 24, 24)).astype(np.float32), voxel_size=10.0)
        write_volume("c32.mrc", rng.normal(size=(32, 24, 24)).astype(np.float32), voxel_size=10.0)
        shutil.copy("a.mrc", "bad/a_trunc.mrc")
        _truncate("bad/a_trunc.mrc")
        with open("afile", "w") as handle:
            handle.write("a file, not a folder\n")
    finally:
        os.chdir(REPO)
    return root


def _tree(root):
    """Path -> sha256 (or 'dir') of everything under ``root``."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                state[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return state


# (id, argv, exit status, text the ERROR line must contain). Paths are relative to the project.
CASES = [
    # ------------------------------------------------------------------ prepare_star
    ("prepare_star-no-folder", ["prepare_star"], 2, "missing argument FOLDER_NAME"),
    ("prepare_star-folder-missing", ["prepare_star", "nothere"], 1, "nothere: folder not found"),
    ("prepare_star-empty-folder", ["prepare_star", "emptydir"], 1, "emptydir: no tomograms found"),
    ("prepare_star-text-named-mrc", ["prepare_star", "withtext", "--output_star", "new.star"], 1,
     "withtext/b.mrc: not an MRC file"),
    ("prepare_star-pixel-abc", ["prepare_star", "tomos", "--pixel_size", "abc"], 2,
     "--pixel_size: expected a number, got 'abc'"),
    ("prepare_star-pixel-zero", ["prepare_star", "tomos", "--pixel_size=0"], 2, "--pixel_size: expected a value > 0"),
    ("prepare_star-tilts-swapped", ["prepare_star", "tomos", "--tilt_min", "60", "--tilt_max", "-60"], 2,
     "--tilt_min/--tilt_max"),
    ("prepare_star-tilt-out-of-range", ["prepare_star", "tomos", "--tilt_max", "100"], 2, "--tilt_max"),
    ("prepare_star-subtomos-zero", ["prepare_star", "tomos", "--number_subtomos", "0"], 2, "--number_subtomos"),
    ("prepare_star-output-folder-missing", ["prepare_star", "tomos", "--output_star", "nodir/t.star"], 1,
     "nodir/t.star"),
    ("prepare_star-output-is-folder", ["prepare_star", "tomos", "--output_star", "emptydir"], 1,
     "emptydir: is a folder"),
    ("prepare_star-unknown-option", ["prepare_star", "tomos", "--pixelsize", "3"], 2, "unknown option --pixelsize"),
    ("prepare_star-extra-argument", ["prepare_star", "tomos", "more"], 2, "too many arguments"),
    ("prepare_star-even-without-odd", ["prepare_star", "tomos", "--even", "tomos"], 2, "--even and --odd"),
    ("prepare_star-even-folder-missing", ["prepare_star", "tomos", "--even", "nothere", "--odd", "tomos"], 1,
     "nothere"),
    ("prepare_star-halves-unmatched", ["prepare_star", "tomos", "--even", "cubes", "--odd", "tomos"], 1,
     "--even: no half tomogram named after"),
    ("prepare_star-missing-value", ["prepare_star", "tomos", "--pixel_size"], 2, "--pixel_size: missing value"),
    ("prepare_star-relion5-missing", ["prepare_star", "--relion5", "nothere.star"], 1,
     "nothere.star: STAR file not found"),
    ("prepare_star-relion5-not-relion", ["prepare_star", "--relion5", "tomograms.star"], 1,
     "not a RELION 5 tomograms.star"),
    ("prepare_star-relion5-and-folder", ["prepare_star", "tomos", "--relion5", "tomograms.star"], 2,
     "--relion5: give the RELION 5 tomograms.star alone"),
    ("prepare_star-metadata-folder-missing", ["prepare_star", "tomos", "--metadata_folder", "nothere"], 1,
     "--metadata_folder nothere: folder not found"),
    ("prepare_star-amplitude-contrast-2", ["prepare_star", "tomos", "--amplitude_contrast", "2"], 2,
     "--amplitude_contrast"),
    # ------------------------------------------------------------------ prepare_subtomo_star
    ("prepare_subtomo_star-noncubic", ["prepare_subtomo_star", "noncubic", "--output_star", "n.star"], 1,
     "noncubic/s.mrc: subtomogram must be cubic"),
    ("prepare_subtomo_star-mixed-sizes", ["prepare_subtomo_star", "mixed", "--output_star", "n.star"], 1,
     "mixed/s2.mrc: edge 32 differs"),
    ("prepare_subtomo_star-cube-12", ["prepare_subtomo_star", "cubes", "--cube_size", "12", "--output_star", "n.star"],
     2, "--cube_size"),
    ("prepare_subtomo_star-pixel-negative", ["prepare_subtomo_star", "cubes", "--pixel_size", "-1"], 2,
     "--pixel_size"),
    ("prepare_subtomo_star-folder-missing", ["prepare_subtomo_star", "nothere"], 1, "nothere: folder not found"),
    ("prepare_subtomo_star-text-file", ["prepare_subtomo_star", "cubetext", "--output_star", "n.star"], 1,
     "cubetext/s2.mrc: not an MRC file"),
    # ------------------------------------------------------------------ deconv
    ("deconv-no-defocus-label", ["deconv", "nodefocus.star"], 1, "missing STAR label(s) rlnDefocus"),
    ("deconv-negative-defocus", ["deconv", "negdefocus.star", "--deconv_folder", "dec"], 1,
     "rlnDefocus of tomos/t2.mrc is -5.0"),
    ("deconv-truncated-second", ["deconv", "trunc2.star", "--deconv_folder", "dec"], 1,
     "bad/trunc.mrc: truncated or not an MRC file"),
    ("deconv-voltage-zero", ["deconv", "tomograms.star", "--voltage", "0"], 2, "--voltage"),
    ("deconv-amplitude-contrast-negative", ["deconv", "tomograms.star", "--amplitude_contrast", "-0.1"], 2,
     "--amplitude_contrast"),
    ("deconv-highpass-2", ["deconv", "tomograms.star", "--highpassnyquist", "2"], 2, "--highpassnyquist"),
    ("deconv-chunk-8", ["deconv", "tomograms.star", "--chunk_size", "8"], 2, "--chunk_size"),
    ("deconv-overlap-1", ["deconv", "tomograms.star", "--overlap_rate", "1"], 2, "--overlap_rate"),
    ("deconv-tomo-idx-absent", ["deconv", "tomograms.star", "--tomo_idx", "9"], 1, "--tomo_idx"),
    ("deconv-tomo-idx-garbage", ["deconv", "tomograms.star", "--tomo_idx", "a-b"], 2, "--tomo_idx"),
    ("deconv-star-missing", ["deconv", "nothere.star"], 1, "nothere.star: STAR file not found"),
    ("deconv-star-garbage", ["deconv", "garbage.star"], 1, "garbage.star"),
    # ------------------------------------------------------------------ make_mask
    ("make_mask-density-zero", ["make_mask", "tomograms.star", "--density_percentage", "0"], 2,
     "--density_percentage"),
    ("make_mask-std-over-100", ["make_mask", "tomograms.star", "--std_percentage", "150"], 2, "--std_percentage"),
    ("make_mask-z-crop-half", ["make_mask", "tomograms.star", "--z_crop", "0.5"], 2, "--z_crop"),
    ("make_mask-patch-zero", ["make_mask", "tomograms.star", "--patch_size", "0"], 2, "--patch_size"),
    ("make_mask-boundary-missing", ["make_mask", "boundary.star", "--mask_folder", "m"], 1, "boundary_missing.mod"),
    ("make_mask-text-tomogram", ["make_mask", "text.star", "--mask_folder", "m"], 1, "bad/text.mrc: not an MRC"),
    ("make_mask-truncated-second", ["make_mask", "trunc2.star", "--mask_folder", "m"], 1, "bad/trunc.mrc"),
    ("make_mask-use-deconv-maybe", ["make_mask", "tomograms.star", "--use_deconv_tomo", "maybe"], 2,
     "--use_deconv_tomo"),
    # ------------------------------------------------------------------ extract
    ("extract-truncated-second", ["extract", "trunc2.star", "--cube_size", "16", "--crop_size", "24"], 1,
     "bad/trunc.mrc: truncated or not an MRC file"),
    ("extract-cube-12", ["extract", "tomograms.star", "--cube_size", "12"], 2, "--cube_size"),
    ("extract-crop-not-larger", ["extract", "tomograms.star", "--cube_size", "16", "--crop_size", "16"], 2,
     "--crop_size"),
    ("extract-mask-shape", ["extract", "maskwrong.star", "--cube_size", "16", "--crop_size", "24"], 1,
     "bad/mask_wrong.mrc: mask shape"),
    ("extract-thin-tomogram", ["extract", "thin.star", "--cube_size", "16", "--crop_size", "24"], 1,
     "bad/thin.mrc: tomogram of shape"),
    ("extract-count-zero", ["extract", "count0.star", "--cube_size", "16", "--crop_size", "24"], 1,
     "rlnNumberSubtomo"),
    ("extract-pixel-zero", ["extract", "pixel0.star", "--cube_size", "16", "--crop_size", "24"], 1, "rlnPixelSize"),
    ("extract-no-name-label", ["extract", "noname.star"], 1, "rlnMicrographName"),
    ("extract-seed-negative", ["extract", "tomograms.star", "--seed", "-1"], 2, "--seed"),
    ("extract-star-into-missing-folder", ["extract", "tomograms.star", "--cube_size", "16", "--crop_size", "24",
                                          "--subtomo_star", "nodir/s.star"], 1, "nodir/s.star"),
    ("extract-folder-is-file", ["extract", "tomograms.star", "--cube_size", "16", "--crop_size", "24",
                                "--subtomo_folder", "afile"], 1, "afile: exists and is not a folder"),
    ("extract-text-tomogram", ["extract", "text.star", "--cube_size", "16", "--crop_size", "24"], 1, "bad/text.mrc"),
    # ------------------------------------------------------------------ refine (all before TensorFlow is imported)
    ("refine-convs-per-depth-1", ["refine", "subtomo.star", "--convs_per_depth", "1"], 2, "--convs_per_depth"),
    ("refine-depth-too-deep", ["refine", "subtomo.star", "--unet_depth", "5"], 2,
     "--unet_depth 5: needs cubes whose edge is a multiple of 32"),
    ("refine-truncated-subtomogram", ["refine", "sub_trunc.star"], 1, "bad/sub_trunc.mrc: truncated"),
    ("refine-wrong-size-subtomogram", ["refine", "sub_wrongsize.star"], 1, "bad/small.mrc: subtomogram of shape"),
    ("refine-star-missing", ["refine", "nothere.star"], 1, "nothere.star: STAR file not found"),
    ("refine-star-no-crop-label", ["refine", "sub_nolabel.star"], 1, "rlnCropSize"),
    ("refine-no-star", ["refine", "--iterations", "2"], 2, "SUBTOMO_STAR is required"),
    ("refine-noise-count-mismatch", ["refine", "subtomo.star", "--noise_level", "0.1,0.2", "--noise_start_iter", "5"],
     2, "--noise_level has 2 value(s)"),
    ("refine-dropout-1", ["refine", "subtomo.star", "--drop_out", "1"], 2, "--drop_out"),
    ("refine-noise-mode", ["refine", "subtomo.star", "--noise_mode", "pink"], 2, "--noise_mode"),
    ("refine-kernel-two-values", ["refine", "subtomo.star", "--kernel", "3,3"], 2, "--kernel"),
    ("refine-iterations-zero", ["refine", "subtomo.star", "--iterations", "0"], 2, "--iterations"),
    ("refine-learning-rate-abc", ["refine", "subtomo.star", "--learning_rate", "fast"], 2, "--learning_rate"),
    ("refine-final-learning-rate-zero", ["refine", "subtomo.star", "--final_learning_rate", "0"], 2,
     "--final_learning_rate: expected a value > 0"),
    ("refine-continue-missing", ["refine", "--continue_from", "results/refine_iter07.json"], 1,
     "refine_iter07.json: file not found"),
    ("refine-pretrained-missing", ["refine", "subtomo.star", "--pretrained_model", "nothere.h5"], 1,
     "--pretrained_model nothere.h5: file not found"),
    ("refine-pool-3", ["refine", "subtomo.star", "--pool", "3"], 2, "--pool"),
    ("refine-method-unknown", ["refine", "subtomo.star", "--method", "isonet3"], 2,
     "--method: expected one of isonet1, halves, got 'isonet3'"),
    ("refine-mw-weight-negative", ["refine", "subtomo.star", "--mw_weight", "-1"], 2, "--mw_weight"),
    ("refine-full-input-fraction-above-one", ["refine", "subtomo.star", "--full_input_fraction", "1.5"], 2,
     "--full_input_fraction: expected a value [0, 1]"),
    ("refine-retired-option", ["refine", "subtomo.star", "--mw_target", "other"], 2,
     "unknown option --mw_target for 'refine'"),
    ("refine-halves-method-without-halves", ["refine", "subtomo.star", "--method", "halves"], 1,
     "subtomo.star: --method halves needs half subtomograms"),
    # ------------------------------------------------------------------ predict (all before TensorFlow)
    ("predict-model-missing", ["predict", "tomograms.star", "nothere.h5", "--output_dir", "out"], 1,
     "nothere.h5: model file not found"),
    ("predict-crop-not-larger", ["predict", "tomograms.star", "m.h5", "--cube_size", "32", "--crop_size", "32"], 2,
     "--crop_size"),
    ("predict-truncated-tomogram", ["predict", "trunc2.star", "m.h5", "--output_dir", "out"], 1, "bad/trunc.mrc"),
    ("predict-no-name-label", ["predict", "noname.star", "m.h5"], 1, "rlnMicrographName"),
    ("predict-batch-zero", ["predict", "tomograms.star", "m.h5", "--batch_size", "0"], 2, "--batch_size"),
    ("predict-gpu-garbage", ["predict", "tomograms.star", "m.h5", "--gpuID", "x"], 2, "--gpuID"),
    ("predict-missing-model-argument", ["predict", "tomograms.star"], 2, "missing argument MODEL"),
    ("predict-tomo-idx-absent", ["predict", "tomograms.star", "m.h5", "--tomo_idx", "3-4"], 1, "--tomo_idx"),
    # ------------------------------------------------------------------ resize
    ("resize-apix-zero", ["resize", "tomograms.star", "--apix", "0"], 2, "--apix"),
    ("resize-truncated-second", ["resize", "trunc2.star", "--out_folder", "r"], 1, "bad/trunc.mrc"),
    ("resize-pixel-zero", ["resize", "pixel0.star", "--out_folder", "r"], 1, "rlnPixelSize"),
    ("resize-star-missing", ["resize", "nothere.star"], 1, "nothere.star"),
    # ------------------------------------------------------------------ check
    ("check-extra-argument", ["check", "now"], 2, "too many arguments"),
    ("check-unknown-option", ["check", "--gpu", "0"], 2, "unknown option --gpu"),
    # ------------------------------------------------------------------ simulate
    ("simulate-shape-too-small", ["simulate", "sim", "--shape", "4,64,64"], 2, "--shape"),
    ("simulate-shape-two-values", ["simulate", "sim", "--shape", "32,32"], 2, "--shape"),
    ("simulate-snr-zero", ["simulate", "sim", "--snr", "0"], 2, "--snr"),
    ("simulate-reconstruction", ["simulate", "sim", "--reconstruction", "art"], 2, "--reconstruction"),
    ("simulate-tilt-step", ["simulate", "sim", "--tilt_step", "200"], 2, "--tilt_step"),
    ("simulate-n-tomos-zero", ["simulate", "sim", "--n_tomos", "0"], 2, "--n_tomos"),
    ("simulate-scene-unknown", ["simulate", "sim", "--scene", "moon"], 2, "--scene"),
    ("simulate-out-dir-is-file", ["simulate", "afile", "--shape", "16,32,32"], 1, "afile: exists and is not a folder"),
    # ------------------------------------------------------------------ evaluate
    ("evaluate-shape-mismatch", ["evaluate", "c32.mrc", "a.mrc"], 1, "c32.mrc: shape"),
    ("evaluate-cone-95", ["evaluate", "a.mrc", "b.mrc", "--cone_angle", "95"], 2, "--cone_angle"),
    ("evaluate-truth-missing", ["evaluate", "a.mrc", "nothere.mrc"], 1, "nothere.mrc: file not found"),
    ("evaluate-mask-shape", ["evaluate", "a.mrc", "b.mrc", "--mask", "bad/mask_wrong.mrc"], 1,
     "bad/mask_wrong.mrc: mask shape"),
    ("evaluate-low-resolution", ["evaluate", "a.mrc", "b.mrc", "--low_resolution", "10"], 2, "--low_resolution"),
    ("evaluate-text-candidate", ["evaluate", "bad/text.mrc", "a.mrc"], 1, "bad/text.mrc"),
    # ------------------------------------------------------------------ fsc3d
    ("fsc3d-shape-mismatch", ["fsc3d", "a.mrc", "c32.mrc"], 1, "c32.mrc: shape"),
    ("fsc3d-directions-zero", ["fsc3d", "a.mrc", "b.mrc", "--n_directions", "0"], 2, "--n_directions"),
    ("fsc3d-crops-negative", ["fsc3d", "a.mrc", "b.mrc", "--cubic_crops", "-1"], 2, "--cubic_crops"),
    ("fsc3d-truncated", ["fsc3d", "a.mrc", "bad/a_trunc.mrc"], 1, "bad/a_trunc.mrc"),
    ("fsc3d-out-under-file", ["fsc3d", "a.mrc", "b.mrc", "--out", "afile/x"], 1, "afile"),
    # ------------------------------------------------------------------ snapshot
    ("snapshot-no-volume", ["snapshot"], 2, "missing argument VOLUMES"),
    ("snapshot-label-count", ["snapshot", "a.mrc", "b.mrc", "--labels", "one"], 2, "--labels: 1 labels for 2"),
    ("snapshot-truncated", ["snapshot", "a.mrc", "bad/a_trunc.mrc", "--out", "s.png"], 1, "bad/a_trunc.mrc"),
    ("snapshot-missing-file", ["snapshot", "nothere.mrc"], 1, "nothere.mrc: file not found"),
    # ------------------------------------------------------------------ any command
    ("unknown-command", ["refnie"], 2, "unknown command 'refnie'"),
    ("log-level-loud", ["prepare_star", "tomos", "--log_level", "loud"], 2, "--log_level"),
]


@pytest.mark.parametrize("case_id, argv, status, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input(project, monkeypatch, capsys, case_id, argv, status, text):
    monkeypatch.chdir(project)
    before = _tree(project)
    code = main(argv + ["--log_file="] if argv[0] != "refnie" else argv)
    out, err = capsys.readouterr()
    assert code == status, (out[-2000:], err[-2000:])
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-2000:]
    assert text in errors[0], errors[0]
    assert "Traceback" not in out + err
    assert _tree(project) == before  # inputs byte-identical, no output created, renamed or left behind


def test_case_count_per_command():
    counts = {}
    for case_id, argv, *_ in CASES:
        counts[argv[0] if argv else "none"] = counts.get(argv[0], 0) + 1
    assert len(CASES) >= 60
    assert all(counts.get(name, 0) >= 2 for name in (
        "prepare_star", "prepare_subtomo_star", "deconv", "make_mask", "extract", "refine", "predict", "resize",
        "check", "simulate", "evaluate", "fsc3d", "snapshot"))


@pytest.mark.parametrize("argv, what", [
    (["extract", "tomograms.star", "--cube_size", "16", "--crop_size", "24"], "--subtomo_folder subtomo"),
    (["deconv", "tomograms.star", "--deconv_folder", "dec"], "--deconv_folder dec"),
    (["resize", "tomograms.star", "--apix", "5"], "--out_folder tomograms_resized"),
    (["predict", "tomograms.star", "a.mrc"], "--output_dir ./corrected_tomos"),
    (["simulate", "sim", "--shape", "16,32,32"], "--out_dir sim"),
    (["refine", "subtomo.star"], "--result_dir results"),
], ids=lambda value: value[0] if isinstance(value, list) else "")
def test_full_disk_is_refused_before_writing(project, monkeypatch, capsys, argv, what):
    """The space the outputs need is estimated and checked before anything is written or renamed aside."""
    class Full:
        f_bavail, f_frsize = 10, 4096
    monkeypatch.chdir(project)
    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    before = _tree(project)
    code = main(argv + ["--log_file="])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"ERROR: {what}: needs about"), err[-1000:]
    assert _tree(project) == before


def test_tensorflow_free_commands_do_not_import_tensorflow(project):
    script = ("import sys; from isonet.cli import main; "
              "[main(a + ['--log_file=']) for a in (['prepare_star', 'tomos', '--output_star', 'x.star'], "
              "['extract', 'trunc2.star'], ['refine', 'sub_trunc.star'], ['predict', 'trunc2.star', 'm.h5'], "
              "['--help'], ['refine', '--help'])]; print('TF', 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
    assert result.stdout.strip().splitlines()[-1] == "TF False", result.stderr[-2000:]
    os.remove(os.path.join(project, "x.star"))


def test_help_into_closed_pipe_has_no_traceback():
    script = os.path.join(REPO, "bin", "isonet.py")
    result = subprocess.run(f"'{sys.executable}' '{script}' refine --help | head -1", shell=True,
                            capture_output=True, text=True)
    assert result.stdout.startswith("Usage: isonet.py refine")
    assert result.stderr == ""


def test_log_into_closed_pipe_has_no_traceback(project, tmp_path):
    """The reader of stdout is gone before the first log line: the command still succeeds, quietly."""
    script = os.path.join(REPO, "bin", "isonet.py")
    result = subprocess.run(f"'{sys.executable}' '{script}' prepare_star '{project}/tomos' --log_file= | true",
                            shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert result.stderr == "" and (tmp_path / "tomograms.star").exists()


def test_help_shows_each_default_once():
    from isonet.cli import command_help
    lines = command_help("refine").splitlines()
    iterations = [line for line in lines if line.startswith("  --iterations ")]
    assert len(iterations) == 1 and iterations[0].count("30") == 1 and iterations[0].count("default") == 1


def test_flat_volumes_are_warned_about(tmp_path, monkeypatch, caplog):
    """extract and predict warn about constant or nearly empty tomograms (predict: no network needed here)."""
    from isonet.predict.predict import correct_tomogram
    monkeypatch.chdir(tmp_path)
    write_volume("zeros.mrc", np.zeros(SHAPE, np.float32))
    padded = np.zeros(SHAPE, np.float32)
    padded[:1] = 1.0  # 3 % of the voxels differ from zero: the 4th and 96th percentiles are both 0
    write_volume("padded.mrc", padded)
    _write_star("tomograms.star", _tomogram_rows(["zeros.mrc", "padded.mrc"]))
    result = run_cli("extract", "tomograms.star", "--cube_size", "16", "--crop_size", "24", "--seed", "1",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNING zeros.mrc: constant volume (every voxel is 0)" in result.stdout
    assert "WARNING padded.mrc: nearly empty volume" in result.stdout
    with caplog.at_level("WARNING", logger="isonet"):
        correct_tomogram("zeros.mrc", lambda tiles: tiles, cube_size=16, crop_size=24)
    assert "zeros.mrc: constant volume" in caplog.text


def test_extract_into_a_folder_another_command_writes_fails_at_once(project, run_main):
    """While another command holds the lock of subtomo/, extract names the holder and touches nothing.

    The lock is held here, through a second open file (flock locks of two open files conflict within one
    process too), so the outcome does not hang on which of two processes starts first.
    """
    from isonet.io.lock import output_lock
    with output_lock(project / "subtomo"):
        before = _tree(project)
        status, _, err = run_main("extract", "tomograms.star", "--cube_size", "16", "--crop_size", "24", cwd=project)
        after = _tree(project)
    assert status == 1
    assert err == f"ERROR: {project / 'subtomo'} is being written by another isonet command (pid {os.getpid()})\n"
    assert after == before  # nothing renamed aside or written, and extract's own lock files are gone


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    """A lock file left by a killed command does not block the next one."""
    from isonet.io.lock import lock_path, output_lock
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from isonet.io.lock import output_lock\n"
        "with output_lock(sys.argv[2]):\n    print('locked', flush=True); time.sleep(600)"), REPO,
        str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(Exception, match=rf"is being written by another isonet command \(pid {holder.pid}\)"):
        with output_lock(tmp_path / "out"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert os.path.exists(lock_path(tmp_path / "out"))  # left behind by kill -9
    with output_lock(tmp_path / "out"):
        assert open(lock_path(tmp_path / "out")).read().strip() == str(os.getpid())
    assert not os.path.exists(lock_path(tmp_path / "out"))


def test_lock_message_waits_for_the_holders_pid(tmp_path):
    """A command that loses the race before the holder wrote its pid still names it (not "pid unknown")."""
    import fcntl
    import threading
    from isonet.errors import IsonetError
    from isonet.io.lock import lock_path, output_lock
    name = lock_path(tmp_path / "out")
    holder = open(name, "a+")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, pid not written yet

    def write_pid():
        holder.write("4242\n")
        holder.flush()
    threading.Timer(0.2, write_pid).start()
    with pytest.raises(IsonetError, match=r"is being written by another isonet command \(pid 4242\)"):
        with output_lock(tmp_path / "out"):
            pass
    holder.close()

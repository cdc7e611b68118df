"""The settings of every command: one :class:`~isonet.spec.CommandSpec` each (names as IsoNet 1's).

These specs are the single source of defaults, units, ranges and help texts:
the command line (:mod:`isonet.cli`) parses and documents from them, and the
library function named by each spec takes its defaults and value checks from
it (:meth:`~isonet.spec.CommandSpec.implements`). Checks that need several
values or the input files (crop larger than cube, tilt_min below tilt_max,
headers...) stay with the library function, which runs them all before it
writes anything. This module imports nothing heavy, so ``isonet.py --help``
stays fast.
"""

import dataclasses

from isonet.spec import CommandSpec, Param

NOISE_MODES = ("noFilter", "ramp", "hamming")
RECONSTRUCTIONS = ("wbp", "sirt")
WBP_FILTERS = ("ramp", "hamming")
#: Refine methods: IsoNet 1's, and Noise2Noise across half tomograms with the wedge task (docs/halves.md);
#: one class each in :mod:`isonet.refine.methods`.
METHODS = ("isonet1", "halves")
#: Former method names, still read from the command line and from saved files (with a warning).
METHOD_ALIASES = (("isonet", "isonet1"), ("isonet2", "halves"))
#: Specimens of ``simulate`` (isonet.simulate.phantom).
SCENES = ("cell", "cytosol", "membranes", "filaments", "sparse")

#: Pixel size (Å) assumed when neither the user nor the files give one (IsoNet 1's default).
DEFAULT_PIXEL_SIZE = 10.0
#: Microscope optics assumed when neither the user nor tomograms.star give them: kV, mm, fraction.
DEFAULT_OPTICS = dict(voltage=300.0, cs=2.7, amplitude_contrast=0.07)

#: Options of every command, handled by the command line before the command's own options.
COMMON = (
    Param("log_level", "choice", "info", "Logging detail (debug also prints tracebacks).",
          choices=("info", "debug", "warning")),
    Param("log_file", "text", "isonet.log", "Log file appended to, besides stdout ('' for none)."),
)


def _tilt(which, default):
    word = "Lowest" if which == "min" else "Highest"
    return Param(f"tilt_{which}", "float", default, f"{word} tilt angle of the acquisition (missing-wedge edge).",
                 unit="degrees", range="[-90, 90]")


def _star(help_text):
    return Param("star_file", "text", required=True, help=help_text)


_TOMO_IDX = Param("tomo_idx", "index_list", None, "rlnIndex values to use, e.g. 1,3-5.", default_text="all")
_USE_DECONV = Param("use_deconv_tomo", "bool", True,
                    "Use the deconvolved tomogram (rlnDeconvTomoName) where the STAR file lists one.")
_PIXEL = Param("pixel_size", "float", DEFAULT_PIXEL_SIZE, "Pixel size written for every file (about 10 Å is recommended).",
               unit="Å", range="> 0")
_HEADER_PIXEL = Param("pixel_size", "float", None, "Pixel size.", unit="Å", range="> 0",
                      default_text="from the header")
_MASK = Param("mask", "text", None, "MRC mask (soft or binary) multiplied into both volumes before the FFT.",
              target="mask_path")
_CONE = Param("cone_angle", "float", 30.0, "Half-angle of the cones around X, Y and Z.", unit="degrees",
              range="(0, 90]")
_GUARD = Param("guard_band", "float", 5.0, "Degrees on either side of each wedge edge left out of both regions.",
               unit="degrees", range="[0, 45)")
_GPU = Param("gpuID", "gpu_ids", None, "GPU ids, e.g. 0,1 (several GPUs share each batch); -1 for the CPU.",
             default_text="all GPUs, else the CPU with a warning")

def _from_metadata(param, default, source="the metadata"):
    """A prepare_star option whose default is read from the files, else ``default``."""
    return Param(param.name, param.kind, None, param.help, unit=param.unit, range=param.range,
                 default_text=f"from {source}, else {default}")


PREPARE_STAR = CommandSpec(
    "prepare_star", "Make tomograms.star from a folder of tomograms or a RELION 5 project, reading their metadata.",
    "Make tomograms.star listing every tomogram (.mrc/.rec) of a folder, sorted by name, or every reconstructed "
    "tomogram of a RELION 5 tomograms.star (--relion5). Values not given are read: the pixel size from the MRC "
    "header; tilt range, defocus of the lowest tilt, voltage, Cs and amplitude contrast from RELION 5's STAR "
    "files, or from IMOD .tlt, ctfplotter .defocus, AreTomo .aln and Warp .xml files named after each tomogram "
    "(beside it, in the folder above, or in --metadata_folder). Half tomograms are paired by name (_EVN/_ODD, "
    "_even/_odd, even/ and odd/ folders) unless --even/--odd are given. The log says where each value came "
    "from and which were assumed; conflicts are warnings naming both values. The density sign is estimated and "
    "a disagreement with --bright_density is a warning. Every file's MRC header is checked first.",
    (Param("folder_name", "text", None, "Folder holding the tomograms (.mrc or .rec); not with --relion5.",
           positional=True),
     Param("output_star", "text", "tomograms.star", "STAR file written."),
     Param("relion5", "text", None, "RELION 5 tomograms.star (of a Reconstruct tomograms job) to read the "
           "tomograms, halves, pixel size, optics, tilts and defocus from.", default_text="none"),
     Param("metadata_folder", "text", None, "Folder of the .tlt/.aln/.xml/.defocus files named after the "
           "tomograms.", default_text="the tomogram folder, then the folder above"),
     _from_metadata(_HEADER_PIXEL, "10 Å", "the MRC header, else the metadata"),
     _from_metadata(Param("defocus", "float", None, "Defocus at 0° tilt (underfocus positive), for every "
                          "tomogram; 0 skips deconv.", unit="Å", range=">= 0"), "0"),
     Param("number_subtomos", "int", 100, "Subtomograms to extract from each tomogram.", range=">= 1"),
     _from_metadata(_tilt("min", None), "-60°"), _from_metadata(_tilt("max", None), "60°"),
     _from_metadata(Param("voltage", "float", None, "Acceleration voltage (rlnVoltage).", unit="kV", range="> 0"),
                    "300 kV"),
     _from_metadata(Param("cs", "float", None, "Spherical aberration (rlnSphericalAberration).", unit="mm",
                          range=">= 0"), "2.7 mm"),
     _from_metadata(Param("amplitude_contrast", "float", None, "Amplitude contrast fraction (rlnAmplitudeContrast).",
                          range="[0, 1]"), "0.07"),
     Param("bright_density", "bool", False, "Dense matter is bright (high values) in these tomograms, e.g. "
           "contrast-inverted ones (rlnBrightDensity 1); every step then reads them negated, and predict writes "
           "its output with the input's sign."),
     Param("even", "text", None, "Folder or quoted glob pattern of the even half tomograms, matched to the "
           "tomograms by file name (tomo_01_even.mrc or even/tomo_01.mrc for tomo_01.mrc); listed as "
           "rlnTomoReconstructedTomogramHalf1. Needs --odd.", default_text="paired by name"),
     Param("odd", "text", None, "Folder or glob pattern of the odd half tomograms "
           "(rlnTomoReconstructedTomogramHalf2).", default_text="paired by name")),
    "isonet.prepare:prepare_star")

PREPARE_SUBTOMO_STAR = CommandSpec(
    "prepare_subtomo_star", "Make subtomo.star from a folder of subtomograms extracted by other software.",
    "Make subtomo.star from a folder holding only cubic subtomogram MRC files of one size (sorted by name).",
    (Param("folder_name", "text", required=True, help="Folder holding only cubic subtomogram MRC files."),
     Param("output_star", "text", "subtomo.star", "STAR file written."),
     _PIXEL,
     Param("cube_size", "int", None, "Training cube edge, a multiple of 8 smaller than the subtomogram edge.",
           unit="voxels", range=">= 8", default_text="floor(crop/1.5 + 1) // 16 * 16"),
     _tilt("min", -60.0), _tilt("max", 60.0)),
    "isonet.prepare:prepare_subtomo_star")

CHECK = CommandSpec(
    "check", "Check the installation: versions, devices TensorFlow sees, a tiny Conv3D forward pass.",
    "Check the installation: versions, devices TensorFlow sees, a tiny Conv3D forward pass.",
    (), "isonet.check:check_installation")

DECONV = CommandSpec(
    "deconv", "CTF deconvolution (Wiener-like filter of Warp) of the tomograms in a STAR file.",
    "CTF deconvolution (Wiener-like filter of Warp) of the tomograms in a STAR file. rlnSnrFalloff, "
    "rlnDeconvStrength and rlnDeconvTomoName are added/updated in the STAR file after each tomogram; rows "
    "with rlnDefocus 0 are skipped.",
    (_star("Tomogram STAR file (needs rlnDefocus in Å)."),
     Param("deconv_folder", "text", "./deconv", "Output folder (same file names as the inputs)."),
     Param("voltage", "float", None, "Acceleration voltage; written into the STAR.", unit="kV", range="> 0",
           default_text="the STAR's rlnVoltage, else 300 kV"),
     Param("cs", "float", None, "Spherical aberration; written into the STAR.", unit="mm", range=">= 0",
           default_text="the STAR's rlnSphericalAberration, else 2.7 mm"),
     Param("amplitude_contrast", "float", None, "Amplitude contrast fraction; written into the STAR.",
           range="[0, 1]", default_text="the STAR's rlnAmplitudeContrast, else 0.07"),
     Param("snrfalloff", "float", None, "How fast the modelled SNR falls with frequency; written into the STAR.",
           range=">= 0", default_text="the STAR's rlnSnrFalloff, else 1.0"),
     Param("deconvstrength", "float", None, "log10 of the SNR at low frequency; written into the STAR.",
           range="(-inf, inf)", default_text="the STAR's rlnDeconvStrength, else 1.0"),
     Param("highpassnyquist", "float", 0.02, "Width of the low-frequency high-pass, fraction of Nyquist.",
           range="(0, 1]"),
     Param("chunk_size", "int", None, "Process in overlapping cubic chunks of this edge (bounded memory).",
           unit="voxels", range=">= 16", default_text="the whole tomogram at once"),
     Param("overlap_rate", "float", 0.25, "Overlap of neighbouring chunks, fraction of chunk_size.",
           range="[0, 1)"),
     Param("ncpu", "int", 4, "CPU threads (FFT threads, or chunks in parallel).", range=">= 1"),
     _TOMO_IDX),
    "isonet.preprocess.deconv:deconv_tomograms")

MAKE_MASK = CommandSpec(
    "make_mask", "Masks of the dense, contrasted regions of each tomogram, to guide subtomogram extraction.",
    "Masks of the dense, contrasted regions of each tomogram. rlnMaskDensityPercentage, rlnMaskStdPercentage "
    "and rlnMaskName are added/updated in the STAR file after each tomogram.",
    (_star("Tomogram STAR file."),
     Param("mask_folder", "text", "mask", "Output folder for <root>_mask.mrc (uint8, 1 = keep)."),
     Param("patch_size", "int", 4, "Half-width of the local density and contrast filters.",
           unit="binned voxels", range=">= 1"),
     Param("density_percentage", "float", None, "Percent of voxels kept by the local density criterion "
           "(> 99.8 disables it); written into the STAR.", range="(0, 100]",
           default_text="the STAR's rlnMaskDensityPercentage, else 50"),
     Param("std_percentage", "float", None, "Percent of voxels kept by the local standard-deviation criterion "
           "(> 99.8 disables it); written into the STAR.", range="(0, 100]",
           default_text="the STAR's rlnMaskStdPercentage, else 50"),
     _USE_DECONV,
     Param("z_crop", "float", None, "Fraction of the depth removed at the top and at the bottom, e.g. 0.2.",
           range="[0, 0.5)"),
     _TOMO_IDX,
     Param("mask_boundary", "text", None, "Polygon boundary for every processed tomogram: IMOD model (.mod) or "
           "point file (x y z per line); the last two points set the z-range if their z differ.",
           default_text="each row's rlnMaskBoundary")),
    "isonet.preprocess.mask:make_masks")

EXTRACT = CommandSpec(
    "extract", "Extract random subtomograms inside the masks for training; write subtomo.star.",
    "Extract rlnNumberSubtomo random subtomograms per tomogram, centres inside rlnMaskName where set, and "
    "list them (with source tomogram and centre) in subtomo.star. An existing subtomo_folder is renamed to "
    "subtomo~ (never deleted), once every input is checked.",
    (_star("Tomogram STAR file (read only)."),
     Param("subtomo_folder", "text", "subtomo", "Output folder for <root>_000000.mrc ..."),
     Param("subtomo_star", "text", "subtomo.star", "Output STAR listing the subtomograms."),
     Param("cube_size", "int", 64, "Training cube edge, a multiple of 8 (e.g. 32, 64, 96).", unit="voxels",
           range=">= 8"),
     Param("crop_size", "int", None, "Edge of the extracted subtomograms, larger than cube_size.", unit="voxels",
           range=">= 9", default_text="cube_size + 16"),
     _USE_DECONV, _TOMO_IDX,
     Param("seed", "int", None, "Random seed for the centres.", range=">= 0",
           default_text="a fresh one, written to the log"),
     Param("split_halves", "bool", False, "Also write <subtomo_star root>_half1.star and _half2.star: random "
           "disjoint halves for gold-standard refinement.")),
    "isonet.preprocess.extract:extract_subtomograms")

_IO, _BUDGET, _NETWORK, _METHOD, _NOISE, _ADVANCED = ("Input and output", "Training budget", "Network", "Method",
                                                      "IsoNet 1's noise schedule (--method isonet1)", "Advanced")


def _in(group, param):
    """``param`` listed under ``group`` in --help."""
    return dataclasses.replace(param, group=group)


REFINE = CommandSpec(
    "refine", "Train the network iteratively on subtomograms (missing-wedge correction and denoising).",
    "Train the network iteratively on subtomograms (missing-wedge correction and denoising). Options left "
    "out take their default, or, with --continue_from, the value saved in that JSON. Every subtomogram "
    "header and the network options are checked before result_dir is touched.",
    (Param("subtomo_star", "text", None, "Subtomogram STAR file (from extract or prepare_subtomo_star); "
           "required unless --continue_from is given.", positional=True),
     Param("result_dir", "text", "results", "Output folder; an existing one is renamed to results~.", group=_IO),
     Param("continue_from", "text", None, "A refine_iterNN.json to resume from: restores every saved setting "
           "(options given here win) and continues at iteration NN+1.", group=_IO),
     Param("pretrained_model", "text", None, "Model (.h5) used as the model of iteration 0; network-shape "
           "options are then ignored.", group=_IO),
     Param("keep_last", "int", 2, "Keep only the newest N sets of predicted subtomograms (<root>_iterNN.mrc, "
           "one set per iteration, each as large as the subtomograms); 0 keeps every set (IsoNet 1).",
           range=">= 0", group=_IO),
     Param("remove_intermediate", "bool", False, "Delete each iteration's predicted subtomograms once used, "
           "and skip the final prediction.", group=_IO),
     Param("iterations", "int", 30, "Number of refinement iterations.", range=">= 1", group=_BUDGET),
     Param("epochs", "int", 10, "Epochs per iteration.", range=">= 1", group=_BUDGET),
     Param("steps_per_epoch", "int", None, "Training steps per epoch.", range=">= 1",
           default_text="min(int(6 x N / batch_size), 200), N = subtomograms used", group=_BUDGET),
     Param("batch_size", "int", None, "Mini-batch size, a multiple of the number of devices.", range=">= 1",
           default_text="max(4, 2 x GPUs)", group=_BUDGET),
     Param("select_subtomo_number", "int", None, "Use this many subtomograms, drawn at random each iteration.",
           range=">= 1", default_text="all", group=_BUDGET),
     Param("learning_rate", "float", 0.002, "Adam learning rate of the first iteration; a fresh optimizer "
           "every iteration (IsoNet 1: 0.0004; docs/quality.md measures why 0.002).", range="> 0", group=_BUDGET),
     Param("final_learning_rate", "float", None, "Learning rate of the last iteration, reached by half a "
           "cosine from --learning_rate (equal to it: constant).", range="> 0",
           default_text="learning_rate / 10 with --method halves; learning_rate (constant, as IsoNet 1) "
           "with isonet1", group=_BUDGET),
     _in(_BUDGET, _GPU),
     Param("mixed_precision", "bool", False, "Train in float16 on GPUs (bfloat16 on the CPU), weights and "
           "output in float32.", group=_BUDGET),
     Param("unet_depth", "int", 3, "Number of down-sampling levels of the U-Net (cube_size must be a multiple "
           "of 2^unet_depth).", range=">= 1", group=_NETWORK),
     Param("filter_base", "int", 64, "Channels of the first U-Net level, doubling each level.", range=">= 1",
           group=_NETWORK),
     Param("convs_per_depth", "int", 3, "Conv blocks per U-Net level.", range=">= 2", group=_NETWORK),
     Param("kernel", "ints", (3, 3, 3), "Conv kernel size.", range=">= 1", length=3, group=_NETWORK),
     Param("pool", "pool", None, "Down-/up-sample by max-pooling/up-sampling of size 2 (True or 2) instead of "
           "strided/transposed convolutions.", default_text="False (strided convolutions)", group=_NETWORK),
     Param("batch_normalization", "bool", True, "Batch normalisation in the encoder/decoder conv blocks.",
           group=_NETWORK),
     Param("drop_out", "float", 0.3, "Dropout rate in the encoder/decoder conv blocks.", range="[0, 1)",
           group=_NETWORK),
     Param("method", "choice", None, "isonet1: IsoNet 1's method on one tomogram (the network learns to undo "
           "an extra wedge; noise added from --noise_start_iter); halves: the even/odd half subtomograms train "
           "each other (Noise2Noise) plus the wedge task, masked Fourier loss, per-tomogram normalisation "
           "(docs/halves.md).", choices=METHODS, aliases=METHOD_ALIASES,
           default_text="halves when subtomo.star lists halves, else isonet1", group=_METHOD),
     Param("mw_weight", "float", 16.0, "halves: loss weight of the frequencies missing from the input but "
           "measured in the target, relative to those measured in both (docs/quality.md).", range=">= 0",
           group=_METHOD),
     Param("noise_level", "floats", (0.05, 0.10, 0.15, 0.20), "Noise levels added to the training inputs, "
           "one per start iteration.", range=">= 0", group=_NOISE),
     Param("noise_start_iter", "ints", (11, 16, 21, 26), "Iteration at which each noise level starts (same "
           "count as noise_level); beyond --iterations disables denoising.", range=">= 1", group=_NOISE),
     Param("noise_mode", "choice", "noFilter", "Back-projection filter of the noise.", choices=NOISE_MODES,
           group=_NOISE),
     Param("noise_dir", "text", None, "Cache folder of the noise cubes; reused across runs.",
           default_text="<result_dir>/training_noise", group=_NOISE),
     Param("full_input_fraction", "float", None, "halves: share of the pairs of the first two iterations whose "
           "input is the mean of both halves (the full tomogram, as predict sees it), trained on the wedge "
           "task; 0 trains on the halves alone, which left the wedge empty on some datasets (docs/halves.md).",
           range="[0, 1]", default_text="0.75 with --method halves", group=_ADVANCED),
     Param("seed", "int", None, "Seed of every random choice; recorded in refine_iterNN.json.", range=">= 0",
           default_text="a random seed", group=_ADVANCED),
     Param("normalize_percentile", "bool", True, "isonet1: normalise with the 4/96 percentiles (True) or "
           "mean/std.", group=_ADVANCED),
     Param("preprocessing_ncpus", "int", 16, "Threads making training pairs (at most the CPU count).",
           range=">= 1", group=_ADVANCED),
     Param("data_dir", "text", None, "Also write every iteration's training pairs as MRC into "
           "<data_dir>/iterNN/ for inspection.", default_text="none (pairs stay in memory)", group=_ADVANCED)),
    "isonet.refine.command:refine_command")

PREDICT = CommandSpec(
    "predict", "Correct whole tomograms with a trained network (overlapping tiles, blended seamlessly).",
    "Correct whole tomograms with a trained network (overlapping tiles, blended seamlessly). "
    "rlnCorrectedTomoName is added/updated in the STAR file after each tomogram, and a RELION 5 tomograms.star "
    "lists every corrected tomogram (rlnTomoReconstructedTomogramDenoised, with RELION's columns when the "
    "project was imported with prepare_star --relion5) for picking in RELION 5. With a network of the halves "
    "method and the halves listed, the output is Wiener-filtered by the agreement of the network's outputs for "
    "the two halves (docs/halves.md).",
    (_star("Tomogram STAR file."),
     Param("model", "text", required=True, help="Trained network, e.g. results/model_iter30.h5 (.h5 or .keras)."),
     Param("output_dir", "text", "./corrected_tomos", "Folder for <root>_corrected.mrc."),
     Param("relion5_star", "text", None, "RELION 5 tomograms.star written with every corrected tomogram of the "
           "STAR file.", default_text="OUTPUT_DIR/tomograms_relion5.star"),
     Param("gpuID", "gpu_ids", None, _GPU.help, default_text=_GPU.default_text, target="gpu_ids"),
     Param("cube_size", "int", 84, "Largest edge of the core kept from each tile; cores are fitted to the "
           "tomogram (equal cores along each axis, at most this size; IsoNet 1: 64).", unit="voxels",
           range=">= 1"),
     Param("crop_size", "int", 96, "Edge of the tiles fed to the network (> cube_size; rounded up to a "
           "multiple of 2^depth of the network).", unit="voxels", range=">= 2"),
     _USE_DECONV,
     Param("batch_size", "int", None, "Tiles per network call.", range=">= 1",
           default_text="4 per GPU, 1 on the CPU"),
     Param("normalize_percentile", "bool", True, "Percentile (True) or mean/std normalisation; use refine's "
           "(a network of the halves method brings its own, from its model_iterNN.json)."),
     _TOMO_IDX,
     Param("mixed_precision", "bool", False, "Compute in float16 on GPUs (bfloat16 on the CPU)."),
     Param("snapshot", "bool", False, "Also save <output_dir>/<root>_snapshot.png (central slices of the input, "
           "the corrected tomogram and their difference).")),
    "isonet.predict.predict:predict_tomograms")

RESIZE = CommandSpec(
    "resize", "Resample tomograms to another pixel size (Fourier cropping/padding, no aliasing).",
    "Resample tomograms to another pixel size (Fourier cropping/padding). <star root>_resized.star is "
    "written beside the STAR file with the new files and pixel size.",
    (_star("Tomogram STAR file (read only)."),
     Param("apix", "float", 15.0, "New pixel size.", unit="Å", range="> 0"),
     Param("out_folder", "text", "tomograms_resized", "Output folder for the resized tomograms (same names)."),
     _TOMO_IDX),
    "isonet.preprocess.resize:resize_tomograms")

SIMULATE = CommandSpec(
    "simulate", "Simulate tutorial tomograms of a cellular scene, with ground truth and tomograms.star.",
    "Simulate tutorial tomograms: OUT_DIR/tomograms/tomo_NN.mrc (dense = dark) with tomo_NN.tlt, "
    "OUT_DIR/ground_truth/tomo_NN.mrc (dense = bright) and OUT_DIR/tomograms.star, reconstructed from a "
    "simulated tilt series (projection, CTF, noise, WBP or SIRT).",
    (Param("out_dir", "text", required=True, help="Output folder (existing outputs are renamed aside)."),
     Param("n_tomos", "int", 2, "Number of tomograms.", range=">= 1"),
     Param("shape", "ints", (64, 256, 256), "Tomogram size z,y,x (Y is the tilt axis, Z the beam).",
           unit="voxels", range=">= 8", length=3),
     Param("pixel_size", "float", 10.0, "Pixel size (object sizes are physical).", unit="Å", range="> 0"),
     _tilt("min", -60.0), _tilt("max", 60.0),
     Param("tilt_step", "float", 3.0, "Tilt increment.", unit="degrees", range="> 0"),
     Param("snr", "float", 0.5, "Signal-to-noise ratio of each projection; inf for no noise.", range="> 0"),
     Param("defocus", "float", 0.0, "Defocus (underfocus positive) applied as a CTF; 0 for no CTF.", unit="Å",
           range=">= 0"),
     Param("voltage", "float", 300.0, "Acceleration voltage (CTF).", unit="kV", range="> 0"),
     Param("cs", "float", 2.7, "Spherical aberration (CTF).", unit="mm", range=">= 0"),
     Param("amplitude_contrast", "float", 0.07, "Amplitude contrast fraction (CTF).", range="[0, 1]"),
     Param("reconstruction", "choice", "wbp", "Weighted back-projection or SIRT.", choices=RECONSTRUCTIONS),
     Param("filter", "choice", "ramp", "WBP filter (hamming: ramp with high-frequency roll-off).",
           choices=WBP_FILTERS),
     Param("sirt_iterations", "int", 20, "Iterations of SIRT.", range=">= 1"),
     Param("number_subtomos", "int", 100, "Subtomograms per tomogram written into rlnNumberSubtomo.",
           range=">= 1"),
     Param("seed", "int", 0, "Random seed; the same seed gives identical data.", range=">= 0"),
     Param("halves", "bool", True, "Also write even/odd half tomograms (independent noise, half the dose each; "
           "their average is the tomogram) in OUT_DIR/tomograms_half1|2, listed as "
           "rlnTomoReconstructedTomogramHalf1/2."),
     Param("scene", "choice", "cell", "Specimen: cell (the tutorial's mix), cytosol (crowded small proteins), "
           "membranes, filaments or sparse.", choices=SCENES)),
    "isonet.simulate:run_simulation")

EVALUATE = CommandSpec(
    "evaluate", "Score a tomogram against its ground truth: missing-wedge correlation, directional FSC.",
    "Score a tomogram against its ground truth. Prints the overall correlation, the correlation in the "
    "missing-wedge and measured Fourier regions (1/low_resolution to 1/resolution, guard band excluded) and "
    "the FSC in cones around X, Y and Z (resolutions at 0.5 and 0.143, first crossing at or beyond "
    "1/low_resolution; Z/X ratio). Scores are correlations; "
    "the candidate's sign is flipped when it correlates negatively.",
    (Param("candidate", "text", required=True, help="Tomogram to score (MRC).", target="candidate_path"),
     Param("ground_truth", "text", required=True, help="Ground-truth volume (MRC) of the same shape.",
           target="ground_truth_path"),
     _tilt("min", -60.0), _tilt("max", 60.0),
     Param("resolution", "float", 30.0, "Highest resolution used by the region correlations.", unit="Å",
           range="> 0"),
     _MASK,
     Param("json", "text", None, "JSON file written with every number (and the FSC curves).",
           target="json_path"),
     Param("pixel_size", "float", None, "Pixel size.", unit="Å", range="> 0",
           default_text="the ground truth's header"),
     _GUARD, _CONE,
     Param("low_resolution", "float", None, "Lowest resolution used by the region correlations and by the "
           "search for the FSC resolutions.", unit="Å", range="> 0",
           default_text="pixel_size x min(shape) / 2.5")),
    "isonet.evaluation.metrics:evaluate_files")

FSC3D = CommandSpec(
    "fsc3d", "Directional and 3-D FSC of two volumes (e.g. the two half-set corrected tomograms).",
    "Directional and 3-D FSC of two volumes. Writes OUT.json (resolutions at 0.5 and 0.143, curves), OUT.png "
    "and OUT_map.mrc (the FSC in a cone around each Fourier direction); prints the resolutions as one JSON "
    "line. See docs/gold_standard.md.",
    (Param("a", "text", required=True, help="First volume (MRC).", target="path_a"),
     Param("b", "text", required=True, help="Second volume (MRC) of the same shape.", target="path_b"),
     _MASK, _CONE,
     Param("pixel_size", "float", None, "Pixel size.", unit="Å", range="> 0", default_text="the header of A"),
     _tilt("min", -60.0), _tilt("max", 60.0),
     Param("cubic_crops", "int", 0, "0 uses the whole volumes; N > 0 averages N cubic crops of edge min(shape).",
           range=">= 0"),
     Param("out", "text", "fsc3d", "Output path prefix.", target="out_prefix"),
     _GUARD,
     Param("n_directions", "int", 100, "Cone directions over the half sphere for the 3-D map.", range=">= 1"),
     Param("low_resolution", "float", None, "Lowest resolution searched for the FSC resolutions (a cone's "
           "lowest shells hold too few Fourier samples).", unit="Å", range="> 0",
           default_text="pixel_size x min(shape) / 2.5 (of the crops with --cubic_crops)")),
    "isonet.evaluation.fsc:fsc3d_files")

SNAPSHOT = CommandSpec(
    "snapshot", "PNG of central XY, XZ, YZ slices, a zoom on XZ and the XZ log power spectrum, one row per volume.",
    "PNG, one row per volume: the central XY, XZ and YZ slices at one scale with square voxels, the XZ slice "
    "enlarged over its most detailed window (to judge shapes along Z), and the XZ log power spectrum. Grey "
    "levels as stored (low values dark).",
    (Param("volumes", "texts", variadic=True, help="One or more MRC volumes, one row each."),
     Param("out", "text", "snapshot.png", "PNG file written."),
     Param("labels", "texts", None, "Comma-separated row labels, one per volume.", default_text="the file names"),
     Param("difference", "bool", False, "Add a row: the last volume minus the first (each standardised); "
           "they must have one shape.")),
    "isonet.evaluation.pictures:snapshot_files")

REPORT = CommandSpec(
    "report", "Rebuild report.html of a refine run: settings, timings, losses, snapshots, disk use.",
    "Rebuild the report of a refine result folder (refine writes it after every iteration): one HTML file "
    "with the settings, the time and losses of every iteration, loss.png and every snapshot_iterNN.png "
    "embedded (it opens offline), and the disk space the folder uses.",
    (Param("result_dir", "text", required=True, help="Refine result folder (holding refine_iterNN.json)."),
     Param("out", "text", None, "HTML file written.", default_text="RESULT_DIR/report.html")),
    "isonet.evaluation.report:report_files")

#: Every command, in the order of the overview.
ALL = (PREPARE_STAR, PREPARE_SUBTOMO_STAR, DECONV, MAKE_MASK, EXTRACT, REFINE, PREDICT, RESIZE, CHECK, SIMULATE,
       EVALUATE, FSC3D, SNAPSHOT, REPORT)
BY_NAME = {spec.name: spec for spec in ALL}

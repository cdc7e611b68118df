"""The ``isonet.py`` command line: python-fire dispatch over :class:`Commands`.

Each public method of :class:`Commands` is one command. Methods only turn the
raw values fire delivers into typed values, check them, and call the module
that does the work; no algorithm lives here. :func:`main` adds what fire does
not do for us: a one-line command overview, help that lists every parameter
with its default, rejection of unknown options (exit status 2), one logging
setup, and the ``ERROR: ...`` line with a non-zero exit status on failure.
"""

import inspect
import logging
import os
import re
import shlex
import sys
import traceback

import fire

import isonet
from isonet.errors import IsonetError, UsageError
from isonet.log import setup_logging
from isonet.params import (parse_bool, parse_choice, parse_gpu_ids, parse_index_list, parse_number_tuple,
                           parse_optional_bool, parse_optional_number, parse_optional_text, parse_pool, require)

log = logging.getLogger("isonet")

#: Options every command accepts; handled here, before fire sees the arguments.
COMMON_OPTIONS = {
    "log_level": ("info", "Logging detail: info or debug (debug also prints tracebacks)."),
    "log_file": ("isonet.log", "Log file appended to, besides stdout ('' for none)."),
}


class Commands:
    """isonet: missing-wedge correction and denoising of cryo-electron tomograms (IsoNet 1)."""

    # ----------------------------------------------------------------- foundation
    def prepare_star(self, folder_name, output_star="tomograms.star", pixel_size=10.0, defocus=0.0,
                     number_subtomos=100, tilt_min=-60.0, tilt_max=60.0, even=None, odd=None):
        """Make tomograms.star listing every tomogram (.mrc/.rec) of a folder.

        Parameters
        ----------
        folder_name : str
            Folder holding the tomograms; files ending in .mrc or .rec are listed, sorted by name.
        output_star : str
            STAR file written.
        pixel_size : float
            Pixel size in Å written for every tomogram (about 10 Å is recommended).
        defocus : float
            Defocus in Å (underfocus positive) at 0° tilt, for every tomogram; 0 skips deconv.
        number_subtomos : int
            Subtomograms to extract from each tomogram.
        tilt_min : float
            Lowest tilt angle in degrees (missing-wedge edge), for every tomogram.
        tilt_max : float
            Highest tilt angle in degrees.
        even : str
            Folder or glob pattern (quoted) of the even half tomograms, matched to the tomograms by
            file name (tomo_01_even.mrc or even/tomo_01.mrc for tomo_01.mrc); listed as
            rlnTomoReconstructedTomogramHalf1. Needs --odd. Default none.
        odd : str
            Folder or glob pattern of the odd half tomograms (rlnTomoReconstructedTomogramHalf2).
        """
        from isonet.prepare import prepare_star
        prepare_star(str(folder_name), output_star=str(output_star), pixel_size=float(pixel_size),
                     defocus=float(defocus), number_subtomos=int(number_subtomos),
                     tilt_min=float(tilt_min), tilt_max=float(tilt_max), even=parse_optional_text(even),
                     odd=parse_optional_text(odd))

    def prepare_subtomo_star(self, folder_name, output_star="subtomo.star", pixel_size=10.0, cube_size=None,
                             tilt_min=-60.0, tilt_max=60.0):
        """Make subtomo.star from a folder of subtomograms extracted by other software.

        Parameters
        ----------
        folder_name : str
            Folder holding only cubic subtomogram MRC files (sorted by name).
        output_star : str
            STAR file written.
        pixel_size : float
            Pixel size in Å written for every subtomogram.
        cube_size : int
            Training cube edge (divisible by 8). Default, or if not smaller than the
            subtomogram edge: floor(crop/1.5 + 1) // 16 * 16.
        tilt_min : float
            Lowest tilt angle in degrees of the tomograms the subtomograms come from.
        tilt_max : float
            Highest tilt angle in degrees.
        """
        from isonet.prepare import prepare_subtomo_star
        prepare_subtomo_star(str(folder_name), output_star=str(output_star), pixel_size=float(pixel_size),
                             cube_size=None if cube_size is None else int(cube_size),
                             tilt_min=float(tilt_min), tilt_max=float(tilt_max))

    def check(self):
        """Check the installation: versions, devices TensorFlow sees, a tiny Conv3D forward pass."""
        from isonet.check import check_installation
        check_installation()

    # ------------------------------------------------------------------ commands added below

    def refine(self, subtomo_star=None, gpuID=None, iterations=None, data_dir=None, pretrained_model=None,
               result_dir=None, remove_intermediate=None, select_subtomo_number=None, preprocessing_ncpus=None,
               continue_from=None, epochs=None, batch_size=None, steps_per_epoch=None, learning_rate=None,
               noise_level=None, noise_start_iter=None, noise_mode=None, noise_dir=None, drop_out=None,
               convs_per_depth=None, kernel=None, pool=None, unet_depth=None, filter_base=None,
               batch_normalization=None, normalize_percentile=None, seed=None, mixed_precision=None, method=None,
               mw_weight=None, masked_loss=None, dc_weight=None, random_rotations=None):
        """Train the network iteratively on subtomograms (missing-wedge correction and denoising).

        Options left out take the default named in their description, or, with
        --continue_from, the value saved in that JSON.

        Parameters
        ----------
        subtomo_star : str
            Subtomogram STAR file (from extract or prepare_subtomo_star); crop and cube size are taken
            from its first row, the tilt range (rlnTiltMin/rlnTiltMax, default -60/60) from each row.
            Required unless --continue_from is given.
        gpuID : str
            GPU ids to train on, e.g. 0,1,2,3 (several GPUs: MirroredStrategy); default all GPUs,
            -1 for the CPU. Without a GPU the CPU is used, with a warning.
        iterations : int
            Number of refinement iterations (default 30).
        data_dir : str
            If given, every iteration also writes its training pairs as MRC for inspection, into
            <data_dir>/iterNN/{train,test}_{x,y}/; default none (pairs stay in memory).
        pretrained_model : str
            Model (.h5) used as the model of iteration 0; network-shape options are then ignored.
        result_dir : str
            Output folder (default results); an existing one is renamed to results~ (never deleted).
        remove_intermediate : bool
            Delete each iteration's predicted subtomograms once used, and skip the final prediction
            (default False).
        select_subtomo_number : int
            Use this many subtomograms, drawn at random each iteration (default all).
        preprocessing_ncpus : int
            Threads making training pairs alongside training (default 16, at most the CPU count).
        continue_from : str
            A refine_iterNN.json to resume from: restores every saved setting (options given here win)
            and continues at iteration NN+1 with the same results as an uninterrupted run.
        epochs : int
            Epochs per iteration (default 10).
        batch_size : int
            Mini-batch size, a multiple of the number of devices (default max(4, 2 x GPUs)).
        steps_per_epoch : int
            Training steps per epoch (default min(int(6 x N / batch_size), 200), N = subtomograms used).
        learning_rate : float
            Adam learning rate; a fresh optimizer every iteration (default 0.0004).
        noise_level : str
            Noise levels added to the training inputs, e.g. 0.05,0.1,0.15,0.2 (the default); one per
            start iteration.
        noise_start_iter : str
            Iteration at which each noise level starts, e.g. 11,16,21,26 (the default); same count
            as noise_level; beyond --iterations disables denoising.
        noise_mode : str
            Back-projection filter of the noise: noFilter (default), ramp or hamming.
        noise_dir : str
            Cache folder of the noise cubes (default <result_dir>/training_noise); reused across runs.
        drop_out : float
            Dropout rate in the encoder/decoder conv blocks (default 0.3).
        convs_per_depth : int
            Conv blocks per U-Net level (default 3).
        kernel : str
            Conv kernel size, e.g. 3,3,3 (the default).
        pool : str
            Down-/up-sample by max-pooling/up-sampling of this size (2) instead of strided/transposed
            convolutions (default False: strided convolutions).
        unet_depth : int
            Number of down-sampling levels of the U-Net (default 3).
        filter_base : int
            Channels of the first U-Net level, doubling each level (default 64).
        batch_normalization : bool
            Batch normalisation in the encoder/decoder conv blocks (default True).
        normalize_percentile : bool
            Normalise with the 4/96 percentiles (True, default) or mean/std (False).
        seed : int
            Seed of every random choice (subsets, validation split, noise, shuffling, weights);
            default a random seed, recorded in refine_iterNN.json.
        mixed_precision : bool
            Train in float16 on GPUs (bfloat16 on the CPU), weights and output in float32 (default False).
        method : str
            isonet (IsoNet 1: one tomogram, the network learns to undo an extra wedge) or isonet2
            (Noise2Noise across the even/odd half subtomograms plus the wedge task, masked Fourier loss,
            per-tomogram normalisation; no noise is added). Default isonet2 when subtomo.star lists
            halves (extract from a tomograms.star with halves), else isonet.
        mw_weight : float
            Masked loss: weight of the frequencies missing from the input but measured in the target,
            relative to those measured in both (default 4; 1 barely fills the wedge, docs/halves.md).
        masked_loss : bool
            isonet method: train with the masked Fourier loss instead of the mean absolute error
            (default False; isonet2 always uses it).
        dc_weight : float
            Weight of a data-consistency term: the prediction's distance to the input over the input's
            measured region, against invented content (default 0: none).
        random_rotations : bool
            Uniform random rotations instead of the 20 fixed orientations (default False); extract with
            --crop_size >= 1.75 x cube_size so that no mirrored corners enter the cubes.
        """
        from isonet.refine.config import METHODS, RefineConfig
        from isonet.refine.loop import refine
        from isonet.refine.noise import NOISE_MODES

        pool = parse_pool(pool)
        values = dict(
            subtomo_star=parse_optional_text(subtomo_star), gpuID=parse_gpu_ids(gpuID), iterations=parse_optional_number(iterations, "iterations", int),
            data_dir=parse_optional_text(data_dir), pretrained_model=parse_optional_text(pretrained_model), result_dir=parse_optional_text(result_dir),
            remove_intermediate=parse_optional_bool(remove_intermediate, "remove_intermediate"),
            select_subtomo_number=parse_optional_number(select_subtomo_number, "select_subtomo_number", int),
            preprocessing_ncpus=parse_optional_number(preprocessing_ncpus, "preprocessing_ncpus", int),
            epochs=parse_optional_number(epochs, "epochs", int), batch_size=parse_optional_number(batch_size, "batch_size", int),
            steps_per_epoch=parse_optional_number(steps_per_epoch, "steps_per_epoch", int),
            learning_rate=parse_optional_number(learning_rate, "learning_rate"),
            noise_level=parse_number_tuple(noise_level, "noise_level"),
            noise_start_iter=parse_number_tuple(noise_start_iter, "noise_start_iter", kind=int),
            noise_mode=None if noise_mode is None else parse_choice(noise_mode, "noise_mode", NOISE_MODES),
            noise_dir=parse_optional_text(noise_dir), drop_out=parse_optional_number(drop_out, "drop_out"),
            convs_per_depth=parse_optional_number(convs_per_depth, "convs_per_depth", int),
            kernel=parse_number_tuple(kernel, "kernel", kind=int, length=3),
            pool=None if pool is False else pool, unet_depth=parse_optional_number(unet_depth, "unet_depth", int),
            filter_base=parse_optional_number(filter_base, "filter_base", int),
            batch_normalization=parse_optional_bool(batch_normalization, "batch_normalization"),
            normalize_percentile=parse_optional_bool(normalize_percentile, "normalize_percentile"),
            seed=parse_optional_number(seed, "seed", int), mixed_precision=parse_optional_bool(mixed_precision, "mixed_precision"),
            method=None if method is None else parse_choice(method, "method", METHODS),
            mw_weight=parse_optional_number(mw_weight, "mw_weight"),
            masked_loss=parse_optional_bool(masked_loss, "masked_loss"),
            dc_weight=parse_optional_number(dc_weight, "dc_weight"),
            random_rotations=parse_optional_bool(random_rotations, "random_rotations"))
        config = RefineConfig.from_cli(values)
        if pool is False:
            config.explicit.add("pool")  # an explicit --pool False wins over --continue_from too
        refine(config, continue_from=parse_optional_text(continue_from))

    def evaluate(self, candidate, ground_truth, tilt_min=-60.0, tilt_max=60.0, resolution=30.0, mask=None,
                 json=None, pixel_size=None, guard_band=5.0, cone_angle=30.0, low_resolution=None):
        """Score a tomogram against its ground truth: missing-wedge correlation, directional FSC.

        Prints a table: the overall correlation; the correlation restricted to the missing-wedge and to
        the measured Fourier regions (frequencies from 1/low_resolution to 1/resolution, a guard band
        at the wedge edges excluded); the missing-wedge correlation by depth beyond the tilt limit (0-10,
        10-20, 20-30 and 10-30 degrees); the wedge-to-measured power ratio of the truth and of the candidate
        and their quotient (1: the candidate fills the wedge with as much power as the truth has); the FSC
        against the ground truth in cones around X, Y and Z with the resolutions at 0.5 and 0.143 and the
        Z/X ratio. All scores are correlations (intensity scale does not matter)
        and the candidate's sign is flipped when it correlates negatively (contrast does not matter).

        Parameters
        ----------
        candidate : str
            Tomogram to score (MRC), e.g. a raw or corrected tomogram.
        ground_truth : str
            Ground-truth volume (MRC) of the same shape.
        tilt_min : float
            Lowest tilt angle in degrees of the acquisition (defines the missing wedge).
        tilt_max : float
            Highest tilt angle in degrees.
        resolution : float
            Highest resolution in Å used by the region correlations.
        mask : str
            Optional MRC mask (soft or binary) multiplied into both volumes before the FFT.
        json : str
            Optional JSON file written with every number (and the FSC curves).
        pixel_size : float
            Pixel size in Å; default: the ground truth's header.
        guard_band : float
            Degrees on either side of each wedge edge left out of both regions.
        cone_angle : float
            Half-angle in degrees of the cones around X, Y and Z.
        low_resolution : float
            Lowest resolution in Å used by the region correlations; default pixel_size x min(shape) / 2.5
            (leaves out the two lowest Fourier shells, where a slab-shaped volume blurs the wedge edge).
        """
        from isonet.evaluation.metrics import evaluate_files
        numbers = {name: parse_number_tuple(value, name, float, 1)[0] for name, value in (
            ("tilt_min", tilt_min), ("tilt_max", tilt_max), ("resolution", resolution),
            ("guard_band", guard_band), ("cone_angle", cone_angle))}
        pixel = None if pixel_size is None else parse_number_tuple(pixel_size, "pixel_size", float, 1)[0]
        low = None if low_resolution is None else parse_number_tuple(low_resolution, "low_resolution", float, 1)[0]
        for name, value in (("resolution", numbers["resolution"]), ("pixel_size", pixel), ("low_resolution", low)):
            if value is not None and not value > 0:
                raise UsageError(f"--{name}: expected a positive number, got {value!r}")
        if not 0 < numbers["cone_angle"] <= 90:
            raise UsageError(f"--cone_angle: expected degrees in (0, 90], got {cone_angle!r}")
        evaluate_files(str(candidate), str(ground_truth), pixel_size=pixel,
                       mask_path=None if mask is None else str(mask),
                       json_path=None if json is None else str(json), low_resolution=low, **numbers)

    def fsc3d(self, a, b, mask=None, cone_angle=30.0, pixel_size=None, tilt_min=-60.0, tilt_max=60.0,
              cubic_crops=0, out="fsc3d", guard_band=5.0, n_directions=100):
        """Directional and 3-D FSC of two volumes (e.g. the two half-set corrected tomograms).

        Writes OUT.json (resolutions at 0.5 and 0.143 and the curves: cones around X, Y, Z, measured and
        missing-wedge regions, whole shells), OUT.png (the curves) and OUT_map.mrc (3DFSC-style map:
        the FSC in a cone around each Fourier direction, centred), and prints the resolutions as one
        JSON line. See docs/gold_standard.md.

        Parameters
        ----------
        a : str
            First volume (MRC).
        b : str
            Second volume (MRC) of the same shape.
        mask : str
            Optional MRC mask (soft or binary) multiplied into both volumes before the FFT.
        cone_angle : float
            Half-angle in degrees of the cones (X/Y/Z curves and the 3-D map).
        pixel_size : float
            Pixel size in Å; default: the header of A.
        tilt_min : float
            Lowest tilt angle in degrees (defines the missing-wedge region).
        tilt_max : float
            Highest tilt angle in degrees.
        cubic_crops : int
            0 uses the whole volumes; N > 0 averages the curves of N cubic crops of edge min(shape)
            spread over the volume (for thin, non-cubic tomograms, as in the IsoNet paper).
        out : str
            Output path prefix.
        guard_band : float
            Degrees on either side of each wedge edge left out of both regions.
        n_directions : int
            Cone directions sampled over the half sphere for the 3-D map.
        """
        from isonet.evaluation.fsc import fsc3d_files
        numbers = {name: parse_number_tuple(value, name, float, 1)[0] for name, value in (
            ("tilt_min", tilt_min), ("tilt_max", tilt_max), ("guard_band", guard_band), ("cone_angle", cone_angle))}
        pixel = None if pixel_size is None else parse_number_tuple(pixel_size, "pixel_size", float, 1)[0]
        if pixel is not None and not pixel > 0:
            raise UsageError(f"--pixel_size: expected a positive number, got {pixel_size!r}")
        if not 0 < numbers["cone_angle"] <= 90:
            raise UsageError(f"--cone_angle: expected degrees in (0, 90], got {cone_angle!r}")
        crops = parse_number_tuple(cubic_crops, "cubic_crops", int, 1)[0]
        directions = parse_number_tuple(n_directions, "n_directions", int, 1)[0]
        if crops < 0 or directions < 1:
            raise UsageError("--cubic_crops must be >= 0 and --n_directions >= 1")
        fsc3d_files(str(a), str(b), out_prefix=str(out), mask_path=None if mask is None else str(mask),
                    pixel_size=pixel, cubic_crops=crops, n_directions=directions, **numbers)

    def snapshot(self, *volumes, out="snapshot.png", labels=None):
        """PNG of central XY, XZ, YZ slices and the XZ log power spectrum, one row per volume.

        Parameters
        ----------
        volumes : str
            One or more MRC volumes (e.g. raw and corrected tomogram), one row each.
        out : str
            PNG file written.
        labels : str
            Comma-separated row labels, one per volume (default: the file names).
        """
        from isonet.evaluation.pictures import save_snapshot
        if not volumes:
            raise UsageError("snapshot: give at least one MRC volume")
        names = None
        if labels is not None:
            names = [str(v) for v in labels] if isinstance(labels, (list, tuple)) else str(labels).split(",")
            if len(names) != len(volumes):
                raise UsageError(f"--labels: {len(names)} labels for {len(volumes)} volumes")
        save_snapshot([str(v) for v in volumes], str(out), labels=names)
        log.info("wrote %s", out)

    def deconv(self, star_file, deconv_folder="./deconv", voltage=300.0, cs=2.7, snrfalloff=None,
               deconvstrength=None, highpassnyquist=0.02, chunk_size=None, overlap_rate=0.25, ncpu=4,
               tomo_idx=None):
        """CTF deconvolution (Wiener-like filter of Warp) of the tomograms in a STAR file.

        Parameters
        ----------
        star_file : str
            Tomogram STAR file (needs rlnDefocus in Å); rlnSnrFalloff, rlnDeconvStrength and
            rlnDeconvTomoName are added/updated in place after each tomogram.
        deconv_folder : str
            Output folder for the deconvolved tomograms (same file names as the inputs).
        voltage : float
            Acceleration voltage in kV.
        cs : float
            Spherical aberration in mm.
        snrfalloff : float
            How fast the modelled SNR falls with frequency (default: the STAR's rlnSnrFalloff, else 1.0);
            written into the STAR.
        deconvstrength : float
            Strength of the deconvolution, log10 of the SNR at low frequency (default: the STAR's
            rlnDeconvStrength, else 1.0); written into the STAR.
        highpassnyquist : float
            Width of the low-frequency high-pass as a fraction of Nyquist.
        chunk_size : int
            Process in overlapping cubic chunks of this size (bounded memory, blended seamlessly);
            default the whole tomogram at once (memory about 3x the tomogram).
        overlap_rate : float
            Overlap of neighbouring chunks as a fraction of chunk_size.
        ncpu : int
            CPU threads (FFT threads for the whole tomogram, chunks in parallel in chunk mode).
        tomo_idx : str
            rlnIndex values to process, e.g. 1,3-5 (default all). Rows with rlnDefocus 0 are skipped.
        """
        from isonet.preprocess.deconv import deconv_tomograms
        deconv_tomograms(str(star_file), deconv_folder=str(deconv_folder),
                         voltage=parse_optional_number(voltage, "voltage"), cs=parse_optional_number(cs, "cs"),
                         snrfalloff=parse_optional_number(snrfalloff, "snrfalloff"),
                         deconvstrength=parse_optional_number(deconvstrength, "deconvstrength"),
                         highpassnyquist=parse_optional_number(highpassnyquist, "highpassnyquist"),
                         chunk_size=parse_optional_number(chunk_size, "chunk_size", kind=int),
                         overlap_rate=parse_optional_number(overlap_rate, "overlap_rate"),
                         ncpu=parse_optional_number(ncpu, "ncpu", kind=int), tomo_idx=parse_index_list(tomo_idx))

    def make_mask(self, star_file, mask_folder="mask", patch_size=4, density_percentage=None, std_percentage=None,
                  use_deconv_tomo=True, z_crop=None, tomo_idx=None, mask_boundary=None):
        """Masks of the dense, contrasted regions of each tomogram, to guide subtomogram extraction.

        Parameters
        ----------
        star_file : str
            Tomogram STAR file; rlnMaskDensityPercentage, rlnMaskStdPercentage and rlnMaskName are
            added/updated in place after each tomogram.
        mask_folder : str
            Output folder for <root>_mask.mrc (uint8, 1 = keep).
        patch_size : int
            Half-width in binned voxels of the local density and contrast filters.
        density_percentage : float
            Percent of voxels kept by the local density criterion (dark = dense); > 99.8 disables it
            (default: the STAR's rlnMaskDensityPercentage, else 50); written into the STAR.
        std_percentage : float
            Percent of voxels kept by the local standard-deviation criterion; > 99.8 disables it
            (default: the STAR's rlnMaskStdPercentage, else 50); written into the STAR.
        use_deconv_tomo : bool
            Use the deconvolved tomogram (rlnDeconvTomoName) where the STAR file lists one.
        z_crop : float
            Fraction of the depth removed at the top and at the bottom, e.g. 0.2 (default none).
        tomo_idx : str
            rlnIndex values to process, e.g. 1,3-5 (default all).
        mask_boundary : str
            Polygon boundary for every processed tomogram: IMOD model (.mod) or point file (x y z per
            line, as model2point writes); the last two points set the z-range if their z differ.
            Default: each row's rlnMaskBoundary. Written into the STAR.
        """
        from isonet.preprocess.mask import make_masks
        boundary = None if mask_boundary is None or str(mask_boundary).strip() in ("", "None") else str(mask_boundary)
        make_masks(str(star_file), mask_folder=str(mask_folder), patch_size=parse_optional_number(patch_size, "patch_size", int),
                   density_percentage=parse_optional_number(density_percentage, "density_percentage"),
                   std_percentage=parse_optional_number(std_percentage, "std_percentage"),
                   use_deconv_tomo=parse_bool(use_deconv_tomo, "use_deconv_tomo"),
                   z_crop=parse_optional_number(z_crop, "z_crop"), tomo_idx=parse_index_list(tomo_idx),
                   mask_boundary=boundary)

    def extract(self, star_file, subtomo_folder="subtomo", subtomo_star="subtomo.star", cube_size=64,
                crop_size=None, use_deconv_tomo=True, tomo_idx=None, seed=None, split_halves=False):
        """Extract random subtomograms inside the masks for training; write subtomo.star.

        Parameters
        ----------
        star_file : str
            Tomogram STAR file (read only); rlnNumberSubtomo subtomograms per tomogram, centres inside
            rlnMaskName where set.
        subtomo_folder : str
            Output folder for <root>_000000.mrc ...; an existing one is renamed to subtomo~ (never deleted).
        subtomo_star : str
            Output STAR listing the subtomograms with their source tomogram and centre (voxels).
        cube_size : int
            Training cube edge, a multiple of 8 (e.g. 32, 64, 96).
        crop_size : int
            Edge of the extracted subtomograms, larger than cube_size (default cube_size + 16).
        use_deconv_tomo : bool
            Extract from the deconvolved tomogram (rlnDeconvTomoName) where the STAR file lists one.
        tomo_idx : str
            rlnIndex values to use, e.g. 1,3-5 (default all).
        seed : int
            Random seed for the centres (default: a fresh one, written to the log).
        split_halves : bool
            Also write <subtomo_star root>_half1.star and _half2.star: random disjoint halves for
            gold-standard refinement.
        """
        from isonet.preprocess.extract import extract_subtomograms
        cube = parse_optional_number(cube_size, "cube_size", int)
        crop = parse_optional_number(crop_size, "crop_size", int)
        extract_subtomograms(str(star_file), subtomo_folder=str(subtomo_folder), subtomo_star=str(subtomo_star),
                             cube_size=cube, crop_size=crop,
                             use_deconv_tomo=parse_bool(use_deconv_tomo, "use_deconv_tomo"), tomo_idx=parse_index_list(tomo_idx), seed=parse_optional_number(seed, "seed", int),
                             split_halves=parse_bool(split_halves, "split_halves"))

    def resize(self, star_file, apix=15.0, out_folder="tomograms_resized", tomo_idx=None):
        """Resample tomograms to another pixel size (Fourier cropping/padding, no aliasing).

        Parameters
        ----------
        star_file : str
            Tomogram STAR file (read only); <star root>_resized.star is written beside it with the new
            files and pixel size.
        apix : float
            New pixel size in Å.
        out_folder : str
            Output folder for the resized tomograms (same file names).
        tomo_idx : str
            rlnIndex values to resize, e.g. 1,3-5 (default all); the new STAR lists only these.
        """
        from isonet.preprocess.resize import resize_tomograms
        resize_tomograms(str(star_file), apix=parse_optional_number(apix, "apix"), out_folder=str(out_folder),
                         tomo_idx=parse_index_list(tomo_idx))

    def simulate(self, out_dir, n_tomos=2, shape=(64, 256, 256), pixel_size=10.0, tilt_min=-60.0, tilt_max=60.0,
                 tilt_step=3.0, snr=0.5, defocus=0.0, voltage=300.0, cs=2.7, amplitude_contrast=0.07,
                 reconstruction="wbp", filter="ramp", sirt_iterations=20, number_subtomos=100, seed=0,
                 halves=True, scene="cell"):
        """Simulate tutorial tomograms of a cellular scene, with ground truth and tomograms.star.

        Writes OUT_DIR/tomograms/tomo_NN.mrc (dense = dark) with tomo_NN.tlt, OUT_DIR/ground_truth/tomo_NN.mrc
        (dense = bright), the half tomograms OUT_DIR/tomograms_half1/ and tomograms_half2/tomo_NN.mrc and
        OUT_DIR/tomograms.star (paths relative to OUT_DIR). The tomograms are real
        reconstructions of a simulated tilt series (projection, CTF, noise, WBP or SIRT).

        Parameters
        ----------
        out_dir : str
            Output folder (created; existing tomograms/, ground_truth/ and tomograms.star are renamed aside).
        n_tomos : int
            Number of tomograms.
        shape : tuple
            Tomogram size z,y,x in voxels (Y is the tilt axis, Z the beam).
        pixel_size : float
            Pixel size in Å (object sizes are physical, so they scale with it).
        tilt_min : float
            Lowest tilt angle in degrees.
        tilt_max : float
            Highest tilt angle in degrees.
        tilt_step : float
            Tilt increment in degrees.
        snr : float
            Signal-to-noise ratio of each projection (signal variance / noise variance); inf for no noise.
        defocus : float
            Defocus in Å (underfocus positive) applied as a CTF to every projection; 0 for no CTF.
        voltage : float
            Acceleration voltage in kV (CTF).
        cs : float
            Spherical aberration in mm (CTF).
        amplitude_contrast : float
            Amplitude contrast fraction (CTF).
        reconstruction : str
            wbp (weighted back-projection) or sirt.
        filter : str
            WBP filter: ramp or hamming (ramp with high-frequency roll-off).
        sirt_iterations : int
            Iterations of SIRT.
        number_subtomos : int
            Subtomograms per tomogram written into rlnNumberSubtomo.
        seed : int
            Random seed; the same seed gives identical data.
        halves : bool
            Also write even/odd half tomograms (independent noise, half the dose each; their average is the
            tomogram), listed as rlnTomoReconstructedTomogramHalf1/2; --nohalves to skip them.
        scene : str
            Specimen: cell (the tutorial's mix), cytosol (crowded small proteins), membranes, filaments or sparse.
        """
        from isonet.simulate import run_simulation
        run_simulation(
            str(out_dir), n_tomos=parse_number_tuple(n_tomos, "n_tomos", int, 1)[0],
            shape=parse_number_tuple(shape, "shape", int, 3),
            pixel_size=parse_number_tuple(pixel_size, "pixel_size", float, 1)[0],
            tilt_min=parse_number_tuple(tilt_min, "tilt_min", float, 1)[0],
            tilt_max=parse_number_tuple(tilt_max, "tilt_max", float, 1)[0],
            tilt_step=parse_number_tuple(tilt_step, "tilt_step", float, 1)[0],
            snr=parse_number_tuple(snr, "snr", float, 1)[0],
            defocus=parse_number_tuple(defocus, "defocus", float, 1)[0],
            voltage=parse_number_tuple(voltage, "voltage", float, 1)[0],
            cs=parse_number_tuple(cs, "cs", float, 1)[0],
            amplitude_contrast=parse_number_tuple(amplitude_contrast, "amplitude_contrast", float, 1)[0],
            reconstruction=parse_choice(reconstruction, "reconstruction", ("wbp", "sirt")),
            filter=parse_choice(filter, "filter", ("ramp", "hamming")),
            sirt_iterations=parse_number_tuple(sirt_iterations, "sirt_iterations", int, 1)[0],
            number_subtomos=parse_number_tuple(number_subtomos, "number_subtomos", int, 1)[0],
            seed=parse_number_tuple(seed, "seed", int, 1)[0], halves=parse_bool(halves, "halves"),
            scene=parse_choice(scene, "scene", ("cell", "cytosol", "membranes", "filaments", "sparse")))

    def predict(self, star_file, model, output_dir="./corrected_tomos", gpuID=None, cube_size=64, crop_size=96,
                use_deconv_tomo=True, batch_size=None, normalize_percentile=True, tomo_idx=None,
                mixed_precision=False, snapshot=False):
        """Correct whole tomograms with a trained network (overlapping tiles, blended seamlessly).

        Parameters
        ----------
        star_file : str
            Tomogram STAR file; rlnCorrectedTomoName is added/updated in place after each tomogram.
        model : str
            Trained network, e.g. results/model_iter30.h5 (.h5 or .keras; IsoNet 1 .h5 files work).
        output_dir : str
            Folder for <root>_corrected.mrc (created if needed; same voxel size and origin as the input).
        gpuID : str
            GPU ids to use, e.g. 0,1 (several GPUs share each batch); default all GPUs, -1 for the CPU.
            Without a GPU the CPU is used, with a warning.
        cube_size : int
            Edge in voxels of the core kept from each tile.
        crop_size : int
            Edge of the tiles fed to the network (> cube_size; rounded up to a multiple of 2^depth
            of the network, 8 for the default network).
        use_deconv_tomo : bool
            Predict the deconvolved tomogram (rlnDeconvTomoName) where the STAR file lists one.
        batch_size : int
            Tiles per network call; default 4 per GPU (IsoNet 1), 1 on the CPU (faster there).
        normalize_percentile : bool
            Normalise with the 4/96 percentiles (True) or mean/std (False); use refine's setting.
        tomo_idx : str
            rlnIndex values to predict, e.g. 1,3-5 (default all).
        mixed_precision : bool
            Compute in float16 on GPUs (bfloat16 on the CPU): faster on recent GPUs, slightly less precise.
        snapshot : bool
            Also save <output_dir>/<root>_snapshot.png with central slices of the raw and corrected tomogram.
        """
        from isonet.predict.predict import predict_tomograms
        cube = parse_number_tuple(cube_size, "cube_size", kind=int, length=1)[0]
        crop = parse_number_tuple(crop_size, "crop_size", kind=int, length=1)[0]
        require(cube >= 1, f"--cube_size: expected a positive whole number, got {cube_size!r}")
        require(crop > cube, f"--crop_size ({crop}) must be larger than --cube_size ({cube})")
        batch = None if batch_size is None else parse_number_tuple(batch_size, "batch_size", kind=int, length=1)[0]
        require(batch is None or batch >= 1, f"--batch_size: expected a positive whole number, got {batch_size!r}")
        predict_tomograms(str(star_file), str(model), output_dir=str(output_dir), gpu_ids=parse_gpu_ids(gpuID),
                          cube_size=cube, crop_size=crop, batch_size=batch,
                          use_deconv_tomo=parse_bool(use_deconv_tomo, "use_deconv_tomo"),
                          normalize_percentile=parse_bool(normalize_percentile, "normalize_percentile"),
                          tomo_idx=parse_index_list(tomo_idx),
                          mixed_precision=parse_bool(mixed_precision, "mixed_precision"),
                          snapshot=parse_bool(snapshot, "snapshot"))


def _command_names():
    return [name for name, _ in inspect.getmembers(Commands, inspect.isfunction) if not name.startswith("_")]


def _summary(function):
    doc = inspect.getdoc(function) or ""
    return doc.splitlines()[0] if doc else ""


def _parse_parameter_docs(function):
    """Map parameter name -> description from a numpydoc 'Parameters' section."""
    doc = inspect.getdoc(function) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\S.*\n-+\n|\Z)", doc + "\n", flags=re.S | re.M)
    if not match:
        return {}
    docs, current = {}, None
    for line in match.group(1).splitlines():
        header = re.match(r"^(\w+)\s*:", line)
        if header:
            current = header.group(1)
            docs[current] = []
        elif current and line.strip():
            docs[current].append(line.strip())
    return {name: " ".join(lines) for name, lines in docs.items()}


def _description(function):
    doc = inspect.getdoc(function) or ""
    return re.split(r"^Parameters\n-+\n", doc, flags=re.M)[0].strip()


def overview():
    """Text listing every command with its one-line summary."""
    names = _command_names()
    width = max(len(n) for n in names)
    lines = [f"isonet {isonet.__version__}: missing-wedge correction and denoising of cryo-ET tomograms",
             "", "Usage: isonet.py COMMAND [ARGS] [--option value ...]", "", "Commands:"]
    lines += [f"  {name:<{width}}  {_summary(getattr(Commands, name))}" for name in names]
    lines += ["", "Run 'isonet.py COMMAND --help' for the parameters of a command."]
    return "\n".join(lines)


def command_help(name):
    """Help text of one command: usage, description, every parameter with its default and meaning."""
    function = getattr(Commands, name)
    signature = inspect.signature(function)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    docs = _parse_parameter_docs(function)
    required = [p for p in params if p.default is inspect.Parameter.empty]
    optional = [p for p in params if p.default is not inspect.Parameter.empty]
    usage = " ".join(["isonet.py", name] + [p.name.upper() for p in required] + (["[options]"] if optional else []))
    lines = [f"Usage: {usage}", "", _description(function), ""]
    if required:
        lines.append("Arguments:")
        lines += [f"  {p.name.upper():<24} {docs.get(p.name, '')}" for p in required]
        lines.append("")
    lines.append("Options:")
    for p in optional:
        default = p.default
        shown = ",".join(str(v) for v in default) if isinstance(default, tuple) else default
        lines.append(f"  --{p.name:<22} {docs.get(p.name, '')} (default: {shown})")
    for option, (default, meaning) in COMMON_OPTIONS.items():
        lines.append(f"  --{option:<22} {meaning} (default: {default})")
    return "\n".join(lines)


def _split_common_options(args):
    """Remove --log_level / --log_file (either form) from ``args``; return (args, values)."""
    values = {k: v[0] for k, v in COMMON_OPTIONS.items()}
    rest, i = [], 0
    while i < len(args):
        token = args[i]
        name = token[2:].split("=", 1)[0].replace("-", "_") if token.startswith("--") else None
        if name in COMMON_OPTIONS:
            if "=" in token:
                values[name] = token.split("=", 1)[1]
            elif i + 1 < len(args):
                values[name] = args[i + 1]
                i += 1
            else:
                raise UsageError(f"--{name}: missing value")
            i += 1
            continue
        rest.append(token)
        i += 1
    if values["log_level"].lower() not in ("info", "debug", "warning"):
        raise UsageError(f"--log_level: expected info or debug, got {values['log_level']!r}")
    return rest, values


def _check_option_names(command, args):
    """Reject option names the command does not have (python-fire would misreport them)."""
    signature = inspect.signature(getattr(Commands, command))
    known = {name for name in signature.parameters if name != "self"}
    for token in args[1:]:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name in known or (name.startswith("no") and name[2:] in known):
            continue
        raise UsageError(f"unknown option --{name} for '{command}' (see 'isonet.py {command} --help')")


def main(argv=None):
    """Entry point of ``isonet.py``; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    if args[0] in ("--version", "version"):
        print(f"isonet {isonet.__version__}")
        return 0
    command = args[0]
    if command not in _command_names():
        print(f"ERROR: unknown command '{command}'\n\n{overview()}", file=sys.stderr)
        return 2
    if "-h" in args[1:] or "--help" in args[1:]:
        print(command_help(command))
        return 0
    level = "info"
    try:
        args, common = _split_common_options(args)
        level = common["log_level"].lower()
        _check_option_names(command, args)
        setup_logging(level, common["log_file"] or None)
    except (UsageError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    log.info("isonet %s: %s (in %s)", isonet.__version__, shlex.join(["isonet.py"] + args), os.getcwd())
    try:
        fire.Fire(Commands, command=args, name="isonet.py")
    except fire.core.FireExit as exc:  # fire already printed what it could not parse
        return exc.code if isinstance(exc.code, int) else 2
    except UsageError as exc:
        return _fail(exc, level, status=2)
    except IsonetError as exc:
        return _fail(exc, level, status=1)
    except KeyboardInterrupt:
        return _fail("interrupted", level, status=130)
    except Exception as exc:  # anything unexpected still ends with one ERROR line
        return _fail(f"{type(exc).__name__}: {exc}", level, status=1)
    return 0


def _fail(message, level, status):
    if level == "debug":
        log.debug("".join(traceback.format_exc()))
    log.error("%s", message)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""IsoNet 1, the original (github IsoNet-cryoET/IsoNet, TensorFlow), driven through its own ``isonet.py`` CLI.

The checkout is not a pip package: :meth:`IsoNet1Original.install_source` puts the patched copy on the venv's
``sys.path`` under the name ``IsoNet`` (its scripts do ``from IsoNet.util... import``) and the run calls
``python <copy>/bin/isonet.py <command> ...`` for each step of its pipeline, as a user would: prepare_star,
deconv (when there is a CTF), make_mask, extract, refine, predict.

It runs on today's TensorFlow through the legacy Keras 2 API (``tf-keras`` with ``TF_USE_LEGACY_KERAS=1``); its
GPU checks are bypassed for a CPU run (``--gpuID -1`` hides every GPU). Its commands catch their own errors and
exit 0, so every step's output is checked.
"""

import datetime
import os
import re
import sysconfig

from .common import Patch, Peer, PeerResult, require_file, run

#: TensorFlow CPU build and the legacy Keras of the same release (installed without its dependencies, which
#: would pull the CUDA ``tensorflow`` wheel).
TENSORFLOW = "2.21.0"


class IsoNet1Original(Peer):
    """IsoNet 1 (the original TensorFlow program, v0.2/0.3), installed from a local checkout of its repository.

    Parameters
    ----------
    root : str
        This peer's folder (venv/, src/, site/).
    checkout : str
        A clone of github.com/IsoNet-cryoET/IsoNet (not modified: a patched copy is installed).

    Notes
    -----
    Its missing wedge is fixed: ``preprocessing/simulate.py:mw2d`` masks a symmetric -60..+60 degree wedge
    (``missingAngle=[30, 30]``) whatever the tilt range; no option changes it and it is not patched here.
    """
    name = "isonet1_original"
    package = None
    # requirements.txt minus PyQt5 (its GUI only: the CLI imports it in `check` and `gui` alone).
    requirements = ["numpy", "mrcfile", "scipy", "fire", "tqdm", "scikit-image", f"tensorflow-cpu=={TENSORFLOW}"]
    patches = [
        Patch("bin/refine.py",
              "def check_gpu(args):\n    import subprocess\n",
              "def check_gpu(args):\n"
              "    if os.environ.get('CUDA_VISIBLE_DEVICES') == '-1':\n"
              "        return  # CPU run (benchmark adapter): skip the nvidia-smi and GPU-count checks\n"
              "    import subprocess\n",
              why="refine and predict refuse to start without `nvidia-smi` and a visible GPU per gpuID; with "
                  "--gpuID -1 (CUDA_VISIBLE_DEVICES=-1, set by the program itself) the checks are skipped so "
                  "TensorFlow runs on the CPU. Nothing else changes."),
    ]

    #: Most refine iterations the step budget is split over (8: ``8 x 1 epoch x 50 steps = 400``, as ours).
    ITERATIONS = 8

    @property
    def source(self):
        return os.path.join(self.root, "src")

    @property
    def site(self):
        """The folder above the ``IsoNet`` package: what the venv adds to ``sys.path``."""
        return os.path.join(self.root, "site")

    def install_source(self, source, pip):
        """Make the patched copy importable as ``IsoNet`` and add the legacy Keras (not a pip install).

        Parameters
        ----------
        source : str
            The patched copy of the checkout (``root/src``).
        pip : list of str
            The venv's pip install command.
        """
        # tf-keras depends on `tensorflow` (the CUDA wheel); the CPU build is already there.
        run(pip + ["--no-deps", f"tf-keras=={TENSORFLOW}"])
        os.makedirs(self.site, exist_ok=True)
        link = os.path.join(self.site, "IsoNet")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(source, link)
        # A .pth file rather than PYTHONPATH: Peer.command drops PYTHONPATH from the environment.
        with open(os.path.join(self._site_packages(), "isonet1_original.pth"), "w") as handle:
            handle.write(self.site + "\n")

    def _site_packages(self):
        version = sysconfig.get_python_version()
        return os.path.join(self.venv, "lib", f"python{version}", "site-packages")

    def steps_split(self, steps):
        """Split ``steps`` into (iterations, steps_per_epoch) with one epoch per iteration.

        Parameters
        ----------
        steps : int
            Optimizer steps of the budget.

        Returns
        -------
        tuple of int
            The largest number of iterations <= ``ITERATIONS`` that divides ``steps``, and the steps
            per epoch, so that iterations * steps_per_epoch == steps exactly.
        """
        iterations = max(i for i in range(1, min(self.ITERATIONS, steps) + 1) if steps % i == 0)
        return iterations, steps // iterations

    def run(self, data, budget, folder):
        """Run IsoNet 1's pipeline on the full tomogram of ``data`` and correct it.

        Parameters
        ----------
        data : PeerInput
            The dataset; its tomogram (not the halves, not our deconvolution) is IsoNet 1's input, and its own
            deconvolution runs when ``data.defocus > 0``.
        budget : PeerBudget
            steps = iterations x 1 epoch x steps_per_epoch; batch_size, cube, subtomos and filter_base map to
            the options of the same meaning.
        folder : str
            Work folder (created); every command's log is ``folder/isonet1.log``.

        Returns
        -------
        PeerResult
        """
        version = self.install()
        folder = os.path.abspath(folder)
        os.makedirs(os.path.join(folder, "tomograms"), exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", data.name)  # it cuts names at the first '.'
        tomogram = os.path.join(folder, "tomograms", stem + ".mrc")
        if os.path.lexists(tomogram):
            os.remove(tomogram)
        os.symlink(os.path.abspath(data.tomogram), tomogram)

        ncpu = os.cpu_count() or 1
        env = {"TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        isonet = [self.bin("python"), os.path.join(self.source, "bin", "isonet.py")]
        commands, seconds = [], {}

        def step(name, *args):
            line = isonet + [name] + [str(a) for a in args]
            commands.append(" ".join(line))
            seconds[name] = self.command(line, folder, "isonet1.log", env)

        star = "tomograms.star"
        step("prepare_star", "tomograms", "--output_star", star, "--pixel_size", data.pixel_size,
             "--defocus", data.defocus, "--number_subtomos", budget.subtomos)
        require_file(os.path.join(folder, star), "isonet.py prepare_star")
        if data.defocus > 0:
            # Its defaults snrfalloff = deconvstrength = 1.0 (= ours), highpassnyquist 0.02; amplitude
            # contrast is fixed at 0.07 in its code.
            step("deconv", star, "--deconv_folder", "deconv", "--voltage", data.voltage, "--cs", data.cs,
                 "--ncpu", ncpu)
            require_file(os.path.join(folder, "deconv", stem + ".mrc"), "isonet.py deconv")
        step("make_mask", star, "--mask_folder", "mask")
        require_file(os.path.join(folder, "mask", stem + "_mask.mrc"), "isonet.py make_mask")
        step("extract", star, "--subtomo_folder", "subtomo", "--subtomo_star", "subtomo.star",
             "--cube_size", budget.cube)
        require_file(os.path.join(folder, "subtomo.star"), "isonet.py extract")

        iterations, steps_per_epoch = self.steps_split(budget.steps)
        refine = ["subtomo.star", "--gpuID", -1, "--iterations", iterations, "--epochs", 1,
                  "--steps_per_epoch", steps_per_epoch, "--batch_size", budget.batch_size,
                  "--preprocessing_ncpus", ncpu, "--result_dir", "results"]
        if budget.filter_base:
            refine += ["--filter_base", budget.filter_base]
        log_start = _log_size(os.path.join(folder, "isonet1.log"))
        step("refine", *refine)
        model = require_file(os.path.join(folder, "results", f"model_iter{iterations:02d}.h5"),
                             "isonet.py refine")
        train_seconds, fit_seconds = _training_seconds(os.path.join(folder, "isonet1.log"), log_start, iterations)

        step("predict", star, model, "--gpuID", -1, "--output_dir", "corrected")
        corrected = require_file(os.path.join(folder, "corrected", stem + "_corrected.mrc"), "isonet.py predict")

        settings = {
            "program": f"IsoNet 1 (original), isonet.py CLI, tensorflow-cpu {TENSORFLOW} + tf-keras {TENSORFLOW}",
            "network": f"U-Net depth 3, 3 convs per depth, kernel 3, batch norm, dropout 0.3, residual; "
                       f"filter_base {budget.filter_base or 64}",
            "parameters": self._count_parameters(model, folder, env),
            "cube": budget.cube, "crop": budget.cube + 16, "subtomos": budget.subtomos,
            "rotations_per_subtomo": 20,
            "iterations": iterations, "epochs": 1, "steps_per_epoch": steps_per_epoch,
            "validation_steps_per_epoch": -(-steps_per_epoch // 10),
            "batch_size": budget.batch_size, "learning_rate": 0.0004, "loss": "mae",
            "noise": "none (its default noise_start_iter 11,16,21,26 lies past the last iteration)"
                     if iterations < 11 else "its default schedule",
            "missing_wedge": "fixed -60..+60 (its mw2d), whatever the tilt range "
                             f"({data.tilt_min:g}..{data.tilt_max:g})",
            "deconvolution": "its own (snrfalloff 1.0, deconvstrength 1.0, highpassnyquist 0.02, "
                             "amplitude contrast 0.07)" if data.defocus > 0 else "none (no CTF)",
            "mask": "its make_mask defaults (density 50 %, std 50 %, patch 4) on the deconvolved tomogram",
            "predict": "its defaults: cube 64, crop 96, batch 4, on the deconvolved tomogram",
            "seed": "none (IsoNet 1 does not seed its sampling or training)",
            "refine_seconds": seconds["refine"],
            "fit_seconds": fit_seconds,
            "train_seconds_from": "sum of its log's 'Start training!'..'Done training!' spans (1 s resolution): "
                                  "model load, fit with its validation batches, save",
            "step_seconds": seconds,
            "commands": commands,
        }
        return PeerResult(corrected=corrected, version=version, steps=iterations * steps_per_epoch,
                          batch_size=budget.batch_size, train_seconds=train_seconds,
                          predict_seconds=seconds["predict"], settings=settings)

    def _count_parameters(self, model, folder, env):
        """Parameters of the trained network (None if the model cannot be read)."""
        script = ("import sys, tf_keras; m = tf_keras.models.load_model(sys.argv[1], compile=False); "
                  "open(sys.argv[2], 'w').write(str(m.count_params()))")
        out = os.path.join(folder, "parameters.txt")
        try:
            self.command([self.bin("python"), "-c", script, model, out], folder, "parameters.log", env)
            with open(out) as handle:
                return int(handle.read())
        except (RuntimeError, OSError, ValueError):
            return None


def _log_size(path):
    return os.path.getsize(path) if os.path.isfile(path) else 0


def _training_seconds(log_path, start, iterations):
    """Seconds between each 'Start training!' and 'Done training!' line of refine's log, summed.

    Its refine interleaves per-iteration subtomogram prediction and training-pair generation with training;
    only the training itself counts here.

    Returns
    -------
    tuple
        The summed spans (s) and the list of Keras's own epoch times (s, from its progress bar: the fit with
        its validation batches, without model load and save).
    """
    with open(log_path, "rb") as handle:
        handle.seek(start)  # this run's part of the log
        text = handle.read().decode(errors="replace")
    stamp = r"(\d\d-\d\d \d\d:\d\d:\d\d), INFO\s+"
    starts = re.findall(stamp + "Start training!", text)
    ends = re.findall(stamp + "Done training!", text)
    if len(starts) != iterations or len(ends) != iterations:
        raise RuntimeError(f"isonet.py refine: {len(ends)} of {iterations} iterations trained; see {log_path}")

    def parse(value):
        return datetime.datetime.strptime("2000-" + value, "%Y-%m-%d %H:%M:%S")

    total = 0.0
    for begin, end in zip(starts, ends):
        span = (parse(end) - parse(begin)).total_seconds()
        total += span if span >= 0 else span + 366 * 86400  # across a new year
    # The progress bar rewrites its line with \r and \b; its last state per epoch reads "- 19s 4s/step - loss".
    epochs = re.findall(r"\] - (\d+)s \S+/step", re.sub(r"[\r\b]", "\n", text))
    return total, [float(e) for e in epochs]

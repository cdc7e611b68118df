"""cryoCARE (Buchholz et al. 2019; package ``cryocare`` 0.3.0, TensorFlow + CSBDeep): Noise2Noise denoising.

cryoCARE trains a 3D U-Net to map one half tomogram (even frames) to the other (odd frames) and predicts the
average of the two halves' predictions. It denoises only: it neither fills the missing wedge nor corrects the
CTF. It is driven through its three commands, each with a JSON config: ``cryoCARE_extract_train_data.py``
(sample patch coordinates, normalization), ``cryoCARE_train.py`` and ``cryoCARE_predict.py``.

The package pins ``numpy~=1.19.2``, which has no build for Python 3.11, so it is installed without its
dependencies on top of pinned ones that satisfy the rest (CSBDeep 0.7 needs Keras 2, hence TensorFlow 2.15).
"""

import json
import math
import os
import re
import shutil
import subprocess

import mrcfile
import numpy as np

from .common import Patch, Peer, PeerResult, require_file

# The U-Net depth we use in isonet; cryoCARE's default is also 3.
UNET_DEPTH = 3
# cryoCARE's default learning rate (Adam), kept: it is part of the program as published.
LEARNING_RATE = 0.0004
# Largest number of epochs the budget is split into: each epoch ends with a validation pass and a checkpoint.
MAX_EPOCHS = 10

PARAMETER_COUNT = """
from csbdeep.models import CARE
model = CARE(None, sys.argv[1], basedir=sys.argv[2])
print("PARAMETERS", model.keras_model.count_params())
"""


class CryoCARE(Peer):
    """cryoCARE 0.3.0 from the package index, trained on the (deconvolved) even/odd half tomograms."""
    name = "cryoCARE"
    package = "cryocare==0.3.0"
    requirements = ["tensorflow-cpu==2.15.1", "numpy<2", "csbdeep==0.7.4", "mrcfile", "psutil"]
    patches = [
        Patch(path="cryocare/internals/CryoCAREDataModule.py",
              old="assert even.data.shape[0] > 2 *",
              new="assert even.data.shape[0] >= 2 *",
              why="cryoCARE asserts the tomogram is MORE than twice the patch along Z; our 64-slice tomograms "
                  "are exactly twice the 32-voxel cube. Patches are sampled over [0, Z - cube], which is valid "
                  "for Z == 2 * cube, so '>=' only admits the equal case."),
    ]

    def version_text(self):
        """cryoCARE's version with those of TensorFlow, Keras, CSBDeep and NumPy installed beside it."""
        versions = {name: self.pip_version(name) for name in ("cryoCARE", "tensorflow-cpu", "keras", "csbdeep",
                                                              "numpy")}
        return (f"cryocare {versions['cryoCARE']} (sdist, {len(self.patches)} patch); "
                + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "cryoCARE"))

    def run(self, data, budget, folder):
        """Train cryoCARE on ``data``'s halves with ``budget`` in ``folder`` and denoise the tomogram.

        Parameters
        ----------
        data : PeerInput
            The dataset; the deconvolved halves are used when present (cryoCARE has no CTF handling), else
            the raw halves. half1 is cryoCARE's "even", half2 its "odd".
        budget : PeerBudget
            ``steps`` = epochs x steps_per_epoch, ``batch_size``, ``cube`` (patch edge), ``subtomos``
            (training patches), ``filter_base`` (``unet_n_first``; None: cryoCARE's default 16).
        folder : str
            Working folder (inputs, configs, logs, model, output).

        Returns
        -------
        PeerResult
            ``corrected``: the denoised average of the halves, same shape as ``data.tomogram``.
        """
        version = self.install()
        folder = os.path.abspath(folder)
        os.makedirs(folder, exist_ok=True)

        # Inputs: copies of the halves, padded to a multiple of 2**depth (cryoCARE would leave zeros there).
        deconvolved = bool(data.deconv_half1)
        sources = (data.deconv_half1, data.deconv_half2) if deconvolved else (data.half1, data.half2)
        with mrcfile.open(data.tomogram, permissive=True) as mrc:
            shape = tuple(mrc.data.shape)
        block = 2 ** UNET_DEPTH
        padded = tuple(int(math.ceil(n / block)) * block for n in shape)
        if padded[0] < 2 * budget.cube or min(padded[1:]) <= 2 * budget.cube:
            raise ValueError(f"{self.name}: tomogram {shape} too small for cryoCARE patches of {budget.cube} "
                             f"(it needs Z >= 2 x cube and Y, X > 2 x cube)")
        inputs = []
        for label, source in zip(("even", "odd"), sources):
            path = os.path.join(folder, "input", label, data.name + ".mrc")
            _write_padded(source, path, padded, data.pixel_size)
            inputs.append(path)
        even, odd = inputs

        # Patches: train = subtomos, validation = one batch. cryoCARE takes int(n * split) for training and
        # int(n * (1 - split)) for validation; n = train + val + 1 and split = (train + 0.5) / n put both
        # products half-way between integers, so the float rounding cannot change either count.
        n_train, n_val = budget.subtomos, budget.batch_size
        num_slices = n_train + n_val + 1
        split = (n_train + 0.5) / num_slices
        assert int(num_slices * split) == n_train and int(num_slices * (1.0 - (1.0 - split))) == n_train
        assert int(num_slices * (1.0 - split)) == n_val
        epochs = max(d for d in range(1, MAX_EPOCHS + 1) if budget.steps % d == 0)
        steps_per_epoch = budget.steps // epochs
        n_first = budget.filter_base if budget.filter_base is not None else 16

        train_data = os.path.join(folder, "train_data")
        model_dir = os.path.join(folder, "model")
        output_dir = os.path.join(folder, "denoised")
        for old in (train_data, model_dir, output_dir):
            shutil.rmtree(old, ignore_errors=True)  # cryoCARE refuses existing folders; a rerun starts clean
        extract_conf = {
            "even": [even], "odd": [odd], "patch_shape": [budget.cube] * 3, "num_slices": num_slices,
            "split": split, "tilt_axis": "Y",
            # compute_mean_std indexes training patches 0..n-1: more than n_train would overrun them
            "n_normalization_samples": n_train, "path": train_data, "overwrite": True,
        }
        train_conf = {
            "train_data": train_data, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "batch_size": budget.batch_size, "unet_kern_size": 3, "unet_n_depth": UNET_DEPTH,
            "unet_n_first": n_first, "learning_rate": LEARNING_RATE, "model_name": "model", "path": model_dir,
            # without gpu_id, cryoCARE's set_gpu_id fails (NameError) on a machine without a GPU
            "gpu_id": 0,
        }
        predict_conf = {
            "path": os.path.join(model_dir, "model.tar.gz"), "even": [even], "odd": [odd], "n_tiles": [1, 1, 1],
            "output": output_dir, "overwrite": True, "gpu_id": 0,
        }
        commands = []
        for label, conf in (("extract", extract_conf), ("train", train_conf), ("predict", predict_conf)):
            path = os.path.join(folder, f"{label}_config.json")
            with open(path, "w") as handle:
                json.dump(conf, handle, indent=1)
            commands.append([f"cryoCARE_{'extract_train_data' if label == 'extract' else label}.py",
                             "--conf", path])

        self.command(commands[0], folder, "extract.log")
        require_file(os.path.join(train_data, "train_data.npz"), "cryoCARE_extract_train_data.py")
        train_seconds = self.command(commands[1], folder, "train.log")
        require_file(predict_conf["path"], "cryoCARE_train.py")
        predict_seconds = self.command(commands[2], folder, "predict.log")
        denoised = require_file(os.path.join(output_dir, os.path.basename(even)), "cryoCARE_predict.py")

        corrected = os.path.join(folder, f"{data.name}_cryocare.mrc")
        volume = mrcfile.read(denoised)[:shape[0], :shape[1], :shape[2]].astype(np.float32)
        if not np.isfinite(volume).all():
            raise RuntimeError(f"{self.name}: non-finite values in {denoised}")
        with mrcfile.new(corrected, overwrite=True) as mrc:
            mrc.set_data(volume)
            mrc.voxel_size = data.pixel_size

        fit = _keras_epochs(os.path.join(folder, "train.log"))
        settings = {
            "network": f"CSBDeep residual 3D U-Net, depth {UNET_DEPTH}, first layer {n_first} filters, "
                       f"kernel 3, MSE loss, Adam lr {LEARNING_RATE} (ReduceLROnPlateau patience 10 epochs)",
            "parameters": self._parameter_count(model_dir),
            "cube": budget.cube,
            "inputs": "deconvolved halves" if deconvolved else "raw halves",
            "even": sources[0], "odd": sources[1],
            "padded_shape": list(padded),
            "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "train_patches": n_train, "validation_patches": n_val,
            "num_slices": num_slices, "split": split, "tilt_axis": "Y",
            "weights": "weights_best.h5 (lowest validation loss over the epochs), as cryoCARE does",
            "seed": "not applied (cryoCARE draws patches and shuffles without a seed)",
            "keras_epoch_seconds": fit,
            "configs": {"extract": extract_conf, "train": train_conf, "predict": predict_conf},
            "commands": [" ".join(c) for c in commands],
        }
        return PeerResult(corrected=corrected, version=version, steps=epochs * steps_per_epoch,
                          batch_size=budget.batch_size, train_seconds=train_seconds,
                          predict_seconds=predict_seconds, settings=settings)

    def _parameter_count(self, model_dir):
        """The trained network's parameter count, read back by CSBDeep in the peer's venv (None on failure)."""
        out = subprocess.run([self.bin("python"), "-c", PARAMETER_COUNT, "model", model_dir],
                             capture_output=True, text=True)
        match = re.search(r"PARAMETERS (\d+)", out.stdout)
        return int(match.group(1)) if match else None


def _write_padded(source, path, shape, pixel_size):
    """Copy ``source`` to ``path`` as float32, mirror-padded at the far end of each axis up to ``shape``."""
    volume = mrcfile.read(source).astype(np.float32)
    pad = [(0, target - n) for n, target in zip(volume.shape, shape)]
    if any(after for _, after in pad):
        volume = np.pad(volume, pad, mode="reflect")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = pixel_size


def _keras_epochs(log_path):
    """Seconds of each epoch as Keras reported them in the training log (steps x its "290ms/step").

    Keras's epoch time runs to the end of the epoch's validation pass; the first epoch also builds the graph.
    """
    with open(log_path, errors="replace") as handle:
        text = handle.read()
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    return [round(int(steps) * int(time) * scale[unit], 3) for steps, time, unit in
            re.findall(r"(\d+)/\1 \[=+\] - \d+s (\d+)(us|ms|s)/step", text)]

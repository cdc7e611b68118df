"""DeepDeWedge (Wiedemann & Heckel, Nat. Commun. 2024; github MLI-lab/DeepDeWedge) as a peer.

DeepDeWedge fits a 3D U-Net on cubes cut from the two half tomograms: the input is one half's cube, rotated
and given a second missing wedge, the target the other half's cube, and the loss is counted in Fourier space
inside and outside the rotated wedge. Its command line has three steps, driven here as a user would:
``ddw prepare-data`` (cut the cubes), ``ddw fit-model`` (PyTorch Lightning) and ``ddw refine-tomogram``
(correct both halves with the fitted network and average them). All three read one YAML file
(``ddw.yaml``, sections ``shared``, ``prepare_data``, ``fit_model``, ``refine_tomogram``), written per run.

Mapping to the benchmark (see :meth:`DeepDeWedge.run`):

* DeepDeWedge has no CTF handling: it gets this project's deconvolved halves when there are some, else the
  raw halves; the mask is this project's sampling mask (cube selection, as its ``mask_files``).
* Its missing wedge is symmetric around Z with tilt axis Y (the same axes as ours): ``mw_angle`` =
  180 - (tilt_max - tilt_min), the width of our wedge, centred on Z even when our tilt range is not.
* Training budget: ``num_epochs`` x (fitting cubes / batch size) == ``budget.steps`` exactly, by keeping
  exactly batch_size x (a divisor of steps) fitting cubes and no validation cubes.
"""

import math
import os
import random
import shutil

from .common import Patch, Peer, PeerResult, require_file


class DeepDeWedge(Peer):
    """DeepDeWedge driven through its ``ddw`` command line, on the CPU.

    Parameters
    ----------
    root : str
        This peer's folder (``venv/``, ``src/``).
    checkout : str
        A checkout of github MLI-lab/DeepDeWedge.

    The U-Net's first layer has ``budget.filter_base`` channels, as ours: its default 64 (27.3 M parameters)
    and its README's faster 32 (6.8 M) cost 40 s and 10 s per step of batch 4 on 2 CPU cores (docs/peers.md).
    """

    name = "deepdewedge"
    #: Pinned for Python 3.11. Its requirements.txt pins pytorch-lightning 1.8.0.post1 (the code uses the
    #: 1.x API: Trainer(resume_from_checkpoint=...), trainer.train_dataloader.loaders); 1.9.5 is the last
    #: 1.x. torch: the package index's build (CUDA, also runs on a CPU). matplotlib, pandas and
    #: scikit-image are not imported by the command line and are left out.
    requirements = ["torch==2.13.0", "pytorch-lightning==1.9.5", "numpy==1.26.4", "scipy==1.13.1",
                    "mrcfile==1.5.0", "PyYAML==6.0.3", "tqdm==4.70.1", "typer==0.16.0", "typer-config==1.4.0",
                    "typing_extensions>=4.9.0", "setuptools<81"]
    patches = [
        Patch(path="ddw/fit_model.py",
              old='        accelerator="gpu",\n        devices=devices,',
              new='        accelerator="gpu" if torch.cuda.is_available() else "cpu",\n'
                  '        devices=devices if torch.cuda.is_available() else 1,',
              why="fit-model hard-codes Trainer(accelerator='gpu'); without a GPU it fails. Use the CPU "
                  "(one process) when CUDA is unavailable; on a GPU nothing changes."),
    ]
    #: Training cube edge. Its tutorial uses 96 and its README recommends "not going below 64", but
    #: prepare-data cuts cubes ceil(sqrt(2) x size) wide (rotation margin): 96 or 64 need 136 or 92 voxels,
    #: more than our 64-voxel thickness. 40 (58 cut) is the largest multiple of 8 that fits; it is kept for
    #: thicker tomograms too, so that every dataset costs the same per step.
    SUBTOMO_SIZE = 40
    #: Adam learning rate of its tutorial config (the command has no default).
    LEARNING_RATE = 4e-4
    #: Its default minimum fraction of mask voxels in a cube.
    MIN_MASK_FRACTION = 0.3

    def run(self, data, budget, folder):
        """Cut cubes, fit the U-Net for ``budget.steps`` steps, refine the tomogram.

        Parameters
        ----------
        data : PeerInput
            The dataset; its deconvolved halves are used when present, else its raw halves.
        budget : PeerBudget
            ``steps`` and ``batch_size`` are matched exactly; ``subtomos`` is the target number of fitting
            cubes (rounded to batch_size x a divisor of steps); ``seed`` seeds cube selection and fitting.
        folder : str
            Work folder (made; a previous run's ``project/`` in it is removed).

        Returns
        -------
        PeerResult
            ``corrected``: ``folder/corrected.mrc``, the average of both refined halves, shape and orientation
            as ``data.tomogram`` (intensities affinely rescaled by DeepDeWedge's normalization).
        """
        import mrcfile
        import numpy as np
        version = self.install()
        folder = os.path.abspath(folder)
        project = os.path.join(folder, "project")
        if os.path.isdir(project):
            shutil.rmtree(project)  # prepare-data refuses an existing cube folder
        os.makedirs(project)
        deconvolved = data.deconv_half1 is not None
        half1, half2 = (data.deconv_half1, data.deconv_half2) if deconvolved else (data.half1, data.half2)
        with mrcfile.open(data.tomogram, permissive=True, header_only=True) as handle:
            shape = tuple(int(n) for n in (handle.header.nz, handle.header.ny, handle.header.nx))
        size = default_subtomo_size(min(shape), self.SUBTOMO_SIZE)
        extracted = enlarged_size(size)
        if extracted > min(shape):
            raise ValueError(f"{self.name}: cube {size} needs {extracted} voxels for rotation; volume is {shape}")
        mask = binary_mask(data.mask, os.path.join(folder, "mask.mrc"))
        with mrcfile.open(mask, permissive=True) as handle:
            mask_data = np.asarray(handle.data) > 0
        # one symmetric wedge around Z (tilt axis Y, as ours) of our wedge's width
        mw_angle = int(round(180.0 - (data.tilt_max - data.tilt_min)))
        # fitting cubes: batch_size x batches per epoch, batches per epoch dividing the steps (exact budget)
        batches = batches_per_epoch(budget.steps, budget.batch_size, budget.subtomos)
        strides = choose_strides(mask_data, extracted, batches * budget.batch_size, self.MIN_MASK_FRACTION)
        available = count_cubes(mask_data, extracted, strides, self.MIN_MASK_FRACTION)
        batches = batches_per_epoch(budget.steps, budget.batch_size, budget.subtomos,
                                    available // budget.batch_size)
        cubes = batches * budget.batch_size
        epochs = budget.steps // batches
        config = os.path.join(folder, "ddw.yaml")
        write_config(config, {
            "shared": {"project_dir": project, "tomo0_files": [os.path.abspath(half1)],
                       "tomo1_files": [os.path.abspath(half2)], "subtomo_size": size, "mw_angle": mw_angle,
                       "num_workers": 1, "seed": budget.seed},
            "prepare_data": {"mask_files": [mask], "min_nonzero_mask_fraction_in_subtomo": self.MIN_MASK_FRACTION,
                             "subtomo_extraction_strides": list(strides), "val_fraction": 0.0},
            "fit_model": {"unet_params_dict": {"chans": budget.filter_base, "num_downsample_layers": 3,
                                               "drop_prob": 0.0},
                          "adam_params_dict": {"lr": self.LEARNING_RATE}, "num_epochs": epochs,
                          "batch_size": budget.batch_size, "update_subtomo_missing_wedges_every_n_epochs": 10,
                          "check_val_every_n_epochs": 10, "save_n_models_with_lowest_val_loss": 0,
                          "save_n_models_with_lowest_fitting_loss": 0, "save_model_every_n_epochs": epochs,
                          "logger": "csv", "gpu": 0},  # gpu: required; ignored without CUDA (patch)
            "refine_tomogram": {"subtomo_overlap": int(math.ceil(size / 3)), "batch_size": budget.batch_size,
                                "num_workers": 0, "output_dir": os.path.join(project, "refined")},
        })
        commands = []

        def ddw(step, log):
            args = ["ddw", step, "--config", config]
            commands.append(" ".join(args))
            return self.command(args, folder, log)

        prepare_seconds = ddw("prepare-data", "prepare.log")
        kept = keep_cubes(os.path.join(project, "subtomos", "fitting_subtomos"), cubes, budget.seed)
        if kept != cubes:
            raise RuntimeError(f"{self.name}: prepare-data cut {kept} cubes, {cubes} expected (strides {strides})")
        train_seconds = ddw("fit-model", "fit.log")
        checkpoint = require_file(os.path.join(project, "logs", "version_0", "checkpoints", "epoch",
                                               f"epoch={epochs - 1}.ckpt"), self.name)
        with open(config, "a") as handle:  # the checkpoint is known only now
            handle.write(f"  model_checkpoint_file: {checkpoint}\n")
        predict_seconds = ddw("refine-tomogram", "refine.log")
        stem = f"{stem_of(half1)}+{stem_of(half2)}"
        refined = require_file(os.path.join(project, "refined", f"{stem}_refined.mrc"), self.name)
        corrected = os.path.join(folder, "corrected.mrc")
        with mrcfile.open(refined, permissive=True) as handle:
            volume = np.asarray(handle.data, dtype=np.float32)
        if volume.shape != shape or not np.isfinite(volume).all():
            raise RuntimeError(f"{self.name}: {refined} has shape {volume.shape} (want {shape}) or non-finite values")
        with mrcfile.new(corrected, overwrite=True) as handle:  # its output has no voxel size
            handle.set_data(volume)
            handle.voxel_size = data.pixel_size
        return PeerResult(
            corrected=corrected, version=version, steps=epochs * batches, batch_size=budget.batch_size,
            train_seconds=train_seconds, predict_seconds=predict_seconds,
            settings={"network": f"DeepDeWedge Unet3D, chans {budget.filter_base}, 3 downsampling levels, "
                                 "3 convs per block, InstanceNorm, LeakyReLU, residual",
                      "parameters": unet_parameters(budget.filter_base), "cube": size, "cube_extracted": extracted,
                      "strides": list(strides), "cubes_available": available, "fitting_cubes": cubes,
                      "validation_cubes": 0, "batches_per_epoch": batches, "epochs": epochs,
                      "mw_angle": mw_angle, "halves": "deconvolved" if deconvolved else "raw",
                      "learning_rate": self.LEARNING_RATE, "update_missing_wedges_every_n_epochs": 10,
                      "checkpoint": "last epoch", "prepare_seconds": round(prepare_seconds, 1),
                      "commands": commands, "config": read_text(config)})


def enlarged_size(size):
    """Edge of the cubes prepare-data cuts for ``size`` (its ``ceil_to_even_integer(sqrt(2) * size)``)."""
    return int(math.ceil(math.sqrt(2) * size / 2.0) * 2)


def default_subtomo_size(thickness, largest):
    """Largest multiple of 8 up to ``largest`` whose enlarged cube fits in ``thickness`` voxels."""
    size = largest - largest % 8
    while size > 8 and enlarged_size(size) > thickness:
        size -= 8
    return size


def batches_per_epoch(steps, batch_size, subtomos, most=None):
    """Batches per epoch: a divisor of ``steps``, cubes (x ``batch_size``) nearest ``subtomos``, at most ``most``."""
    divisors = [d for d in range(1, steps + 1) if steps % d == 0 and (most is None or d <= most)]
    if not divisors:
        raise ValueError(f"fewer than {batch_size} cubes: no full batch")
    return min(divisors, key=lambda d: (abs(d * batch_size - subtomos), -d))


def cube_starts(length, size, stride):
    """Start indices along one axis, as prepare-data's sliding window (no padding)."""
    return range(0, length - size + 1, stride)


def count_cubes(mask, size, strides, fraction):
    """Cubes prepare-data keeps: those whose mask fraction is at least ``fraction``."""
    import numpy as np
    sums = np.cumsum(np.cumsum(np.cumsum(np.pad(mask.astype(np.int64), ((1, 0), (1, 0), (1, 0))), 0), 1), 2)

    def box(z, y, x):
        z1, y1, x1 = z + size, y + size, x + size
        return (sums[z1, y1, x1] - sums[z, y1, x1] - sums[z1, y, x1] - sums[z1, y1, x] + sums[z, y, x1]
                + sums[z, y1, x] + sums[z1, y, x] - sums[z, y, x])

    return sum(int(box(z, y, x) >= fraction * size ** 3)
               for z in cube_starts(mask.shape[0], size, strides[0])
               for y in cube_starts(mask.shape[1], size, strides[1])
               for x in cube_starts(mask.shape[2], size, strides[2]))


def choose_strides(mask, size, wanted, fraction):
    """Largest equal strides (least overlap) giving at least ``wanted`` cubes; the smallest tried otherwise."""
    for stride in range(size, 1, -1):
        if count_cubes(mask, size, (stride,) * 3, fraction) >= wanted:
            break
    return (stride,) * 3


def keep_cubes(cube_dir, number, seed):
    """Keep ``number`` of prepare-data's cube pairs (a seeded draw), numbered 0.. as it expects. Returns the count."""
    names = sorted((int(name[:-3]) for name in os.listdir(os.path.join(cube_dir, "subtomo0"))))
    if len(names) < number:
        return len(names)
    keep = sorted(random.Random(seed).sample(names, number))
    for half in ("subtomo0", "subtomo1"):
        path = os.path.join(cube_dir, half)
        for index in set(names) - set(keep):
            os.remove(os.path.join(path, f"{index}.pt"))
        for new, old in enumerate(keep):  # the dataset loads {index}.pt for index < number of files
            if new != old:
                os.rename(os.path.join(path, f"{old}.pt"), os.path.join(path, f"{new}.pt"))
    return number


def binary_mask(path, out):
    """``path`` when already 0/1 (its requirement), else a 0/1 copy (mask > 0) written to ``out``."""
    import mrcfile
    import numpy as np
    with mrcfile.open(path, permissive=True) as handle:
        mask = np.asarray(handle.data)
    if np.isin(mask, (0, 1)).all():
        return os.path.abspath(path)
    with mrcfile.new(out, overwrite=True) as handle:
        handle.set_data((mask > 0).astype(np.int8))
    return out


def unet_parameters(chans, levels=3):
    """Trainable parameters of DeepDeWedge's Unet3D (1 in, 1 out channel), counted from its layer list."""
    def conv(inp, out, k=3):
        return inp * out * k ** 3 + out

    total, ch = 0, chans
    total += conv(1, ch) + 2 * conv(ch, ch) + conv(ch, ch)  # first down block + its down-sampler
    for _ in range(levels - 1):
        total += conv(ch, 2 * ch) + 2 * conv(2 * ch, 2 * ch) + conv(2 * ch, 2 * ch)
        ch *= 2
    total += conv(ch, 2 * ch) + conv(2 * ch, ch)  # bottleneck
    total += conv(ch, ch)  # first up-sampler (transposed conv, same count)
    for _ in range(levels - 1):
        total += conv(2 * ch, ch) + conv(ch, ch) + conv(ch, ch)  # up block 2ch -> ch
        total += conv(ch, ch // 2)  # next up-sampler
        ch //= 2
    total += conv(2 * ch, ch) + conv(ch, ch) + conv(ch, ch)  # last up block
    total += conv(ch, 1, k=1)  # final 1x1x1
    return total  # InstanceNorm3d has no affine parameters by default


def write_config(path, sections):
    """The YAML config all three commands read (json is valid YAML; no YAML library needed here)."""
    import json
    with open(path, "w") as handle:
        for name, values in sections.items():
            handle.write(f"{name}:\n")
            for key, value in values.items():
                handle.write(f"  {key}: {json.dumps(value)}\n")


def stem_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def read_text(path):
    with open(path) as handle:
        return handle.read()

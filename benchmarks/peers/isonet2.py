"""IsoNet 2 (github IsoNet-cryoET/IsoNet2) as a peer: noise2noise missing-wedge correction (isonet2-n2n).

The adapter drives the program's own command line, ``isonet.py``, installed from a local checkout:

1. ``isonet.py prepare_star --even DIR --odd DIR --mask_folder DIR ...`` writes its tomograms.star from the
   two half tomograms as reconstructed (not deconvolved: the program does its own CTF handling from the
   defocus, voltage, Cs and amplitude contrast given there), our sampling mask and the tilt range;
2. ``isonet.py refine tomograms.star --method isonet2-n2n --arch unet-small ...`` trains;
3. ``isonet.py predict tomograms.star MODEL ...`` corrects both halves and writes their average.

Budget: ``refine`` goes through all ``rlnNumberSubtomo`` subvolumes (sampled once, at random inside the
mask) once per epoch in batches of ``--batch_size``, one AdamW step per batch (``steps_per_epoch`` is fixed
at 2e8 in ``refine``, i.e. unlimited), so steps = epochs * ceil(subtomos / batch). The adapter sets the
number of subvolumes to a multiple of the batch size (every batch full) and the epochs so that the product
is exactly ``budget.steps``.

On a CPU the program needs two things: ``CUDA_VISIBLE_DEVICES`` set (it counts its "GPUs" from it; one
means no DDP) and a CPU fallback where its training/prediction code moves tensors with ``.cuda()`` /
``.to(rank)`` or calls ``torch.cuda.set_device`` (the :data:`PATCHES`); mixed precision is switched off
(its autocast is CUDA-only).
"""

import concurrent.futures
import os
import re
import shutil
import struct
import time

from .common import Patch, Peer, PeerResult, require_file

TRAIN = "IsoNet/models/train.py"

PATCHES = [
    Patch(TRAIN,
          "def process_batch(batch):\n"
          "    if len(batch) == 7:\n"
          "        return [b.cuda() for b in batch]\n"
          "    return batch[0].cuda(), batch[1].cuda(), None, None, None, None, None\n",
          "def _device(rank):\n"
          "    return rank if torch.cuda.is_available() else 'cpu'\n"
          "\n"
          "def process_batch(batch):\n"
          "    if len(batch) == 7:\n"
          "        return [b.to(_device(0)) for b in batch]\n"
          "    return batch[0].to(_device(0)), batch[1].to(_device(0)), None, None, None, None, None\n",
          why="training batches are moved with .cuda(): fall back to the CPU when no CUDA device exists "
              "(adds the helper _device used by the next patch)"),
    Patch(TRAIN, ".to(rank)", ".to(_device(rank))",
          why="model, loss accumulators, prediction inputs and the wedge mask are moved with .to(rank) "
              "(rank 0 = cuda:0): use the CPU when no CUDA device exists"),
    Patch(TRAIN, "torch.cuda.set_device(rank)", "if torch.cuda.is_available(): torch.cuda.set_device(rank)",
          why="prediction (ddp_predict) calls torch.cuda.set_device unconditionally, which fails without CUDA"),
]


class IsoNet2(Peer):
    """IsoNet 2, ``isonet.py refine --method isonet2-n2n`` on the even/odd halves, then ``isonet.py predict``.

    Parameters
    ----------
    root : str
        This peer's folder (venv/, src/, installed.txt).
    checkout : str
        A git checkout of github IsoNet-cryoET/IsoNet2 (not modified: a patched copy is installed).

    The training cube is :attr:`CUBE`, the network :attr:`ARCH`, prediction's ``--padding_factor``
    :attr:`PADDING_FACTOR`, the refine options :attr:`OPTIONS`.
    """
    name = "IsoNet2"
    requirements = ["torch", "numpy<2", "scipy", "pandas<3", "matplotlib", "mrcfile", "starfile==0.5.6",
                    "fire==0.5.0", "tqdm", "scikit-image==0.22.*", "joblib", "packaging"]
    patches = PATCHES
    # What its docs recommend for refine (README tutorial and FAQ): network-based CTF correction with
    # clip_first_peak_mode 1, b-factor 0 for cellular tomograms, a masked loss weighting the missing wedge
    # 200:1 (FAQ: 20-200); learning rate, loss and rotation augmentation at the defaults. CTF_mode is set
    # to "None" for data without a CTF (defocus 0).
    OPTIONS = {"CTF_mode": "network", "clip_first_peak_mode": 1, "bfactor": 0, "mw_weight": 200,
               "learning_rate": 3e-4, "learning_rate_min": 3e-4, "loss_func": "L2", "random_rot_weight": 0.2}

    #: Training cube edge (voxels). Its docs ask for multiples of 16 of at least 64, but it samples cube
    #: centres z with cube/2 <= z < Z - cube/2, so a 64-voxel-thick tomogram takes at most 48 (a multiple of
    #: 16 that its 4-level U-Net divides); 48 for every dataset, so that all runs cost the same per step.
    CUBE = 48
    #: Its smallest network: filter base 16, depth 4, 8.35 M parameters.
    ARCH = "unet-small"
    #: ``predict --padding_factor``, its default: tiles of int(cube / factor) voxels from cube-sized crops.
    PADDING_FACTOR = 1.5

    def run(self, data, budget, folder):
        """Train IsoNet 2 on ``data`` with ``budget`` in ``folder`` and correct its tomogram.

        Parameters
        ----------
        data : PeerInput
            The dataset; its halves (not deconvolved) and mask are given to the program.
        budget : PeerBudget
            ``steps`` and ``batch_size`` are kept exactly; ``subtomos`` sets the subvolumes per epoch (rounded
            to a multiple of the batch size that divides the steps); ``cube`` and ``filter_base`` are not used
            (:attr:`CUBE` and :attr:`ARCH` instead); ``seed`` cannot be passed (the program has no
            seed option: sampling and initialisation are not reproducible).
        folder : str
            Working folder (inputs, tomograms.star, logs, model, prediction).

        Returns
        -------
        PeerResult
            ``corrected`` is the program's prediction: the average of its predictions of both halves.
        """
        version = self.install()
        folder = os.path.abspath(folder)
        shape = mrc_shape(data.tomogram)
        if shape[0] <= self.CUBE:
            raise ValueError(f"{self.name}: tomogram {shape} is not thicker than the cube {self.CUBE} "
                             "(its sampler needs cube/2 <= z < Z - cube/2)")
        per_epoch, epochs = steps_per_epoch(budget.steps, budget.batch_size, budget.subtomos)
        subtomos = per_epoch * budget.batch_size
        threads = os.cpu_count() or 1  # its data-loader workers

        # Inputs: one tomogram per folder, as prepare_star lists whole folders.
        for sub, source, suffix in (("even", data.half1, ""), ("odd", data.half2, ""), ("mask", data.mask, "_mask")):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
            shutil.copyfile(source, os.path.join(folder, sub, f"{data.name}{suffix}.mrc"))
        maps, corrected_dir = "isonet_maps", "corrected"
        model = os.path.join(folder, maps, f"network_isonet2-n2n_{self.ARCH}_{self.CUBE}_full.pt")
        corrected = os.path.join(folder, corrected_dir, f"_isonet2-n2n_{self.ARCH}_{data.name}.mrc")
        for stale in (model, corrected):  # a file left by an earlier run must not pass as this run's output
            if os.path.exists(stale):
                os.remove(stale)

        env = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES") or "0",  # one device: no DDP
               "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
        options = dict(self.OPTIONS)
        if not data.defocus:
            options["CTF_mode"] = "None"

        prepare = ["isonet.py", "prepare_star", "--even", "even", "--odd", "odd", "--mask_folder", "mask",
                   "--star_name", "tomograms.star", "--pixel_size", data.pixel_size,
                   "--defocus", data.defocus, "--voltage", data.voltage, "--cs", data.cs,
                   "--ac", data.amplitude_contrast, "--tilt_min", data.tilt_min, "--tilt_max", data.tilt_max,
                   "--number_subtomos", subtomos]
        self.command(prepare, folder, "prepare_star.log", env)
        require_file(os.path.join(folder, "tomograms.star"), "isonet.py prepare_star")

        refine = ["isonet.py", "refine", "tomograms.star", "--method", "isonet2-n2n", "--arch", self.ARCH,
                  "--cube_size", self.CUBE, "--epochs", epochs, "--batch_size", budget.batch_size,
                  "--output_dir", maps, "--ncpus", threads, "--mixed_precision", "False",
                  "--with_preview", "False"]
        for key, value in options.items():
            refine += [f"--{key}", value]
        refine_seconds, train_seconds = self.timed_training(refine, folder, "refine.log", env)
        require_file(model, "isonet.py refine")

        predict = ["isonet.py", "predict", "tomograms.star", os.path.relpath(model, folder),
                   "--output_dir", corrected_dir, "--padding_factor", self.PADDING_FACTOR, "--save_slices", "False"]
        predict_seconds = self.command(predict, folder, "predict.log", env)
        require_file(corrected, "isonet.py predict")
        if mrc_shape(corrected) != shape:
            raise RuntimeError(f"{self.name}: {corrected} has shape {mrc_shape(corrected)}, expected {shape}")

        with open(os.path.join(folder, "refine.log"), errors="replace") as handle:
            found = re.search(r"Total number of parameters: (\d+)", handle.read())
        return PeerResult(
            corrected=corrected, version=version, steps=epochs * per_epoch, batch_size=budget.batch_size,
            train_seconds=train_seconds, predict_seconds=predict_seconds,
            settings={"network": f"{self.ARCH} (U-Net, filter base 16, depth 4)",
                      "parameters": int(found.group(1)) if found else None,
                      "method": "isonet2-n2n", "cube": self.CUBE, "batch_size": budget.batch_size,
                      "subtomos": subtomos, "epochs": epochs, "steps_per_epoch": per_epoch,
                      "mixed_precision": False, "padding_factor": self.PADDING_FACTOR,
                      "inputs": "even/odd halves as reconstructed (no deconvolution), our mask",
                      "refine_wall_seconds": refine_seconds, "seed": "none (the program has no seed option)",
                      **{key: options[key] for key in options},
                      "commands": [" ".join(map(str, c)) for c in (prepare, refine, predict)]})

    def timed_training(self, args, cwd, log_name, env):
        """Run ``refine``; returns (its wall time, its training time: from its first epoch's progress bar to its end).

        The program reads the tomograms and builds its wedge and CTF volumes before training; that is not part
        of the training time, so the log is watched for the first epoch's progress bar ("Epoch 1:").
        """
        log_path = os.path.join(cwd, log_name)
        offset = os.path.getsize(log_path) if os.path.isfile(log_path) else 0
        started, first_epoch, seen = time.perf_counter(), None, ""
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            job = pool.submit(self.command, args, cwd, log_name, env)
            while not job.done():
                time.sleep(0.05)
                if first_epoch is None and os.path.isfile(log_path):
                    with open(log_path, errors="replace") as handle:
                        handle.seek(offset)
                        seen = (seen + handle.read())[-200:]
                        offset = handle.tell()
                    if "Epoch 1:" in seen:
                        first_epoch = time.perf_counter()
            seconds = job.result()  # raises with the log's tail when refine failed
        if first_epoch is None:
            raise RuntimeError(f"{self.name}: no training epoch found in {log_path}")
        return seconds, started + seconds - first_epoch


def steps_per_epoch(steps, batch_size, subtomos):
    """Batches per epoch and epochs with batches * epochs == ``steps``: the divisor of ``steps`` nearest to
    ceil(subtomos / batch_size) (ties: the smaller)."""
    wanted = max(1, -(-subtomos // batch_size))
    per_epoch = min((k for k in range(1, steps + 1) if steps % k == 0), key=lambda k: (abs(k - wanted), k))
    return per_epoch, steps // per_epoch


def mrc_shape(path):
    """(z, y, x) from an MRC header (nx, ny, nz are its first three 32-bit integers)."""
    with open(path, "rb") as handle:
        header = handle.read(16)
    nx, ny, nz = struct.unpack("<3i", header[:12])
    if not 0 < nx < 1 << 20:  # big-endian file (mode word tells the byte order too)
        nx, ny, nz = struct.unpack(">3i", header[:12])
    return nz, ny, nx

"""``isonet.py simulate``: tutorial tomograms with ground truth.

A cellular scene (:mod:`isonet.simulate.phantom`) is imaged as a real
tilt series (:mod:`isonet.simulate.acquisition`): line integrals about Y
over the tilt range, optional CTF, Gaussian noise, then weighted
back-projection or SIRT. The tomogram therefore carries the missing wedge
*and* the streaks, noise colour and truncation effects of a real
reconstruction, while the ground truth is the noise-free specimen.

Contrast: the ground truth is positive (dense = bright); the tomogram is
written with dense = dark, as IMOD writes WBP tomograms (the negated
reconstruction of the imaged contrast).

Field of view: the specimen slab is simulated wider in X than the detector
(``lateral_padding``), so at high tilt objects outside the reconstructed
area project into it and objects inside leave the detector, as in real
data. The padding is what the steepest tilt needs, capped at half the width
on each side (beyond that the slab is empty).
"""

import logging
import os
import time

import numpy as np

from isonet.commands import RECONSTRUCTIONS, SIMULATE
from isonet.errors import IsonetError, UsageError
from isonet.io.atomic import atomic_write_text
from isonet.io.lock import output_lock
from isonet.io.mrc import write_volume
from isonet.io.paths import check_free_space, check_output_folder, rename_aside
from isonet.io.star import HALF_TOMOGRAM_LABELS, check_tilt_range, set_column, write_star
from isonet.log import progress
from isonet.prepare import prepare_star
from isonet.simulate.acquisition import (add_noise, apply_ctf, half_noise_offset, project, sirt, tilt_angles,
                                         weighted_backprojection)
from isonet.simulate.phantom import make_specimen

log = logging.getLogger("isonet")



def lateral_padding(shape, angles):
    """Voxels of specimen added on each side in X so that the detector sees a full slab at every tilt.

    At tilt theta the detector (``nx`` pixels) sees the slab ``|z| <= nz/2`` out to
    ``|x| = (nx/2 + nz/2 |sin theta|) / cos theta``; the padding is that reach minus
    ``nx/2``, capped at ``nx/2``.
    """
    nz, _, nx = shape
    steepest = np.radians(np.max(np.abs(angles)))
    cos = np.cos(steepest)
    if cos < 1e-3:
        return nx // 2
    reach = (nx / 2.0 + nz / 2.0 * np.sin(steepest)) / cos
    return int(min(np.ceil(reach - nx / 2.0), nx // 2))


def simulate_tomogram(shape, pixel_size, angles, rng, snr=0.5, defocus=0.0, voltage=300.0, cs=2.7,
                      amplitude_contrast=0.07, reconstruction="wbp", filter="ramp", sirt_iterations=20,
                      crowding=1.0, halves=False, scene="cell"):
    """Simulate one specimen and its reconstructed tomogram (no file I/O).

    Parameters
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)`` of tomogram and ground truth, indexed [z, y, x].
    pixel_size : float
        Å per voxel.
    angles : array_like of float
        Tilt angles in degrees (convention of :mod:`isonet.wedge`).
    rng : numpy.random.Generator
        Random source for the scene and the noise.
    snr : float
        Per-projection signal variance over noise variance (``inf``: no noise).
    defocus : float
        Å underfocus; 0 applies no CTF.
    voltage, cs, amplitude_contrast : float
        kV, mm, fraction (used only with a defocus).
    reconstruction : {'wbp', 'sirt'}
    filter : {'ramp', 'hamming'}
        WBP filter.
    sirt_iterations : int
        Iterations of SIRT.
    crowding : float
        Multiplies the number of objects per volume.
    scene : str
        Scene type, one of :data:`isonet.commands.SCENES`.
    halves : bool
        Also reconstruct two half tomograms with independent noise at half the
        dose (see :func:`isonet.simulate.acquisition.half_noise_offset`); their
        average is the tomogram, and the tomogram is the same with or without them.

    Returns
    -------
    tomogram : ndarray of float32, shape ``shape``
        Reconstruction, dense = dark.
    ground_truth : ndarray of float32, shape ``shape``
        Specimen density, dense = bright.
    counts : dict
        Objects of each type in the simulated (padded) slab.
    half_tomograms : tuple of 2 ndarray of float32, shape ``shape``
        Only with ``halves``: the two half reconstructions, dense = dark.
    """
    nz, ny, nx = (int(n) for n in shape)
    angles = np.asarray(angles, float)
    pad = lateral_padding((nz, ny, nx), angles)
    specimen, counts = make_specimen((nz, ny, nx + 2 * pad), pixel_size, rng, crowding=crowding,
                                     scene=scene)
    ground_truth = np.ascontiguousarray(specimen[:, :, pad:pad + nx])
    projections = project(specimen, angles, detector_width=nx)
    del specimen
    if defocus > 0:
        projections = apply_ctf(projections, pixel_size, defocus, voltage, cs, amplitude_contrast)
    noisy = add_noise(projections, snr, rng)
    if reconstruction not in RECONSTRUCTIONS:
        raise IsonetError(f"--reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, got {reconstruction!r}")

    def reconstruct(series):
        if reconstruction == "wbp":
            return weighted_backprojection(series, angles, (nz, ny, nx), window=filter)
        return sirt(series, angles, (nz, ny, nx), iterations=sirt_iterations)

    # Dense matter scatters electrons away: it is dark in the images and in the tomogram.
    volume = np.negative(reconstruct(noisy))
    if not halves:
        return volume, ground_truth, counts
    # Both reconstructions are linear in the tilt series (SIRT starts from 0, no positivity),
    # so the halves noisy +- d are the tomogram -+ the reconstruction of d.
    offset = reconstruct(half_noise_offset(projections, snr, rng))
    return volume, ground_truth, counts, (volume - offset, volume + offset)


@SIMULATE.implements
def run_simulation(out_dir, n_tomos, shape, pixel_size, tilt_min, tilt_max, tilt_step, snr, defocus, voltage, cs,
                   amplitude_contrast, reconstruction, filter, sirt_iterations, number_subtomos, seed, halves, scene):
    """Write a tutorial dataset: tomograms, half tomograms, ground truths, tilt angles and tomograms.star.

    Layout (paths in the STAR are relative to ``out_dir``)::

        out_dir/tomograms/tomo_01.mrc   tomogram, dense = dark, float32
        out_dir/tomograms/tomo_01.tlt   tilt angles, one per line (degrees)
        out_dir/tomograms_half1/tomo_01.mrc  half tomograms (with ``halves``): independent
        out_dir/tomograms_half2/tomo_01.mrc  noise at half dose each, average = tomogram
        out_dir/ground_truth/tomo_01.mrc  specimen density, dense = bright
        out_dir/tomograms.star          as prepare_star writes it, plus
                                        rlnTomoReconstructedTomogramHalf1/2 with ``halves``

    Existing output folders and STAR are renamed aside (``name~``), never deleted. Tomogram ``i`` (from 1) uses the random stream
    ``(seed, i)``, so results do not depend on ``n_tomos``. Other parameters:
    see :func:`simulate_tomogram`; ``number_subtomos`` goes into rlnNumberSubtomo.
    Defaults and ranges: :data:`isonet.commands.SIMULATE`. Nothing is written
    before every setting and the free disk space are checked; ``out_dir`` is
    locked against a second isonet command.
    The default ``scene`` gives the tutorial's data.

    Returns
    -------
    pandas.DataFrame
        The tomograms.star table.
    """
    shape = tuple(int(n) for n in shape)
    check_tilt_range(tilt_min, tilt_max, "--tilt_min/--tilt_max", error=UsageError)
    angles = tilt_angles(tilt_min, tilt_max, tilt_step)
    if len(angles) < 2:
        raise UsageError(f"--tilt_step {tilt_step} leaves fewer than 2 tilts in [{tilt_min}, {tilt_max}]")
    check_output_folder(out_dir, "--out_dir")
    check_free_space(out_dir, (4 if halves else 2) * n_tomos * int(np.prod(shape)) * 4, "--out_dir")

    tomogram_dir = os.path.join(out_dir, "tomograms")
    truth_dir = os.path.join(out_dir, "ground_truth")
    half_dirs = [os.path.join(out_dir, f"tomograms_half{k}") for k in (1, 2)]
    star_path = os.path.join(out_dir, "tomograms.star")
    with output_lock(out_dir):
        os.makedirs(out_dir, exist_ok=True)
        for path in [tomogram_dir, truth_dir, star_path] + half_dirs:
            rename_aside(path)
        for path in [tomogram_dir, truth_dir] + (half_dirs if halves else []):
            os.makedirs(path)
        angle_text = "".join(f"{a:.2f}\n" for a in angles)
        log.info("Simulating %d tomogram(s) of a %s scene, %s voxels (z,y,x) at %.2f Å/px, %d tilts %.1f..%.1f, "
                 "SNR %s, %s", n_tomos, scene, "x".join(map(str, shape)), pixel_size, len(angles), angles[0],
                 angles[-1], snr, f"defocus {defocus:.0f} Å" if defocus > 0 else "no CTF")
        for index in progress(range(1, n_tomos + 1), desc="simulate", unit="tomogram"):
            start = time.perf_counter()
            rng = np.random.default_rng([int(seed), index])
            tomogram, truth, counts, *half_tomograms = simulate_tomogram(
                shape, pixel_size, angles, rng, snr=snr, defocus=defocus, voltage=voltage, cs=cs,
                amplitude_contrast=amplitude_contrast, reconstruction=reconstruction, filter=filter,
                sirt_iterations=sirt_iterations, halves=halves, scene=scene)
            name = f"tomo_{index:02d}"
            write_volume(os.path.join(tomogram_dir, name + ".mrc"), tomogram, voxel_size=pixel_size)
            for folder, half in zip(half_dirs, half_tomograms[0] if halves else ()):
                write_volume(os.path.join(folder, name + ".mrc"), half, voxel_size=pixel_size)
            write_volume(os.path.join(truth_dir, name + ".mrc"), truth, voxel_size=pixel_size)
            atomic_write_text(os.path.join(tomogram_dir, name + ".tlt"), angle_text)
            log.info("%s: %s in %.1f s", name, ", ".join(f"{n} {k}" for k, n in counts.items()),
                     time.perf_counter() - start)

        table = prepare_star(tomogram_dir, output_star=star_path, pixel_size=pixel_size, defocus=defocus,
                             number_subtomos=number_subtomos, tilt_min=float(angles[0]), tilt_max=float(angles[-1]),
                             voltage=voltage, cs=cs, amplitude_contrast=amplitude_contrast)
        # Paths relative to out_dir, so that the dataset can be moved and used from inside it.
        set_column(table, "rlnMicrographName", [os.path.relpath(p, out_dir) for p in table["rlnMicrographName"]])
        if halves:
            names = [os.path.basename(p) for p in table["rlnMicrographName"]]
            for label, folder in zip(HALF_TOMOGRAM_LABELS, half_dirs):
                table[label] = [os.path.relpath(os.path.join(folder, n), out_dir) for n in names]
        write_star(table, star_path)
        return table

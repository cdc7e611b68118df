"""CTF deconvolution of tomograms: the Wiener-like filter of Warp / ``tom_deconv`` (spec §3.1).

A 1-D filter curve is computed on 2048 samples from 0 to Nyquist and mapped
onto the 3-D frequency radius of the volume, where every axis is normalised to
its own Nyquist frequency (anisotropic normalisation for non-cubic volumes).
The filtered volume is rescaled to the mean and standard deviation of the
input. Volumes are numpy arrays indexed ``[z, y, x]``.

Memory: the whole-volume mode works in float32 with a half (``rfftn``)
spectrum and builds the filter a few planes at a time, so the peak is about
twice the volume (volume and spectrum) when the result may overwrite the
input, three times otherwise. The chunked mode filters
overlapping tiles that are blended with smooth ramps; every tile uses the same
1-D curve and the mean/std restoration is done once on the assembled volume,
so the result differs from the whole-volume one only near tile borders and
only slightly; its peak is about twice the volume.
"""

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft

from isonet.commands import DECONV, DEFAULT_OPTICS
from isonet.ctf import ctf
from isonet.errors import IsonetError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.paths import check_outputs, check_same_file, input_tomogram, make_folder
from isonet.io.star import (HALF_DECONV_LABELS, TOMOGRAM_REQUIRED, has_halves, is_empty, read_star,
                            select_rows, set_column, update_star_rows)
from isonet.log import log_time, progress

log = logging.getLogger("isonet")

#: Samples of the 1-D filter curve between frequency 0 and Nyquist.
CURVE_SAMPLES = 2048
#: Amplitude contrast of the deconvolution filter when none is given (IsoNet 1's fixed value).
AMPLITUDE_CONTRAST = DEFAULT_OPTICS["amplitude_contrast"]
#: tomograms.star label -> (deconv setting, default) of the per-tomogram optics.
OPTICS = {"rlnVoltage": ("voltage", DEFAULT_OPTICS["voltage"]), "rlnSphericalAberration": ("cs", DEFAULT_OPTICS["cs"]),
          "rlnAmplitudeContrast": ("amplitude_contrast", AMPLITUDE_CONTRAST)}
#: Voxels handled at once by the plane-wise steps of the whole-volume mode (16 MiB of float32).
_FILTER_BLOCK_VOXELS = 1 << 22


def wiener_curve(pixel_size, defocus, voltage=300.0, cs=2.7, snrfalloff=1.0, deconvstrength=1.0,
                 highpassnyquist=0.02, samples=CURVE_SAMPLES, amplitude_contrast=AMPLITUDE_CONTRAST):
    """The 1-D deconvolution filter from frequency 0 to Nyquist.

    ``CTF_i`` is evaluated at ``k_i = i / (2 samples) / pixel_size`` (1/Å) with
    the given amplitude contrast (IsoNet 1: 0.07); on the normalised axis ``f_i = i / (samples - 1)``
    the SSNR model is ``exp(-f snrfalloff 100 / pixel_size) 10^deconvstrength
    HP(f) + 1e-6`` with the high-pass ``HP(f) = 1 - cos(pi min(1, f /
    highpassnyquist))``, and the filter is ``CTF / (CTF^2 + 1 / SSNR)``.

    Parameters
    ----------
    pixel_size : float
        Pixel size in Å.
    defocus : float
        Defocus in Å, underfocus positive.
    voltage : float
        Acceleration voltage in kV.
    cs : float
        Spherical aberration in mm.
    snrfalloff : float
        How fast the modelled SSNR falls with frequency.
    deconvstrength : float
        log10 of the SSNR at frequency 0 (before the high-pass).
    highpassnyquist : float
        Width of the low-frequency cosine high-pass as a fraction of Nyquist.
    samples : int
        Number of curve samples.
    amplitude_contrast : float
        Amplitude contrast fraction.

    Returns
    -------
    frequency : ndarray of float64, shape (samples,)
        Normalised frequency, 0 to 1 (Nyquist).
    curve : ndarray of float64, shape (samples,)
        Filter value at each frequency.
    """
    index = np.arange(samples, dtype=np.float64)
    ctf_values = ctf(index / (2 * samples) / pixel_size, defocus, voltage=voltage, cs=cs,
                     amplitude_contrast=amplitude_contrast)
    frequency = index / (samples - 1)
    highpass = 1.0 - np.cos(np.pi * np.minimum(1.0, frequency / highpassnyquist))
    ssnr = np.exp(-frequency * snrfalloff * 100.0 / pixel_size) * 10.0 ** deconvstrength * highpass + 1e-6
    return frequency, ctf_values / (ctf_values ** 2 + 1.0 / ssnr)


def _squared_axis_frequencies(n, half=False):
    """Squared frequency of each FFT index along an axis of length ``n``, 1 at that axis' Nyquist.

    Integer frequencies (``numpy.fft.fftfreq`` order, or 0..n//2 for the half
    axis of ``rfftn``) divided by ``max(n // 2, 1)``; float32.
    """
    integer = np.arange(n // 2 + 1) if half else np.fft.fftfreq(n, d=1.0 / n)
    return ((integer / max(n // 2, 1)) ** 2).astype(np.float32)


def radial_filter(shape, frequency, curve, planes=None):
    """The filter on the ``rfftn`` layout of a volume of ``shape``, for Z planes ``planes``.

    The radius ``sqrt(kz^2 + ky^2 + kx^2)`` (each axis normalised to its own
    Nyquist) is clipped to 1 and the curve interpolated linearly at it.

    Parameters
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)`` of the real-space volume.
    frequency, curve : ndarray
        The 1-D filter, as returned by :func:`wiener_curve`.
    planes : slice, optional
        Z planes of the spectrum (all by default).

    Returns
    -------
    ndarray of float32, shape (planes, ny, nx // 2 + 1)
    """
    nz, ny, nx = shape
    kz2 = _squared_axis_frequencies(nz)[planes if planes is not None else slice(None)]
    radius = kz2[:, None, None] + _squared_axis_frequencies(ny)[None, :, None]
    radius = radius + _squared_axis_frequencies(nx, half=True)[None, None, :]
    np.sqrt(radius, out=radius)
    np.minimum(radius, 1.0, out=radius)
    return np.interp(radius, frequency, curve).astype(np.float32)


def _mean_std(volume):
    """Mean and standard deviation of a volume, accumulated in float64 a few planes at a time."""
    planes = max(1, _FILTER_BLOCK_VOXELS // max(1, volume[0].size))
    total = sum(float(np.sum(volume[z:z + planes], dtype=np.float64)) for z in range(0, volume.shape[0], planes))
    mean = total / volume.size
    squares = 0.0
    for z in range(0, volume.shape[0], planes):
        block = volume[z:z + planes].astype(np.float64)
        block -= mean
        squares += float(np.vdot(block, block))
    return mean, (squares / volume.size) ** 0.5


def _restore_intensities(result, mean, std):
    """Rescale ``result`` in place to mean ``mean`` and standard deviation ``std`` (spec §3.1).

    The spec adds ``mean`` without subtracting the result's own mean, which is
    ~0 anyway (the filter is ~1e-7 at frequency 0); subtracting it exactly
    makes the chunked result agree with the whole-volume one.
    """
    result_mean, result_std = _mean_std(result)
    scale = std / result_std if result_std > 0 else 0.0
    for block in result:
        block -= np.float32(result_mean)
        block *= np.float32(scale)
        block += np.float32(mean)
    return result


def deconvolve_volume(volume, frequency, curve, ncpu=1, out=None):
    """Filter a whole volume with the radial filter of ``curve`` and restore its mean and std.

    The half spectrum is computed a few planes at a time (real FFT along X),
    then transformed in place along Y and Z, filtered and inverted the same
    way, so the only large buffers are the spectrum and the output.

    Parameters
    ----------
    volume : ndarray of float32, shape (nz, ny, nx)
        Tomogram, indexed ``[z, y, x]``; not modified unless it is ``out``.
    frequency, curve : ndarray
        1-D filter from :func:`wiener_curve`.
    ncpu : int
        FFT worker threads.
    out : ndarray of float32, shape (nz, ny, nx), optional
        Where to write the result; may be ``volume`` itself (saves one volume of memory).

    Returns
    -------
    ndarray of float32, shape (nz, ny, nx)
    """
    volume = np.asarray(volume, dtype=np.float32)
    mean, std = _mean_std(volume)
    nz, ny, nx = volume.shape
    planes = max(1, _FILTER_BLOCK_VOXELS // (ny * nx))
    spectrum = np.empty((nz, ny, nx // 2 + 1), dtype=np.complex64)
    for z in range(0, nz, planes):
        spectrum[z:z + planes] = scipy.fft.rfft(volume[z:z + planes], axis=-1, workers=ncpu)
    spectrum = scipy.fft.fftn(spectrum, axes=(0, 1), overwrite_x=True, workers=ncpu)
    step = max(1, _FILTER_BLOCK_VOXELS // (ny * (nx // 2 + 1)))
    for z in range(0, nz, step):
        spectrum[z:z + step] *= radial_filter(volume.shape, frequency, curve, slice(z, z + step))
    spectrum = scipy.fft.ifftn(spectrum, axes=(0, 1), overwrite_x=True, workers=ncpu)
    result = np.empty(volume.shape, dtype=np.float32) if out is None else out
    for z in range(0, nz, planes):
        result[z:z + planes] = scipy.fft.irfft(spectrum[z:z + planes], n=nx, axis=-1, workers=ncpu)
    del spectrum
    return _restore_intensities(result, mean, std)


def _windows(n, tile, step):
    """Start positions of windows of length ``min(tile, n)`` at stride ``step`` covering ``0..n``."""
    if n <= tile:
        return [0], n
    starts = list(range(0, n - tile, step)) + [n - tile]
    return starts, tile


def _window_weights(starts, length):
    """Blending weight of each window: sine-squared ramps over the overlaps, 1 elsewhere.

    Returns a list of 1-D float32 arrays (one per window) and their sum over
    windows on the whole axis (used to normalise the blended result).
    """
    ends = [s + length for s in starts]
    weights = []
    axis_total = np.zeros(ends[-1], dtype=np.float64)
    for i, start in enumerate(starts):
        weight = np.ones(length, dtype=np.float64)
        if i > 0 and ends[i - 1] > start:
            rise = ends[i - 1] - start
            weight[:rise] = np.sin(0.5 * np.pi * (np.arange(rise) + 0.5) / rise) ** 2
        if i + 1 < len(starts) and ends[i] > starts[i + 1]:
            fall = ends[i] - starts[i + 1]
            weight[length - fall:] *= np.cos(0.5 * np.pi * (np.arange(fall) + 0.5) / fall) ** 2
        weights.append(weight.astype(np.float32))
        axis_total[start:start + length] += weight
    return weights, axis_total.astype(np.float32)


def _wrapped_block(volume, starts, length, guard):
    """Block ``[start - guard, start + length + guard)`` per axis, wrapping around the volume borders.

    Wrapping makes border tiles see the same periodic neighbourhood as the
    whole-volume FFT, so chunked and whole results agree at the borders too.
    """
    index = [np.arange(start - g, start + size + g) % n
             for start, size, g, n in zip(starts, length, guard, volume.shape)]
    return volume[np.ix_(*index)]


def deconvolve_chunked(volume, frequency, curve, chunk_size, overlap_rate=0.25, ncpu=1):
    """Filter a volume tile by tile with smooth blending, then restore its mean and std globally.

    Tiles have edge ``int(chunk_size (1 + overlap_rate))`` (at most the volume
    edge) and start every ``chunk_size`` voxels, so neighbours overlap by
    ``chunk_size * overlap_rate`` voxels where they are blended with
    complementary sine-squared ramps. Each tile is filtered with a guard band
    of the same width on every side (neighbouring data, wrapped around at the
    volume border like the periodic whole-volume FFT) that is discarded
    afterwards, and with the same 1-D curve mapped onto its own frequency grid.

    Parameters
    ----------
    volume : ndarray of float32, shape (nz, ny, nx)
        Tomogram, indexed ``[z, y, x]``; not modified.
    frequency, curve : ndarray
        1-D filter from :func:`wiener_curve`.
    chunk_size : int
        Tile stride in voxels.
    overlap_rate : float
        Overlap of neighbouring tiles as a fraction of ``chunk_size`` (0 <= rate < 1).
    ncpu : int
        Tiles filtered in parallel (threads; one FFT thread each).

    Returns
    -------
    ndarray of float32, shape (nz, ny, nx)
    """
    volume = np.asarray(volume, dtype=np.float32)
    mean, std = _mean_std(volume)
    tile = int(chunk_size * (1 + overlap_rate))
    guard = max(tile - chunk_size, 4)
    axes = [_windows(n, tile, chunk_size) for n in volume.shape]
    weights = [_window_weights(starts, length) for starts, length in axes]
    lengths = tuple(length for _, length in axes)
    # An axis covered by one window is filtered whole (periodic, as in the whole-volume mode).
    guards = tuple(0 if len(starts) == 1 else guard for starts, _ in axes)
    result = np.zeros(volume.shape, dtype=np.float32)
    filters, lock = {}, threading.Lock()

    def filter_tile(index):
        starts = tuple(axes[a][0][index[a]] for a in range(3))
        block = _wrapped_block(volume, starts, lengths, guards)
        key = block.shape
        if key not in filters:
            filters[key] = radial_filter(key, frequency, curve)
        spectrum = scipy.fft.rfftn(block, workers=1)
        spectrum *= filters[key]
        filtered = scipy.fft.irfftn(spectrum, s=key, workers=1, overwrite_x=True)
        core = filtered[tuple(slice(g, g + n) for g, n in zip(guards, lengths))]
        w = [weights[a][0][index[a]] for a in range(3)]
        core *= w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]
        target = tuple(slice(s, s + n) for s, n in zip(starts, lengths))
        with lock:
            result[target] += core

    indices = [(i, j, k) for i in range(len(axes[0][0])) for j in range(len(axes[1][0]))
               for k in range(len(axes[2][0]))]
    with ThreadPoolExecutor(max_workers=max(1, ncpu)) as pool:
        for _ in progress(pool.map(filter_tile, indices), total=len(indices), desc="chunks", leave=False):
            pass
    total_z, total_y, total_x = (w[1] for w in weights)
    norm_yx = total_y[:, None] * total_x[None, :]
    for z in range(volume.shape[0]):
        result[z] /= total_z[z] * norm_yx
    return _restore_intensities(result, mean, std)


def deconvolve(volume, pixel_size, defocus, voltage=300.0, cs=2.7, snrfalloff=1.0, deconvstrength=1.0,
               highpassnyquist=0.02, chunk_size=None, overlap_rate=0.25, ncpu=1, overwrite_input=False,
               amplitude_contrast=AMPLITUDE_CONTRAST):
    """CTF-deconvolve a tomogram (spec §3.1), whole or in blended chunks.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Tomogram indexed ``[z, y, x]``; not modified.
    pixel_size, defocus, voltage, cs, snrfalloff, deconvstrength, highpassnyquist, amplitude_contrast
        See :func:`wiener_curve` (Å, Å underfocus positive, kV, mm).
    chunk_size : int, optional
        Process in tiles of this stride (see :func:`deconvolve_chunked`).
    overlap_rate : float
        Tile overlap fraction in chunked mode.
    ncpu : int
        FFT threads (whole volume) or parallel tiles (chunked).
    overwrite_input : bool
        Whole-volume mode: write the result into ``volume`` (a float32 array),
        which saves one volume of memory.

    Returns
    -------
    ndarray of float32, shape (nz, ny, nx)
    """
    frequency, curve = wiener_curve(pixel_size, defocus, voltage, cs, snrfalloff, deconvstrength, highpassnyquist,
                                    amplitude_contrast=amplitude_contrast)
    if chunk_size:
        return deconvolve_chunked(volume, frequency, curve, chunk_size, overlap_rate, ncpu)
    return deconvolve_volume(volume, frequency, curve, ncpu, out=volume if overwrite_input else None)


@DECONV.implements
def deconv_tomograms(star_file, deconv_folder, voltage, cs, amplitude_contrast, snrfalloff, deconvstrength,
                     highpassnyquist, chunk_size, overlap_rate, ncpu, tomo_idx):
    """Deconvolve the tomograms listed in ``star_file`` and record the results in it.

    Adds ``rlnSnrFalloff`` (1.0), ``rlnDeconvStrength`` (1.0) and
    ``rlnDeconvTomoName`` (None) when absent; values given here override the
    STAR's and are written into it. The optics come from each row's
    ``rlnVoltage``, ``rlnSphericalAberration`` and ``rlnAmplitudeContrast``
    (written by ``prepare_star``) unless given here; rows without them get
    300 kV, 2.7 mm and 0.07. Deconvolution is linear, so a bright-density
    tomogram (``rlnBrightDensity``) gives a bright-density result. Each processed row gets
    ``<deconv_folder>/<file name of rlnMicrographName>`` in
    ``rlnDeconvTomoName``; when the STAR lists half tomograms
    (``rlnTomoReconstructedTomogramHalf1/2``) they are deconvolved with the
    same settings into ``<deconv_folder>/half1/`` and ``half2/`` and recorded
    as ``rlnDeconvTomoHalf1/2``. The row is written into the STAR file after every
    volume (:func:`isonet.io.star.update_star_rows`: rows of other commands, e.g. the
    other tasks of a job array, are kept). Rows with defocus 0 (phase plate, or unknown) are skipped with a
    warning. Input tomograms are never modified. Every selected row (defocus,
    pixel size, tomogram header) is checked before anything is written, and
    the files written are locked against a second isonet command (not their
    folder: array tasks deconvolve other tomograms into it at once).
    Defaults and ranges: :data:`isonet.commands.DECONV`.

    Parameters
    ----------
    star_file : str
        tomograms.star (needs rlnIndex, rlnMicrographName, rlnPixelSize, rlnDefocus).
    deconv_folder : str
        Output folder (created if missing).
    voltage, cs, amplitude_contrast, snrfalloff, deconvstrength, highpassnyquist, chunk_size, overlap_rate, ncpu
        See :func:`deconvolve`; ``None`` for voltage, cs, amplitude_contrast, snrfalloff and deconvstrength
        means the STAR's value.
    tomo_idx : list of int, optional
        ``rlnIndex`` values to process (all by default).

    Returns
    -------
    pandas.DataFrame
        The updated table.
    """
    table = read_star(star_file, required=TOMOGRAM_REQUIRED + ("rlnDefocus",))
    for label, default in (("rlnSnrFalloff", 1.0), ("rlnDeconvStrength", 1.0), ("rlnDeconvTomoName", None)):
        if label not in table.columns:
            set_column(table, label, default)
    halves = has_halves(table)
    if halves:
        for label in HALF_DECONV_LABELS:
            if label not in table.columns:
                set_column(table, label, None)
    rows = select_rows(table, tomo_idx)
    jobs = _check_rows(table, rows, star_file, deconv_folder, snrfalloff, halves)
    check_outputs(deconv_folder, "--deconv_folder", star_file, "STAR file",
                  sum(4 * int(np.prod(job[3])) for job in jobs))
    with output_lock(*(job[2] for job in jobs)):
        make_folder(deconv_folder, "--deconv_folder")
        for position, source, output, _, label in progress(jobs, desc="deconv", unit="volume"):
            row = table.loc[position]
            defocus, pixel_size = float(row["rlnDefocus"]), float(row["rlnPixelSize"])
            if snrfalloff is not None:
                set_column(table, "rlnSnrFalloff", float(snrfalloff), rows=[position])
            if deconvstrength is not None:
                set_column(table, "rlnDeconvStrength", float(deconvstrength), rows=[position])
            falloff = _row_value(table, position, "rlnSnrFalloff", star_file)
            strength = _row_value(table, position, "rlnDeconvStrength", star_file)
            optics = _row_optics(table, position, dict(voltage=voltage, cs=cs, amplitude_contrast=amplitude_contrast))
            make_folder(os.path.dirname(output) or ".", "--deconv_folder")
            with log_time(f"deconv {source}"):
                log.info("deconv %s: defocus %.0f Å, pixel %.3f Å, %g kV, Cs %g mm, amplitude contrast %g, "
                         "snrfalloff %g, deconvstrength %g%s", source, defocus, pixel_size, optics["voltage"],
                         optics["cs"], optics["amplitude_contrast"], falloff, strength,
                         f", chunks of {chunk_size}" if chunk_size else "")
                volume, header = read_volume(source, return_header=True)
                result = deconvolve(volume, pixel_size, defocus, optics["voltage"], optics["cs"], falloff, strength,
                                    highpassnyquist, chunk_size, overlap_rate, ncpu, overwrite_input=True,
                                    amplitude_contrast=optics["amplitude_contrast"])
                del volume
                write_volume(output, result, like=header)
                del result
            set_column(table, label, output, rows=[position])
            update_star_rows(star_file, table, [position])
    return table


def _check_rows(table, rows, star_file, deconv_folder, snrfalloff, halves=False):
    """Check every selected row before anything is written; returns (position, source, output, shape, label)
    for the tomogram of each row and, with ``halves``, its two half tomograms.

    Rows with rlnDefocus 0 are left out with a warning.
    """
    jobs = []
    for position in rows.index:
        row = table.loc[position]
        source = input_tomogram(row, star_file, use_deconv_tomo=False)
        defocus = float(row["rlnDefocus"])
        if defocus == 0:
            log.warning("%s: rlnDefocus is 0, skipping deconvolution (phase plate or unknown defocus)", source)
            continue
        if defocus < 0:
            raise IsonetError(f"{star_file}: rlnDefocus of {source} is {defocus}; expected Å with underfocus "
                              "positive (or 0 to skip)")
        if defocus < 100:
            log.warning("%s: rlnDefocus %.3g looks like µm; the STAR file expects Å (e.g. 30000)", source, defocus)
        pixel_size = float(row["rlnPixelSize"])
        if not pixel_size > 0:
            raise IsonetError(f"{star_file}: rlnPixelSize of {source} must be > 0 Å, got {pixel_size}")
        if snrfalloff is None and not is_empty(row["rlnSnrFalloff"]) and float(row["rlnSnrFalloff"]) < 0:
            raise IsonetError(f"{star_file}: rlnSnrFalloff of {source} must be >= 0, got {row['rlnSnrFalloff']}")
        # Half tomograms get the same filter as the full one, so that a network trained on halves
        # sees data processed like the tomogram it corrects.
        files = [(source, os.path.join(deconv_folder, os.path.basename(source)), "rlnDeconvTomoName")]
        if halves:
            for half, label in enumerate(HALF_DECONV_LABELS, start=1):
                path = input_tomogram(row, star_file, use_deconv_tomo=False, half=half)
                files.append((path, os.path.join(deconv_folder, f"half{half}", os.path.basename(path)), label))
        for path, output, label in files:
            shape = read_header(path).shape
            check_same_file(output, path, "deconv")
            jobs.append((position, path, output, shape, label))
    return jobs


def _row_optics(table, position, given):
    """Voltage, Cs and amplitude contrast of a row: ``given`` (written into the row) where not None, else the
    row's value, else the default (:data:`OPTICS`)."""
    optics = {}
    for label, (name, default) in OPTICS.items():
        if given[name] is not None:
            set_column(table, label, float(given[name]), rows=[position])
        value = table.loc[position, label] if label in table.columns else None
        optics[name] = default if is_empty(value) else float(value)
    return optics


def _row_value(table, position, label, star_file):
    value = table.loc[position, label]
    if is_empty(value):
        value = 1.0
        set_column(table, label, value, rows=[position])
    value = float(value)
    if label == "rlnSnrFalloff" and value < 0:
        raise IsonetError(f"{star_file}: {label} must be >= 0, got {value}")
    return value

"""Tilt-series acquisition and tomographic reconstruction of a simulated specimen.

Geometry (the project's convention, see :mod:`isonet.wedge`): volumes are
indexed ``[z, y, x]``, the tilt axis is Y and every Y slice is an
independent 2-D (z, x) problem, so all operations are vectorised over Y. The
projection at tilt ``theta`` integrates along ``(dz, dx) = (cos theta, -sin
theta)`` onto the detector coordinate ``t = x cos theta + z sin theta``
(origins at the volume and detector centres), so by the central-slice
theorem it measures the Fourier line ``kz = tan(theta) kx``.

Projections are stacked as ``[tilt, y, t]`` (like an MRC tilt series).
Line integrals use linear interpolation with unit steps along the axis the
ray is closest to (Joseph's method), so they are exact for slowly varying
densities and cost one gather per voxel and tilt.
"""

import numpy as np

from isonet.ctf import ctf
from isonet.log import progress


def tilt_angles(tilt_min, tilt_max, tilt_step):
    """Tilt angles in degrees from ``tilt_min`` up to ``tilt_max`` (included when on the grid)."""
    count = int(np.floor((tilt_max - tilt_min) / tilt_step + 1e-6)) + 1
    return tilt_min + tilt_step * np.arange(count, dtype=np.float64)


def _accumulate_rows(table, positions, length, out, scratch, first_row=0):
    """Add to ``out`` the rows of ``table`` linearly interpolated at monotonic fractional ``positions``.

    Rows ``first_row + i`` of ``table`` (shape (rows, ny)) for ``i`` in
    ``[0, length)`` are the samples of a 1-D signal whose values are vectors
    along Y; positions outside ``[0, length - 1]`` read zeros. ``out`` and
    ``scratch`` have shape ``(len(positions), ny)``; working in place keeps
    the loops free of large temporaries.
    """
    # Positions are monotonic, so the ones that touch the signal form one run.
    touching = np.flatnonzero((positions > -1.0) & (positions < length))
    if touching.size == 0:
        return
    run = slice(touching[0], touching[-1] + 1)
    positions, out, scratch = positions[run], out[run], scratch[run]
    floor = np.floor(positions)
    fraction = (positions - floor).astype(np.float32)
    lower = floor.astype(np.int64)
    for index, weight in ((lower, 1.0 - fraction), (lower + 1, fraction)):
        weight = np.where((index >= 0) & (index < length), weight, 0.0).astype(np.float32)
        np.take(table, np.clip(index, 0, length - 1) + first_row, axis=0, out=scratch)
        scratch *= weight[:, None]
        out += scratch


def project(volume, angles, detector_width=None):
    """Line integrals of ``volume`` about the Y axis (the forward tilt-series model).

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Density indexed [z, y, x]; one voxel is the unit of length.
    angles : sequence of float
        Tilt angles in degrees.
    detector_width : int, optional
        Detector pixels along t (default ``nx``), centred on the volume centre.

    Returns
    -------
    ndarray of float32, shape (n_tilts, ny, detector_width)
        Projections ``[tilt, y, t]``.
    """
    volume = np.asarray(volume, np.float32)
    nz, ny, nx = volume.shape
    width = nx if detector_width is None else int(detector_width)
    t = np.arange(width) - (width - 1) / 2.0
    z = np.arange(nz) - (nz - 1) / 2.0
    x = np.arange(nx) - (nx - 1) / 2.0
    rows_by_z = rows_by_x = None
    out = np.empty((len(angles), ny, width), np.float32)
    line_sums = np.empty((width, ny), np.float32)
    scratch = np.empty_like(line_sums)
    for i, theta in enumerate(np.radians(np.asarray(angles, float))):
        cos, sin = np.cos(theta), np.sin(theta)
        line_sums[:] = 0.0
        if abs(cos) >= abs(sin):
            # Step through z planes; the ray crosses plane z at x = (t - z sin) / cos.
            if rows_by_z is None:
                rows_by_z = np.ascontiguousarray(volume.transpose(0, 2, 1)).reshape(nz * nx, ny)
            for k in range(nz):
                positions = (t - z[k] * sin) / cos + (nx - 1) / 2.0
                _accumulate_rows(rows_by_z, positions, nx, line_sums, scratch, k * nx)
            step = 1.0 / abs(cos)
        else:
            # Step through x columns; the ray crosses column x at z = (t - x cos) / sin.
            if rows_by_x is None:
                rows_by_x = np.ascontiguousarray(volume.transpose(2, 0, 1)).reshape(nx * nz, ny)
            for k in range(nx):
                positions = (t - x[k] * cos) / sin + (nz - 1) / 2.0
                _accumulate_rows(rows_by_x, positions, nz, line_sums, scratch, k * nz)
            step = 1.0 / abs(sin)
        out[i] = line_sums.T * np.float32(step)
    return out


def backproject(projections, angles, shape):
    """Unfiltered back-projection (the adjoint of :func:`project`, up to interpolation).

    Parameters
    ----------
    projections : ndarray, shape (n_tilts, ny, n_t)
        Tilt series ``[tilt, y, t]``.
    angles : sequence of float
        Tilt angles in degrees.
    shape : tuple of 3 int
        Output ``(nz, ny, nx)``; its centre sits on the detector centre. Rays that
        leave the detector contribute nothing.

    Returns
    -------
    ndarray of float32, shape ``shape``
        Sum over tilts of the projection value at ``t = x cos + z sin``.
    """
    nz, ny, nx = shape
    width = projections.shape[2]
    z = np.arange(nz) - (nz - 1) / 2.0
    x = np.arange(nx) - (nx - 1) / 2.0
    out = np.zeros((nz, nx, ny), np.float32)
    scratch = np.empty((nx, ny), np.float32)
    for projection, theta in zip(projections, np.radians(np.asarray(angles, float))):
        rows = np.ascontiguousarray(projection.T)
        for k in range(nz):
            positions = x * np.cos(theta) + z[k] * np.sin(theta) + (width - 1) / 2.0
            _accumulate_rows(rows, positions, width, out[k], scratch)
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def ramp_filter(width, window="ramp"):
    """Frequency response (length ``width``, :func:`numpy.fft.fftfreq` order) of the WBP filter.

    The ramp ``|k|`` (k in cycles per pixel) is taken as the DFT of its
    band-limited spatial kernel (1/4 at 0, ``-1/(pi n)^2`` at odd n), which gets
    the zero frequency right. ``window='hamming'`` multiplies by
    ``0.54 + 0.46 cos(2 pi k)`` (0.08 at Nyquist).
    """
    n = np.fft.fftfreq(width) * width
    kernel = np.zeros(width)
    kernel[0] = 0.25
    odd = (np.abs(n) % 2) == 1
    kernel[odd] = -1.0 / (np.pi * n[odd]) ** 2
    response = np.real(np.fft.fft(kernel))
    if window == "hamming":
        response *= 0.54 + 0.46 * np.cos(2 * np.pi * np.fft.fftfreq(width))
    elif window != "ramp":
        raise ValueError(f"unknown filter {window!r}; expected ramp or hamming")
    return response


def weighted_backprojection(projections, angles, shape, window="ramp"):
    """Filtered (weighted) back-projection, scaled so that a full 180-degree series gives the density.

    Each projection row is padded with its edge values to at least twice its
    length (the specimen continues beyond the detector; edge padding keeps the
    truncation artefacts small, as IMOD's tapering does), filtered along t,
    back-projected and multiplied by the angular step in radians.

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    width = projections.shape[2]
    padded = 1 << int(np.ceil(np.log2(2 * width)))
    before = (padded - width) // 2
    rows = np.pad(projections, ((0, 0), (0, 0), (before, padded - width - before)), mode="edge")
    response = ramp_filter(padded, window).astype(np.float32)
    filtered = np.fft.irfft(np.fft.rfft(rows, axis=2) * response[: padded // 2 + 1], n=padded, axis=2)
    filtered = filtered[:, :, before:before + width].astype(np.float32)
    step = np.radians(np.mean(np.diff(angles))) if len(angles) > 1 else np.pi
    return backproject(filtered, angles, shape) * np.float32(step)


def sirt(projections, angles, shape, iterations=20):
    """Simultaneous iterative reconstruction: ``x += C A^T R (b - A x)``, starting from 0.

    ``R`` and ``C`` are the inverse ray lengths through the reconstructed volume
    and the inverse number of rays per voxel. No positivity constraint.

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    width = projections.shape[2]
    ray_lengths = project(np.ones(shape, np.float32), angles, width)
    inverse_rows = np.where(ray_lengths > 1e-3, 1.0 / np.maximum(ray_lengths, 1e-3), 0.0).astype(np.float32)
    coverage = backproject(np.ones_like(projections), angles, shape)
    inverse_columns = np.where(coverage > 1e-3, 1.0 / np.maximum(coverage, 1e-3), 0.0).astype(np.float32)
    estimate = np.zeros(shape, np.float32)
    for _ in progress(range(iterations), desc="SIRT", unit="iteration", leave=False):
        residual = (projections - project(estimate, angles, width)) * inverse_rows
        estimate += inverse_columns * backproject(residual, angles, shape)
    return estimate


def apply_ctf(projections, pixel_size, defocus, voltage=300.0, cs=2.7, amplitude_contrast=0.07):
    """Multiply the 2-D spectrum of every projection by the CTF (no phase flipping).

    Parameters
    ----------
    projections : ndarray, shape (n_tilts, ny, n_t)
        Projected density (positive); returned filtered, float32.
    pixel_size : float
        Å per pixel.
    defocus : float
        Å, underfocus positive; the same for every tilt and every pixel (no defocus gradient).
    voltage, cs, amplitude_contrast : float
        kV, mm and fraction, see :func:`isonet.ctf.ctf`.
    """
    _, ny, width = projections.shape
    ky = np.fft.fftfreq(ny)[:, None]
    kt = np.fft.rfftfreq(width)[None, :]
    frequency = np.sqrt(ky ** 2 + kt ** 2) / pixel_size
    transfer = ctf(frequency, defocus, voltage, cs, amplitude_contrast).astype(np.float32)
    spectrum = np.fft.rfft2(projections, axes=(1, 2)) * transfer
    return np.fft.irfft2(spectrum, s=(ny, width), axes=(1, 2)).astype(np.float32)


def noise_sigma(projections, snr):
    """Standard deviation of the noise that gives every projection the signal-to-noise ratio ``snr``.

    SNR is defined per projection as the variance of its noise-free pixels
    over the variance of the noise.

    Returns
    -------
    ndarray of float32, shape (n_tilts, 1, 1)
    """
    return np.sqrt(np.asarray(projections, np.float32).var(axis=(1, 2), keepdims=True) / snr).astype(np.float32)


def add_noise(projections, snr, rng):
    """Add white Gaussian noise to every projection at signal-to-noise ratio ``snr`` (see :func:`noise_sigma`).

    Every tilt image has the same SNR. ``snr = inf`` returns a float32 copy without noise.
    """
    noisy = np.array(projections, np.float32)
    if np.isinf(snr):
        return noisy
    sigma = noise_sigma(noisy, snr)
    noisy += (rng.standard_normal(noisy.shape, dtype=np.float32) * sigma).astype(np.float32)
    return noisy


def half_noise_offset(projections, snr, rng):
    """Noise ``d`` that splits a noisy tilt series into two independent half-dose halves ``noisy +- d``.

    With full-dose noise ``n`` of variance ``s^2`` (:func:`add_noise`) and ``d``
    drawn independently with the same variance, the halves carry noise ``n + d``
    and ``n - d``: each of variance ``2 s^2`` (half the dose), uncorrelated and,
    being Gaussian, independent; their average is the full series. This is how
    frame-split even/odd halves behave: every tilt is present in both.

    Parameters
    ----------
    projections : ndarray, shape (n_tilts, ny, n_t)
        Noise-free projections (they set ``s`` per tilt).
    snr : float
        Per-projection SNR of the full series (``inf``: zeros).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of float32, shape of ``projections``
    """
    if np.isinf(snr):
        return np.zeros(np.shape(projections), np.float32)
    sigma = noise_sigma(projections, snr)
    return (rng.standard_normal(np.shape(projections), dtype=np.float32) * sigma).astype(np.float32)

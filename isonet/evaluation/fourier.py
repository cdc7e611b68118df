"""Fourier-space comparison of two volumes: shells, cones, wedge regions, FSC.

Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 = beam/Z, tilt axis =
Y). Frequencies are in cycles per voxel, so non-cubic volumes are handled
physically (``k = (i_z / n_z, i_y / n_y, i_x / n_x)``); pixel sizes in Å turn
them into 1/Å.

Everything here works on :class:`FourierSamples`: the cross and auto power
spectra of a pair of volumes, computed once with :func:`numpy.fft.rfftn`
(half of Fourier space; every sample is weighted by the number of full-space
frequencies it stands for, 2 for interior columns, so that sums equal those of
the full :func:`numpy.fft.fftn`) and flattened to the samples inside the
Nyquist sphere. Shells, cones and wedge regions are boolean selections of
these samples, and every correlation is

    C(S) = sum_S Re(A conj(B)) / sqrt(sum_S |A|^2  sum_S |B|^2),

the Pearson correlation of the two volumes band-pass filtered to the set of
frequencies ``S`` (it does not change when either volume is multiplied by a
positive number). An FSC curve is C over each shell; a directional (conical)
FSC is C over each shell intersected with a double cone around a direction.

Shells are ``1 / min(shape)`` cycles per voxel thick: shell ``i`` holds the
frequencies with ``round(|k| * min(shape)) == i``, for ``i = 1 ..
min(shape) // 2`` (Nyquist of the shortest axis). The zero frequency (the mean)
is never included.

Wedge regions use :mod:`isonet.wedge` (tilt angle ``phi = arctan(kz / kx)``):
the *measured* region is ``tilt_min + guard <= phi <= tilt_max - guard``, the
*missing-wedge* region is ``phi < tilt_min - guard`` or ``phi > tilt_max +
guard``; a guard band of ``guard`` degrees on either side of each wedge edge
belongs to neither.
"""

from dataclasses import dataclass

import numpy as np

from isonet.errors import IsonetError
from isonet.fourier_grid import hermitian_weights, resolution_at, rfft_frequencies
from isonet.wedge import measured_mask, wedge_depth_map

#: Unit vectors of the X, Y and Z axes in ``(z, y, x)`` order.
AXES = {"x": (0.0, 0.0, 1.0), "y": (0.0, 1.0, 0.0), "z": (1.0, 0.0, 0.0)}
#: The usual FSC thresholds: 0.5 (comparison with a reference) and 0.143 (half maps).
THRESHOLDS = (0.5, 0.143)


@dataclass
class FourierSamples:
    """Cross and auto power spectra of two volumes, inside the Nyquist sphere, flattened.

    Attributes
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)`` of the volumes.
    n_shells : int
        ``min(shape) // 2``; shells are numbered 1 .. n_shells.
    shell : ndarray of int16, shape (n,)
        Shell of each sample.
    direction : ndarray of float32, shape (n, 3)
        Unit vector ``(kz, ky, kx) / |k|`` of each sample.
    measured : ndarray of bool, shape (n,)
        Measured region (guard band excluded).
    missing : ndarray of bool, shape (n,)
        Missing-wedge region (guard band excluded).
    frequency : ndarray of float32, shape (n,)
        ``|k|`` in cycles per voxel.
    weight : ndarray of float32, shape (n,)
        Full-space frequencies the sample stands for (1 or 2).
    cross, power_a, power_b : ndarray of float64, shape (n,)
        Weighted ``Re(A conj(B))``, ``|A|^2``, ``|B|^2``.
    total : tuple of 3 float
        Sums of cross, power_a, power_b over *all* non-zero frequencies (also
        those outside the Nyquist sphere): their correlation is the Pearson
        correlation of the two volumes.
    wedge_depth : ndarray of float32, shape (n,)
        Degrees beyond the nearest tilt limit (:func:`isonet.wedge.wedge_depth_map`); 0 when measured.
    """

    shape: tuple
    n_shells: int
    shell: np.ndarray
    direction: np.ndarray
    measured: np.ndarray
    missing: np.ndarray
    frequency: np.ndarray
    weight: np.ndarray
    cross: np.ndarray
    power_a: np.ndarray
    power_b: np.ndarray
    total: tuple
    wedge_depth: np.ndarray

    def flip_sign_of_b(self):
        """Multiply volume B by -1 (negates the cross spectrum), in place."""
        self.cross = -self.cross
        self.total = (-self.total[0], self.total[1], self.total[2])


def checked_volumes(volume_a, volume_b, mask=None, what="volumes"):
    """The two volumes (and the mask) as float32 arrays of one shape, or an IsonetError.

    ``what`` names the pair in the error, e.g. ``"candidate and ground truth"``.
    """
    volume_a = np.asarray(volume_a, dtype=np.float32)
    volume_b = np.asarray(volume_b, dtype=np.float32)
    if volume_a.shape != volume_b.shape:
        raise IsonetError(f"{what} differ in shape: {volume_a.shape} and {volume_b.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != volume_a.shape:
            raise IsonetError(f"mask shape {mask.shape} differs from the volumes' {volume_a.shape}")
    return volume_a, volume_b, mask


def shell_frequencies(shape):
    """Spatial frequency of shells 1 .. min(shape) // 2, in cycles per voxel.

    Returns
    -------
    ndarray of float64, shape (min(shape) // 2,)
    """
    n_ref = min(shape)
    return np.arange(1, n_ref // 2 + 1) / n_ref


def fourier_samples(volume_a, volume_b, tilt_min=-60.0, tilt_max=60.0, guard_band=5.0):
    """Cross and auto power spectra of two volumes of the same shape.

    Parameters
    ----------
    volume_a, volume_b : ndarray, shape (nz, ny, nx)
        Volumes indexed ``[z, y, x]`` (each at least 2 voxels along every axis).
    tilt_min, tilt_max : float
        Tilt range in degrees that defines the measured and missing-wedge regions.
    guard_band : float
        Degrees on either side of each wedge edge left out of both regions.

    Returns
    -------
    FourierSamples
    """
    volume_a = np.asarray(volume_a)
    volume_b = np.asarray(volume_b)
    if volume_a.shape != volume_b.shape:
        raise IsonetError(f"volumes differ in shape: {volume_a.shape} and {volume_b.shape}")
    if volume_a.ndim != 3 or min(volume_a.shape) < 2:
        raise IsonetError(f"expected 3-D volumes of at least 2 voxels per axis, got shape {volume_a.shape}")
    shape = volume_a.shape
    spectrum_a = np.fft.rfftn(volume_a.astype(np.float32, copy=False))
    spectrum_b = np.fft.rfftn(volume_b.astype(np.float32, copy=False))
    weights = hermitian_weights(shape[2])
    # Re(A conj(B)) and |A|^2, |B|^2 accumulated in float64 (sums over up to millions of terms).
    cross = spectrum_a.real.astype(np.float64) * spectrum_b.real
    cross += spectrum_a.imag.astype(np.float64) * spectrum_b.imag
    cross *= weights
    power_a = np.abs(spectrum_a).astype(np.float64) ** 2 * weights
    power_b = np.abs(spectrum_b).astype(np.float64) ** 2 * weights
    del spectrum_a, spectrum_b
    # The zero frequency (index 0, 0, 0) is the mean: not part of any correlation.
    total = tuple(float(p.sum() - p.flat[0]) for p in (cross, power_a, power_b))

    kz, ky, kx = rfft_frequencies(shape)
    radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    n_ref = min(shape)
    shell = np.rint(radius * n_ref)
    inside = (shell >= 1) & (shell <= n_ref // 2)
    full = inside.shape
    direction = np.stack([np.broadcast_to(k, full)[inside] for k in (kz, ky, kx)], axis=1)
    frequency = radius[inside]
    direction /= frequency[:, None]
    measured = measured_mask(shape, tilt_min + guard_band, tilt_max - guard_band, real=True)
    not_missing = measured_mask(shape, tilt_min - guard_band, tilt_max + guard_band, real=True)
    return FourierSamples(
        shape=tuple(shape), n_shells=n_ref // 2, shell=shell[inside].astype(np.int16),
        direction=direction.astype(np.float32), measured=np.broadcast_to(measured, full)[inside],
        missing=~np.broadcast_to(not_missing, full)[inside], frequency=frequency.astype(np.float32),
        weight=np.broadcast_to(weights.astype(np.float32), full)[inside],
        cross=cross[inside], power_a=power_a[inside], power_b=power_b[inside], total=total,
        wedge_depth=np.broadcast_to(wedge_depth_map(shape, tilt_min, tilt_max, real=True), full)[inside]
        .astype(np.float32))


def _ratio(cross, power_a, power_b):
    """C = cross / sqrt(power_a power_b); 0 where either power is 0 (nothing to correlate)."""
    denominator = np.sqrt(power_a * power_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, cross / np.where(denominator > 0, denominator, 1.0), 0.0)


def correlation(samples, select=None):
    """Correlation over a set of frequencies (see the module docstring).

    Parameters
    ----------
    samples : FourierSamples
    select : ndarray of bool, shape (n,), optional
        Samples to use; ``None`` uses every non-zero frequency of the volumes
        (the Pearson correlation of the two volumes).

    Returns
    -------
    float
        NaN if ``select`` is empty.
    """
    if select is None:
        return float(_ratio(*samples.total))
    if not np.any(select):
        return float("nan")
    return float(_ratio(samples.cross[select].sum(), samples.power_a[select].sum(), samples.power_b[select].sum()))


def depth_select(samples, low, high):
    """Samples of the missing wedge between ``low`` (excluded) and ``high`` (included) degrees beyond the tilt limit.

    Parameters
    ----------
    samples : FourierSamples
    low, high : float
        Depth range in degrees, ``0 <= low < high``.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    return (samples.wedge_depth > low) & (samples.wedge_depth <= high)


def power_fraction(power, select, reference):
    """Power over the samples ``select`` divided by the power over ``reference`` (NaN if either is empty).

    Parameters
    ----------
    power : ndarray, shape (n,)
        ``samples.power_a`` or ``samples.power_b``.
    select, reference : ndarray of bool, shape (n,)
    """
    if not np.any(select) or not np.any(reference):
        return float("nan")
    denominator = power[reference].sum()
    return float(power[select].sum() / denominator) if denominator > 0 else float("nan")


def shell_fsc(samples, select=None):
    """FSC per shell over the selected samples.

    Parameters
    ----------
    samples : FourierSamples
    select : ndarray of bool, shape (n,), optional
        Samples to use (a cone, a wedge region...); all if ``None``.

    Returns
    -------
    fsc : ndarray of float64, shape (n_shells,)
        Shells 1 .. n_shells; NaN for shells without samples.
    count : ndarray of float64, shape (n_shells,)
        Full-space frequencies per shell (the ``n`` of the ``1 / sqrt(n)`` noise level).
    """
    shell = samples.shell if select is None else samples.shell[select]
    length = samples.n_shells + 1

    def sums(values):
        return np.bincount(shell, values if select is None else values[select], minlength=length)[1:]

    cross, power_a, power_b = sums(samples.cross), sums(samples.power_a), sums(samples.power_b)
    count = sums(samples.weight)
    fsc = _ratio(cross, power_a, power_b)
    return np.where(count > 0, fsc, np.nan), count


def cone_select(samples, direction, cone_angle):
    """Samples inside the double cone of half-angle ``cone_angle`` (degrees) around ``direction``.

    Parameters
    ----------
    samples : FourierSamples
    direction : sequence of 3 float
        Axis ``(z, y, x)``; need not be normalised.
    cone_angle : float
        Half-angle in degrees, in (0, 90].

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    axis = np.asarray(direction, dtype=np.float32)
    axis = axis / np.linalg.norm(axis)
    return np.abs(samples.direction @ axis) >= np.float32(np.cos(np.radians(cone_angle)))


def hemisphere_directions(n_directions):
    """About evenly spread unit vectors on the half sphere ``z >= 0`` (Fibonacci spiral).

    Parameters
    ----------
    n_directions : int

    Returns
    -------
    ndarray of float64, shape (n_directions, 3)
        ``(z, y, x)`` unit vectors; the first is closest to +Z.
    """
    index = np.arange(n_directions) + 0.5
    z = 1.0 - index / n_directions  # uniform in z = uniform in area
    radius = np.sqrt(1.0 - z ** 2)
    azimuth = index * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([z, radius * np.sin(azimuth), radius * np.cos(azimuth)], axis=1)


def conical_fsc(samples, directions, cone_angle):
    """FSC per shell inside the double cone around each direction.

    Parameters
    ----------
    samples : FourierSamples
    directions : array-like, shape (m, 3)
        Cone axes ``(z, y, x)``.
    cone_angle : float
        Cone half-angle in degrees.

    Returns
    -------
    fsc, count : ndarray of float64, shape (m, n_shells)
        As :func:`shell_fsc`, one row per direction.
    """
    rows = [shell_fsc(samples, cone_select(samples, d, cone_angle)) for d in np.atleast_2d(directions)]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def default_low_resolution(pixel_size, shape):
    """Å: the default lowest resolution of the scores, ``pixel_size * min(shape) / 2.5``.

    It leaves out the two lowest Fourier shells: a volume of finite thickness
    spreads measured content over about ``1 / nz`` in kz, so near the origin the
    wedge is not resolved, and a cone's lowest shells hold too few samples for a
    meaningful FSC (18 in the first Z shell of a 64x192x192 volume, 2 in that of a
    96x160x160 one).
    """
    return float(pixel_size) * min(shape) / 2.5


def fsc_curves(samples, cone_angle=30.0):
    """Directional (X, Y, Z cones) and wedge-region FSC curves of one pair of volumes.

    Parameters
    ----------
    samples : FourierSamples
    cone_angle : float
        Half-angle in degrees of the cones around X, Y and Z.

    Returns
    -------
    dict
        ``'frequency'``: shell frequencies (cycles/voxel); for each of ``'x'``,
        ``'y'``, ``'z'``, ``'measured'``, ``'missing_wedge'``, ``'all'``: a pair
        ``(fsc, count)`` of arrays of shape (n_shells,).
    """
    curves = {"frequency": shell_frequencies(samples.shape)}
    for name, axis in AXES.items():
        curves[name] = shell_fsc(samples, cone_select(samples, axis, cone_angle))
    curves["measured"] = shell_fsc(samples, samples.measured)
    curves["missing_wedge"] = shell_fsc(samples, samples.missing)
    curves["all"] = shell_fsc(samples)
    return curves


def curve_resolutions(frequency, fsc, pixel_size, thresholds=THRESHOLDS, low_frequency=0.0):
    """``{threshold: resolution in Å}`` of one curve (see :func:`resolution_at`)."""
    return {t: resolution_at(frequency, fsc, t, pixel_size, low_frequency)[0] for t in thresholds}


def fsc_map(shape, directions, fsc, cone_angle, angular_step=1.0):
    """3-D FSC volume from conical FSC curves (3DFSC-style map, centred layout).

    The value at frequency ``k`` is the conical FSC at shell ``round(|k| *
    min(shape))`` interpolated between the sampled directions ``d`` near
    ``k_hat``: weights ``|k_hat . d| - cos(r)`` for directions within ``r``
    of ``k_hat`` (``r`` = 1.5 times the mean spacing of the directions,
    ``sqrt(2 pi / m)`` radians for ``m`` directions on the half sphere, at most
    ``cone_angle``); the nearest direction where none is that close. The
    angular interpolation is tabulated on a polar grid of ``angular_step``
    degrees and looked up per voxel. Frequencies beyond the Nyquist shell get
    0; the centre (zero frequency, never compared) gets 1.

    Parameters
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)`` of the volumes compared (and of the map).
    directions : ndarray, shape (m, 3)
        Cone axes ``(z, y, x)`` (unit vectors, any hemisphere).
    fsc : ndarray, shape (m, n_shells)
        Conical FSC per direction (NaN treated as 0).
    cone_angle : float
        Half-angle of the cones, degrees (bounds the interpolation radius).
    angular_step : float
        Resolution of the angular table, degrees.

    Returns
    -------
    ndarray of float32, shape (nz, ny, nx)
        Zero frequency at index ``(nz // 2, ny // 2, nx // 2)``
        (:func:`numpy.fft.fftshift` layout); voxel ``i`` along an axis of
        length ``n`` is frequency ``(i - n // 2) / n`` cycles per voxel.
    """
    directions = np.asarray(directions, dtype=np.float64)
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    fsc = np.nan_to_num(np.asarray(fsc, dtype=np.float64))
    n_shells = fsc.shape[1]
    # Angular table over the half sphere z >= 0 (double cones: k and -k are the same).
    polar = np.radians(np.arange(0.0, 90.0 + angular_step / 2, angular_step))
    azimuth = np.radians(np.arange(-180.0, 180.0, angular_step))
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    table_directions = np.stack([np.cos(p), np.sin(p) * np.sin(a), np.sin(p) * np.cos(a)], axis=-1).reshape(-1, 3)
    alignment = np.abs(table_directions @ directions.T)
    radius = min(np.radians(cone_angle), 1.5 * np.sqrt(2 * np.pi / len(directions)))
    weights = np.clip(alignment - np.cos(radius), 0.0, None)
    nearest = alignment.argmax(axis=1)
    uncovered = weights.sum(axis=1) == 0
    weights[uncovered, nearest[uncovered]] = 1.0
    table = (weights @ fsc) / weights.sum(axis=1, keepdims=True)  # (polar * azimuth, n_shells)

    nz, ny, nx = shape
    n_ref = min(shape)
    ky = ((np.arange(ny) - ny // 2) / ny)[:, None]
    kx = ((np.arange(nx) - nx // 2) / nx)[None, :]
    result = np.zeros(shape, dtype=np.float32)
    for iz in range(nz):  # one plane at a time keeps the temporaries small
        kz = (iz - nz // 2) / nz
        radius = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
        shell = np.rint(radius * n_ref).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_polar = np.where(radius > 0, abs(kz) / radius, 1.0)
        sign = -1.0 if kz < 0 else 1.0  # fold k onto z >= 0
        polar_index = np.rint(np.degrees(np.arccos(np.clip(cos_polar, 0.0, 1.0))) / angular_step).astype(np.int64)
        azimuth_deg = np.degrees(np.arctan2(sign * ky, sign * kx))
        azimuth_index = np.rint((azimuth_deg + 180.0) / angular_step).astype(np.int64) % azimuth.size
        values = table[polar_index * azimuth.size + azimuth_index, np.clip(shell, 1, n_shells) - 1]
        result[iz] = np.where(shell <= n_shells, values, 0.0)
    result[nz // 2, ny // 2, nx // 2] = 1.0
    return result


def xz_power_spectrum(volume, chunk=32):
    """Power spectrum of the (kz, kx) plane, averaged over Y: where the missing wedge shows.

    The mean over ``y`` of ``|FFT2(volume[:, y, :])|^2`` (equal, by Parseval
    along Y, to the mean over ``ky`` of the 3-D power spectrum).

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Volume indexed ``[z, y, x]``.
    chunk : int
        Y slices transformed at a time (bounds the memory).

    Returns
    -------
    ndarray of float64, shape (nz, nx)
        Centred (fftshift) layout: zero frequency at ``(nz // 2, nx // 2)``.
    """
    volume = np.asarray(volume, dtype=np.float32)
    power = np.zeros((volume.shape[0], volume.shape[2]))
    for start in range(0, volume.shape[1], chunk):
        spectrum = np.fft.fft2(volume[:, start:start + chunk, :], axes=(0, 2))
        power += (np.abs(spectrum) ** 2).sum(axis=1)
    return np.fft.fftshift(power / volume.shape[1])

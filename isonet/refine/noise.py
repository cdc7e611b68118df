"""Back-projected noise for the denoising schedule of refine (spec §3.4.8).

IsoNet 1 reconstructs pure Gaussian noise sinograms (projection angles from
``tilt_min`` to ``tilt_max`` in 3° steps) by filtered back-projection, so the
noise has the missing-wedge geometry of the data, and cuts training-noise
cubes from it. Here each cube of edge ``n`` is made directly: every (z, x)
plane (one per Y, the tilt axis) is the back-projection of independent random
1-D profiles, one per angle, so memory stays at a few cubes. Back-projection
follows the convention of :mod:`isonet.wedge`: the projection at tilt
``theta`` has detector coordinate ``t = x cos(theta) + z sin(theta)`` and
measures the Fourier line ``kz = tan(theta) kx``.

Cubes are cached as MRC files under ``noise_dir`` (one sub-folder per cube
edge, filter and tilt range) and made on first use from a seed derived from
``(seed, index, ...)``, so a run and its resumption see the same noise.
"""

import logging
import os

import numpy as np

from isonet.commands import NOISE_MODES  # back-projection filters: none (low-pass noise), ramp, ramp x Hamming
from isonet.errors import UsageError
from isonet.io.mrc import read_volume, write_volume

log = logging.getLogger("isonet")

#: Angular step of the simulated tilt series, degrees.
ANGLE_STEP = 3.0
#: Number of noise cubes per noise folder (as IsoNet 1).
DEFAULT_COUNT = 1000
#: Bytes of the largest intermediate array of the back-projection.
_CHUNK_BYTES = 64 * 2 ** 20


def tilt_angles(tilt_min, tilt_max, step=ANGLE_STEP):
    """Projection angles in degrees: ``tilt_min, tilt_min + step, ...`` up to ``tilt_max``."""
    return np.arange(tilt_min, tilt_max + 1e-6, step)


def _profile_filter(length, mode):
    """Frequency response (rfft layout) of the back-projection filter for profiles of ``length``."""
    frequency = np.fft.rfftfreq(length)  # cycles per detector pixel, 0..0.5
    if mode == "ramp":
        return 2.0 * frequency
    if mode == "hamming":
        return 2.0 * frequency * (0.54 + 0.46 * np.cos(2.0 * np.pi * frequency))
    return None


def backprojected_noise(n, tilt_min=-60.0, tilt_max=60.0, mode="noFilter", rng=None):
    """A cube of back-projected Gaussian noise with the missing-wedge geometry.

    Parameters
    ----------
    n : int
        Cube edge (voxels).
    tilt_min, tilt_max : float
        Tilt range in degrees (projection angles every 3°).
    mode : {'noFilter', 'ramp', 'hamming'}
        Filter applied to each 1-D profile before back-projection.
    rng : numpy.random.Generator, optional

    Returns
    -------
    ndarray of float32, shape (n, n, n)
        Indexed ``[z, y, x]``; Y planes are independent, each (z, x) plane is a
        sum over angles of profiles constant along ``(dz, dx) = (cos, -sin)``.
        Zero mean, unit standard deviation.
    """
    rng = np.random.default_rng() if rng is None else rng
    theta = np.radians(tilt_angles(tilt_min, tilt_max))
    centre = (n - 1) / 2.0
    coords = np.arange(n) - centre
    # Detector coordinate of every (z, x) voxel for every angle, shifted to profile indices.
    half = int(np.ceil((n - 1) / np.sqrt(2.0))) + 2
    length = 2 * half + 1
    t = (coords[None, None, :] * np.cos(theta)[:, None, None]
         + coords[None, :, None] * np.sin(theta)[:, None, None]) + half
    left = np.floor(t).astype(np.intp)
    weight = (t - left).astype(np.float32)
    angle_index = np.arange(theta.size)[:, None, None]
    response = _profile_filter(2 * length, mode)
    cube = np.empty((n, n, n), dtype=np.float32)
    planes_per_chunk = max(1, _CHUNK_BYTES // (theta.size * n * n * 4))
    for start in range(0, n, planes_per_chunk):
        stop = min(n, start + planes_per_chunk)
        # Profiles twice as long as needed, so the filter's circular wrap-around stays outside.
        profiles = rng.standard_normal((stop - start, theta.size, 2 * length))
        if response is not None:
            profiles = np.fft.irfft(np.fft.rfft(profiles, axis=-1) * response, n=2 * length, axis=-1)
        profiles = profiles[..., length // 2: length // 2 + length].astype(np.float32)
        values = (profiles[:, angle_index, left] * (1.0 - weight)
                  + profiles[:, angle_index, left + 1] * weight)
        cube[:, start:stop, :] = values.sum(axis=1).transpose(1, 0, 2)
    cube -= cube.mean()
    cube /= cube.std() + 1e-20
    return cube


class NoiseBank:
    """Noise cubes of one edge, filter and tilt range, made on demand and cached on disk.

    Parameters
    ----------
    noise_dir : str
        Cache folder; cubes go to ``noise_dir/<mode>_n<edge>_tilt<min>_<max>/n_00000.mrc ...``.
    cube_size : int
        Cube edge.
    tilt_range : (float, float)
        Degrees.
    mode : str
        One of :data:`NOISE_MODES`.
    seed : int
        Seed; cube ``i`` is a function of ``(seed, i, cube_size, mode, tilt_range)``.
    count : int
        Number of distinct cubes drawn from.
    cache : bool
        Write the cubes made (False: only read those cached, e.g. on a worker that must not write).

    Notes
    -----
    Cached cubes are reused whatever seed made them (as IsoNet 1 reuses its
    noise folder); a fresh ``noise_dir`` makes the noise a function of the seed alone.
    """

    def __init__(self, noise_dir, cube_size, tilt_range, mode="noFilter", seed=0, count=DEFAULT_COUNT, cache=True):
        self.cube_size = int(cube_size)
        self.tilt_range = (float(tilt_range[0]), float(tilt_range[1]))
        self.mode = mode
        self.seed = int(seed)
        self.count = int(count)
        self.cache = cache
        self.folder = os.path.join(
            noise_dir, f"{mode}_n{self.cube_size}_tilt{self.tilt_range[0]:g}_{self.tilt_range[1]:g}")

    def path(self, index):
        """File of cube ``index``."""
        return os.path.join(self.folder, f"n_{index:05d}.mrc")

    def cube(self, index):
        """Noise cube ``index`` (0 <= index < count), float32 ``[z, y, x]``, made if not cached."""
        path = self.path(index)
        if os.path.isfile(path):
            return read_volume(path)
        tilt_key = [int(round((a + 90.0) * 1000)) for a in self.tilt_range]
        rng = np.random.default_rng([self.seed, index, self.cube_size, NOISE_MODES.index(self.mode), *tilt_key])
        cube = backprojected_noise(self.cube_size, *self.tilt_range, mode=self.mode, rng=rng)
        if self.cache:
            os.makedirs(self.folder, exist_ok=True)
            write_volume(path, cube)
        return cube


def add_noise(batch, level, noise_cubes, rng):
    """Add ``level * noise / std(noise)`` to each volume of ``batch`` (spec §3.4.4 step 7).

    Parameters
    ----------
    batch : ndarray of float32, shape (B, n, n, n)
        Network inputs ``[z, y, x]``; modified in place and returned.
    level : float
        Noise standard deviation in normalised units.
    noise_cubes : sequence of ndarray, shape (n, n, n)
        One noise cube per volume; its Y planes are shuffled first (the noise is
        independent along the tilt axis, so this makes new noise cheaply).
    rng : numpy.random.Generator
    """
    for volume, noise in zip(batch, noise_cubes):
        noise = noise[:, rng.permutation(noise.shape[1]), :]
        volume += (level / (noise.std() + 1e-20)) * noise
    return batch


def noise_schedule(iterations, levels, start_iters):
    """Noise level of every iteration (spec §3.4.8).

    Parameters
    ----------
    iterations : int
        Last iteration.
    levels : float or sequence of float
        Noise levels (``--noise_level``).
    start_iters : int or sequence of int
        Iteration at which each level starts (``--noise_start_iter``), same length.

    Returns
    -------
    list of float, length ``iterations + 1``
        Entry ``it`` is the level of iteration ``it`` (0 before the first start).
    """
    levels = [float(v) for v in np.atleast_1d(levels)]
    start_iters = [int(v) for v in np.atleast_1d(start_iters)]
    if len(levels) != len(start_iters):
        raise UsageError(f"--noise_level has {len(levels)} value(s) but --noise_start_iter has "
                         f"{len(start_iters)}; give one start iteration per noise level")
    if any(b <= a for a, b in zip(start_iters, start_iters[1:])):
        raise UsageError(f"--noise_start_iter: expected increasing iterations, got {tuple(start_iters)}")
    if any(level < 0 for level in levels):
        raise UsageError(f"--noise_level: expected levels >= 0, got {tuple(levels)}")
    schedule = [0.0] * (iterations + 1)
    for it in range(iterations + 1):
        for level, start in zip(levels, start_iters):
            if it >= start:
                schedule[it] = float(level)
    return schedule

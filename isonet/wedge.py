"""Missing-wedge geometry in Fourier space (tilt axis Y, beam along Z).

Convention used everywhere in isonet (simulate, evaluate, refine, fsc3d):
the projection at tilt angle theta integrates along the direction
``(dz, dx) = (cos theta, -sin theta)`` (detector coordinate
``t = x cos theta + z sin theta``), so by the central-slice theorem it
measures the Fourier line ``kz = tan(theta) kx`` for every ky. A frequency
``(kz, ky, kx)`` therefore has the *tilt angle*
``phi = degrees(arctan(kz / kx))`` in [-90, 90] (frequencies in cycles per
voxel, so non-cubic volumes are handled physically), and it is measured by a
tilt series covering ``[tilt_min, tilt_max]`` when ``tilt_min <= phi <= tilt_max``.

Masks are returned in the unshifted layout of :func:`numpy.fft.fftn`
(zero frequency at index 0) with shape ``(nz, 1, nx)`` (independent of ky:
broadcast over Y), or ``(nz, 1, nx // 2 + 1)`` for :func:`numpy.fft.rfftn`
with ``real=True``.
"""

import numpy as np


def _frequencies(shape, real):
    nz, _, nx = shape
    kz = np.fft.fftfreq(nz)[:, None, None]
    kx = (np.fft.rfftfreq(nx) if real else np.fft.fftfreq(nx))[None, None, :]
    return kz, kx


def tilt_angle_map(shape, real=False):
    """Tilt angle ``phi`` (degrees, in [-90, 90]) that measures each frequency.

    Parameters
    ----------
    shape : tuple of 3 int
        Volume shape ``(nz, ny, nx)``.
    real : bool
        Layout of :func:`numpy.fft.rfftn` (last axis ``nx // 2 + 1``).

    Returns
    -------
    ndarray of float64, shape (nz, 1, nx) or (nz, 1, nx // 2 + 1)
        ``degrees(arctan(kz / kx))``: 0 on the kz = 0 row, +-90 on kx = 0
        (+90 is returned for kz > 0, -90 for kz < 0; both mean the beam axis).
        The origin gets 0.
    """
    kz, kx = _frequencies(shape, real)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.degrees(np.arctan(kz / kx))
    return np.where(np.isnan(phi), 0.0, phi)


def measured_mask(shape, tilt_min=-60.0, tilt_max=60.0, real=False):
    """Boolean mask of the frequencies a tilt series over ``[tilt_min, tilt_max]`` measures.

    Pure angular geometry (no circle): True where ``tilt_min <= phi <= tilt_max``,
    with the beam axis (kx = 0, kz != 0) measured only if the range reaches
    +-90 degrees. Shape as :func:`tilt_angle_map`.
    """
    phi = tilt_angle_map(shape, real)
    kz, kx = _frequencies(shape, real)
    inside = (phi >= tilt_min) & (phi <= tilt_max)
    beam_axis = np.broadcast_to(kx == 0, inside.shape) & np.broadcast_to(kz != 0, inside.shape)
    inside[beam_axis] = (tilt_max >= 90.0) or (tilt_min <= -90.0)
    return inside


def wedge_mask(shape, tilt_min=-60.0, tilt_max=60.0, real=False, dtype=np.float32):
    """IsoNet 1's missing-wedge mask (spec §3.4.2), generalised to any tilt range.

    1 where the frequency is measured (:func:`measured_mask`) **and** lies inside
    the circle ``kz^2 + kx^2 <= 0.5^2`` (cycles per voxel; the inscribed circle of
    the (kz, kx) plane), plus the whole kz = 0 row; 0 elsewhere. Extruded
    along ky. For a cube of even edge and ``(-60, 60)`` this equals IsoNet 1's
    mask exactly (about 52 % kept for n = 32).

    Returns
    -------
    ndarray, shape (nz, 1, nx) or (nz, 1, nx // 2 + 1)
        In unshifted FFT layout, of ``dtype``.
    """
    kz, kx = _frequencies(shape, real)
    keep = measured_mask(shape, tilt_min, tilt_max, real) & (kz ** 2 + kx ** 2 <= 0.25)
    keep |= np.broadcast_to(kz == 0, keep.shape)
    return keep.astype(dtype)


def wedge_depth_map(shape, tilt_min=-60.0, tilt_max=60.0, real=False):
    """Angular depth (degrees) of each frequency into the missing wedge: how far beyond the nearest tilt limit.

    Directions of tilt angle ``phi`` and ``phi +- 180`` are the same line, so
    a frequency above ``tilt_max`` is ``phi - tilt_max`` from the upper edge
    and ``tilt_min - (phi - 180)`` from the lower one; the depth is the
    smaller. 0 inside ``[tilt_min, tilt_max]`` (measured) and at the origin;
    at most half the wedge's width (its middle). Shape as :func:`tilt_angle_map`.

    Returns
    -------
    ndarray of float64, shape (nz, 1, nx) or (nz, 1, nx // 2 + 1)
    """
    phi = tilt_angle_map(shape, real)
    above = np.minimum(phi - tilt_max, tilt_min - (phi - 180.0))
    below = np.minimum(tilt_min - phi, (phi + 180.0) - tilt_max)
    depth = np.where(phi > tilt_max, above, np.where(phi < tilt_min, below, 0.0))
    return np.maximum(depth, 0.0)

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
    kz, kx = _frequencies(shape, real)
    return np.broadcast_to(_measured(kz, kx, tilt_min, tilt_max), np.broadcast_shapes(kz.shape, kx.shape)).copy()


def _measured(kz, kx, tilt_min, tilt_max):
    """:func:`measured_mask` on frequency arrays ``kz``, ``kx`` (cycles per voxel, any broadcastable shapes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.degrees(np.arctan(kz / kx))
    phi = np.where(np.isnan(phi), 0.0, phi)
    on_beam = (kx == 0) & (kz != 0)
    return np.where(on_beam, (tilt_max >= 90.0) or (tilt_min <= -90.0), (phi >= tilt_min) & (phi <= tilt_max))


def _kept(kz, kx, tilt_min, tilt_max):
    """IsoNet 1's kept region on frequency arrays: measured and in the (kz, kx) circle, plus kz = 0."""
    return (_measured(kz, kx, tilt_min, tilt_max) & (kz ** 2 + kx ** 2 <= 0.25)) | (kz == 0)


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
    return _kept(kz, kx, tilt_min, tilt_max).astype(dtype)


def rotated_wedge_mask(n, tilt_min=-60.0, tilt_max=60.0, matrix=None, dtype=np.float32):
    """:func:`wedge_mask` of a cube of edge ``n`` whose content was rotated by ``matrix``.

    A rotation ``R`` (3x3 on ``(z, y, x)`` offsets) turns ``v`` into
    ``v'(p') = v(R^T p')``, whose spectrum is ``V(R^T k')`` up to a phase, so
    the region measured in ``v'`` is the lab-frame mask at ``R^T k'``.

    Returns
    -------
    ndarray, shape (n, n, n)
        Full unshifted :func:`numpy.fft.fftn` layout (not broadcast over ky:
        a rotated wedge depends on all three frequencies). Equals
        ``wedge_mask((n, n, n), ...)`` broadcast when ``matrix`` is None or
        the identity.
    """
    f = np.fft.fftfreq(n)
    k = np.stack(np.meshgrid(f, f, f, indexing="ij"))  # kz, ky, kx of the rotated frame
    if matrix is not None:
        k = np.tensordot(np.asarray(matrix, dtype=np.float64).T, k, axes=1)
        # The rotated grid's zeros come out as round-off: snap them so the beam axis and kz = 0 stay exact.
        k[np.abs(k) < 1e-9] = 0.0
    return _kept(k[0], k[2], tilt_min, tilt_max).astype(dtype)


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

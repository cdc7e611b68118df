"""Rotations of training cubes and the Fourier regions they move the missing wedge to.

A rotation ``R`` (3x3, acting on ``(z, y, x)`` offsets from the volume's
centre ``(n - 1) / 2``) turns ``v`` into ``v'(p') = v(R^T p')``; its spectrum
is ``V'(k') = V(R^T k')`` up to a phase, so the region measured in ``v'`` is
``M(R^T k')`` with ``M`` the lab-frame wedge mask of :func:`isonet.wedge.wedge_mask`
(IsoNet 1's geometry: the angular wedge, the inscribed (kz, kx) circle, and
the kz = 0 plane). Masks here are in the full unshifted ``fftn`` layout,
shape ``(n, n, n)``; they are symmetric under ``k -> -k``, so the first
``n // 2 + 1`` columns are their ``rfftn`` layout.

The masked loss (:mod:`isonet.refine.losses`) weighs frequency ``k`` by
``Mt(k) (Mi(k) + mw_weight (1 - Mi(k)))``: 1 where input and target are both
measured, ``mw_weight`` where only the target is, 0 where the target is not
(DeepDeWedge, Wiedemann & Heckel 2024; IsoNet 2).
"""

import functools

import numpy as np

from isonet.refine.rotations import rotate
from isonet.wedge import rotated_wedge_mask


@functools.lru_cache(maxsize=None)
def rotation_matrix(index):
    """Matrix ``R`` of orientation ``index`` (0-19) of :mod:`isonet.refine.rotations`, int (3, 3).

    Column ``a`` is where the unit offset along axis ``a`` (0 = Z, 1 = Y, 2 = X) goes.
    """
    matrix = np.zeros((3, 3), dtype=np.int64)
    for axis in range(3):
        probe = np.zeros((3, 3, 3), dtype=np.int8)
        offset = [1, 1, 1]
        offset[axis] = 2
        probe[tuple(offset)] = 1
        matrix[:, axis] = np.argwhere(rotate(probe, index))[0] - 1
    matrix.setflags(write=False)
    return matrix


def loss_weights(input_mask, target_mask, mw_weight, measured_weight=1.0):
    """``Mt (measured_weight Mi + mw_weight (1 - Mi))``: the per-frequency weights of the masked loss, float32."""
    return (target_mask * (np.float32(measured_weight) * input_mask
                           + np.float32(mw_weight) * (1.0 - input_mask))).astype(np.float32)


@functools.lru_cache(maxsize=256)
def _fixed_rotation_weights(n, tilt_range, index, mw_weight, measured_weight):
    weights = loss_weights(rotated_wedge_mask(n, *tilt_range),
                           rotated_wedge_mask(n, *tilt_range, rotation_matrix(index)), mw_weight, measured_weight)
    weights.setflags(write=False)
    return weights


def pair_weights(n, tilt_range, mw_weight, orientation, measured_weight=1.0):
    """:func:`loss_weights` of a pair in orientation ``orientation`` (cached, read-only).

    Parameters
    ----------
    n : int
        Cube edge.
    tilt_range : (float, float)
        Degrees.
    mw_weight : float
    orientation : int
        0-19 (:mod:`isonet.refine.rotations`).
    measured_weight : float
        Weight where input and target are both measured (0: the loss covers only the input's extra wedge).

    Returns
    -------
    ndarray of float32, shape (n, n, n)
        Full unshifted ``fftn`` layout.
    """
    return _fixed_rotation_weights(int(n), tuple(map(float, tilt_range)), int(orientation), float(mw_weight),
                                   float(measured_weight))

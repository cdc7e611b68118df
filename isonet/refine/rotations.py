"""The 20 orientations of IsoNet 1's data augmentation (spec §3.4.5).

Each orientation is two quarter-turn rotations applied in sequence, as
``numpy.rot90(volume, k, axes=(a, b))`` (a quarter-turn turns axis ``a``
towards axis ``b``), with axes 0 = Z, 1 = Y, 2 = X of a ``[z, y, x]`` volume.
They are the 24 proper rotations of the cube minus the identity and the three
180° turns about Z, Y and X, which map the missing wedge (around kz, extruded
along ky) onto itself and so would give useless training pairs.
"""

import numpy as np

_ZY, _ZX, _YX = (0, 1), (0, 2), (1, 2)

#: ``((axes1, k1), (axes2, k2))`` for each of the 20 orientations, in IsoNet 1's order.
ROTATIONS = (
    ((_ZY, 1), (_YX, 0)), ((_ZY, 1), (_YX, 1)), ((_ZX, 1), (_YX, 0)), ((_ZX, 1), (_YX, 1)),
    ((_ZY, 1), (_YX, 2)), ((_ZY, 1), (_YX, 3)), ((_ZX, 1), (_YX, 2)), ((_ZX, 1), (_YX, 3)),
    ((_ZY, 3), (_YX, 0)), ((_ZY, 3), (_YX, 1)), ((_ZX, 3), (_YX, 0)), ((_ZX, 3), (_YX, 1)),
    ((_ZY, 3), (_YX, 2)), ((_ZY, 3), (_YX, 3)), ((_ZX, 3), (_YX, 2)), ((_ZX, 3), (_YX, 3)),
    ((_YX, 1), (_ZX, 0)), ((_YX, 1), (_ZX, 2)), ((_YX, 3), (_ZX, 0)), ((_YX, 3), (_ZX, 2)),
)


def rotate(volume, index):
    """Orientation number ``index`` (0-19) of a cubic volume ``[z, y, x]`` (a view when possible)."""
    (axes1, k1), (axes2, k2) = ROTATIONS[index]
    return np.rot90(np.rot90(volume, k1, axes=axes1), k2, axes=axes2)


def rotate_all(volume, indices=None):
    """Stack of rotated copies of a cubic volume.

    Parameters
    ----------
    volume : ndarray, shape (n, n, n)
        Indexed ``[z, y, x]``.
    indices : sequence of int, optional
        Orientation numbers (0-19); all 20 by default.

    Returns
    -------
    ndarray, shape (len(indices), n, n, n)
        Contiguous copy, same dtype as ``volume``.
    """
    if indices is None:
        indices = range(len(ROTATIONS))
    return np.stack([rotate(volume, i) for i in indices])

"""Optional variants of IsoNet 1's pairs (``--method isonet``), all off by default.

* ``masked_loss``: the masked Fourier loss of the halves method
  (:mod:`isonet.refine.losses`) instead of the mean absolute error: the
  target's frequencies that are only the previous prediction (its rotated
  missing wedge) get weight 0, those missing from the input but measured in
  the target ``mw_weight``;
* ``dc_weight > 0``: a data-consistency term, the squared distance of the
  prediction to the input over the input's measured region, which keeps the
  network from inventing content there (implies the Fourier loss);
* ``random_rotations``: uniform random rotations (cubic spline) instead of
  the 20 fixed orientations; the cut cube lies inside the rotated crop for
  every rotation only if ``crop_size >= sqrt(3) x cube_size`` (mirrored data
  fills the corners otherwise), so extract with a larger ``--crop_size``.
"""

import numpy as np

from isonet.refine.fourier_weights import pair_weights, rotate_volume, seeded_rotation
from isonet.refine.losses import stack_targets
from isonet.refine.pairs import N_ROTATIONS, PairMaker
from isonet.wedge import rotated_wedge_mask


class VariantPairMaker(PairMaker):
    """:class:`~isonet.refine.pairs.PairMaker` with the variants of the module docstring.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`~isonet.refine.pairs.PairMaker`.
    masked_loss : bool
    mw_weight : float
        Weight of the frequencies missing from the input and measured in the target (masked loss).
    dc_weight : float
    random_rotations : bool
    """

    def __init__(self, *args, masked_loss=False, mw_weight=16.0, dc_weight=0.0, random_rotations=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.masked_loss = bool(masked_loss)
        self.mw_weight = float(mw_weight)
        self.dc_weight = float(dc_weight)
        self.random_rotations = bool(random_rotations)
        fourier = self.masked_loss or self.dc_weight > 0
        self.target_channels = (4 if self.dc_weight > 0 else 2) if fourier else None

    def rotate(self, volume, rotations, index):
        if not self.random_rotations:
            return super().rotate(volume, rotations, index)
        return np.stack([rotate_volume(volume, seeded_rotation(self.seed, self.iteration, index, r))
                         for r in rotations])

    def _weights(self, index, rotation):
        if not self.masked_loss:
            return np.ones((self.cube_size,) * 3, np.float32)
        matrix = seeded_rotation(self.seed, self.iteration, index, rotation) if self.random_rotations else None
        return pair_weights(self.cube_size, self.tilt_ranges[index], self.mw_weight, rotation, matrix)

    def pairs(self, index, rotations=None):
        """As :meth:`PairMaker.pairs`; with the Fourier loss ``y`` is a ``y_true`` stack (B, n, n, n, 2 or 4)."""
        rotations = list(range(N_ROTATIONS) if rotations is None else rotations)
        x, y = super().pairs(index, rotations)
        if self.target_channels is None:
            return x, y
        weights = np.stack([self._weights(index, r) for r in rotations])
        dc = None
        if self.dc_weight > 0:
            dc = self.dc_weight * rotated_wedge_mask(self.cube_size, *self.tilt_ranges[index])
        return x, stack_targets(y, weights, x if dc is not None else None, dc)

"""isonet: missing-wedge correction and denoising of cryo-electron tomograms.

A re-implementation of IsoNet v1 (Liu et al., Nat. Commun. 13:6482, 2022).
Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 is the beam direction,
the tilt axis is Y).
"""

__version__ = "0.1.0"

from isonet.devices import set_cpu_defaults as _set_cpu_defaults

# Before anything imports TensorFlow: oneDNN on by default (see isonet.devices).
_set_cpu_defaults()

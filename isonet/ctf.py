"""The contrast transfer function (CTF) of a transmission electron microscope.

Shared by ``deconv`` (Wiener filter, spec §3.1) and ``simulate`` (CTF applied
to each projection). Conventions: defocus in Å with underfocus positive,
spatial frequency in 1/Å, voltage in kV, spherical aberration in mm.
"""

import numpy as np


def electron_wavelength(voltage_kv):
    """Relativistic electron wavelength in Å for an acceleration voltage in kV (0.0197 Å at 300 kV)."""
    volts = voltage_kv * 1e3
    return 12.2643247 / np.sqrt(volts * (1.0 + 0.978466e-6 * volts))


def ctf(frequency, defocus, voltage=300.0, cs=2.7, amplitude_contrast=0.07, phase_shift=0.0, bfactor=0.0):
    """CTF value at spatial frequencies ``frequency`` (1/Å, any array shape).

    ``CTF = -sqrt(1 - A^2) sin(w) + A cos(w)``, with
    ``w = pi/2 Cs lambda^3 k^4 - pi lambda defocus k^2 - phase_shift``, multiplied by
    the envelope ``exp(-B k^2 / 4)``. At k = 0 the value is the amplitude
    contrast ``A`` (positive); with underfocus the first lobe is negative
    relative to it only beyond the first zero.

    Parameters
    ----------
    frequency : array_like
        Spatial frequency magnitude in 1/Å.
    defocus : float
        Defocus in Å, underfocus positive.
    voltage : float
        Acceleration voltage in kV.
    cs : float
        Spherical aberration in mm.
    amplitude_contrast : float
        Fraction of amplitude contrast A (0..1).
    phase_shift : float
        Additional phase shift in radians (phase plate).
    bfactor : float
        B-factor in Å^2 of the Gaussian envelope.
    """
    k = np.asarray(frequency, dtype=np.float64)
    wavelength = electron_wavelength(voltage)
    cs_angstrom = cs * 1e7
    phase = (0.5 * np.pi * cs_angstrom * wavelength ** 3 * k ** 4
             - np.pi * wavelength * defocus * k ** 2 - phase_shift)
    value = -np.sqrt(1.0 - amplitude_contrast ** 2) * np.sin(phase) + amplitude_contrast * np.cos(phase)
    return value * np.exp(-bfactor * k ** 2 / 4.0)

"""What other programs wrote about each tomogram, read for ``prepare_star``.

One module per source: :mod:`.relion5` (RELION 5 ``tomograms.star`` and its
tilt-series STAR files), :mod:`.imod` (``.tlt`` tilt angles, ctfplotter
``.defocus``), :mod:`.aretomo` (``.aln`` alignment), :mod:`.warp` (tilt-series
XML) and :mod:`.folder` (finds those files beside the tomograms and pairs
even/odd half tomograms). Each reader fills a :class:`TomogramRecord` and
notes, for every value, the file it came from; ``prepare_star`` decides
between these values, the MRC header and the user's options.
"""

from dataclasses import dataclass, field

#: The values a record may carry, in the order the log reports them, with their units as printed after a number.
FIELDS = (("pixel_size", " Å"), ("tilt_min", "°"), ("tilt_max", "°"), ("defocus", " Å"), ("voltage", " kV"),
          ("cs", " mm"), ("amplitude_contrast", ""))


@dataclass
class TomogramRecord:
    """Metadata of one tomogram; ``None`` where no source gave the value.

    Attributes
    ----------
    path : str
        The tomogram (MRC, indexed ``[z, y, x]``).
    halves : tuple of str
        ``(even, odd)`` half tomograms, or empty.
    tomo_name : str
        RELION 5's name of the tilt series (``rlnTomoName``), when read from a RELION 5 project.
    pixel_size : float
        Å per voxel of the tomogram.
    tilt_min, tilt_max : float
        Lowest and highest tilt angle kept in the reconstruction, degrees.
    defocus : float
        Defocus of the lowest-tilt image, Å, underfocus positive.
    voltage : float
        kV.
    cs : float
        Spherical aberration, mm.
    amplitude_contrast : float
        Fraction (0-1).
    sources : dict
        Field name -> where its value came from (file and item), for the log.
    """

    path: str
    halves: tuple = ()
    tomo_name: str = None
    pixel_size: float = None
    tilt_min: float = None
    tilt_max: float = None
    defocus: float = None
    voltage: float = None
    cs: float = None
    amplitude_contrast: float = None
    sources: dict = field(default_factory=dict)

    def set(self, name, value, source):
        """Set field ``name`` to ``value`` (a float) and note ``source``; ``None`` values are ignored."""
        if value is None:
            return
        setattr(self, name, float(value))
        self.sources[name] = source

    def set_tilts(self, angles, source):
        """Tilt range from the angles of the images kept (degrees); nothing if there are none."""
        if len(angles):
            self.set("tilt_min", min(angles), source)
            self.set("tilt_max", max(angles), source)


def lowest_tilt_index(angles):
    """Index of the angle closest to 0° (the first of equals)."""
    return min(range(len(angles)), key=lambda i: abs(angles[i]))

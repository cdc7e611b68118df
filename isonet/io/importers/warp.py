"""Warp / WarpTools tilt-series metadata (``<name>.xml``).

The root element ``TiltSeries`` holds ``Angles`` (one tilt angle per line,
degrees, in the order of the tilt images), optionally ``UseTilt`` (``True`` or
``False`` per image: images left out of the reconstruction), and ``CTF`` with
``<Param Name=... Value=...>`` children, among them ``Voltage`` (kV), ``Cs``
(mm), ``Amplitude`` (fraction) and ``Defocus`` (µm, underfocus positive).
``GridCTF`` (``Node`` elements with ``Z`` = image index and ``Value`` = defocus
in µm), when present, gives each image's own defocus. The attribute
``AreAnglesInverted="True"`` means the reconstruction used the negated angles.
"""

import os
import xml.etree.ElementTree as ElementTree

from isonet.errors import IsonetError
from isonet.io.importers import lowest_tilt_index

#: Warp's CTF parameter names -> TomogramRecord fields.
CTF_PARAMS = {"Voltage": "voltage", "Cs": "cs", "Amplitude": "amplitude_contrast"}
#: Å per µm.
ANGSTROM_PER_MICROMETRE = 1e4


def _numbers(text, convert=float):
    return [convert(v) for v in (text or "").split()]


def read_warp_xml(path):
    """What a Warp tilt-series XML says about its tomogram.

    Returns
    -------
    dict or None
        ``angles`` (degrees, images used only), ``defocus`` (Å, of the image
        closest to 0°, or the series' value), ``defocus_from`` (which of the
        two), and ``voltage``, ``cs``, ``amplitude_contrast`` when listed;
        ``None`` if the file is XML but not a Warp tilt series.
    """
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: Warp XML file not found")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise IsonetError(f"{path}: not a readable XML file ({exc})") from None
    if root.tag != "TiltSeries":
        return None
    try:
        angles = _numbers(root.findtext("Angles"))
        use = [v.lower() == "true" for v in (root.findtext("UseTilt") or "").split()] or [True] * len(angles)
        params = {p.get("Name"): float(p.get("Value")) for p in root.iter("Param") if p.get("Name")
                  and _is_number(p.get("Value"))}
        grid = {int(n.get("Z")): float(n.get("Value")) for n in root.findall("GridCTF/Node")}
    except (TypeError, ValueError) as exc:
        raise IsonetError(f"{path}: unreadable Warp tilt-series values ({exc})") from None
    if len(use) != len(angles):
        raise IsonetError(f"{path}: {len(angles)} Angles but {len(use)} UseTilt values")
    if root.get("AreAnglesInverted", "False").lower() == "true":
        angles = [-a for a in angles]
    kept = [i for i, used in enumerate(use) if used]
    result = {"angles": [angles[i] for i in kept]}
    for name, field in CTF_PARAMS.items():
        if name in params:
            result[field] = params[name]
    if kept:
        lowest = kept[lowest_tilt_index([angles[i] for i in kept])]
        if lowest in grid:
            result["defocus"] = grid[lowest] * ANGSTROM_PER_MICROMETRE
            result["defocus_from"] = f"GridCTF image {lowest} ({angles[lowest]:g}°)"
    if "defocus" not in result and "Defocus" in params:
        result["defocus"] = params["Defocus"] * ANGSTROM_PER_MICROMETRE
        result["defocus_from"] = "CTF Defocus"
    return result


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True

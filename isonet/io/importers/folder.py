"""Metadata files beside the tomograms of a folder, and even/odd half tomograms paired by name.

A metadata file belongs to a tomogram when its name without extension is the
tomogram's (``TS_01.tlt`` for ``TS_01.mrc``) or a start of it followed by
``_``, ``-`` or ``.`` (``TS_01.tlt`` for ``TS_01_rec.mrc``, AreTomo's
``TS_01.aln`` for ``TS_01_Vol.mrc``, Warp's ``TS_01.xml`` for
``TS_01_10.00Apx.mrc``); the longest such name wins. Read, in this order of
preference: tilt angles from IMOD ``.tlt``, AreTomo ``.aln``, Warp ``.xml``;
defocus from a ctfplotter ``.defocus`` file, else the Warp XML; voltage, Cs and
amplitude contrast from the Warp XML.

Half tomograms are recognised by a name part ``EVN``/``ODD`` (AreTomo:
``TS_01_EVN_Vol.mrc``) or ``even``/``odd`` (``TS_01_even.mrc``), any case,
separated by ``_``: removing that part gives the full tomogram's name. Warp's
layout, ``even/`` and ``odd/`` (or ``EVN/``, ``ODD/``) folders beside the
tomograms holding files of the same names, is recognised too.
"""

import logging
import os

from isonet.io.importers import TomogramRecord, aretomo, imod, warp
from isonet.io.paths import file_root

log = logging.getLogger("isonet")

#: Name parts marking an even / odd half tomogram (compared in lower case).
HALF_MARKS = ({"evn", "even"}, {"odd"})
#: Sub-folders holding half tomograms under the same file names (Warp).
HALF_FOLDERS = (("even", "EVN"), ("odd", "ODD"))
#: Extensions of the metadata files read, in order of preference for the tilt angles.
TILT_EXTENSIONS = (".tlt", ".aln", ".xml")


def owner_root(name_root, roots):
    """The longest of ``roots`` that ``name_root`` is, or starts with followed by ``_``, ``-`` or ``.``."""
    owners = [r for r in roots if name_root == r or any(name_root.startswith(r + s) for s in "_-.")]
    return max(owners, key=len) if owners else None


def metadata_files(tomogram, folders):
    """Extension -> the metadata file of ``tomogram`` in the first of ``folders`` that has one.

    Parameters
    ----------
    tomogram : str
        Tomogram path.
    folders : list of str
        Folders searched, in order.

    Returns
    -------
    dict
        e.g. ``{'.tlt': 'tomos/TS_01.tlt', '.defocus': 'tomos/TS_01.defocus'}``.
    """
    found = {}
    root = file_root(tomogram)
    for extension in TILT_EXTENSIONS + (".defocus",):
        for folder in folders:
            if not os.path.isdir(folder):
                continue
            names = {file_root(n): n for n in sorted(os.listdir(folder))
                     if n.lower().endswith(extension) and os.path.isfile(os.path.join(folder, n))}
            best = owner_root(root, names)
            if best is not None:
                found[extension] = os.path.join(folder, names[best])
                break
    return found


def read_folder_metadata(tomogram, folders):
    """:class:`TomogramRecord` of ``tomogram`` from the metadata files found in ``folders``."""
    record = TomogramRecord(tomogram)
    files = metadata_files(tomogram, folders)
    xml = warp.read_warp_xml(files[".xml"]) if ".xml" in files else None
    if xml is None and ".xml" in files:
        log.debug("%s: not a Warp tilt-series XML, ignored", files[".xml"])
    if ".tlt" in files:
        angles = imod.read_tlt(files[".tlt"])
        record.set_tilts(angles, f"{files['.tlt']} (IMOD, {len(angles)} tilts)")
    elif ".aln" in files:
        angles = aretomo.read_aln_tilts(files[".aln"])
        record.set_tilts(angles, f"{files['.aln']} (AreTomo, {len(angles)} sections)")
    elif xml is not None:
        record.set_tilts(xml["angles"], f"{files['.xml']} (Warp, {len(xml['angles'])} tilts used)")
    if ".defocus" in files:
        defocus, angle = imod.lowest_tilt_defocus(files[".defocus"])
        record.set("defocus", defocus, f"{files['.defocus']} (ctfplotter, range at {angle:g}°)")
    elif xml is not None and "defocus" in xml:
        record.set("defocus", xml["defocus"], f"{files['.xml']} (Warp, {xml['defocus_from']})")
    if xml is not None:
        for field in warp.CTF_PARAMS.values():
            record.set(field, xml.get(field), f"{files['.xml']} (Warp CTF)")
    return record


def half_kind(path):
    """``(0 or 1, full tomogram file name)`` if the file name marks an even (0) or odd (1) half, else None."""
    name = os.path.basename(path)
    root, extension = os.path.splitext(name)
    parts = root.split("_")
    for kind, marks in enumerate(HALF_MARKS):
        hits = [i for i, part in enumerate(parts) if part.lower() in marks]
        if len(hits) == 1 and len(parts) > 1:
            return kind, "_".join(parts[:hits[0]] + parts[hits[0] + 1:]) + extension
    return None


def pair_halves(paths):
    """Split tomogram files into full tomograms and their even/odd halves (module description).

    Parameters
    ----------
    paths : list of str
        Tomogram files of one folder, sorted.

    Returns
    -------
    fulls : list of str
        The files that are not halves, in the order of ``paths``.
    halves : dict
        Full tomogram path -> ``(even, odd)``; empty unless every full tomogram has both halves
        (a warning names the first one without).
    """
    by_name = {}
    marked = []
    for path in paths:
        kind = half_kind(path)
        if kind is None:
            by_name[os.path.basename(path)] = path
        else:
            marked.append((path, kind))
    fulls = list(by_name.values())
    found = {path: [None, None] for path in fulls}
    for path, (kind, full_name) in marked:
        if full_name in by_name:
            found[by_name[full_name]][kind] = path
        else:  # a file named like a half without its full tomogram is a tomogram of its own
            fulls.append(path)
            found[path] = [None, None]
    for path in list(found):
        folder, name = os.path.split(path)
        for kind, names in enumerate(HALF_FOLDERS):
            for sub in names:
                candidate = os.path.join(folder, sub, name)
                if found[path][kind] is None and os.path.isfile(candidate):
                    found[path][kind] = candidate
    fulls = [p for p in paths if p in found]
    complete = {p: tuple(h) for p, h in found.items() if None not in h}
    if complete and len(complete) < len(fulls):
        missing = next(p for p in fulls if p not in complete)
        log.warning("half tomograms found for %d of %d tomograms (none for %s): halves not used",
                    len(complete), len(fulls), missing)
        return fulls, {}
    return fulls, complete

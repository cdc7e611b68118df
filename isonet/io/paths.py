"""File names and folders shared by the commands: STAR rows to tomogram paths, roots, renaming aside."""

import logging
import os

from isonet.errors import IsonetError
from isonet.io.star import HALF_DECONV_LABELS, HALF_TOMOGRAM_LABELS, is_empty, resolve_path

log = logging.getLogger("isonet")


def file_root(path):
    """File name without folder and without its last extension only: ``'d/a.b.mrc'`` -> ``'a.b'``."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def input_tomogram(row, star_file, use_deconv_tomo=True, fallback=False, half=None):
    """Path of the tomogram a row asks for: the deconvolved one if wanted and set, else the original.

    Parameters
    ----------
    row : pandas.Series
        A row of tomograms.star.
    star_file : str
        The STAR file (relative paths are also looked up beside it).
    use_deconv_tomo : bool
        Prefer ``rlnDeconvTomoName`` when the column exists and is not ``None``.
    fallback : bool
        If the deconvolved tomogram file is missing, use the original with a warning
        (else the missing file is reported when it is read).
    half : {None, 1, 2}
        The full tomogram (``rlnMicrographName``/``rlnDeconvTomoName``) or one
        half (``rlnTomoReconstructedTomogramHalfN``/``rlnDeconvTomoHalfN``).

    Returns
    -------
    str
    """
    original, deconv = (("rlnMicrographName", "rlnDeconvTomoName") if half is None
                        else (HALF_TOMOGRAM_LABELS[half - 1], HALF_DECONV_LABELS[half - 1]))
    if use_deconv_tomo and not is_empty(row.get(deconv)):
        deconvolved = resolve_path(row[deconv], star_file)
        if not fallback or os.path.isfile(deconvolved):
            return deconvolved
        log.warning("%s not found: using the original tomogram %s", deconvolved, row.get(original))
    if is_empty(row.get(original)):
        raise IsonetError(f"{star_file}: row rlnIndex={row.get('rlnIndex')} has no {original}")
    return resolve_path(row[original], star_file)


def make_folder(path, what):
    """Create ``path`` (and parents) if missing; error if it exists as a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise IsonetError(f"{what} {path}: exists and is not a folder")
    os.makedirs(path, exist_ok=True)


def check_output_file(path, what):
    """Check, without writing, that the file ``path`` can be written: its folder exists and is writable,
    and ``path`` is not a folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsonetError(f"{what} {path}: is a folder, expected a file name")
    if not os.path.isdir(folder):
        raise IsonetError(f"{what} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise IsonetError(f"{what} {path}: folder {folder} is not writable")


def check_output_folder(path, what):
    """Check, without writing, that the folder ``path`` can be created or written into."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise IsonetError(f"{what} {path}: exists and is not a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise IsonetError(f"{what} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise IsonetError(f"{what} {path}: {existing} is not writable")


def check_free_space(folder, needed_bytes, what):
    """Raise :class:`IsonetError` if the file system of ``folder`` (or its nearest existing parent) has
    less than ``needed_bytes`` free."""
    existing = os.path.abspath(os.fspath(folder))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    stat = os.statvfs(existing)
    free = stat.f_bavail * stat.f_frsize
    if free < needed_bytes:
        raise IsonetError(f"{what} {folder}: needs about {needed_bytes / 2 ** 20:.0f} MiB, only "
                          f"{free / 2 ** 20:.0f} MiB free")


def rename_aside(path):
    """Rename an existing file or folder ``path`` to ``path~`` (or ``path~2``, ``path~3``...).

    Nothing is deleted; returns the new name, or ``None`` if ``path`` did not exist.
    """
    path = os.fspath(path).rstrip(os.sep)
    if not os.path.lexists(path):
        return None
    target, number = f"{path}~", 1
    while os.path.lexists(target):
        number += 1
        target = f"{path}~{number}"
    os.rename(path, target)
    log.warning("%s exists: renamed to %s", path, target)
    return target


def check_same_file(output_path, input_path, what):
    """Refuse to overwrite an input tomogram with an output."""
    if os.path.exists(output_path) and os.path.samefile(output_path, input_path):
        raise IsonetError(f"{what}: output {output_path} would overwrite the input tomogram; "
                          "choose another output folder")


def check_outputs(folder, option, star_file, star_what, needed_bytes=None):
    """Before a command writes: ``folder`` can be made, ``star_file`` written, ``needed_bytes`` fit in ``folder``.

    Parameters
    ----------
    folder : str
        Output folder (created later by the command).
    option : str
        Option that names the folder in errors, e.g. ``--deconv_folder``.
    star_file : str
        STAR file the command writes or rewrites.
    star_what : str
        How errors name the STAR file, e.g. ``STAR file`` or ``--subtomo_star``.
    needed_bytes : int, optional
        Bytes the outputs take (no free-space check if None).
    """
    check_output_folder(folder, option)
    check_output_file(star_file, star_what)
    if needed_bytes is not None:
        check_free_space(folder, needed_bytes, option)

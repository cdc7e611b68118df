"""Changing the pixel size of tomograms by Fourier cropping or padding (spec §1.8).

Fourier cropping is an ideal low-pass, so downsampling does not alias; Fourier
padding is band-limited (sinc) interpolation. Volumes are indexed ``[z, y, x]``.
"""

import logging
import os

import numpy as np
import scipy.fft

from isonet.commands import RESIZE
from isonet.errors import IsonetError
from isonet.io.lock import output_lock
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.paths import check_outputs, check_same_file, input_tomogram, make_folder
from isonet.io.star import TOMOGRAM_REQUIRED, is_empty, read_star, select_rows, set_column, write_star
from isonet.log import log_time, progress

log = logging.getLogger("isonet")

#: Columns naming files at the old pixel size; cleared in the resized STAR.
STALE_LABELS = ("rlnDeconvTomoName", "rlnMaskName", "rlnCorrectedTomoName", "rlnMaskBoundary")


def resized_shape(shape, old_pixel_size, new_pixel_size):
    """Shape covering the same field of view at ``new_pixel_size``: ``round(n old / new)``, at least 1."""
    factor = old_pixel_size / new_pixel_size
    return tuple(max(1, int(round(n * factor))) for n in shape)


def _kept_frequencies(n_old, n_new):
    """Index pairs (old, new) of the full-FFT frequencies kept along one axis.

    Only frequencies strictly below both Nyquist limits are kept, so the result
    has no unpaired Nyquist term.
    """
    highest = (min(n_old, n_new) - 1) // 2
    frequencies = np.arange(-highest, highest + 1)
    return frequencies % n_old, frequencies % n_new


def fourier_resize(volume, shape, workers=1):
    """Resample a volume to ``shape`` by cropping or zero-padding its Fourier transform.

    Mean intensity is preserved. Only frequencies below the Nyquist limit of
    both grids are kept.

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
        Volume indexed ``[z, y, x]``.
    shape : tuple of 3 int
        Output shape.
    workers : int
        FFT threads.

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    volume = np.asarray(volume, dtype=np.float32)
    spectrum = scipy.fft.rfftn(volume, workers=workers)
    (z_old, z_new), (y_old, y_new) = (_kept_frequencies(o, n) for o, n in zip(volume.shape[:2], shape[:2]))
    x_keep = (min(volume.shape[2], shape[2]) - 1) // 2 + 1
    resized = np.zeros((shape[0], shape[1], shape[2] // 2 + 1), dtype=np.complex64)
    resized[np.ix_(z_new, y_new, np.arange(x_keep))] = spectrum[np.ix_(z_old, y_old, np.arange(x_keep))]
    del spectrum
    result = scipy.fft.irfftn(resized, s=shape, workers=workers, overwrite_x=True)
    result *= np.float32(np.prod(shape) / np.prod(volume.shape))
    return result


@RESIZE.implements
def resize_tomograms(star_file, apix, out_folder, tomo_idx):
    """Resample the selected tomograms of ``star_file`` to pixel size ``apix`` and list them in a new STAR.

    Writes ``<out_folder>/<file name>`` (voxel size ``apix``, same origin) for
    each row and ``<star_file without extension>_resized.star`` with these rows
    only, ``rlnMicrographName`` pointing at the new files and ``rlnPixelSize =
    apix``. Columns naming files or coordinates at the old pixel size
    (deconvolved tomogram, mask, corrected tomogram, mask boundary) are reset to
    None in the new STAR. Every selected tomogram header is checked before
    anything is written; the outputs are locked against a second isonet
    command. Defaults and ranges: :data:`isonet.commands.RESIZE`. The FFTs use
    every CPU.

    Parameters
    ----------
    star_file : str
        tomograms.star (read only).
    apix : float
        New pixel size in Å.
    out_folder : str
        Output folder (created if missing).
    tomo_idx : list of int, optional
        ``rlnIndex`` values to resize (all by default).

    Returns
    -------
    str
        Path of the new STAR file.
    """
    table = read_star(star_file, required=TOMOGRAM_REQUIRED)
    rows = select_rows(table, tomo_idx).copy()
    jobs = []
    for position in rows.index:
        source = input_tomogram(rows.loc[position], star_file, use_deconv_tomo=False)
        old_pixel = float(rows.loc[position, "rlnPixelSize"])
        if not old_pixel > 0:
            raise IsonetError(f"{star_file}: rlnPixelSize of {source} must be > 0 Å, got {old_pixel}")
        new_shape = resized_shape(read_header(source).shape, old_pixel, apix)
        output = os.path.join(out_folder, os.path.basename(source))
        check_same_file(output, source, "resize")
        jobs.append((position, source, old_pixel, output, new_shape))
    resized_star = f"{os.path.splitext(star_file)[0]}_resized.star"
    check_outputs(out_folder, "--out_folder", resized_star, "resized STAR",
                  sum(4 * int(np.prod(job[4])) for job in jobs))
    with output_lock(out_folder, resized_star):
        make_folder(out_folder, "--out_folder")
        for position, source, old_pixel, output, shape in progress(jobs, desc="resize", unit="tomogram"):
            with log_time(f"resize {source}"):
                volume, header = read_volume(source, return_header=True)
                log.info("resize %s: %.3f -> %.3f Å, shape (z, y, x) %s -> %s", source, old_pixel, apix,
                         volume.shape, shape)
                result = fourier_resize(volume, shape, workers=os.cpu_count() or 1)
                del volume
                write_volume(output, result, voxel_size=apix, origin=header.origin)
            set_column(rows, "rlnMicrographName", output, rows=[position])
        _write_resized_star(rows, apix, resized_star)
    return resized_star


def _write_resized_star(rows, apix, resized_star):
    """The resized rows with the new pixel size; columns tied to the old pixel size reset to None."""
    set_column(rows, "rlnPixelSize", float(apix))
    for label in STALE_LABELS:
        if label in rows.columns and not all(is_empty(v) for v in rows[label]):
            log.warning("%s reset to None in the resized STAR (it refers to the old pixel size)", label)
            set_column(rows, label, None)
    write_star(rows.reset_index(drop=True), resized_star)
    log.info("Wrote %s with %d tomogram(s) at %.3f Å", resized_star, len(rows), apix)

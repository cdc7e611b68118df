"""Reading and writing MRC volumes with :mod:`mrcfile`.

Volumes are numpy arrays indexed ``[z, y, x]`` (MRC sections along axis 0).
Reading is permissive (headers written by other software are accepted) and
always returns float32; writing is atomic and keeps voxel size and origin.
"""

import logging
import os
import warnings
from dataclasses import dataclass

import mrcfile
import numpy as np

from isonet.errors import IsonetError
from isonet.io.atomic import atomic_output

log = logging.getLogger(__name__)

#: MRC data types accepted on read (mrcfile modes 0, 1, 2, 6, 12 and uint8).
READABLE_DTYPES = (np.int8, np.uint8, np.int16, np.uint16, np.float16, np.float32)
#: Data types written as they are; anything else is converted to float32.
WRITABLE_DTYPES = READABLE_DTYPES


@dataclass(frozen=True)
class VolumeHeader:
    """What the rest of the pipeline needs from an MRC header.

    Attributes
    ----------
    shape : tuple of int
        ``(nz, ny, nx)``.
    voxel_size : tuple of float
        Å per voxel along ``(x, y, z)`` as stored in the header.
    origin : tuple of float
        Header origin ``(x, y, z)`` in Å.
    dtype : numpy.dtype
        Data type stored in the file.
    """

    shape: tuple
    voxel_size: tuple
    origin: tuple
    dtype: np.dtype


def _open(path, header_only=False):
    """Open permissively; header problems become one-line errors only if the data is unusable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: file not found")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.open(path, mode="r", permissive=True, header_only=header_only)
        except Exception as exc:  # mrcfile raises ValueError, OSError, struct errors...
            raise IsonetError(f"{path}: not a readable MRC file ({exc})") from exc
    problems = "; ".join(str(w.message) for w in caught)
    if not header_only and mrc.data is None:
        mrc.close()
        raise IsonetError(f"{path}: not a readable MRC file ({problems or 'no data block'})")
    if problems:
        log.debug("%s: MRC header problems tolerated: %s", path, problems)
    return mrc


def _header_of(mrc, path):
    try:
        dtype = np.dtype(mrcfile.utils.data_dtype_from_header(mrc.header))
    except ValueError as exc:
        if bytes(mrc.header.map) != b"MAP ":  # no MRC label either: some other kind of file
            raise IsonetError(f"{path}: not an MRC file (no 'MAP ' label, data mode {int(mrc.header.mode)})") from None
        raise IsonetError(f"{path}: unsupported MRC data mode ({exc})") from exc
    nx, ny, nz = int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz)
    if min(nx, ny, nz) < 1:
        raise IsonetError(f"{path}: header gives an empty volume (nx, ny, nz = {nx}, {ny}, {nz})")
    voxel = mrc.voxel_size
    origin = mrc.header.origin
    return VolumeHeader(
        shape=(nz, ny, nx),
        voxel_size=(float(voxel.x), float(voxel.y), float(voxel.z)),
        origin=(float(origin.x), float(origin.y), float(origin.z)),
        dtype=dtype,
    )


#: Bytes of the MRC main header.
HEADER_BYTES = 1024


def read_header(path):
    """Read the header of an MRC file without loading its data, and check the file holds that data.

    A file shorter than its header promises (truncated copy, or not an MRC
    file at all, such as a text file named ``.mrc``) is refused here, so that
    commands can check every input cheaply before they write anything.

    Returns
    -------
    VolumeHeader

    Raises
    ------
    IsonetError
        Missing file, no valid header, unsupported data mode, or a file too short for its data.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.getsize(path) < HEADER_BYTES:
        raise IsonetError(f"{path}: not an MRC file ({os.path.getsize(path)} bytes, shorter than the "
                          f"{HEADER_BYTES}-byte MRC header)")
    with _open(path, header_only=True) as mrc:
        if mrc.header is None:
            raise IsonetError(f"{path}: not a readable MRC file (no valid header)")
        header = _header_of(mrc, path)
        extended = max(0, int(mrc.header.nsymbt))
    expected = HEADER_BYTES + extended + int(np.prod(header.shape)) * header.dtype.itemsize
    size = os.path.getsize(path)
    if size < expected:
        raise IsonetError(f"{path}: truncated or not an MRC file (its header promises {expected} bytes for "
                          f"a volume of shape (z, y, x) = {header.shape}, the file has {size})")
    return header


def read_volume(path, check_finite=True, return_header=False, negate=False):
    """Read a 3-D MRC volume as float32, indexed ``[z, y, x]``.

    Parameters
    ----------
    path : str or path-like
        MRC file (``.mrc``, ``.rec``, ``.st``...; the extension is not checked).
    check_finite : bool
        Reject volumes containing NaN or Inf.
    return_header : bool
        Also return the :class:`VolumeHeader`.
    negate : bool
        Return ``-volume``: bright-density tomograms are read as dark density
        (``rlnBrightDensity``, see :func:`isonet.io.star.bright_density`).

    Returns
    -------
    volume : ndarray of float32, shape (nz, ny, nx)
    header : VolumeHeader, only if ``return_header``

    Raises
    ------
    IsonetError
        Missing or unreadable file, unsupported data type, data that is not
        3-D, or non-finite values; the message names the file.
    """
    path = os.fspath(path)
    with _open(path) as mrc:
        data = mrc.data
        if data.dtype.type not in READABLE_DTYPES:
            raise IsonetError(
                f"{path}: unsupported MRC data type {data.dtype} "
                "(expected int8, uint8, int16, uint16, float16 or float32)")
        # Any 3-D data block is a volume, whatever the header's space group says (ispg 0, which marks
        # an image stack, is written for tomograms by several programs).
        if data.ndim != 3:
            raise IsonetError(f"{path}: expected a 3-D volume, got a {data.ndim}-D array of shape {data.shape}")
        if min(data.shape) < 1:
            raise IsonetError(f"{path}: empty volume of shape {data.shape}")
        volume = _writable_float32(data)
        header = _header_of(mrc, path) if return_header else None
    if check_finite and not np.isfinite(volume).all():
        bad = int(np.size(volume) - np.count_nonzero(np.isfinite(volume)))
        raise IsonetError(f"{path}: volume contains {bad} NaN or Inf values")
    if negate:
        np.negative(volume, out=volume)
    return (volume, header) if return_header else volume


def read_sample(path, max_voxels=1 << 22):
    """Every ``step``-th voxel along each axis of a volume, as float32 ``[z, y, x]``.

    ``step`` is the smallest that keeps at most ``max_voxels`` voxels; the file
    is memory-mapped, so a large tomogram is not read whole. Used for cheap
    statistics (the density-sign estimate of :mod:`isonet.preprocess.contrast`).

    Returns
    -------
    ndarray of float32, shape about (nz / step, ny / step, nx / step)
    """
    path = os.fspath(path)
    read_header(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except Exception as exc:  # mrcfile raises ValueError, OSError, struct errors...
            raise IsonetError(f"{path}: not a readable MRC file ({exc})") from exc
        with mrc:
            data = mrc.data
            if data is None or data.ndim != 3:
                raise IsonetError(f"{path}: expected a 3-D volume")
            step = 1
            while np.prod([-(-n // step) for n in data.shape]) > max_voxels:
                step += 1
            return np.array(data[::step, ::step, ::step], dtype=np.float32)


def _writable_float32(data):
    """float32 array the caller may modify, without a second copy when avoidable."""
    if data.dtype != np.float32:
        return data.astype(np.float32)
    volume = np.asarray(data)
    try:
        volume.setflags(write=True)  # mrcfile marks data read-only; we own a private copy
    except ValueError:
        volume = volume.copy()
    return volume


def write_volume(path, volume, voxel_size=None, origin=None, like=None):
    """Write a 3-D volume to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        Output MRC file; an existing file is replaced only once the new one is complete.
    volume : ndarray, shape (nz, ny, nx)
        Data. int8, uint8, int16, uint16, float16 and float32 are written as
        they are (mrcfile stores uint8 as uint16, MRC mode 6); other types
        (e.g. float64) are converted to float32, bool to uint8.
    voxel_size : float or tuple of 3 floats, optional
        Å per voxel, ``(x, y, z)`` if a tuple. Defaults to ``like``'s, else 1.
    origin : tuple of 3 floats, optional
        Header origin ``(x, y, z)`` in Å. Defaults to ``like``'s, else 0.
    like : VolumeHeader or path, optional
        Header (or MRC file) whose voxel size and origin are copied.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise IsonetError(f"{path}: refusing to write a {volume.ndim}-D array as a volume")
    if volume.dtype == np.bool_:
        volume = volume.astype(np.uint8)
    elif volume.dtype.type not in WRITABLE_DTYPES:
        volume = volume.astype(np.float32)
    if like is not None and not isinstance(like, VolumeHeader):
        like = read_header(like)
    if voxel_size is None:
        voxel_size = like.voxel_size if like is not None else 1.0
    if origin is None:
        origin = like.origin if like is not None else (0.0, 0.0, 0.0)
    if np.isscalar(voxel_size):
        voxel_size = (float(voxel_size),) * 3
    with atomic_output(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(volume))
            mrc.voxel_size = tuple(float(v) for v in voxel_size)
            mrc.header.origin = tuple(float(v) for v in origin)
            mrc.update_header_stats()

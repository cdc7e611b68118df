"""Reading the points of IMOD models (binary ``.mod``) and of point files (``model2point`` text).

Used for the polygon boundary of ``make_mask``; no IMOD installation is needed.
Points are returned in model order (objects, then contours, then points) as
``(x, y, z)`` in pixels of the volume the model was drawn on.

The binary model format (IMOD "binspec", version V1.2): everything is
big-endian. The file starts with the 4-byte ids ``IMOD`` and ``V1.2`` and a
232-byte model header (name: 128 bytes, then int32 xmax, ymax, zmax,
objsize, uint32 flags at byte 144 of the header...); then come chunks, each starting with a 4-byte id:
``OBJT`` (176-byte object header), ``CONT`` (contour: int32 point count,
uint32 flags, int32 time, int32 surface, then the points as float32 x, y, z),
``MESH`` (int32 vertex count, int32 index count, uint32 flags, int16 time,
int16 surface, then 3 float32 per vertex and one int32 per index) and
``IEOF`` (end of file). Every other chunk id is followed by an int32 byte
count and that many bytes, which are skipped.

Flag bit 16 of the model header means the model was saved while 3dmod showed
the volume with Y and Z flipped (``3dmod -Y`` or the flip toggle): the stored
points then have Y and Z exchanged, and they are exchanged back here so that
they refer to the volume as it is on disk.
"""

import logging

import os
import struct

import numpy as np

from isonet.errors import IsonetError

log = logging.getLogger("isonet")

MODEL_HEADER_BYTES = 232
OBJECT_HEADER_BYTES = 176
#: Byte of the model flags (uint32) in the model header, and the flag of a model saved Y/Z flipped.
MODEL_FLAGS_OFFSET = 144
FLIPPED_YZ = 1 << 16


def read_mod_points(path):
    """All contour points of a binary IMOD model file.

    Parameters
    ----------
    path : str
        ``.mod`` file.

    Returns
    -------
    ndarray of float64, shape (n, 3)
        ``(x, y, z)`` per point, in model order, in the volume's own axes
        (Y and Z exchanged back for a model saved flipped, see the module description).

    Raises
    ------
    IsonetError
        Missing file, not an IMOD binary model, or truncated data.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: IMOD model file not found")
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"IMOD":
        raise IsonetError(f"{path}: not an IMOD binary model (does not start with 'IMOD')")
    if len(data) < 8 + MODEL_HEADER_BYTES:
        raise IsonetError(f"{path}: truncated IMOD model (header of {len(data)} bytes)")
    (flags,) = struct.unpack(">I", data[8 + MODEL_FLAGS_OFFSET:12 + MODEL_FLAGS_OFFSET])
    position = 8 + MODEL_HEADER_BYTES
    points = []

    def take(count):
        nonlocal position
        if position + count > len(data):
            raise IsonetError(f"{path}: truncated IMOD model (needs {position + count} bytes, has {len(data)})")
        chunk = data[position:position + count]
        position += count
        return chunk

    while position < len(data):
        chunk_id = take(4)
        if chunk_id == b"IEOF":
            break
        if chunk_id == b"OBJT":
            take(OBJECT_HEADER_BYTES)
        elif chunk_id == b"CONT":
            count, _flags, _time, _surface = struct.unpack(">iIii", take(16))
            if count < 0:
                raise IsonetError(f"{path}: corrupt IMOD model (contour with {count} points)")
            points.append(np.frombuffer(take(12 * count), dtype=">f4").reshape(count, 3))
        elif chunk_id == b"MESH":
            vertices, indices, _flags, _time, _surface = struct.unpack(">iiIhh", take(16))
            take(12 * vertices + 4 * indices)
        else:
            (size,) = struct.unpack(">i", take(4))
            if size < 0:
                raise IsonetError(f"{path}: corrupt IMOD model (chunk {chunk_id!r} of size {size})")
            take(size)
    if not points:
        return np.zeros((0, 3))
    points = np.concatenate(points).astype(np.float64)
    if flags & FLIPPED_YZ:
        log.info("%s: model saved with Y and Z flipped; points flipped back to the volume's axes", path)
        points = points[:, [0, 2, 1]]
    return points


def read_point_file(path):
    """Points of a text file with ``x y z`` per line (as IMOD's ``model2point`` writes).

    Lines with 4 or 5 numbers (leading object and contour numbers, from
    ``model2point -object -contour``) are accepted: the last three numbers are
    used. Blank lines and lines starting with ``#`` are ignored.

    Returns
    -------
    ndarray of float64, shape (n, 3)
        ``(x, y, z)`` per point.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: point file not found")
    points = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.replace(",", " ").split()
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise IsonetError(f"{path}: line {number}: expected numbers 'x y z', got {text!r}") from None
            if not 3 <= len(values) <= 5:
                raise IsonetError(f"{path}: line {number}: expected 3 numbers 'x y z' "
                                  f"(optionally after object and contour numbers), got {len(values)}")
            points.append(values[-3:])
    return np.array(points, dtype=np.float64).reshape(-1, 3)


def read_boundary_points(path):
    """Points of a polygon boundary: binary IMOD model (``.mod``, or any file starting with 'IMOD'),
    else a text point file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IsonetError(f"{path}: mask boundary file not found")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"IMOD" or path.lower().endswith(".mod"):
        return read_mod_points(path)
    return read_point_file(path)


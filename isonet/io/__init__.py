"""File formats: MRC volumes (:mod:`isonet.io.mrc`) and STAR tables (:mod:`isonet.io.star`)."""

from isonet.io.mrc import VolumeHeader, read_header, read_volume, write_volume
from isonet.io.star import read_star, write_star

__all__ = ["VolumeHeader", "read_header", "read_volume", "write_volume", "read_star", "write_star"]

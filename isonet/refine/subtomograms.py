"""The subtomograms refine trains on, as listed in subtomo.star."""

from isonet.errors import IsonetError
from isonet.io.paths import file_root
from isonet.io.star import SUBTOMO_REQUIRED, read_star, resolve_path, tilt_range


class Subtomograms:
    """Subtomogram files, tilt ranges and sizes from subtomo.star (crop and cube from the first row).

    Attributes
    ----------
    paths : list of str
        Subtomogram files (cubes of ``crop_size``, indexed ``[z, y, x]``), in row order.
    tilt_ranges : list of (float, float)
        Tilt range of each subtomogram's tomogram, degrees.
    crop_size, cube_size : int
        Edge of the subtomograms and of the training cubes cut from them, voxels.
    """

    def __init__(self, star_file):
        table = read_star(star_file, required=SUBTOMO_REQUIRED)
        if len(table) == 0:
            raise IsonetError(f"{star_file}: no subtomograms listed")
        self.star_file = star_file
        self.paths = [resolve_path(p, star_file) for p in table["rlnImageName"]]
        self.tilt_ranges = [tilt_range(row) for _, row in table.iterrows()]
        self.crop_size = int(table["rlnCropSize"].iloc[0])
        self.cube_size = int(table["rlnCubeSize"].iloc[0])
        roots = [file_root(p) for p in self.paths]
        if len(set(roots)) != len(roots):
            raise IsonetError(f"{star_file}: subtomogram file names must be unique (outputs are named after them)")
        if not 0 < self.cube_size <= self.crop_size:
            raise IsonetError(f"{star_file}: rlnCubeSize {self.cube_size} must be in 1..rlnCropSize "
                              f"({self.crop_size})")

    def __len__(self):
        return len(self.paths)

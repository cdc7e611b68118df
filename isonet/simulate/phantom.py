"""A synthetic cellular specimen: membranes, cytoskeleton, macromolecules and gold beads.

The scene is a slab of vitreous ice seen at a given pixel size (Å per voxel);
all object sizes are physical (nm) and converted to voxels, so the same
scene type appears at any sampling. Volumes are numpy arrays indexed
``[z, y, x]`` (axis 0 = beam, tilt axis = Y). Density is *positive* and
measured relative to the surrounding ice (ice = 0, protein about 1, RNA-rich
ribosomes 1.3, gold 8); the ice and the vacuum outside the slab are not
modelled, so the background is 0.

Objects keep an empty margin at the top and bottom of the slab (like the
ice surfaces of a real specimen) and never interpenetrate: every object is
rendered in its own bounding box and rejected (and placed again elsewhere)
if its footprint touches one already placed. Edges are soft (logistic
profiles about one voxel wide, Gaussian leaflets), so the volume is free of
aliasing at its own sampling.
"""

import numpy as np
from scipy.special import expit

#: Width (voxels) of the logistic edge of solid objects; the 10-90 % rise is 2.2x this.
EDGE_WIDTH = 0.5
#: Densities relative to ice.
PROTEIN_DENSITY = 1.0
RIBOSOME_DENSITY = 1.3
GOLD_DENSITY = 8.0
MATRIX_DENSITY = 0.3
CONDENSATE_DENSITY = 0.4
#: Placement attempts per object before it is dropped (crowded scenes).
MAX_TRIES = 25
#: Rendered density below which a voxel does not count as occupied.
FOOTPRINT_THRESHOLD = 1e-3


def random_rotation(rng):
    """A uniformly distributed 3x3 rotation matrix (from a random unit quaternion)."""
    quaternion = rng.normal(size=4)
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def direction(elevation_deg, azimuth_deg):
    """Unit vector ``(dz, dy, dx)`` at ``elevation`` above the XY plane and ``azimuth`` from X."""
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    return np.array([np.sin(e), np.cos(e) * np.sin(a), np.cos(e) * np.cos(a)])


def perpendicular_basis(axis):
    """Two unit vectors that complete ``axis`` to a right-handed orthonormal frame."""
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    first = np.cross(axis, helper)
    first /= np.linalg.norm(first)
    return first, np.cross(axis, first)


def frame_coordinates(vectors, dz, dy, dx):
    """Coordinates along each of ``vectors`` (unit, ``(z, y, x)``) of the offset grids ``dz, dy, dx``."""
    return [v[0] * dz + v[1] * dy + v[2] * dx for v in vectors]


def soft_inside(signed_distance, width=EDGE_WIDTH):
    """Logistic step: about 1 where ``signed_distance`` (voxels, positive inside) > 0, else about 0."""
    return expit(signed_distance / width).astype(np.float32)


def bilayer(distance, leaflet_separation, leaflet_sigma):
    """Lipid bilayer profile: two Gaussian head-group leaflets at ``+-separation/2`` from the midplane.

    Parameters
    ----------
    distance : ndarray
        Signed distance (voxels) from the bilayer midplane.
    leaflet_separation : float
        Distance (voxels) between the two head-group peaks (about 4 nm).
    leaflet_sigma : float
        Gaussian sigma (voxels) of each leaflet.
    """
    half = leaflet_separation / 2.0
    scale = -0.5 / leaflet_sigma ** 2
    return (np.exp(scale * (distance - half) ** 2) + np.exp(scale * (distance + half) ** 2)).astype(np.float32)


class Specimen:
    """The volume being built and the record of which voxels are taken.

    Parameters
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)`` in voxels.
    pixel_size : float
        Å per voxel.
    z_margin : int
        Empty voxels kept at the top and the bottom of the slab.
    rng : numpy.random.Generator
        Source of every random choice.
    """

    def __init__(self, shape, pixel_size, z_margin, rng):
        self.shape = tuple(int(n) for n in shape)
        self.voxels_per_nm = 10.0 / pixel_size
        self.z_margin = int(z_margin)
        self.rng = rng
        self.density = np.zeros(self.shape, np.float32)
        self.occupied = np.zeros(self.shape, bool)
        self.counts = {}

    def nm(self, value):
        """``value`` nm in voxels."""
        return value * self.voxels_per_nm

    @property
    def usable_thickness(self):
        """Thickness (voxels) of the slab between the two empty margins."""
        return self.shape[0] - 2 * self.z_margin

    def random_centre(self, half_extent):
        """A centre whose box of ``half_extent`` (voxels, z, y, x) keeps inside the slab in Z.

        X and Y are uniform over the volume (objects may be cut by the field of view);
        returns None if the object is thicker than the slab.
        """
        low = self.z_margin + half_extent[0]
        high = self.shape[0] - 1 - self.z_margin - half_extent[0]
        if high < low:
            return None
        return np.array([self.rng.uniform(low, high),
                         self.rng.uniform(0, self.shape[1] - 1),
                         self.rng.uniform(0, self.shape[2] - 1)])

    def place(self, kind, render, half_extent, centre=None):
        """Render an object in its box and add it unless it touches another object.

        Parameters
        ----------
        kind : str
            Name counted in :attr:`counts`.
        render : callable
            ``render(dz, dy, dx) -> density`` on broadcastable offset grids (voxels,
            from the object centre); returns float32 of the broadcast shape.
        half_extent : array_like of 3 float
            Half size (voxels, z, y, x) of the box holding all of the object's density.
        centre : array_like of 3 float, optional
            Fixed centre; otherwise up to :data:`MAX_TRIES` random ones are tried.

        Returns
        -------
        bool
            Whether the object was placed.
        """
        half_extent = np.asarray(half_extent, float) + 2.0
        for _ in range(1 if centre is not None else MAX_TRIES):
            where = np.asarray(centre, float) if centre is not None else self.random_centre(half_extent)
            if where is None:
                return False
            # The box never enters the empty margins of the slab (the soft tails are cut there).
            low = np.maximum(np.floor(where - half_extent).astype(int), [self.z_margin, 0, 0])
            high = np.minimum(np.ceil(where + half_extent).astype(int) + 1,
                              [self.shape[0] - self.z_margin, self.shape[1], self.shape[2]])
            if np.any(high <= low):
                continue
            box = tuple(slice(a, b) for a, b in zip(low, high))
            offsets = [(np.arange(a, b, dtype=np.float32) - c) for a, b, c in zip(low, high, where)]
            dz, dy, dx = offsets[0][:, None, None], offsets[1][None, :, None], offsets[2][None, None, :]
            values = render(dz, dy, dx)
            footprint = values > FOOTPRINT_THRESHOLD
            if not footprint.any() or (footprint & self.occupied[box]).any():
                continue
            self.density[box] += values
            self.occupied[box] |= footprint
            self.counts[kind] = self.counts.get(kind, 0) + 1
            return True
        return False

    # ------------------------------------------------------------------ object types
    def _leaflets(self):
        return self.nm(4.0), max(self.nm(0.6), 0.45)

    def add_membrane_sheet(self, normal_tilt_deg, radius_nm, curvature_per_nm=0.0):
        """A large, gently curved bilayer disk whose normal is ``normal_tilt_deg`` away from Z.

        0 degrees is a sheet parallel to XY (the hardest case for the missing wedge),
        90 degrees a sheet standing upright. The disk is clipped softly to the slab.
        """
        separation, sigma = self._leaflets()
        normal = direction(90.0 - normal_tilt_deg, self.rng.uniform(0, 360))
        first, second = perpendicular_basis(normal)
        radius = self.nm(radius_nm)
        curvature = curvature_per_nm / self.voxels_per_nm
        thickness = separation / 2 + 4 * sigma
        half_extent = np.abs(first) * radius + np.abs(second) * radius + np.abs(normal) * thickness
        half_extent[0] = min(half_extent[0], self.usable_thickness / 2.0 - 2.0)
        slab_low, slab_high = self.z_margin + 2.0, self.shape[0] - 3.0 - self.z_margin
        middle = (self.shape[0] - 1) / 2.0
        centre_z = middle + self.rng.uniform(-0.15, 0.15) * self.usable_thickness
        if half_extent[0] > self.usable_thickness / 2.0 - 2.0 - abs(centre_z - middle):
            centre_z = middle

        def render(dz, dy, dx):
            along_first = first[0] * dz + first[1] * dy + first[2] * dx
            along_second = second[0] * dz + second[1] * dy + second[2] * dx
            in_plane_sq = along_first ** 2 + along_second ** 2
            height = normal[0] * dz + normal[1] * dy + normal[2] * dx - 0.5 * curvature * in_plane_sq
            z = dz + centre_z
            window = (soft_inside(radius - np.sqrt(in_plane_sq), 3 * EDGE_WIDTH)
                      * soft_inside(z - slab_low) * soft_inside(slab_high - z))
            return bilayer(height, separation, sigma) * window

        centre = [centre_z, self.rng.uniform(0.1, 0.9) * self.shape[1], self.rng.uniform(0.1, 0.9) * self.shape[2]]
        return self.place("membrane sheet", render, half_extent, centre=centre)

    def add_vesicle(self, diameter_nm):
        """A spherical lipid vesicle of midplane diameter ``diameter_nm``."""
        separation, sigma = self._leaflets()
        radius = self.nm(diameter_nm) / 2.0

        def render(dz, dy, dx):
            return bilayer(np.sqrt(dz * dz + dy * dy + dx * dx) - radius, separation, sigma)

        return self.place("vesicle", render, [radius + separation / 2 + 4 * sigma] * 3)

    def _tube(self, kind, axis, length, outer_radius, inner_radius, density, protofilaments=0):
        first, second = perpendicular_basis(axis)
        half_length = length / 2.0

        def render(dz, dy, dx):
            along, across_first, across_second = frame_coordinates((axis, first, second), dz, dy, dx)
            radial = np.sqrt(across_first ** 2 + across_second ** 2)
            shape = soft_inside(outer_radius - radial) * soft_inside(half_length - np.abs(along))
            if inner_radius > 0:
                shape = shape * soft_inside(radial - inner_radius)
            if protofilaments:
                # Protofilament ridges: a 13-fold modulation of the wall around the axis.
                ridges = 0.5 + 0.5 * np.cos(protofilaments * np.arctan2(across_second, across_first))
                shape = shape * (0.75 + 0.25 * ridges).astype(np.float32)
            return density * shape

        half_extent = np.abs(axis) * half_length + np.sqrt(np.clip(1 - axis ** 2, 0, 1)) * outer_radius
        return self.place(kind, render, half_extent)

    def _fitting_length(self, elevation_deg, radius, wanted):
        """Length (voxels) of a rod at ``elevation_deg`` that still fits the slab, at most ``wanted``."""
        sin_e, cos_e = abs(np.sin(np.radians(elevation_deg))), np.cos(np.radians(elevation_deg))
        room = self.usable_thickness - 2 * radius * cos_e - 6.0
        return wanted if sin_e < 1e-6 else min(wanted, room / sin_e)

    def add_microtubule(self, elevation_deg, length_nm):
        """A 25 nm hollow tube (13 protofilaments, 17 nm lumen) at ``elevation_deg`` above XY."""
        outer = self.nm(12.5)
        length = self._fitting_length(elevation_deg, outer, self.nm(length_nm))
        if length < self.nm(30.0):
            return False
        axis = direction(elevation_deg * self.rng.choice([-1, 1]), self.rng.uniform(0, 360))
        return self._tube("microtubule", axis, length, outer, self.nm(8.5), PROTEIN_DENSITY, protofilaments=13)

    def add_actin(self, elevation_deg, length_nm):
        """An actin-like solid filament, 7 nm thick, at ``elevation_deg`` above XY."""
        radius = self.nm(3.5)
        length = self._fitting_length(elevation_deg, radius, self.nm(length_nm))
        if length < self.nm(20.0):
            return False
        axis = direction(elevation_deg * self.rng.choice([-1, 1]), self.rng.uniform(0, 360))
        return self._tube("actin filament", axis, length, radius, 0.0, PROTEIN_DENSITY)

    def _ellipsoids(self, kind, parts, density, rotation):
        """Union of soft ellipsoids ``parts`` = [(centre_nm (z,y,x), radii_nm (z,y,x)), ...], rotated."""
        centres = [self.nm(np.asarray(c, float)) for c, _ in parts]
        radii = [self.nm(np.asarray(r, float)) for _, r in parts]
        reach = max(np.linalg.norm(c) + r.max() for c, r in zip(centres, radii))

        def render(dz, dy, dx):
            # Coordinates in the particle frame: p_object = R^T p.
            local = [rotation[0, k] * dz + rotation[1, k] * dy + rotation[2, k] * dx for k in range(3)]
            shape = None
            for centre, radius in zip(centres, radii):
                scaled = np.sqrt(sum(((local[k] - centre[k]) / radius[k]) ** 2 for k in range(3)))
                part = soft_inside((1.0 - scaled) * radius.min())
                shape = part if shape is None else np.maximum(shape, part)
            return density * shape

        return self.place(kind, render, [reach] * 3)

    def add_ribosome(self):
        """A ribosome-sized (about 28 nm) asymmetric particle in a random orientation.

        Large subunit, smaller flattened subunit, and two stalks on one side, so
        that no rotation maps the particle onto itself.
        """
        parts = [((-3.0, 0.0, 0.0), (10.0, 12.5, 11.5)),   # large subunit
                 ((8.5, 1.5, -1.5), (5.0, 9.5, 7.5)),      # small subunit
                 ((1.0, -11.0, 6.5), (4.5, 3.0, 2.5)),     # stalk 1
                 ((-5.0, 9.0, 9.0), (2.5, 2.0, 4.0))]      # stalk 2
        return self._ellipsoids("ribosome", parts, RIBOSOME_DENSITY, random_rotation(self.rng))

    def add_protein(self):
        """A small globular protein: an ellipsoid of 4-9 nm, randomly oriented."""
        radii = self.rng.uniform(2.0, 4.5, size=3)
        return self._ellipsoids("small protein", [((0.0, 0.0, 0.0), radii)], PROTEIN_DENSITY,
                                random_rotation(self.rng))

    def add_barrel(self):
        """A proteasome-like barrel: four stacked rings (about 15 nm long, 11 nm wide) around a channel."""
        radius, channel, half_length = self.nm(5.5), self.nm(1.5), self.nm(7.5)
        ring_pitch = 2 * half_length / 4
        rotation = random_rotation(self.rng)
        axis = rotation[:, 0]

        def render(dz, dy, dx):
            along, = frame_coordinates((axis,), dz, dy, dx)
            radial = np.sqrt(np.maximum(dz * dz + dy * dy + dx * dx - along * along, 0.0))
            # Grooves between the rings: the outer radius dips by a quarter between ring centres.
            groove = 0.5 + 0.5 * np.cos(2 * np.pi * (along / ring_pitch + 0.5))
            outer = radius * (1.0 - 0.25 * groove ** 8)
            return PROTEIN_DENSITY * (soft_inside(outer - radial) * soft_inside(radial - channel)
                                      * soft_inside(half_length - np.abs(along)))

        return self.place("barrel", render, [np.hypot(radius, half_length)] * 3)

    def add_double_membrane(self, diameter_nm):
        """A mitochondrion-like organelle: two concentric bilayers 8 nm apart with a denser matrix inside."""
        separation, sigma = self._leaflets()
        outer = self.nm(diameter_nm) / 2.0
        inner = outer - self.nm(8.0)

        def render(dz, dy, dx):
            r = np.sqrt(dz * dz + dy * dy + dx * dx)
            matrix = MATRIX_DENSITY * soft_inside(inner - separation - r, 2 * EDGE_WIDTH)
            return bilayer(r - outer, separation, sigma) + bilayer(r - inner, separation, sigma) + matrix

        return self.place("double membrane", render, [outer + separation / 2 + 4 * sigma] * 3)

    def add_bundle(self, elevation_deg, length_nm, filaments):
        """A bundle of ``filaments`` parallel actin-like filaments 12 nm apart (hexagonal packing)."""
        radius, spacing = self.nm(3.5), self.nm(12.0)
        offsets = [(0.0, 0.0)] + [(np.cos(a), np.sin(a)) for a in np.radians(np.arange(0, 360, 60))]
        offsets = [(spacing * u, spacing * v) for u, v in offsets[:max(1, int(filaments))]]
        reach = spacing + radius
        length = self._fitting_length(elevation_deg, reach, self.nm(length_nm))
        if length < self.nm(30.0):
            return False
        axis = direction(elevation_deg * self.rng.choice([-1, 1]), self.rng.uniform(0, 360))
        first, second = perpendicular_basis(axis)
        half_length = length / 2.0

        def render(dz, dy, dx):
            along, a, b = frame_coordinates((axis, first, second), dz, dy, dx)
            shape = None
            for u, v in offsets:
                part = soft_inside(radius - np.sqrt((a - u) ** 2 + (b - v) ** 2))
                shape = part if shape is None else np.maximum(shape, part)
            return PROTEIN_DENSITY * shape * soft_inside(half_length - np.abs(along))

        half_extent = np.abs(axis) * half_length + np.sqrt(np.clip(1 - axis ** 2, 0, 1)) * reach
        return self.place("filament bundle", render, half_extent)

    def add_condensate(self, diameter_nm):
        """A liquid-like condensate: a faint, soft-edged sphere (density 0.4, edge 1.5 nm)."""
        radius = self.nm(diameter_nm) / 2.0
        edge = max(self.nm(1.5), EDGE_WIDTH)

        def render(dz, dy, dx):
            return CONDENSATE_DENSITY * soft_inside(radius - np.sqrt(dz * dz + dy * dy + dx * dx), edge)

        return self.place("condensate", render, [radius + 4 * edge] * 3)

    def add_gold_bead(self, diameter_nm=10.0):
        """A dense gold fiducial sphere."""
        radius = self.nm(diameter_nm) / 2.0

        def render(dz, dy, dx):
            return GOLD_DENSITY * soft_inside(radius - np.sqrt(dz * dz + dy * dy + dx * dx))

        return self.place("gold bead", render, [radius] * 3)


#: Scene types of :func:`make_specimen`.
SCENES = ("cell", "cytosol", "membranes", "filaments", "sparse")


def make_specimen(shape, pixel_size, rng, crowding=1.0, scene="cell"):
    """Build the scene (positive density, float32) and report what it holds.

    Parameters
    ----------
    shape : tuple of 3 int
        ``(nz, ny, nx)`` voxels; ``nz`` is the slab thickness including empty margins.
    pixel_size : float
        Å per voxel (about 10 recommended; sizes scale with it).
    rng : numpy.random.Generator
        Random source (the scene is a deterministic function of its state).
    crowding : float
        Multiplies the number of objects of every type per volume.
    scene : {'cell', 'cytosol', 'membranes', 'filaments', 'sparse'}
        ``cell``: the tutorial's mix (two membrane sheets, vesicles, microtubules,
        actin, ribosomes, small proteins, gold). ``cytosol``: crowded small
        proteins (about 150 per (100 nm)^3), ribosomes, barrels and condensates,
        one membrane. ``membranes``: stacked sheets at all inclinations, many
        vesicles and double-membrane organelles. ``filaments``: microtubules,
        actin and actin bundles at all elevations. ``sparse``: a few ribosomes,
        barrels and proteins in empty ice.

    Returns
    -------
    density : ndarray of float32, shape (nz, ny, nx)
        Density relative to ice, indexed [z, y, x].
    counts : dict
        Number of objects placed per type.
    """
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    nz = int(shape[0])
    z_margin = max(2, int(round(0.1 * nz)))
    specimen = Specimen(shape, pixel_size, z_margin, rng)
    # Object counts scale with the imaged volume, in units of (100 nm)^3.
    volume_units = np.prod(shape) / specimen.voxels_per_nm ** 3 / 1e6 * crowding

    def how_many(per_unit):
        return int(rng.poisson(per_unit * volume_units))

    usable_nm = specimen.usable_thickness / specimen.voxels_per_nm
    extent_nm = min(shape[1], shape[2]) / specimen.voxels_per_nm
    # A vesicle (with its leaflets and the placement border) must fit between the margins.
    largest_vesicle = min(80.0, usable_nm - 2 * (4.4 + 2.0 / specimen.voxels_per_nm) - 1.0)
    _SCENE_BUILDERS[scene](specimen, rng, how_many, extent_nm, largest_vesicle)
    return specimen.density, dict(specimen.counts)


def _sheet(specimen, rng, normal_tilt_range, radius_fraction, extent_nm, curvature=0.0):
    """Add one membrane sheet, drawing its inclination and size again until it fits."""
    for _ in range(MAX_TRIES):
        if specimen.add_membrane_sheet(rng.uniform(*normal_tilt_range), rng.uniform(*radius_fraction) * extent_nm,
                                       curvature):
            return


def _cell_scene(specimen, rng, how_many, extent_nm, largest_vesicle):
    # Big objects first: they are the hardest to fit.
    # One sheet standing steeply, one nearly parallel to XY (each drawn again until it fits).
    for _ in range(MAX_TRIES):
        if specimen.add_membrane_sheet(rng.uniform(70, 88), rng.uniform(0.25, 0.4) * extent_nm):
            break
    for _ in range(MAX_TRIES):
        if specimen.add_membrane_sheet(rng.uniform(0, 8), rng.uniform(0.2, 0.35) * extent_nm, rng.uniform(-1, 1) * 2e-3):
            break
    if largest_vesicle >= 30.0:
        for _ in range(max(1, how_many(0.4))):
            specimen.add_vesicle(rng.uniform(30.0, largest_vesicle))
    for k in range(max(2, how_many(0.3))):
        # The first microtubule is steep in Z; others lie mostly in the ice plane.
        elevation = rng.uniform(35, 60) if k == 0 else rng.uniform(0, 25)
        specimen.add_microtubule(elevation, rng.uniform(150, 500))
    for _ in range(how_many(1.0)):
        specimen.add_actin(rng.uniform(0, 35), rng.uniform(60, 300))
    for _ in range(how_many(3.0)):
        specimen.add_ribosome()
    for _ in range(max(1, how_many(0.3))):
        specimen.add_gold_bead()
    for _ in range(how_many(40.0)):
        specimen.add_protein()


def _cytosol_scene(specimen, rng, how_many, extent_nm, largest_vesicle):
    _sheet(specimen, rng, (40, 80), (0.2, 0.3), extent_nm)
    if largest_vesicle >= 20.0:
        for _ in range(max(1, how_many(0.5))):
            specimen.add_condensate(rng.uniform(15.0, largest_vesicle - 4.0))
    for _ in range(how_many(6.0)):
        specimen.add_ribosome()
    for _ in range(how_many(4.0)):
        specimen.add_barrel()
    for _ in range(how_many(1.0)):
        specimen.add_actin(rng.uniform(0, 45), rng.uniform(40, 150))
    for _ in range(how_many(150.0)):
        specimen.add_protein()


def _membrane_scene(specimen, rng, how_many, extent_nm, largest_vesicle):
    # The organelles first (the hardest to fit), then sheets at every inclination, flat ones
    # (the hardest for the wedge) included.
    if largest_vesicle >= 30.0:
        for _ in range(max(1, how_many(0.3))):
            specimen.add_double_membrane(rng.uniform(30.0, largest_vesicle))
    for low in (0, 20, 45, 70):
        _sheet(specimen, rng, (low, low + 15), (0.2, 0.35), extent_nm, rng.uniform(-1, 1) * 3e-3)
    if largest_vesicle >= 30.0:
        for _ in range(max(3, how_many(2.0))):
            specimen.add_vesicle(rng.uniform(20.0, largest_vesicle))
    for _ in range(max(2, how_many(3.0))):
        specimen.add_vesicle(rng.uniform(15.0, 30.0))
    for _ in range(how_many(1.0)):
        specimen.add_ribosome()
    for _ in range(how_many(15.0)):
        specimen.add_protein()


def _filament_scene(specimen, rng, how_many, extent_nm, largest_vesicle):
    for _ in range(max(2, how_many(0.6))):
        specimen.add_bundle(rng.uniform(0, 40), rng.uniform(100, 400), rng.integers(3, 8))
    for _ in range(max(3, how_many(1.0))):
        specimen.add_microtubule(rng.uniform(0, 60), rng.uniform(150, 500))
    for _ in range(how_many(6.0)):
        specimen.add_actin(rng.uniform(0, 70), rng.uniform(40, 300))
    for _ in range(how_many(1.0)):
        specimen.add_ribosome()
    for _ in range(how_many(15.0)):
        specimen.add_protein()


def _sparse_scene(specimen, rng, how_many, extent_nm, largest_vesicle):
    for _ in range(how_many(2.0)):
        specimen.add_ribosome()
    for _ in range(how_many(2.0)):
        specimen.add_barrel()
    for _ in range(how_many(8.0)):
        specimen.add_protein()
    for _ in range(max(1, how_many(0.3))):
        specimen.add_gold_bead()


_SCENE_BUILDERS = {"cell": _cell_scene, "cytosol": _cytosol_scene, "membranes": _membrane_scene,
                   "filaments": _filament_scene, "sparse": _sparse_scene}

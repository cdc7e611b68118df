"""Known answers for the numeric core: normalisation, wedge masks, loss weights of rotated pairs, FSC.

Every expected value here is worked out by hand (tables below) or in closed form from constructed
inputs, never by calling the function under test: the other tests build their expected values with
these functions, so these are the tests that anchor them.
"""

import numpy as np
import pytest

from isonet.evaluation.fsc import fsc3d
from isonet.normalize import normalize, normalize_in_place
from isonet.refine.fourier_weights import pair_weights, rotation_matrix
from isonet.wedge import measured_mask, tilt_angle_map, wedge_depth_map, wedge_mask

# ----------------------------------------------------------------------------- normalisation


def _ramp_volume(scale=1.0, offset=0.0):
    """The values 0 .. 125 in a shuffled (2, 7, 9) volume, times ``scale`` plus ``offset``.

    126 values: numpy's linear percentile of q % lies at index q / 100 * 125, so the 4th percentile
    is value 5 and the 96th value 120, exactly.
    """
    values = np.random.default_rng(0).permutation(126).astype(np.float32)
    return (values * scale + offset).reshape(2, 7, 9)


@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (0.5, -20.0)])
def test_percentile_normalisation_maps_p4_to_0_and_p96_to_1_without_clipping(scale, offset):
    volume = _ramp_volume(scale, offset)
    expected = (_ramp_volume() - 5.0) / 115.0  # (x - P4) / (P96 - P4) in the units of the ramp
    for result in (normalize(volume), normalize_in_place(volume.copy())):
        assert result.dtype == np.float32
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)
    # the ends stay outside [0, 1]: 0 -> -5/115, 125 -> 120/115
    assert normalize(volume).min() == pytest.approx(-5 / 115) and normalize(volume).max() == pytest.approx(120 / 115)


def test_normalize_in_place_writes_into_its_argument():
    volume = _ramp_volume()
    assert normalize_in_place(volume) is volume
    np.testing.assert_allclose(volume, (_ramp_volume() - 5.0) / 115.0, atol=1e-6)


def test_percentile_normalisation_per_volume_of_a_batch():
    """With ``axis=(1, 2, 3)`` each volume of a batch gets its own percentiles."""
    batch = np.stack([_ramp_volume(), _ramp_volume(10.0, 100.0)])
    expected = (_ramp_volume() - 5.0) / 115.0
    result = normalize(batch, axis=(1, 2, 3))
    np.testing.assert_allclose(result[0], expected, atol=1e-6)
    np.testing.assert_allclose(result[1], expected, atol=1e-6)


def test_mean_std_normalisation():
    """Half the voxels -1, half 3: mean 1, standard deviation 2, so -1 -> -1 and 3 -> 1."""
    volume = np.where(np.arange(4 * 5 * 6).reshape(4, 5, 6) % 2 == 0, -1.0, 3.0).astype(np.float32)
    expected = np.where(volume < 0, -1.0, 1.0)
    np.testing.assert_allclose(normalize(volume, percentile=False), expected, atol=1e-7)
    np.testing.assert_allclose(normalize_in_place(volume.copy(), percentile=False), expected, atol=1e-7)


# ----------------------------------------------------------------------------- wedge geometry
#
# Shape (4, 1, 8): kz = fftfreq(4) = [0, 1/4, -1/2, -1/4], kx = fftfreq(8) = [0, 1/8, 1/4, 3/8, -1/2,
# -3/8, -1/4, -1/8] cycles per voxel; the tilt angle is phi = arctan(kz / kx). For kz = 1/4:
# phi = 90 (beam), 63.4, 45, 33.7, -26.6, -33.7, -45, -63.4; kz = -1/4 mirrors them; for kz = -1/2:
# -90, -76.0, -63.4, -53.1, 45, 53.1, 63.4, 76.0. In index units (kz = 1, kx = 2) would be 26.6°
# rather than 45°: the table holds only for frequencies in cycles per voxel.

SHAPE = (4, 1, 8)
# tilts -30 .. 50: measured where -30 <= phi <= 50; the kz = 0 row (phi = 0) always.
MEASURED_M30_50 = [[1, 1, 1, 1, 1, 1, 1, 1],
                   [0, 0, 1, 1, 1, 0, 0, 0],
                   [0, 0, 0, 0, 1, 0, 0, 0],
                   [0, 0, 0, 0, 1, 1, 1, 0]]
# IsoNet 1's mask adds the circle kz^2 + kx^2 <= 1/4 (it removes (1/4, -1/2), (-1/2, -1/2), (-1/4, -1/2))
# and keeps the whole kz = 0 row.
WEDGE_M30_50 = [[1, 1, 1, 1, 1, 1, 1, 1],
                [0, 0, 1, 1, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 1, 1, 0]]
# rfftn layout: kx = [0, 1/8, 1/4, 3/8, +1/2]; at kx = +1/2, phi = 26.6 (kz 1/4), -45 (kz -1/2), -26.6 (kz -1/4).
MEASURED_M30_50_REAL = [[1, 1, 1, 1, 1],
                        [0, 0, 1, 1, 1],
                        [0, 0, 0, 0, 0],
                        [0, 0, 0, 0, 1]]
WEDGE_M30_50_REAL = [[1, 1, 1, 1, 1],
                     [0, 0, 1, 1, 0],
                     [0, 0, 0, 0, 0],
                     [0, 0, 0, 0, 0]]


def test_tilt_angle_map_is_in_cycles_per_voxel():
    phi = tilt_angle_map(SHAPE)[:, 0, :]
    assert phi.shape == (4, 8)
    assert phi[1, 2] == pytest.approx(45.0)  # kz = kx = 1/4
    assert phi[1, 1] == pytest.approx(np.degrees(np.arctan(2.0)))  # kz 1/4, kx 1/8
    assert phi[2, 3] == pytest.approx(-np.degrees(np.arctan(4 / 3)))  # kz -1/2, kx 3/8
    assert phi[1, 0] == 90.0 and phi[3, 0] == -90.0 and phi[0, 0] == 0.0
    np.testing.assert_array_equal(phi[0], 0.0)


def test_asymmetric_measured_and_wedge_masks():
    np.testing.assert_array_equal(measured_mask(SHAPE, -30, 50)[:, 0, :], np.array(MEASURED_M30_50, bool))
    np.testing.assert_array_equal(wedge_mask(SHAPE, -30, 50)[:, 0, :], WEDGE_M30_50)
    np.testing.assert_array_equal(measured_mask(SHAPE, -30, 50, real=True)[:, 0, :],
                                  np.array(MEASURED_M30_50_REAL, bool))
    np.testing.assert_array_equal(wedge_mask(SHAPE, -30, 50, real=True)[:, 0, :], WEDGE_M30_50_REAL)


def test_a_range_reaching_90_degrees_measures_the_beam_axis():
    """kx = 0, kz != 0 (the beam axis, +-90) is measured only by a range that reaches 90 degrees."""
    np.testing.assert_array_equal(measured_mask(SHAPE, -30, 90)[:, 0, :], [[1, 1, 1, 1, 1, 1, 1, 1],
                                                                         [1, 1, 1, 1, 1, 0, 0, 0],
                                                                         [1, 0, 0, 0, 1, 1, 1, 1],
                                                                         [1, 0, 0, 0, 1, 1, 1, 1]])


def test_wedge_depth_of_an_asymmetric_range():
    """Depth = angle beyond the nearer tilt limit, the line's two directions phi and phi - 180 both counted.

    For -30 .. 50 the wedge spans 100 degrees, from 50 to 150 (= -30 + 180): its middle, 100 = -80,
    lies 50 degrees deep.
    """
    depth = wedge_depth_map(SHAPE, -30, 50)[:, 0, :]
    assert depth[1, 1] == pytest.approx(np.degrees(np.arctan(2.0)) - 50)  # 63.4: 13.4 beyond 50
    assert depth[1, 0] == pytest.approx(40.0) and depth[3, 0] == pytest.approx(40.0)  # beam axis: 90 - 50
    assert depth[1, 6] == pytest.approx(15.0)  # -45: 15 beyond -30
    assert depth[2, 1] == pytest.approx(np.degrees(np.arctan(4.0)) - 30)  # -76.0: 46.0 beyond -30, 54.0 beyond 50
    np.testing.assert_array_equal(depth[np.array(MEASURED_M30_50, bool)], 0.0)


# ----------------------------------------------------------------------------- loss weights of rotated pairs
#
# Cube n = 4: kz, kx in fftfreq(4) = [0, 1/4, -1/2, -1/4]. IsoNet 1's mask M (measured and in the
# circle kz^2 + kx^2 <= 1/4, plus the kz = 0 row), rows kz, columns kx, the same for every ky:
# for -60 .. 60, (1/4, +-1/4) is at +-45 and kept, (1/4, -1/2) at -26.6 but outside the circle,
# (-1/2, +-1/4) at -+63.4 outside the range, kx = 0 the beam axis.
M_60 = np.array([[1, 1, 1, 1],
                 [0, 1, 0, 1],
                 [0, 0, 0, 0],
                 [0, 1, 0, 1]], np.float32)
# For -30 .. 60: (1/4, -1/4) at -45 and (-1/4, 1/4) at -45 leave the range.
M_30_60 = np.array([[1, 1, 1, 1],
                    [0, 1, 0, 0],
                    [0, 0, 0, 0],
                    [0, 0, 0, 1]], np.float32)


def test_wedge_mask_of_a_small_cube():
    np.testing.assert_array_equal(wedge_mask((4, 4, 4), -60, 60)[:, 0, :], M_60)
    np.testing.assert_array_equal(wedge_mask((4, 4, 4), -30, 60)[:, 0, :], M_30_60)


def test_quarter_turns_of_the_two_orientations_used_below():
    """Orientation 2 turns Z towards X (about Y); orientation 0 turns Z towards Y (about X)."""
    np.testing.assert_array_equal(rotation_matrix(2), [[0, 0, -1], [0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(rotation_matrix(0), [[0, -1, 0], [1, 0, 0], [0, 0, 1]])


def test_pair_weights_of_a_turn_about_y_with_a_symmetric_range():
    """Weights Mt (Mi + w (1 - Mi)): 1 where both measure, w where only the target does, 0 elsewhere.

    The target (the cube turned about Y) measures M transposed (kz <-> kx; M is even in both), so the
    beam axis, missing in the input, gets w = 2, and the kz = 0 row, seen edge-on, only the origin.
    """
    expected = np.array([[1, 0, 0, 0],
                         [2, 1, 0, 1],
                         [2, 0, 0, 0],
                         [2, 1, 0, 1]], np.float32)
    weights = pair_weights(4, (-60, 60), 2.0, 2)
    assert weights.shape == (4, 4, 4)
    np.testing.assert_array_equal(weights, np.broadcast_to(expected[:, None, :], (4, 4, 4)))


def test_pair_weights_of_a_turn_about_y_with_an_asymmetric_range():
    """The turn maps a frequency at tilt angle phi to phi - 90: the target measures phi in [-90, -30] and
    [60, 90] (and kx = 0, the former kz = 0 row). Worked row by row, kz = 0, 1/4, -1/2, -1/4:

    target [1 0 0 0], [1 0 0 1], [1 0 0 0], [1 1 0 0]; input M_30_60; weight 2 where only the target measures.
    A reflection in place of the turn (kz <-> kx, no sign change) would give rows 1 and 3 [2 1 0 0] and
    [2 0 0 1]. (The two turn directions agree: they differ by a half turn, k -> -k, which keeps every mask.)
    """
    expected = np.array([[1, 0, 0, 0],
                         [2, 0, 0, 2],
                         [2, 0, 0, 0],
                         [2, 2, 0, 0]], np.float32)
    np.testing.assert_array_equal(pair_weights(4, (-30, 60), 2.0, 2), np.broadcast_to(expected[:, None, :], (4,) * 3))


def test_pair_weights_of_a_turn_about_x_depend_on_ky():
    """Turned about X, the target measures M over (ky, kx) whatever kz: weight[kz, ky, kx] = M[ky, kx] times
    1 where the input measures (M[kz, kx]) and w = 3 where it does not."""
    weights = pair_weights(4, (-60, 60), 3.0, 0)
    target = np.broadcast_to(M_60[None, :, :], (4, 4, 4))
    in_input = np.broadcast_to(M_60[:, None, :], (4, 4, 4))
    np.testing.assert_array_equal(weights, target * np.where(in_input == 1, 1.0, 3.0))
    # two entries by hand: (kz 1/4, ky 0, kx 0) is the beam axis, missing in the input, and the
    # target's kz = 0 row: weight 3; (kz 0, ky 1/4, kx 0) is the target's beam axis: weight 0.
    assert weights[1, 0, 0] == 3.0 and weights[0, 1, 0] == 0.0 and weights[0, 0, 1] == 1.0


# ----------------------------------------------------------------------------- FSC
#
# Volumes 16 x 32 x 32 (shells 1/16 cycle per voxel thick, numbered by round(|k| * 16)) made of
# plane waves: along X at kx = 6/32 and along Z at kz = 3/16 (both in shell 3), along Y at
# ky = 10/32 (shell 5). A wave of amplitude a in one volume and b, phase-shifted by theta, in the other
# adds a b cos(theta) / 2 per voxel to the cross term and a^2 / 2, b^2 / 2 to the powers, so a
# region's FSC is sum(a b cos theta) / sqrt(sum a^2 sum b^2) over the waves it holds.


def _waves(amplitudes, phases):
    z, y, x = np.meshgrid(np.arange(16), np.arange(32), np.arange(32), indexing="ij")
    arguments = (2 * np.pi * 6 * x / 32, 2 * np.pi * 3 * z / 16, 2 * np.pi * 10 * y / 32)
    return sum(a * np.cos(arg + p) for a, arg, p in zip(amplitudes, arguments, phases)).astype(np.float32)


def test_fsc_of_phase_shifted_plane_waves():
    a = _waves((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    b = _waves((2.0, 1.0, 1.0), (np.pi / 3, np.pi / 2, 2 * np.pi / 3))  # cos: 0.5, 0, -0.5
    result = fsc3d(a, b, pixel_size=1.0, n_directions=10)
    assert not result["sign_flipped"]  # overall cross term 2 * 0.5 + 0 - 0.5 > 0
    fsc = {name: curve[0] for name, curve in result["curves"].items()}
    shell3, shell5 = 2, 4  # array index of shells 3 and 5
    expected = {("x", shell3): 0.5, ("z", shell3): 0.0, ("measured", shell3): 0.5, ("missing_wedge", shell3): 0.0,
                ("all", shell3): (2 * 0.5 + 0.0) / np.sqrt(2 * 5),  # waves X and Z together, power-weighted
                ("y", shell5): -0.5, ("measured", shell5): -0.5, ("all", shell5): -0.5}
    for (name, shell), value in expected.items():
        assert fsc[name][shell] == pytest.approx(value, abs=1e-5), (name, shell + 1)
    np.testing.assert_allclose(result["frequency_per_A"][[shell3, shell5]], [3 / 16, 5 / 16])

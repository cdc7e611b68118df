"""make_mask (spec §3.2): criteria, z_crop, polygon boundaries from IMOD models and point files, the command."""

import os
import struct

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from conftest import run_cli
from isonet.errors import IsonetError
from isonet.io.mrc import read_header, read_volume, write_volume
from isonet.io.star import read_star, write_star
from isonet.preprocess.imod import read_boundary_points, read_mod_points, read_point_file
from isonet.preprocess.mask import bin2, boundary_region, local_std, make_mask

SHAPE = (48, 64, 64)


def write_imod_model(path, contours, extra_chunks=(), flags=0):
    """A binary IMOD model (binspec V1.2, big-endian) with one object holding ``contours``.

    ``extra_chunks``: (id, payload) pairs written before IEOF as sized chunks,
    plus a MESH chunk, to check that readers skip what they do not use.
    ``flags``: the model flags (uint32 at byte 144 of the header; bit 16: saved Y/Z flipped).
    """
    header = bytearray(232)
    header[:9] = b"test.mod\0"
    struct.pack_into(">iiiiI", header, 128, 64, 64, 48, 1, flags)  # xmax ymax zmax objsize flags
    struct.pack_into(">fff", header, 176, 1.0, 1.0, 1.0)  # scales
    obj = bytearray(176)
    struct.pack_into(">i", obj, 128, len(contours))  # contsize after name[64] and extra[16 ints]
    parts = [b"IMOD", b"V1.2", bytes(header), b"OBJT", bytes(obj)]
    for contour in contours:
        points = np.asarray(contour, dtype=">f4")
        parts += [b"CONT", struct.pack(">iIii", len(points), 0, 0, 0), points.tobytes()]
    mesh_vertices = np.zeros((2, 3), dtype=">f4")
    parts += [b"MESH", struct.pack(">iiIhh", 2, 1, 0, 0, 0), mesh_vertices.tobytes(), struct.pack(">i", -1)]
    for chunk_id, payload in extra_chunks:
        parts += [chunk_id, struct.pack(">i", len(payload)), payload]
    parts.append(b"IEOF")
    with open(path, "wb") as handle:
        handle.write(b"".join(parts))


@pytest.fixture
def phantom(rng):
    """Dark dense blobs in noise in z 24..43, and an empty slab (noise only) at z < 16."""
    volume = rng.standard_normal(SHAPE) * 0.3
    density = np.zeros(SHAPE)
    centres = [(int(rng.integers(24, 44)), int(rng.integers(8, 56)), int(rng.integers(8, 56))) for _ in range(12)]
    for centre in centres:
        density[centre] = 1.0
    density = ndimage.gaussian_filter(density, 2.0)
    volume -= 3.0 * density / density.max()
    return volume.astype(np.float32), centres


def test_bin2_is_smoothed_block_mean(rng):
    volume = rng.standard_normal((9, 10, 12)).astype(np.float32)
    binned = bin2(volume)
    assert binned.shape == (4, 5, 6)
    smooth = ndimage.gaussian_filter(volume, 0.5, mode="reflect")[:8, :10, :12]
    np.testing.assert_allclose(binned, smooth.reshape(4, 2, 5, 2, 6, 2).mean(axis=(1, 3, 5)), atol=1e-5)
    np.testing.assert_allclose(bin2(np.full((6, 6, 6), 3.0, np.float32)), 3.0, atol=1e-6)


def test_local_std_matches_brute_force(rng):
    volume = rng.standard_normal((5, 6, 7)) * 2 + 10
    result = local_std(volume, 3)
    for z, y, x in [(0, 0, 0), (2, 3, 4), (4, 5, 6), (0, 5, 3)]:
        box = volume[max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
        assert result[z, y, x] == pytest.approx(box.std(), rel=1e-5)


def test_mask_covers_dense_objects_and_excludes_empty_slab(phantom):
    volume, centres = phantom
    mask = make_mask(volume, patch_size=4, density_percentage=50, std_percentage=50)
    assert mask.dtype == np.uint8 and mask.shape == SHAPE and set(np.unique(mask)) <= {0, 1}
    assert all(mask[c] == 1 for c in centres)
    assert mask[:12].mean() < 0.02
    assert mask[24:44].mean() > 0.5
    # the density criterion alone keeps about the requested fraction of the binned voxels
    assert make_mask(volume, density_percentage=30, std_percentage=100).mean() == pytest.approx(0.3, abs=0.05)


def test_z_crop_zeroes_top_and_bottom(phantom):
    volume, _ = phantom
    full = make_mask(volume, density_percentage=100, std_percentage=100)
    assert full.all()
    cropped = make_mask(volume, density_percentage=100, std_percentage=100, z_crop=0.25)
    # 48 planes -> 24 binned; int(0.25 * 24) = 6 binned planes (12 full) removed at each end
    assert not cropped[:12].any() and not cropped[36:].any()
    assert cropped[12:36].all()


def test_odd_shape_leaves_last_plane_empty(rng):
    mask = make_mask(rng.standard_normal((9, 11, 10)).astype(np.float32), patch_size=1,
                     density_percentage=100, std_percentage=100)
    assert mask.shape == (9, 11, 10)
    assert mask[:8, :10, :10].all() and not mask[8].any() and not mask[:, 10].any()


SQUARE = [[16, 16, 20], [48, 16, 20], [48, 40, 20], [16, 40, 20]]
Z_RANGE = [[30, 30, 10], [30, 30, 40]]


def _expected_square_mask():
    expected = np.zeros(SHAPE, dtype=bool)
    # binned polygon x, y in [8, 24] x [8, 20]: inside strictly for binned 9..23 x 9..19, z-range [5, 20)
    expected[10:40, 18:40, 18:48] = True
    return expected


def test_polygon_from_imod_model(tmp_path, phantom):
    volume, _ = phantom
    model = tmp_path / "boundary.mod"
    write_imod_model(model, [SQUARE, Z_RANGE], extra_chunks=[(b"MINX", bytes(72)), (b"SIZE", bytes(8))])
    points = read_mod_points(model)
    np.testing.assert_array_equal(points, np.array(SQUARE + Z_RANGE, dtype=float))
    mask = make_mask(volume, density_percentage=100, std_percentage=100, boundary_points=points)
    interior = _expected_square_mask()
    assert mask[interior].all()
    assert not mask[:10].any() and not mask[40:].any()
    assert not mask[:, :16].any() and not mask[:, 42:].any() and not mask[:, :, :16].any() and not mask[:, :, 50:].any()


def test_model_saved_flipped_is_flipped_back(tmp_path, phantom):
    """A model saved on the Y/Z-flipped view stores (x, z, y); with flag bit 16 set it must give the same
    points and mask as the unflipped model, and the same numbers without the flag must not."""
    volume, _ = phantom
    plain, flipped, unflagged = tmp_path / "plain.mod", tmp_path / "flipped.mod", tmp_path / "unflagged.mod"
    swapped = [[[x, z, y] for x, y, z in contour] for contour in (SQUARE, Z_RANGE)]
    write_imod_model(plain, [SQUARE, Z_RANGE])
    write_imod_model(flipped, swapped, flags=1 << 16 | 1 << 15)
    write_imod_model(unflagged, swapped, flags=1 << 15)
    np.testing.assert_array_equal(read_mod_points(flipped), np.array(SQUARE + Z_RANGE, dtype=float))
    np.testing.assert_array_equal(read_mod_points(unflagged), np.array(swapped[0] + swapped[1], dtype=float))
    masks = [make_mask(volume, density_percentage=100, std_percentage=100, boundary_points=read_mod_points(m))
             for m in (plain, flipped, unflagged)]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert masks[0][_expected_square_mask()].all()
    assert not np.array_equal(masks[0], masks[2])


def test_point_file_gives_same_mask_as_model(tmp_path, phantom):
    volume, _ = phantom
    model, text = tmp_path / "b.mod", tmp_path / "b.point"
    write_imod_model(model, [SQUARE, Z_RANGE])
    with open(text, "w") as handle:  # model2point -object -contour style: object and contour first
        handle.write("\n".join(f"1 1 {x:.2f} {y:.2f} {z:.2f}" for x, y, z in SQUARE + Z_RANGE) + "\n")
    np.testing.assert_array_equal(read_point_file(text), read_boundary_points(model))
    from_text = make_mask(volume, density_percentage=80, std_percentage=80, boundary_points=read_boundary_points(text))
    from_model = make_mask(volume, density_percentage=80, std_percentage=80, boundary_points=read_mod_points(model))
    np.testing.assert_array_equal(from_text, from_model)


def test_boundary_rules():
    shape = (24, 32, 32)
    only_z = boundary_region(np.array(Z_RANGE, dtype=float), shape)
    assert only_z[5:20].all() and not only_z[:5].any() and not only_z[20:].any()
    flat = boundary_region(np.array(SQUARE, dtype=float), shape)  # no z-range: whole depth
    assert flat[:, 12, 12].all()
    with pytest.raises(IsonetError, match="polygon point"):
        boundary_region(np.array(SQUARE[:2] + Z_RANGE, dtype=float), shape)


def test_bad_boundary_files(tmp_path):
    bad = tmp_path / "bad.mod"
    bad.write_bytes(b"NOPE" + bytes(300))
    with pytest.raises(IsonetError, match="not an IMOD binary model"):
        read_mod_points(bad)
    truncated = tmp_path / "trunc.mod"
    write_imod_model(truncated, [SQUARE])
    truncated.write_bytes(truncated.read_bytes()[:-30])
    with pytest.raises(IsonetError, match="truncated"):
        read_mod_points(truncated)
    words = tmp_path / "words.txt"
    words.write_text("1 2 three\n")
    with pytest.raises(IsonetError, match="line 1"):
        read_point_file(words)


def _project(tmp_path, volume, name="t.b.mrc"):
    os.makedirs(tmp_path / "tomos", exist_ok=True)
    write_volume(tmp_path / "tomos" / name, volume, voxel_size=12.0, origin=(5.0, 6.0, 7.0))
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": [f"tomos/{name}"], "rlnPixelSize": [12.0],
                             "rlnMaskBoundary": [None]}), tmp_path / "tomograms.star")


def test_cli_make_mask_with_boundary_option(tmp_path, phantom):
    volume, _ = phantom
    _project(tmp_path, volume)
    with open(tmp_path / "b.txt", "w") as handle:
        handle.write("\n".join(f"{x} {y} {z}" for x, y, z in SQUARE + Z_RANGE) + "\n")
    result = run_cli("make_mask", "tomograms.star", "--density_percentage", "100", "--std_percentage", "100",
                     "--mask_boundary", "b.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = read_star(tmp_path / "tomograms.star")
    assert table.loc[0, "rlnMaskName"] == os.path.join("mask", "t.b_mask.mrc")
    assert table.loc[0, "rlnMaskBoundary"] == "b.txt"
    assert table.loc[0, "rlnMaskDensityPercentage"] == 100.0 and table.loc[0, "rlnMaskStdPercentage"] == 100.0
    mask = read_volume(tmp_path / "mask" / "t.b_mask.mrc")
    assert read_header(tmp_path / "mask" / "t.b_mask.mrc").dtype.itemsize == 1  # 8-bit MRC mode 0
    assert read_header(tmp_path / "mask" / "t.b_mask.mrc").origin == pytest.approx((5, 6, 7))
    assert mask[_expected_square_mask()].all()
    assert not mask[:10].any() and not mask[40:].any() and not mask[:, :16].any() and not mask[:, :, 50:].any()


def test_cli_empty_mask_is_one_line_error(tmp_path, run_main):
    _project(tmp_path, np.ones(SHAPE, np.float32))
    status, _, err = run_main("make_mask", "tomograms.star", "--density_percentage", "40", cwd=tmp_path)
    assert status == 1  # an input error: the tomogram is flat
    assert err.startswith("ERROR: ") and err.count("\n") == 1
    assert "t.b.mrc" in err and "density_percentage=40" in err
    assert not os.path.exists(tmp_path / "mask" / "t.b_mask.mrc")


def test_star_percentages_per_row_and_cli_override(tmp_path, phantom, monkeypatch):
    from isonet.preprocess.mask import make_masks
    volume, _ = phantom
    os.makedirs(tmp_path / "tomos")
    for name in ("a.mrc", "b.mrc"):
        write_volume(tmp_path / "tomos" / name, volume)
    write_star(pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": ["tomos/a.mrc", "tomos/b.mrc"],
                             "rlnPixelSize": [10.0, 10.0], "rlnMaskDensityPercentage": [20.0, 60.0],
                             "rlnMaskStdPercentage": [100.0, 100.0]}), tmp_path / "tomograms.star")
    monkeypatch.chdir(tmp_path)
    make_masks("tomograms.star")
    fractions = [read_volume(f"mask/{n}_mask.mrc").mean() for n in ("a", "b")]
    assert fractions == [pytest.approx(0.2, abs=0.05), pytest.approx(0.6, abs=0.05)]
    make_masks("tomograms.star", density_percentage=40.0, tomo_idx=[2])
    table = read_star("tomograms.star")
    assert list(table["rlnMaskDensityPercentage"]) == [20.0, 40.0]
    assert read_volume("mask/b_mask.mrc").mean() == pytest.approx(0.4, abs=0.05)


def test_array_tasks_share_the_star_file_and_the_mask_folder(tmp_path, phantom, monkeypatch):
    """Task 1 makes its mask in mask/ while task 2 holds the lock of its own mask there and writes its row into
    tomograms.star meanwhile: task 1 runs, and both rows end up in the STAR file."""
    from isonet.io.lock import output_lock
    from isonet.io.star import set_column, update_star_rows
    from isonet.preprocess import mask as module
    volume, _ = phantom
    for name in ("a.mrc", "b.mrc"):
        write_volume(tmp_path / name, volume)
    write_star(pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": ["a.mrc", "b.mrc"],
                             "rlnPixelSize": [10.0, 10.0]}), tmp_path / "tomograms.star")
    monkeypatch.chdir(tmp_path)
    make_one = module._make_one

    def second_task_finishes_meanwhile(job, *args):
        other = read_star("tomograms.star")
        set_column(other, "rlnMaskName", None)
        set_column(other, "rlnMaskName", os.path.join("mask", "b_mask.mrc"), rows=[1])
        update_star_rows("tomograms.star", other, [1])
        make_one(job, *args)

    monkeypatch.setattr(module, "_make_one", second_task_finishes_meanwhile)
    with output_lock(tmp_path / "mask" / "b_mask.mrc"):  # task 2 at work
        module.make_masks("tomograms.star", tomo_idx=[1])
    table = read_star("tomograms.star")
    assert list(table["rlnMaskName"]) == [os.path.join("mask", "a_mask.mrc"), os.path.join("mask", "b_mask.mrc")]
    assert list(table["rlnMaskDensityPercentage"]) == [50.0, 50.0]
    assert read_volume(os.path.join("mask", "a_mask.mrc")).any()

"""MRC reading and writing: dtypes, headers, atomic writes, bad input."""

import os

import mrcfile
import numpy as np
import pytest

from isonet.errors import IsonetError
from isonet.io.mrc import read_header, read_volume, write_volume


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float16, np.float32])
def test_round_trip_every_dtype(tmp_path, rng, dtype):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    low, high = (info.min, info.max) if info else (-1000, 1000)
    data = rng.integers(low, high, size=(5, 6, 7), endpoint=True).astype(dtype)
    path = tmp_path / "v.mrc"
    write_volume(path, data, voxel_size=(10.8, 10.8, 10.8), origin=(1.5, -2.0, 3.25))
    volume, header = read_volume(path, return_header=True)
    assert volume.dtype == np.float32
    assert volume.shape == (5, 6, 7)
    np.testing.assert_array_equal(volume, data.astype(np.float32))
    # MRC2014 has no unsigned 8-bit mode: mrcfile stores uint8 as uint16 (mode 6), values intact.
    assert header.dtype == (np.dtype(np.uint16) if dtype is np.uint8 else np.dtype(dtype))
    assert header.shape == (5, 6, 7)
    assert header.voxel_size == pytest.approx((10.8, 10.8, 10.8), rel=1e-6)
    assert header.origin == pytest.approx((1.5, -2.0, 3.25))


def test_axis_order_is_z_y_x(tmp_path):
    data = np.zeros((2, 3, 4), dtype=np.float32)
    path = tmp_path / "v.mrc"
    write_volume(path, data)
    with mrcfile.open(path) as mrc:
        assert (int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz)) == (4, 3, 2)


def test_header_copied_from_like(tmp_path):
    source = tmp_path / "a.mrc"
    write_volume(source, np.ones((4, 4, 4), np.float32), voxel_size=(7.0, 8.0, 9.0), origin=(4, 5, 6))
    derived = tmp_path / "b.mrc"
    write_volume(derived, np.zeros((4, 4, 4)), like=source)  # float64 in -> float32 out
    header = read_header(derived)
    assert header.voxel_size == pytest.approx((7.0, 8.0, 9.0))
    assert header.origin == pytest.approx((4.0, 5.0, 6.0))
    assert header.dtype == np.float32


def test_bool_written_as_integers(tmp_path):
    path = tmp_path / "m.mrc"
    write_volume(path, np.eye(4, dtype=bool)[None].repeat(2, 0))
    assert np.issubdtype(read_header(path).dtype, np.integer)
    assert read_volume(path).sum() == 8


def test_read_volume_returns_writable_array(tmp_path):
    path = tmp_path / "v.mrc"
    write_volume(path, np.ones((3, 3, 3), np.float32))
    volume = read_volume(path)
    volume += 1  # callers may work in place
    assert read_volume(path).max() == 1.0


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "v.mrc"
    write_volume(path, np.full((3, 3, 3), 5, np.float32))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(mrcfile.mrcfile.MrcFile, "set_data", broken)
    with pytest.raises(IsonetError, match=r"v\.mrc: cannot write \(disk full\)"):  # the real name, not the temp
        write_volume(path, np.zeros((3, 3, 3), np.float32))
    assert read_volume(path).max() == 5.0  # old content intact
    assert os.listdir(tmp_path) == ["v.mrc"]  # no temporary left behind


def test_missing_file(tmp_path):
    with pytest.raises(IsonetError, match=r"nothere\.mrc: file not found"):
        read_volume(tmp_path / "nothere.mrc")


def test_not_an_mrc_file(tmp_path):
    path = tmp_path / "junk.mrc"
    path.write_text("this is not a volume\n" * 100)
    with pytest.raises(IsonetError, match=r"junk\.mrc: not a readable MRC file"):
        read_volume(path)
    short = tmp_path / "short.mrc"
    short.write_text("hi")
    with pytest.raises(IsonetError, match=r"short\.mrc: not an MRC file \(2 bytes"):
        read_header(short)


def test_three_d_volume_with_any_space_group_is_read(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "ispg0.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.header.ispg = 0  # marks an image stack; several programs write tomograms so
    assert np.array_equal(read_volume(path), data)


def test_truncated_file_refused_by_header_check(tmp_path):
    path = tmp_path / "cut.mrc"
    write_volume(path, np.ones((4, 5, 6), np.float32))
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 8)
    with pytest.raises(IsonetError, match=r"cut\.mrc: truncated or not an MRC file \(its header promises 1504 bytes"):
        read_header(path)


def test_two_d_and_four_d_rejected(tmp_path):
    image = tmp_path / "image.mrc"
    with mrcfile.new(image) as mrc:
        mrc.set_data(np.zeros((5, 6), np.float32))
    with pytest.raises(IsonetError, match=r"image\.mrc: expected a 3-D volume"):
        read_volume(image)
    stack = tmp_path / "stack.mrc"
    with mrcfile.new(stack) as mrc:
        mrc.set_data(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(IsonetError, match=r"stack\.mrc: expected a 3-D volume"):
        read_volume(stack)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_rejected(tmp_path, bad):
    data = np.zeros((3, 3, 3), np.float32)
    data[1, 2, 0] = bad
    path = tmp_path / "bad.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
    with pytest.raises(IsonetError, match=r"bad\.mrc: volume contains 1 NaN or Inf"):
        read_volume(path)
    assert np.isnan(read_volume(path, check_finite=False)[1, 2, 0]) == np.isnan(bad)


def test_refuses_to_write_non_3d(tmp_path):
    with pytest.raises(IsonetError, match="2-D array"):
        write_volume(tmp_path / "x.mrc", np.zeros((3, 3)))
    assert not (tmp_path / "x.mrc").exists()


def test_reads_real_tomogram(real_data_dir):
    volume, header = read_volume(os.path.join(real_data_dir, "mt13pf_crop.mrc"), return_header=True)
    assert volume.shape == (36, 206, 94)
    assert header.voxel_size[0] == pytest.approx(10.52, abs=0.01)


def test_written_files_get_normal_permissions(tmp_path):
    path = tmp_path / "v.mrc"
    write_volume(path, np.zeros((2, 2, 2), np.float32))
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # what open() gives under the current umask
    assert (path.stat().st_mode & 0o777) == (reference.stat().st_mode & 0o777)

"""Parsing of fire's raw values into canonical parameter types."""

import pytest

from isonet.errors import UsageError
from isonet.params import parse_bool, parse_choice, parse_gpu_ids, parse_index_list, parse_number_tuple


@pytest.mark.parametrize("raw, expected", [
    (None, None), ("None", None), (3, [3]), ((1, 2, 4), [1, 2, 4]), ("5-7,2", [2, 5, 6, 7]),
    ("1, 3-5", [1, 3, 4, 5]), ("1 3", [1, 3]), ((1, "3-4"), [1, 3, 4]), (2.0, [2]),
])
def test_parse_index_list(raw, expected):
    assert parse_index_list(raw) == expected


@pytest.mark.parametrize("raw", ["a", "3-1", "1.5", (1, "x")])
def test_parse_index_list_errors(raw):
    with pytest.raises(UsageError, match="--tomo_idx"):
        parse_index_list(raw)


@pytest.mark.parametrize("raw, expected", [
    (None, None), (0, [0]), ((0, 1), [0, 1]), ("0,1,2,3", [0, 1, 2, 3]), ("1,1", [1]), (-1, []), ("cpu", []),
])
def test_parse_gpu_ids(raw, expected):
    assert parse_gpu_ids(raw) == expected


def test_parse_gpu_ids_errors():
    with pytest.raises(UsageError, match="--gpuID"):
        parse_gpu_ids("a,b")
    with pytest.raises(UsageError, match="must be >= 0"):
        parse_gpu_ids((0, -2))


def test_parse_number_tuple():
    assert parse_number_tuple(0.1, "noise_level") == (0.1,)
    assert parse_number_tuple((0.05, 0.1), "noise_level") == (0.05, 0.1)
    assert parse_number_tuple("3,3,3", "kernel", int, 3) == (3, 3, 3)
    assert parse_number_tuple(11, "noise_start_iter", int) == (11,)
    with pytest.raises(UsageError, match="--kernel: expected 3 values"):
        parse_number_tuple((3, 3), "kernel", int, 3)
    with pytest.raises(UsageError, match="--kernel: expected whole numbers"):
        parse_number_tuple((3.5, 3, 3), "kernel", int, 3)
    with pytest.raises(UsageError, match="--noise_level: expected numbers"):
        parse_number_tuple("a,b", "noise_level")


def test_parse_bool_and_choice():
    assert parse_bool(True, "pool") is True
    assert parse_bool("false", "pool") is False
    assert parse_bool("Yes", "pool") is True
    with pytest.raises(UsageError, match="--pool: expected True or False"):
        parse_bool("maybe", "pool")
    assert parse_choice("WBP", "reconstruction", ("wbp", "sirt")) == "wbp"
    with pytest.raises(UsageError, match="--reconstruction: expected one of wbp, sirt"):
        parse_choice("art", "reconstruction", ("wbp", "sirt"))

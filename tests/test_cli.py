"""The console command: overview, help, option checking, exit codes, logging, check."""

import re

import pytest

from conftest import run_cli
from isonet.cli import Commands, _parse_parameter_docs, command_help
import inspect


def test_overview_lists_every_command_once():
    result = run_cli()
    assert result.returncode == 0
    names = [n for n, _ in inspect.getmembers(Commands, inspect.isfunction) if not n.startswith("_")]
    assert {"prepare_star", "prepare_subtomo_star", "check"} <= set(names)
    for name in names:
        lines = [line for line in result.stdout.splitlines() if re.match(rf"^\s+{name}\s+\S", line)]
        assert len(lines) == 1, name


def test_every_parameter_of_every_command_is_documented():
    for name, function in inspect.getmembers(Commands, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = [p for p in inspect.signature(function).parameters if p != "self"]
        docs = _parse_parameter_docs(function)
        undocumented = [p for p in params if not docs.get(p)]
        assert not undocumented, f"{name}: undocumented {undocumented}"
        text = command_help(name)
        for p in params:
            assert p in text or p.upper() in text


def test_command_help_shows_defaults_and_meaning():
    result = run_cli("prepare_star", "--help")
    assert result.returncode == 0
    assert re.search(r"--pixel_size\s+Pixel size in Å.*\(default: 10\.0\)", result.stdout)
    assert re.search(r"--tilt_min\s+.*\(default: -60\.0\)", result.stdout)
    assert "FOLDER_NAME" in result.stdout and "--log_level" in result.stdout


def test_unknown_option_exits_2(tmp_path):
    result = run_cli("prepare_star", "x", "--pixelsize", "3", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown option --pixelsize for 'prepare_star'" in result.stderr


def test_unknown_command_exits_2():
    result = run_cli("refnie")
    assert result.returncode == 2
    assert "unknown command 'refnie'" in result.stderr


def test_missing_argument_exits_2(tmp_path):
    result = run_cli("prepare_star", cwd=tmp_path)
    assert result.returncode == 2


def test_debug_shows_traceback_info_does_not(tmp_path):
    quiet = run_cli("prepare_star", "nothing", cwd=tmp_path)
    loud = run_cli("prepare_star", "nothing", "--log_level", "debug", cwd=tmp_path)
    assert "Traceback" not in quiet.stdout + quiet.stderr
    assert "Traceback" in loud.stdout
    assert quiet.returncode == loud.returncode == 1
    log = (tmp_path / "isonet.log").read_text()
    assert len(re.findall(r"ERROR .*nothing: folder not found", log)) == 2


def test_log_file_option(tmp_path):
    result = run_cli("prepare_star", "nothing", "--log_file=mylog.txt", cwd=tmp_path)
    assert result.returncode == 1
    assert "folder not found" in (tmp_path / "mylog.txt").read_text()
    assert not (tmp_path / "isonet.log").exists()


@pytest.mark.parametrize("value", ["0.1", "1e-3"])
def test_numbers_in_both_option_forms(tmp_path, value):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.mrc").write_bytes(b"")
    first = run_cli("prepare_star", "t", "--pixel_size", value, "--output_star", "a.star", cwd=tmp_path)
    second = run_cli("prepare_star", "t", f"--pixel_size={value}", "--output_star=b.star", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert (tmp_path / "a.star").read_text().split("\n")[3:] == (tmp_path / "b.star").read_text().split("\n")[3:]


def test_check_command_runs_conv3d():
    result = run_cli("check", "--log_file", "")
    assert result.returncode == 0, result.stderr
    assert re.search(r"tensorflow 2\.\d+", result.stdout)
    assert "Conv3D forward pass on 16^3: OK" in result.stdout
    assert re.search(r"TensorFlow sees \d+ CPU device\(s\)", result.stdout)

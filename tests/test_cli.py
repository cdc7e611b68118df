"""The console command: overview, help, option checking, exit codes, logging, check."""

import re

import numpy as np
import pytest

from conftest import run_cli
from isonet.cli import Commands, command_help
from isonet.commands import ALL
from isonet.io.mrc import write_volume
from isonet.io.star import read_star
import inspect


def test_overview_lists_every_command_once():
    result = run_cli()
    assert result.returncode == 0
    names = [n for n, _ in inspect.getmembers(Commands, inspect.isfunction) if not n.startswith("_")]
    assert {"prepare_star", "prepare_subtomo_star", "check"} <= set(names)
    assert sorted(names) == sorted(spec.name for spec in ALL)
    for name in names:
        lines = [line for line in result.stdout.splitlines() if re.match(rf"^\s+{name}\s+\S", line)]
        assert len(lines) == 1, name


def test_every_parameter_of_every_command_is_documented_with_its_default_once():
    for spec in ALL:
        text = command_help(spec.name)
        for param in spec.params:
            assert param.help, f"{spec.name}: --{param.name} undocumented"
            if param in spec.options:
                lines = [line for line in text.splitlines() if line.startswith(f"  --{param.name} ")]
                assert len(lines) == 1, (spec.name, param.name)
                assert lines[0].count("default") == 1, lines[0]
            else:
                assert param.name.upper() in text


def test_command_help_shows_defaults_and_meaning():
    result = run_cli("prepare_star", "--help")
    assert result.returncode == 0
    assert re.search(r"--pixel_size\s+Pixel size.*\(default: from the MRC header, else the metadata, else 10 Å; > 0\)",
                     result.stdout)
    assert re.search(r"--tilt_min\s+.*\(default: from the metadata, else -60°; \[-90, 90\]\)", result.stdout)
    subtomo = run_cli("prepare_subtomo_star", "--help").stdout
    assert re.search(r"--pixel_size\s+Pixel size .*\(default: 10\.0 Å; > 0\)", subtomo)
    assert re.search(r"--tilt_min\s+.*\(default: -60\.0 degrees; \[-90, 90\]\)", subtomo)
    assert "FOLDER_NAME" in result.stdout and "--log_level" in result.stdout
    iterations = [line for line in run_cli("refine", "--help").stdout.splitlines() if line.startswith("  --iterations ")]
    assert iterations == ["  --iterations             Number of refinement iterations. (default: 30; >= 1)"]


def test_unknown_command_exits_2():
    """The console command's own exit status; every other usage error is a case of test_bad_inputs.py."""
    result = run_cli("refnie")
    assert result.returncode == 2
    assert result.stderr == "ERROR: unknown command 'refnie' (run 'isonet.py --help' for the list)\n"


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
def test_numbers_in_both_option_forms(tmp_path, run_main, value):
    (tmp_path / "t").mkdir()
    write_volume(tmp_path / "t" / "a.mrc", np.zeros((2, 2, 2), np.float32))
    first = run_main("prepare_star", "t", "--pixel_size", value, "--output_star", "a.star", cwd=tmp_path)
    second = run_main("prepare_star", "t", f"--pixel_size={value}", "--output_star=b.star", cwd=tmp_path)
    assert first[0] == second[0] == 0
    for star in ("a.star", "b.star"):
        assert read_star(tmp_path / star)["rlnPixelSize"].tolist() == [float(value)]


def test_check_command_runs_conv3d(tmp_path):
    """``isonet.py check`` imports TensorFlow and runs a Conv3D; without an NVIDIA GPU not a line on stderr."""
    from isonet.devices import nvidia_gpu_visible
    result = run_cli("check", "--log_file", "", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"tensorflow 2\.\d+", result.stdout)
    assert "Conv3D forward pass on 16^3: OK" in result.stdout
    assert re.search(r"TensorFlow sees \d+ CPU device\(s\)", result.stdout)
    if not nvidia_gpu_visible():  # with a GPU, CUDA lines on stderr are real messages
        assert result.stderr == ""

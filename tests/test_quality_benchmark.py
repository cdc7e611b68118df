"""The quality benchmark's bookkeeping (benchmarks/quality.py): seeds grouped, means and the verdict."""

import importlib.util
import os

from conftest import REPO

_SPEC = importlib.util.spec_from_file_location("quality_benchmark", os.path.join(REPO, "benchmarks", "quality.py"))
quality = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(quality)


def _entry(band, z, measured=0.5, z_over_x=1.5):
    return {"wedge_bands": {"10-30": band}, "correlation": {"measured": measured}, "fsc_0.143": {"z": z},
            "z_over_x_0.143": z_over_x}


def test_seed_base():
    assert quality.seed_base("halves_n2n_seed1") == "halves_n2n"
    assert quality.seed_base("isonet1_seed2") == "isonet1"
    assert quality.seed_base("halves") == "halves"


def test_every_benchmark_method_runs_with_todays_options():
    assert {name: quality.method_problem(options) for name, options in quality.METHODS.items()
            if quality.method_problem(options)} == {}
    assert quality.method_problem(dict(method="halves", mw_target="other")) == "refine has no option(s) ['mw_target']"


def test_seed_means_and_verdict():
    per_dataset = {
        "a": {"raw": _entry(0.0, 200.0), "halves": _entry(0.6, 60.0), "halves_seed1": _entry(0.8, 80.0),
              "isonet1": _entry(0.5, 50.0), "isonet1_seed1": _entry(0.6, 60.0)},
        "b": {"raw": _entry(0.0, 200.0), "halves": _entry(0.3, 40.0), "halves_seed1": _entry(0.5, 50.0),
              "halves_seed2": _entry(0.4, 30.0), "isonet1": _entry(0.5, 90.0), "isonet1_seed1": _entry(0.5, 70.0)},
    }
    text = quality.seed_mean_tables(per_dataset)
    lines = text.splitlines()
    # a: halves mean band 0.700 (0.6-0.8), Z 70; isonet1 0.550, Z 55. b: halves 0.400, Z 40; isonet1 0.500, Z 80.
    assert "| a | halves (2) | 0.700 (0.600-0.800) | 0.500 (0.500-0.500) | 70 (60-80) | 1.50 (1.50-1.50) |" in lines
    assert "| b | halves (3) | 0.400 (0.300-0.500) | 0.500 (0.500-0.500) | 40 (30-50) | 1.50 (1.50-1.50) |" in lines
    assert "| b | isonet1 (2) | 0.500 (0.500-0.500) | 0.500 (0.500-0.500) | 80 (70-90) | 1.50 (1.50-1.50) |" in lines
    assert not any("raw" in line for line in lines)  # one "seed" only: not shown
    # medians over datasets of the means: halves band (0.7 + 0.4) / 2, Z (70 + 40) / 2
    assert "| halves (2) | 0.550 | 0.500 | 55 | 1.50 |" in lines
    assert lines[-1] == ("halves beats isonet1 (means over seeds) in the 10-30° band on 1/2 datasets, in Z FSC on "
                         "1/2; loses the band on ['b'], Z on ['a'].")
    assert quality.seed_mean_tables({"a": {"halves": _entry(0.6, 60.0)}}) == ""


def test_saved_networks_in_iteration_order(tmp_path):
    from isonet.refine.outputs import model_path
    for iteration in (3, 1, 0, 9):  # 0: the untrained network; 9: beyond the budget
        open(model_path(str(tmp_path), iteration), "w").close()
    networks = quality.saved_networks(str(tmp_path), 8)
    assert list(networks) == [1, 3]
    assert networks[3] == model_path(str(tmp_path), 3)
    assert quality.saved_networks(str(tmp_path / "none"), 8) == {}


def _timed(band, z, train_seconds, steps=400, predict_seconds=10.0):
    return dict(_entry(band, z), timing={"steps": steps, "batch_size": 4, "train_seconds": train_seconds,
                                         "predict_seconds": predict_seconds})


def test_equal_time_steps():
    ours = _timed(0.5, 50.0, train_seconds=200.0)  # 0.5 s per step
    assert quality.equal_time_steps(ours, _timed(0.4, 60.0, train_seconds=2000.0)) == 40  # 10x our step
    assert quality.equal_time_steps(ours, _timed(0.4, 60.0, train_seconds=290.0)) is None  # 1.45x: same steps
    assert quality.equal_time_steps(ours, _timed(0.4, 60.0, train_seconds=300.0)) == 267  # 1.5x
    assert quality.equal_time_steps(ours, {"timing": {"steps": 400}}) is None  # network kept: no time


def test_peer_rows_are_cached_with_the_budget():
    budget = dict(quality.BUDGET)
    assert quality.run_settings("isonet2", budget) == {"budget": json_like(budget), "options": {"peer": "isonet2"}}
    assert quality.run_settings("isonet2_equal_time", budget)["options"] == {"peer": "isonet2",
                                                                            "steps": "equal wall clock"}
    peer_budget = quality.peer_budget(budget)
    assert (peer_budget.steps, peer_budget.batch_size, peer_budget.cube, peer_budget.subtomos) == (400, 4, 32, 40)
    assert quality.peer_budget(budget, steps=37).steps == 37


def test_a_peer_rows_training_seed():
    budget = dict(quality.BUDGET, seed=3)
    assert quality.peer_seed("deepdewedge", budget) == 3
    assert quality.peer_seed("deepdewedge_seed2", budget) == 2
    assert quality.peer_budget(dict(budget, seed=quality.peer_seed("deepdewedge_seed12", budget))).seed == 12


def json_like(value):
    import json
    return json.loads(json.dumps(value))


def test_side_by_side_table():
    per_dataset = {
        "a": {"raw": _entry(0.0, 200.0), "halves": _timed(0.6, 60.0, 200.0, predict_seconds=20.0),
              "peer": _timed(0.5, 80.0, 2000.0, predict_seconds=400.0)},
        "b": {"raw": _entry(0.1, 180.0), "deconv": _entry(0.2, 170.0), "halves": _timed(0.8, 40.0, 240.0),
              "peer": _timed(0.3, 100.0, 1600.0), "only_b": _timed(0.9, 30.0, 100.0)},
    }
    lines = quality.side_by_side_table(per_dataset).splitlines()
    assert lines[0] == "| row (2 datasets) | 10-30° | measured | Z Å | Z/X | steps | s/step | predict s |"
    # halves: median band (0.6 + 0.8) / 2, Z (60 + 40) / 2, s/step (0.5 + 0.6) / 2, predict (20 + 10) / 2
    assert "| halves | 0.700 | 0.500 | 50 | 1.50 | 400 | 0.55 | 15 |" in lines
    assert "| peer | 0.400 | 0.500 | 90 | 1.50 | 400 | 4.50 | 205 |" in lines
    # the input row: raw on a, deconvolved on b; no timing
    assert "| input | 0.100 | 0.500 | 185 | 1.50 | - | - | - |" in lines
    assert not any(line.startswith("| only_b") for line in lines)  # ran on one dataset of two


def test_peer_options_fail_with_one_line(capsys):
    import pytest
    for argv, message in ((["--peers", "foo"], "--peers: unknown peer(s) ['foo']"),
                          (["--peers", "isonet2", "--checkouts", "isonet2"], "--checkouts: ['isonet2']: expected"),
                          (["--peers", "isonet2", "--checkouts", "isonet2=/no/such/dir"], "['isonet2=/no/such/dir']"),
                          (["--peers", "isonet2"], "--checkouts: ['isonet2'] are not on the package index")):
        with pytest.raises(SystemExit) as raised:
            quality.main(["--datasets", "cytosol"] + argv)
        assert raised.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and message in errors[0]


def test_placement_table_samples_the_halves_fsc_curve(tmp_path):
    import numpy as np
    frequency = np.linspace(0.0, 0.05, 11)  # 1/Å, 10 Å voxels
    found = {"cytosol": {"half_correlation": 0.5, "half_fsc_measured_0.143": 45.0,
                         "half_fsc_measured": (frequency, 1.0 - 20.0 * frequency),  # FSC 1 - 20 f
                         "input_measured_correlation": 0.6}}
    lines = quality.placement_table(found).splitlines()
    assert lines[0].count("FSC at") == len(quality.PLACEMENT_RESOLUTIONS)
    # 1 - 20 / 100 = 0.80, 1 - 20 / 60 = 0.67, 1 - 20 / 40 = 0.50, 1 - 20 / 30 = 0.33
    assert lines[2] == "| cytosol | 0.5 | 0.500 | 45 | 0.80 | 0.67 | 0.50 | 0.33 | 0.600 |"
    quality.plot_placement(found, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_kept_network_keeps_its_training_time(tmp_path):
    import json
    path = tmp_path / "halves.json"
    assert quality.previous_training_seconds(str(path)) is None
    path.write_text(json.dumps({"timing": {"steps": 400, "train_seconds": 252.0, "predict_seconds": 6.0}}))
    assert quality.previous_training_seconds(str(path)) == 252.0
    path.write_text(json.dumps({"timing": {"steps": 400}}))
    assert quality.previous_training_seconds(str(path)) is None


def test_budget_parsing_and_cache_folders():
    changes = quality.parse_budget("steps_per_epoch=200,noise_start_iter=6:8,cube_size=48")
    assert changes == {"steps_per_epoch": 200, "noise_start_iter": (6, 8), "cube_size": 48}
    budget, folder = quality.changed_budget(quality.BUDGET, changes, "w")
    assert budget["steps_per_epoch"] == 200 and budget["iterations"] == quality.BUDGET["iterations"]
    # the folder name of the command line's text, so that runs made with --budget are found by the ladder
    assert folder == os.path.join("w", "budget_cube_size48_noise_start_iter6:8_steps_per_epoch200")
    assert quality.changed_budget(quality.BUDGET, {}, "w") == (quality.BUDGET, "w")
    # every budget trains on the datasets of the main cache folder
    assert quality.datasets_folder(folder) == quality.datasets_folder("w") == os.path.join("w", "datasets")
    for text, message in (("steps=3", "unknown setting 'steps'"), ("filter_base=x", "filter_base='x': expected int")):
        try:
            quality.parse_budget(text)
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(text)


def test_a_cube_rung_changes_only_extract():
    budget, _ = quality.changed_budget(quality.BUDGET, quality.BUDGET_LADDER["cube48"], "w")
    assert quality.peer_budget(budget).cube == 48 and quality.peer_budget(quality.BUDGET).cube == quality.CUBE_SIZE
    from isonet.refine.config import RefineConfig
    assert not set(quality.BUDGET_EXTRAS) & set(RefineConfig.setting_names())  # train() must drop them for refine


def test_budget_ladder_table():
    timed = dict(_entry(0.7, 50.0, measured=0.8), timing={"train_seconds": 800.0, "steps": 1600})
    found = {("a", "x1"): {"raw": _entry(0.0, 210.0), "deconv": _entry(0.1, 200.0, measured=0.3),
                           "halves": dict(_entry(0.5, 80.0), timing={"train_seconds": 300.0, "steps": 400})},
             ("a", "x4"): {"raw": _entry(0.0, 210.0), "deconv": _entry(0.1, 200.0, measured=0.3), "halves": timed},
             ("a", "filter_base32"): {"halves": dict(_entry(0.6, 60.0), timing={"steps": 400})}}
    lines = quality.budget_ladder_table(found, quality.BUDGET).splitlines()
    assert lines[2:] == ["| a | input |  |  |  |  | 0.100 | 0.300 | 200 |  |",  # deconvolved, once
                         "| a | halves | x1 | 400 | 8 | 32 | 0.500 | 0.500 | 80 | 0.75 |",
                         "| a | halves | x4 | 1600 | 8 | 32 | 0.700 | 0.800 | 50 | 0.50 |",
                         "| a | halves | filter_base32 | 400 | 32 | 32 | 0.600 | 0.500 | 60 | - |"]

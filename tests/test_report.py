"""report.html of a refine result folder (isonet.evaluation.report) and ``isonet.py report``."""

import base64
import json
import os
import re

import numpy as np
import pytest
from conftest import run_cli

from isonet.errors import IsonetError
from isonet.evaluation.pictures import plot_loss_curves, save_snapshot
from isonet.evaluation.report import build_report, disk_usage, refresh_report


def _fake_run(folder, done=3, planned=5):
    """A result folder as refine leaves it after ``done`` of ``planned`` iterations (no networks trained)."""
    os.makedirs(folder)
    history = []
    rng = np.random.default_rng(1)
    for it in range(1, done + 1):
        history.append({"iteration": it, "loss": [0.5 / it, 0.4 / it], "val_loss": [0.45 / it],
                        "noise_level": 0.0 if it < 3 else 0.1,
                        "seconds": {"predicting": 2.0, "validation_pairs": 1.0, "training": 57.0, "pairs": 30.0}})
        state = {"iterations": planned, "seed": 7, "filter_base": 8, "iter_count": it, "history": history,
                 "losses": history[-1]["loss"], "val_losses": history[-1]["val_loss"]}
        with open(os.path.join(folder, f"refine_iter{it:02d}.json"), "w") as handle:
            json.dump(state, handle)
        volume = rng.standard_normal((16, 16, 16)).astype(np.float32)
        save_snapshot([volume, volume * 0.5], os.path.join(folder, f"snapshot_iter{it:02d}.png"), difference=True)
        with open(os.path.join(folder, f"model_iter{it:02d}.h5"), "wb") as handle:
            handle.write(b"\0" * 3000)
    with open(os.path.join(folder, "sub_0_iter01.mrc"), "wb") as handle:
        handle.write(b"\0" * 5000)
    plot_loss_curves(history, os.path.join(folder, "loss.png"))
    return folder


def _embedded(page, path):
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode("ascii") in page


def test_report_shows_every_iteration_offline(tmp_path):
    folder = _fake_run(str(tmp_path / "results"))
    page = build_report(folder)
    for it in (1, 2, 3):
        assert f'id="iteration{it}"' in page and _embedded(page, os.path.join(folder, f"snapshot_iter{it:02d}.png"))
        assert f"<td>{it}</td><td>{0.0 if it < 3 else 0.1:g}</td><td>{0.4 / it:.4f}</td>" in page
    assert _embedded(page, os.path.join(folder, "loss.png"))
    # self-contained: every src is a data URI, no links to files or sites
    assert re.findall(r'src="([^"]*)"', page) and all(s.startswith("data:image/png;base64,")
                                                       for s in re.findall(r'src="([^"]*)"', page))
    assert "href=" not in page and "<link" not in page
    assert "3 of 5" in page and "1 min 00 s" in page and "2 min 00 s" in page  # per iteration; 2 left
    assert "<td>filter_base</td><td>8</td>" in page and "<td>history</td>" not in page


def test_disk_usage_groups(tmp_path):
    folder = _fake_run(str(tmp_path / "results"), done=2)
    total, groups = disk_usage(folder)
    sizes = dict(groups)
    assert sizes["networks (model_iterNN.h5 and their info)"] == 6000
    assert sizes["subtomograms predicted per iteration (*_iterNN.mrc)"] == 5000
    assert total == sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)) == sum(sizes.values())


def test_refresh_report_and_cli(tmp_path, caplog, run_main):
    folder = _fake_run(str(tmp_path / "results"), done=2, planned=2)
    refresh_report(folder)
    with open(os.path.join(folder, "report.html")) as handle:
        page = handle.read()
    assert "2 of 2" in page and "estimated time left" not in page
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp.html")]  # written atomically
    refresh_report(str(tmp_path / "absent"))  # never raises: refine must go on
    assert "report.html not written" in caplog.text
    with pytest.raises(IsonetError, match="no refine_iterNN.json"):
        build_report(str(tmp_path))
    result = run_cli("report", "results", "--out", "copy.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "copy.html") as handle:
        assert _embedded(handle.read(), os.path.join(folder, "snapshot_iter02.png"))
    status, _, err = run_main("report", "nowhere", cwd=tmp_path)
    assert status == 1 and err.startswith("ERROR: ") and "nowhere: folder not found" in err

"""Refine end to end on tiny data: CLI run, outputs, exact resume, model reload, several devices."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_in_process
from scipy.ndimage import gaussian_filter

from isonet.io.mrc import read_volume, write_volume
from isonet.io.star import read_star, set_column, write_star
from isonet.normalize import normalize
from isonet.prepare import prepare_subtomo_star
from isonet.wedge import wedge_mask

N_SUBTOMOS, CROP, CUBE = 4, 24, 16
# Few steps: with IsoNet 1's Normal(0, 0.02) initialisation and BatchNorm moving statistics a tiny
# network stays close to the identity at first, so the missing wedge fills slowly (see the wedge test).
TINY = ["--epochs", 1, "--steps_per_epoch", 24, "--filter_base", 8, "--unet_depth", 2, "--learning_rate", 0.004,
        "--preprocessing_ncpus", 2]
#: The run of the :func:`run` fixture: 2 iterations, noise from iteration 2, every prediction set kept.
RUN = ["--iterations", 2, "--noise_level", 0.1, "--noise_start_iter", 2, "--seed", 7, "--keep_last", 0, *TINY]


def _make_subtomograms(folder, halves=False):
    """Blobby subtomograms with a ±60 or -45/55 missing wedge, dark on bright as in tomograms.

    ``halves``: also half subtomograms (the subtomogram plus independent noise) and their normalisation.
    """
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(folder, "subtomo"))
    tilts = [(-60.0, 60.0), (-45.0, 55.0)] * (N_SUBTOMOS // 2)
    for i, (low, high) in enumerate(tilts):
        blobs = gaussian_filter((rng.random((CROP,) * 3) > 0.97).astype(np.float32), 1.5)
        measured = np.fft.irfftn(np.fft.rfftn(blobs) * wedge_mask(blobs.shape, low, high, real=True),
                                  s=blobs.shape, axes=(0, 1, 2))
        write_volume(os.path.join(folder, "subtomo", f"sub_{i}.mrc"), -measured, voxel_size=10.0)
    star = os.path.join(folder, "subtomo.star")
    prepare_subtomo_star(os.path.join(folder, "subtomo"), star, cube_size=CUBE)
    table = read_star(star)
    set_column(table, "rlnTiltMin", [t[0] for t in tilts])
    set_column(table, "rlnTiltMax", [t[1] for t in tilts])
    for half in (1, 2) if halves else ():
        names = [f"subtomo/sub_{i}_half{half}.mrc" for i in range(N_SUBTOMOS)]
        for i, name in enumerate(names):
            volume = read_volume(os.path.join(folder, "subtomo", f"sub_{i}.mrc"))
            write_volume(os.path.join(folder, name), volume + rng.normal(0, 0.05, volume.shape).astype(np.float32))
        set_column(table, f"rlnImageNameHalf{half}", names)
        set_column(table, f"rlnNormMeanHalf{half}", [0.0] * N_SUBTOMOS)
        set_column(table, f"rlnNormStdHalf{half}", [0.1] * N_SUBTOMOS)
    write_star(table, star)
    return star


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One CLI run of 2 iterations (noise from iteration 2, every prediction set kept), into an existing
    result_dir."""
    folder = str(tmp_path_factory.mktemp("refine"))
    _make_subtomograms(folder)
    os.makedirs(os.path.join(folder, "results"))
    open(os.path.join(folder, "results", "mine.txt"), "w").close()
    result = run_in_process("refine", "subtomo.star", *RUN, "--data_dir", "data", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder, result


def test_cli_run_writes_every_file(run):
    folder, result = run
    results = os.path.join(folder, "results")
    assert os.path.isfile(os.path.join(folder, "results~", "mine.txt"))  # renamed aside, not deleted
    names = set(os.listdir(results))
    for it in range(3):
        assert f"model_iter{it:02d}.h5" in names
        assert {f"sub_{i}_iter{it:02d}.mrc" for i in range(N_SUBTOMOS)} <= names
    with open(os.path.join(results, "refine_iter02.json")) as handle:
        state = json.load(handle)
    assert state["iter_count"] == 2 and state["seed"] == 7 and state["filter_base"] == 8
    assert state["batch_size"] == 4 and state["noise_level"] == [0.1]
    assert [h["noise_level"] for h in state["history"]] == [0.0, 0.1]
    assert [h["learning_rate"] for h in state["history"]] == [pytest.approx(0.004)] * 2  # IsoNet 1: constant
    assert len(state["losses"]) == 1 and len(state["val_losses"]) == 1 and state["losses"][0] > 0
    assert {"pairs", "training", "predicting"} <= set(state["history"][-1]["seconds"])
    noise_folders = os.listdir(os.path.join(results, "training_noise"))
    assert sorted(noise_folders) == ["noFilter_n16_tilt-45_55", "noFilter_n16_tilt-60_60"]
    data = os.path.join(folder, "data", "iter02")
    pairs = os.listdir(os.path.join(data, "train_y"))
    assert len(pairs) + len(os.listdir(os.path.join(data, "test_y"))) == 20 * N_SUBTOMOS
    assert read_volume(os.path.join(data, "train_y", pairs[0])).shape == (CUBE,) * 3
    assert "Noise level: 0.1" in result.stdout


def test_cli_run_log_reads_line_by_line(run):
    """Output to a pipe: iteration counters, one line per epoch with its losses, a run ETA, no Keras lines."""
    _, result = run
    lines = result.stdout.splitlines()
    assert "\r" not in result.stdout and "Epoch 1/1" not in result.stdout
    assert all(line[:4].isdigit() for line in lines)  # every line a whole, timestamped log line
    assert [line.split(" INFO ")[1] for line in lines if line.endswith(("INFO iteration 1/2", "INFO iteration 2/2"))] \
        == ["iteration 1/2", "iteration 2/2"]
    epochs = [line for line in lines if ", epoch 1/1: 24/24 step (100 %), done in " in line]
    assert len(epochs) == 2 and all("loss " in line and "val_loss " in line for line in epochs)
    done = [line for line in lines if " done: loss " in line]
    assert "iteration 1/2 done" in done[0] and "run ETA" in done[0] and "run ETA" not in done[1]


def _missing_fraction(volume, tilts):
    power = np.abs(np.fft.rfftn(volume - volume.mean())) ** 2
    missing = np.broadcast_to(wedge_mask(volume.shape, *tilts, real=True) == 0, power.shape)
    return power[missing].sum() / power.sum()


def test_predictions_fill_the_missing_wedge(run):
    folder, _ = run
    for i, tilts in enumerate([(-60, 60), (-45, 55)]):
        before = read_volume(os.path.join(folder, "results", f"sub_{i}_iter00.mrc"))
        after = read_volume(os.path.join(folder, "results", f"sub_{i}_iter01.mrc"))
        # Plumbing: the wedge-filtered stand-ins are written with an empty wedge, and the first network's
        # predictions replace them. Whether the fill is right is tested end to end (test_end_to_end.py).
        assert _missing_fraction(before, tilts) < 1e-12
        assert _missing_fraction(after, tilts) > 1e-7


def test_saved_model_reproduces_written_prediction(run):
    from isonet.network.unet import load_model
    folder, _ = run
    model = load_model(os.path.join(folder, "results", "model_iter02.h5"))
    volume = normalize(-read_volume(os.path.join(folder, "subtomo", "sub_0.mrc")))
    output = np.asarray(model.predict(volume[None, ..., None], verbose=0))[0, ..., 0]
    written = read_volume(os.path.join(folder, "results", "sub_0_iter02.mrc"))
    assert np.allclose(-normalize(output), written, atol=1e-4)


def test_continuing_a_finished_run_reuses_its_final_predictions_and_keeps_the_last(run):
    """--continue_from the last JSON with more iterations: set 2 is not predicted again; --keep_last 1."""
    folder, _ = run
    more = os.path.join(folder, "more")
    shutil.copytree(os.path.join(folder, "results"), more)  # copy2 keeps the modification times
    result = run_in_process("refine", "--continue_from", "more/refine_iter02.json", "--result_dir", "more",
                            "--iterations", 3, "--keep_last", 1, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"predictions_iter02.json: reusing {N_SUBTOMOS} of {N_SUBTOMOS} predictions" in result.stdout
    assert "predicting iter02" not in result.stdout and "predicting iter03" in result.stdout
    names = set(os.listdir(more))
    assert {n for n in names if n.startswith("sub_")} == {f"sub_{i}_iter03.mrc" for i in range(N_SUBTOMOS)}
    assert {n for n in names if n.startswith("predictions_")} == {"predictions_iter03.json"}
    assert {f"model_iter{it:02d}.h5" for it in range(4)} <= names  # networks are all kept
    with open(os.path.join(more, "refine_iter03.json")) as handle:
        state = json.load(handle)
    assert (state["result_dir"], state["iterations"], state["keep_last"]) == ("more", 3, 1)  # explicit values won
    assert state["seed"] == 7 and state["noise_level"] == [0.1]  # the others restored


def test_killed_run_continues_as_if_uninterrupted(run):
    """kill -9 as iteration 2 of 2 starts, then --continue_from refine_iter01.json into the same folder: the
    losses, weights and predictions of the uninterrupted run (:func:`run`)."""
    import signal
    folder, _ = run
    cut = subprocess.Popen([sys.executable, os.path.join(REPO, "bin", "isonet.py"), "refine", "subtomo.star",
                            *map(str, RUN), "--result_dir", "cut", "--log_file", ""], cwd=folder,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
    for line in cut.stdout:  # iteration 2 starts after refine_iter01.json is written
        if line.rstrip().endswith("INFO iteration 2/2"):
            cut.send_signal(signal.SIGKILL)
            break
    assert cut.wait(timeout=600) == -signal.SIGKILL
    assert not os.path.exists(os.path.join(folder, "cut", "refine_iter02.json"))
    resumed = run_in_process("refine", "--continue_from", "cut/refine_iter01.json", cwd=folder)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    whole, again = (_final_state(os.path.join(folder, name)) for name in ("results", "cut"))
    assert again["result_dir"] == "cut" and again["iterations"] == 2
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in whole["history"]]
    assert again["val_losses"] == whole["val_losses"]
    weights = [_weights(os.path.join(folder, name, "model_iter02.h5")) for name in ("results", "cut")]
    assert list(weights[0]) == list(weights[1]) and weights[0]
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    for i in range(N_SUBTOMOS):
        np.testing.assert_array_equal(*(read_volume(os.path.join(folder, name, f"sub_{i}_iter02.mrc"))
                                        for name in ("results", "cut")))


def _final_state(results):
    with open(os.path.join(results, "refine_iter02.json")) as handle:
        return json.load(handle)


def _weights(path):
    """Dataset name -> array of an .h5 model file.

    The optimizer's group is named after the optimizer (``adam``, ``adam_1``, ... in a process that
    made several): that part of the names is left out.
    """
    import h5py
    found = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            found[re.sub(r"^optimizer_weights/[^/]+/", "optimizer_weights/", name)] = item[()]
    with h5py.File(path) as handle:
        handle.visititems(keep)
    return found


def test_loss_decreases_on_learnable_toy(tmp_path):
    """Refine's pairs of one subtomogram, one batch, tiny network: the loss must go down."""
    from isonet.network.unet import build_unet
    from isonet.refine.pairs import PairMaker
    from isonet.refine.training import import_keras
    keras = import_keras()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    volume = gaussian_filter(rng.standard_normal((CROP,) * 3), 1.0).astype(np.float32)
    write_volume(str(tmp_path / "s.mrc"), volume)
    x, y = PairMaker([str(tmp_path / "s.mrc")] * 2, [str(tmp_path / "s.mrc")] * 2, [(-60.0, 60.0)] * 2,
                     CUBE).pairs(0, [0, 5, 10, 17])
    model = build_unet(unet_depth=2, filter_base=4, drop_out=0.0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mae")
    losses = [float(model.train_on_batch(x[..., None], y[..., None])) for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.7 * losses[0]


def _count_calls(model, method):
    """Count the Python calls of ``model.<method>`` (train_step, predict_step): one per graph tracing."""
    calls = []
    original = getattr(model, method)

    def counted(data):
        calls.append(1)
        return original(data)

    setattr(model, method, counted)
    return calls


def test_restarted_model_trains_like_a_reloaded_one_without_retracing():
    """Iteration 2 on the kept model (restored Adam, reseeded dropout) equals iteration 2 on a reloaded model."""
    import tensorflow as tf
    from isonet.network.unet import build_unet
    from isonet.refine.training import compile_for_training, import_keras, restart_training
    keras = import_keras()
    strategy = tf.distribute.get_strategy()
    x = np.random.default_rng(0).standard_normal((8, 8, 8, 8, 1)).astype(np.float32)

    def train(model):
        model.fit(x, np.roll(x, 1, axis=1), batch_size=4, epochs=2, shuffle=False, verbose=0)

    keras.utils.set_random_seed(0)
    kept = build_unet(unet_depth=1, filter_base=4, drop_out=0.5)
    fresh = compile_for_training(kept, strategy, 0.01)
    train_traces = _count_calls(kept, "train_step")
    restart_training(kept, fresh, 5, 1)
    train(kept)
    reloaded = build_unet(unet_depth=1, filter_base=4, drop_out=0.5)
    reloaded.set_weights(kept.get_weights())
    traced_once = len(train_traces)
    restart_training(kept, fresh, 5, 2)
    assert int(kept.optimizer.iterations.numpy()) == 0
    train(kept)
    assert len(train_traces) == traced_once

    restart_training(reloaded, compile_for_training(reloaded, strategy, 0.01), 5, 2)
    train(reloaded)
    assert int(kept.optimizer.iterations.numpy()) == 4  # 2 epochs of 2 steps since the restart
    for a, b in zip(kept.get_weights() + [v.numpy() for v in kept.optimizer.variables],
                    reloaded.get_weights() + [v.numpy() for v in reloaded.optimizer.variables]):
        assert np.array_equal(a, b)

    # The iteration's learning rate is the one Adam steps with: 0 leaves the trainable weights as they were.
    before = [w.numpy() for w in kept.trainable_weights]
    restart_training(kept, fresh, 5, 3, learning_rate=0.0)
    train(kept)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, kept.trainable_weights))
    restart_training(kept, fresh, 5, 4, learning_rate=0.003)
    assert float(kept.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    train(kept)
    assert not all(np.array_equal(a, w.numpy()) for a, w in zip(before, kept.trainable_weights))


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """Two logical CPU devices (set before TensorFlow starts, hence a subprocess); also --remove_intermediate
    and the halves method's refresh of the batch statistics (the mirrored model's statistics updated outside
    the strategy's replicas)."""
    folder = str(tmp_path)
    _make_subtomograms(folder, halves=True)
    script = (
        "from isonet.log import setup_logging; setup_logging('info', None)\n"
        "from isonet.refine.config import RefineConfig\n"
        "from isonet.refine.loop import refine\n"
        "config = RefineConfig.from_cli(dict(subtomo_star='subtomo.star', iterations=1, epochs=1, "
        "steps_per_epoch=2, filter_base=4, unet_depth=2, seed=1, preprocessing_ncpus=2, gpuID=[], "
        "select_subtomo_number=2, remove_intermediate=True, method='halves'))\n"
        "history = refine(config, logical_cpus=2)\n"
        "print('LOSS', history[-1]['loss'][-1])\n"
        "print('REFRESHED', 'refresh_batch_norm' in history[-1]['seconds'])\n")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Devices: /device:CPU:0, /device:CPU:1" in result.stdout
    assert "Pairs: 34 training, 6 validation" in result.stdout  # 2 of 4 subtomograms; a share per device
    loss = float(result.stdout.split("LOSS")[1].split()[0])
    assert 0 < loss < 10 and "REFRESHED True" in result.stdout
    names = os.listdir(os.path.join(folder, "results"))
    assert "model_iter01.h5" in names and not [n for n in names if n.endswith(".mrc")]  # intermediates removed
    # the one-subtomogram snapshot is padded to a batch per device
    assert "snapshot_iter01.png" in names and "Snapshot not made" not in result.stdout


def test_report_shows_every_iteration(run):
    folder, _ = run
    results = os.path.join(folder, "results")
    with open(os.path.join(results, "report.html")) as handle:
        page = handle.read()
    for it in (1, 2):
        with open(os.path.join(results, f"snapshot_iter{it:02d}.png"), "rb") as handle:
            assert base64.b64encode(handle.read()).decode("ascii") in page
    assert "2 of 2" in page and 'src="data:image/png;base64,' in page


def test_calibration_batches_spread_over_the_subtomograms():
    from isonet.refine.pairs import calibration_batches

    class _Maker:  # pairs(index, rotations) -> inputs tagged with (index, rotation)
        def __len__(self):
            return 40

        def pairs(self, index, rotations):
            x = np.stack([np.full((4, 4, 4), 100 * index + r, np.float32) for r in rotations])
            return x, x

    batches = list(calibration_batches(_Maker(), 3, n_subtomograms=16, rotations=(0, 5)))
    assert [len(b) for b in batches] == [3] * 10 + [2]  # 32 inputs in batches of 3
    tags = [int(v) for b in batches for v in b[:, 0, 0, 0]]
    indices = sorted({t // 100 for t in tags})
    assert len(indices) == 16 and indices[0] == 0 and indices[-1] == 39  # first to last, evenly
    assert max(np.diff(indices)) <= 3 and {t % 100 for t in tags} == {0, 5}
    assert [len(b) for b in calibration_batches(_Maker(), 8, n_subtomograms=100, rotations=(1,))] == [8] * 5

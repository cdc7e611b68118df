"""What a person sees: progress as whole log lines off a terminal, refine's counters and ETA, quiet TensorFlow."""

import io
import logging
import os
import re

import numpy as np
import pytest

from isonet import log as isonet_log
from isonet.devices import nvidia_gpu_visible, quiet_lines
from isonet.log import Progress, duration_text, setup_logging
from isonet.refine.intermediate import PredictionSet, manifest_path, prune_predictions
from isonet.refine.progress import RunClock, run_eta_text, training_progress

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO [^\r]*$")


class FakeClock:
    """Monotonic seconds moved by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class NotATerminal(io.StringIO):
    def isatty(self):
        return False


@pytest.fixture
def logged(monkeypatch, tmp_path):
    """setup_logging with stdout a non-terminal stream; returns (stream, log file path)."""
    stream = NotATerminal()
    monkeypatch.setattr("sys.stdout", stream)
    log_file = tmp_path / "isonet.log"
    setup_logging("info", str(log_file))
    yield stream, log_file
    logger = logging.getLogger("isonet")
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    logger.propagate = True


def test_progress_off_a_terminal_is_whole_lines_every_tenth_and_at_the_end(logged):
    stream, log_file = logged
    clock = FakeClock()
    logging.getLogger("isonet").info("before")
    for _ in Progress(range(50), desc="make_mask", unit="tomogram", clock=clock):
        clock.now += 3.0  # 3 s per item: a 10 % step (5 items) every 15 s = MIN_GAP
    logging.getLogger("isonet").info("after")
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines)
    messages = [line.split(" INFO ", 1)[1] for line in lines]
    assert messages[0] == "before" and messages[-1] == "after"
    # 10 %, 20 %, ... 90 % while it runs, then the end line (100 % is never an interim line)
    assert [m.split(": ")[1].split(" ")[0] for m in messages[1:-1]] == [f"{n}/50" for n in range(5, 50, 5)] + ["50/50"]
    assert messages[1] == "make_mask: 5/50 tomogram (10 %), 15 s, 3 s/tomogram, ETA 2 min"
    assert messages[-2] == "make_mask: 50/50 tomogram (100 %), done in 2 min, 3 s/tomogram"
    assert log_file.read_text().splitlines() == lines  # the log file gets the same lines


def test_progress_lines_are_paced_by_time_when_steps_are_fast_or_slow(logged):
    stream, _ = logged
    clock = FakeClock()
    bar = Progress(total=1000, desc="tiles", unit="tile", clock=clock)
    for _ in range(1000):  # fast: 10 % steps every 4 s, at most one line per MIN_GAP (15 s)
        clock.now += 0.04
        bar.update()
    bar.close()
    slow = Progress(total=1000, desc="slow", unit="step", clock=clock)
    for _ in range(3):  # slow: 0.3 % per 40 s step, a line each INTERVAL (30 s)
        clock.now += 40.0
        slow.update()
    lines = stream.getvalue().splitlines()
    assert sum("tiles:" in line for line in lines) == 2 + 1  # near 16 and 32 s, and the end line
    assert sum("slow:" in line for line in lines) == 3


def test_short_inner_loops_log_nothing_and_disabled_bars_nothing_at_all(logged):
    stream, _ = logged
    clock = FakeClock()
    for _ in Progress(range(4), desc="chunks", leave=False, clock=clock):
        clock.now += 0.1
    for _ in Progress(range(4), desc="hidden", disable=True, clock=clock):
        clock.now += 100.0
    assert stream.getvalue() == ""


def test_under_a_terminal_bar_progress_lines_go_to_the_log_file_only(logged):
    stream, log_file = logged
    clock = FakeClock()
    with Progress(total=2, desc="predicting", unit="subtomo", bar=True, clock=clock) as bar:
        clock.now += 2.0
        bar.update(2)
    assert "predicting" not in stream.getvalue()
    assert "INFO predicting: 2/2 subtomo (100 %), done in 2 s, 1 subtomo/s" in log_file.read_text()


def test_durations_and_run_eta():
    assert [duration_text(s) for s in (42, 420, 7500)] == ["42 s", "7 min", "2 h 05 min"]
    assert run_eta_text([100.0], remaining=0) == ""
    # the first iteration (graph tracing) is left out once others exist: 3 x 60 s
    assert run_eta_text([300.0, 60.0, 60.0], remaining=3, now=0).startswith("run ETA 3 min (at ")
    clock = FakeClock()
    run = RunClock(4, 6, clock=clock)
    texts = []
    for iteration in (4, 5, 6):
        run.start(iteration)
        clock.now += 30.0
        texts.append(run.done(iteration))
    assert texts[0].startswith("run ETA 60 s") and texts[1].startswith("run ETA 30 s") and texts[2] == ""


def test_training_progress_replaces_keras_output(logged):
    """One line per epoch with steps, rate and losses, from a real (tiny) fit with verbose=0."""
    stream, _ = logged
    from isonet.devices import import_tensorflow
    import_tensorflow()
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mae")
    x, y = np.ones((16, 3), np.float32), np.zeros((16, 1), np.float32)
    callback = training_progress(3, 10)
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0, callbacks=[callback])
    lines = [line.split(" INFO ", 1)[1] for line in stream.getvalue().splitlines()]
    assert len(lines) == 2 and len(callback.step_seconds) == 8
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"iteration 3/10, epoch {epoch}/2: 4/4 step (100 %), done in ")
        assert re.search(r", loss \d\.\d{4}, val_loss \d\.\d{4}$", line)


CUINIT = ("E0000 00:00:1796148457.058288   30971 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
          "error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
STARTUP = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           "I0000 00:00:1796148453.338619   30971 port.cc:153] oneDNN custom operations are on. You may see "
           "slightly different numerical results\n"
           "I0000 00:00:1796148453.338975   30971 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
           "GPU will not be used.\n")
REAL = "E0000 00:00:1.0 12 some_op.cc:7] Out of memory while allocating\n"


def test_tensorflow_startup_noise_is_dropped_and_real_errors_kept():
    assert quiet_lines(STARTUP + CUINIT + REAL, gpu_visible=False) == REAL
    # with an NVIDIA GPU present a CUDA failure is real: kept
    assert quiet_lines(STARTUP + CUINIT + REAL, gpu_visible=True) == STARTUP.splitlines(True)[2] + CUINIT + REAL


def test_nvidia_gpu_visibility(tmp_path):
    (tmp_path / "nvidia0").touch()
    devices = str(tmp_path / "nvidia[0-9]*")
    assert nvidia_gpu_visible({}, devices)
    assert not nvidia_gpu_visible({"CUDA_VISIBLE_DEVICES": ""}, devices)
    assert not nvidia_gpu_visible({"CUDA_VISIBLE_DEVICES": "-1"}, devices)
    assert not nvidia_gpu_visible({}, str(tmp_path / "none[0-9]*")) or os.path.exists("/dev/dxg")


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def test_predictions_are_reused_while_model_and_inputs_are_unchanged(tmp_path):
    inputs = [tmp_path / f"s{i}.mrc" for i in range(3)]
    for path in inputs:
        _write(path, "input")
    model = tmp_path / "model_iter04.h5"
    _write(model, "weights A")
    jobs = [(i, [(str(path), str(tmp_path / f"s{i}_iter04.mrc"))]) for i, path in enumerate(inputs)]
    calls = []

    def predict(keys):
        calls.append(list(keys))
        for key in keys:
            _write(jobs[key][1][0][1], f"prediction {len(calls)}")

    def run(settings=None):
        record = PredictionSet(str(tmp_path), 4, str(model), settings or {"normalize_percentile": True})
        return record.predict_missing(jobs, predict)

    assert run() == 0 and calls == [[0, 1, 2]]
    assert run() == 3 and len(calls) == 1  # everything reused: no network call
    os.utime(inputs[1], ns=(0, 12345))  # an input changed
    assert run() == 2 and calls[-1] == [1]
    os.remove(jobs[2][1][0][1])  # an output deleted
    assert run() == 2 and calls[-1] == [2]
    assert run({"normalize_percentile": False}) == 0 and calls[-1] == [0, 1, 2]  # other settings
    _write(model, "weights B")  # another network in the same file
    assert run({"normalize_percentile": False}) == 0 and calls[-1] == [0, 1, 2]
    assert os.path.isfile(manifest_path(str(tmp_path), 4))


def test_keep_last_deletes_older_prediction_sets_and_their_records(tmp_path):
    def paths_of(number):
        return [str(tmp_path / f"s{i}_iter{number:02d}.mrc") for i in range(2)]

    for number in range(5):
        for path in paths_of(number) + [manifest_path(str(tmp_path), number)]:
            _write(path, "x")
    assert prune_predictions(paths_of, 4, 0, str(tmp_path)) == 0  # 0 keeps every set
    assert prune_predictions(paths_of, 4, 2, str(tmp_path)) == 3 * 3
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for n in (3, 4)
                                                  for p in paths_of(n) + [manifest_path(str(tmp_path), n)])
    assert prune_predictions(paths_of, 4, 2, str(tmp_path)) == 0


def test_progress_is_the_one_helper_of_the_package():
    """No module draws tqdm bars itself: every progress goes through isonet.log.progress."""
    root = os.path.dirname(isonet_log.__file__)
    users = []
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as handle:
                    if re.search(r"^\s*(from tqdm|import tqdm)", handle.read(), re.M):
                        users.append(os.path.relpath(os.path.join(folder, name), root))
    assert sorted(users) == ["cli.py", "log.py"]  # cli.py only closes bars before its ERROR line

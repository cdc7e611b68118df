"""What refine tells the user while it runs: iteration counter, step progress per epoch, run ETA.

Each iteration starts with the line ``iteration 3/10``; each epoch is a
:class:`isonet.log.Progress` over its training steps (a bar with rate and ETA
on a terminal, log lines otherwise) closed with the epoch's losses; each
iteration ends with its losses, timings and, from the first one on, an
estimate of when the run finishes. Keras' own output is switched off
(``verbose=0``): its ``Epoch 1/2`` lines and bars do not show.
"""

import logging
import time

from isonet.devices import import_tensorflow
from isonet.log import duration_text, progress

log = logging.getLogger("isonet")


def run_eta_text(iteration_seconds, remaining, now=None):
    """``'run ETA 12 min (at 19:40)'`` for ``remaining`` iterations, or '' when none remain.

    Parameters
    ----------
    iteration_seconds : list of float
        Wall time of the iterations done in this process, in order. The first
        one also traced the network's graphs, so it is left out once others exist.
    remaining : int
        Iterations still to run.
    now : float, optional
        Epoch seconds of "now" (default: the current time).
    """
    if remaining <= 0 or not iteration_seconds:
        return ""
    typical = iteration_seconds[1:] or iteration_seconds
    seconds = remaining * sum(typical) / len(typical)
    finish = time.localtime((time.time() if now is None else now) + seconds)
    return f"run ETA {duration_text(seconds)} (at {time.strftime('%H:%M', finish)})"


class RunClock:
    """Iteration counter and run ETA of one refine process.

    Parameters
    ----------
    first, last : int
        First and last iteration this process runs (1-based, inclusive).
    clock : callable
        Seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, first, last, clock=time.monotonic):
        self.first, self.last, self.clock = first, last, clock
        self.seconds = []
        self._started = None

    def start(self, iteration):
        """Log ``iteration N/M`` and start timing it."""
        self._started = self.clock()
        log.info("iteration %d/%d", iteration, self.last)

    def done(self, iteration):
        """Stop timing ``iteration``; returns the run ETA text ('' after the last iteration)."""
        self.seconds.append(self.clock() - self._started)
        return run_eta_text(self.seconds, self.last - iteration)


def training_progress(iteration, iterations):
    """A Keras callback showing each epoch's steps (rate, ETA, losses) and timing every step.

    Parameters
    ----------
    iteration, iterations : int
        This iteration and the last one of the run (for the label ``iteration 3/10``).

    Returns
    -------
    keras.callbacks.Callback
        Its ``step_seconds`` lists the wall time of every training step (data waiting included).
    """
    import_tensorflow()
    import keras

    class TrainingProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step_seconds = []
            self._bar = self._step_started = None

        def on_epoch_begin(self, epoch, logs=None):
            epochs, steps = self.params.get("epochs"), self.params.get("steps")
            self._bar = progress(total=steps, desc=f"iteration {iteration}/{iterations}, epoch "
                                 f"{epoch + 1}/{epochs}", unit="step")

        def on_train_batch_begin(self, batch, logs=None):
            self._step_started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.step_seconds.append(time.perf_counter() - self._step_started)
            if logs and "loss" in logs:
                self._bar.set_postfix_str(f"loss {float(logs['loss']):.4f}")
            self._bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self._bar.set_postfix_str(", ".join(f"{name} {float(logs[name]):.4f}" for name in
                                                ("loss", "val_loss") if name in logs))
            self._bar.close()

    return TrainingProgress()

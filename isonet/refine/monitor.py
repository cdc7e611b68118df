"""What refine shows after each iteration: the loss curves, a snapshot of one subtomogram, the HTML report.

The pictures and the report are a convenience: a failure to draw them is
logged once and never stops training. They come from the evaluation layer,
imported only when drawn.
"""

import logging
import os

from isonet.io.mrc import read_volume
from isonet.normalize import normalize

log = logging.getLogger("isonet")


class IterationMonitor:
    """Writes ``loss.png``, ``snapshot_iterNN.png`` and ``report.html`` into ``result_dir`` after each iteration.

    Parameters
    ----------
    result_dir : str
    percentile : bool
        Normalisation of the snapshot's subtomogram (``--normalize_percentile``).
    """

    def __init__(self, result_dir, percentile):
        self.result_dir = result_dir
        self.percentile = percentile
        self.warned = False

    def _draw(self, function_name, *args, **kwargs):
        try:
            from isonet.evaluation import pictures
            getattr(pictures, function_name)(*args, **kwargs)
        except Exception as exc:  # pictures are a convenience: never stop training for them
            if not self.warned:
                log.warning("Pictures not written (%s: %s)", type(exc).__name__, exc)
                self.warned = True

    def after_iteration(self, history, network, subtomogram, iteration):
        """Draw the loss curves of ``history``, the snapshot of ``subtomogram`` and refresh the report."""
        changes = [h["iteration"] for a, h in zip(history, history[1:]) if h["noise_level"] != a["noise_level"]]
        self._draw("plot_loss_curves", history, os.path.join(self.result_dir, "loss.png"), noise_changes=changes)
        self.snapshot(network, subtomogram, iteration)
        from isonet.evaluation.report import refresh_report
        refresh_report(self.result_dir)

    def snapshot(self, network, path, iteration):
        """``snapshot_iterNN.png``: one subtomogram before and after the network of this iteration, and the difference.

        The network works on negated volumes (density positive); both are drawn negated back, as in the file.
        """
        try:
            volume = normalize(-read_volume(path), self.percentile)
            output = network.predict(volume[None])[0]
        except Exception as exc:  # a picture must never stop training
            log.warning("Snapshot not made (%s)", exc)
            return
        self._draw("save_snapshot", [-volume, -output],
                   os.path.join(self.result_dir, f"snapshot_iter{iteration:02d}.png"),
                   labels=["subtomogram", f"iteration {iteration}"], difference=True,
                   contrast="as in the subtomogram file (density dark for tomograms as IMOD writes them), each "
                            "row between its 1st and 99th percentiles")

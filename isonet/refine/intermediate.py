"""Refine's per-iteration subtomogram predictions: which are kept, and reusing them when resuming.

Prediction set ``k`` is what the network of iteration ``k`` (``model_iterkk.h5``)
made of the subtomograms, ``<root>_iterkk.mrc`` (halves method: both halves),
written at the start of iteration ``k + 1`` and, for the last iteration, at
the end of the run. Iteration ``k + 1`` trains on set ``k``; older sets are
needed by nothing, so ``--keep_last N`` deletes all but the newest ``N``.

Beside each set, ``predictions_iterkk.json`` records what made it: the model
file's SHA-256, the settings that change a prediction, and the size and
modification time (ns) of every input and output file. A resumed run
(``--continue_from``) skips the predictions whose record still matches, e.g.
the final set of a finished run continued with more iterations, or a set
written just before the run was stopped. The network's graphs depend only on
the input shape, so a reused file equals the one that would be written again.
"""

import hashlib
import json
import logging
import os

from isonet.io.atomic import atomic_write_text

log = logging.getLogger("isonet")


def manifest_path(result_dir, number):
    """``<result_dir>/predictions_iterNN.json``: the record of prediction set ``number``."""
    return os.path.join(result_dir, f"predictions_iter{number:02d}.json")


def file_sha256(path):
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat(path):
    """``[size, mtime_ns]`` of ``path``, or None if it is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _read(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):  # no record, or a damaged one: nothing is reused
        return None


class PredictionSet:
    """The record of one prediction set: what can be reused, and what was written.

    Parameters
    ----------
    result_dir : str
    number : int
        Number of the network that predicts (``_iterNN`` of the outputs).
    model_file : str
        That network's file (``model_iterNN.h5``).
    settings : dict
        JSON values that change a prediction (normalisation, method, precision, STAR file).
    """

    def __init__(self, result_dir, number, model_file, settings):
        self.path = manifest_path(result_dir, number)
        self.model = {"file": os.path.basename(model_file), "sha256": file_sha256(model_file)}
        self.settings = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
        saved = _read(self.path)
        same = saved is not None and saved.get("model") == self.model and saved.get("settings") == self.settings
        self.files = saved.get("files", {}) if same else {}

    def _valid(self, source, output):
        entry = self.files.get(os.path.basename(output))
        return (entry is not None and entry["input"] == os.path.abspath(source)
                and entry["input_stat"] == _stat(source) and entry["stat"] == _stat(output))

    def predict_missing(self, jobs, predict):
        """Run ``predict`` on the jobs whose outputs are not already valid on disk, then record all.

        Parameters
        ----------
        jobs : list of (key, list of (input path, output path))
            One entry per unit ``predict`` works on (a subtomogram, or a row of both halves).
        predict : callable
            ``predict(keys)`` writes the outputs of those jobs.

        Returns
        -------
        int
            Jobs whose outputs were reused.
        """
        todo = [key for key, files in jobs if not all(self._valid(s, o) for s, o in files)]
        reused = len(jobs) - len(todo)
        if reused:
            log.info("%s: reusing %d of %d predictions already on disk (same model and inputs)",
                     os.path.basename(self.path), reused, len(jobs))
        if todo:
            predict(todo)
        for _, files in jobs:
            for source, output in files:
                self.files[os.path.basename(output)] = {"input": os.path.abspath(source),
                                                        "input_stat": _stat(source), "stat": _stat(output)}
        atomic_write_text(self.path, json.dumps({"model": self.model, "settings": self.settings,
                                                 "files": self.files}, indent=1))
        return reused


def prune_predictions(paths_of, newest, keep_last, result_dir):
    """Delete the prediction sets older than the newest ``keep_last`` (0: keep all) and their records.

    Parameters
    ----------
    paths_of : callable
        ``paths_of(k)`` -> every file set ``k`` may hold.
    newest : int
        Number of the newest set written.
    keep_last : int
        Sets kept (``newest - keep_last + 1 .. newest``); 0 keeps every set.
    result_dir : str

    Returns
    -------
    int
        Files deleted.
    """
    if keep_last <= 0:
        return 0
    deleted = 0
    for number in range(newest - keep_last, -1, -1):
        record = manifest_path(result_dir, number)
        for path in [*paths_of(number), record]:
            if os.path.exists(path):
                os.remove(path)  # our own intermediate output, removal asked for
                deleted += 1
    return deleted

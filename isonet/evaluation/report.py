"""``report.html``: one self-contained page per refine run (settings, timings, losses, snapshots, disk use).

The page is built from what a refine run leaves in its result folder: the
newest ``refine_iterNN.json`` (every setting and the history of all finished
iterations: per-epoch losses, noise level, seconds), ``loss.png`` and the
``snapshot_iterNN.png`` of every iteration. The pictures are embedded as
base64 data, so the single file opens offline, anywhere (no link to another
file or site). refine rewrites it atomically after every iteration
(:func:`refresh_report`); ``isonet.py report RESULT_DIR`` rebuilds it.
"""

import base64
import datetime
import html
import json
import logging
import os
import re

from isonet.commands import REPORT
from isonet.errors import IsonetError
from isonet.io.atomic import atomic_write_text

log = logging.getLogger("isonet")

#: File name of the report inside a refine result folder.
REPORT_NAME = "report.html"
_ITERATION_JSON = re.compile(r"refine_iter(\d+)\.json$")
_SNAPSHOT = re.compile(r"snapshot_iter(\d+)\.png$")
#: Seconds of an iteration that follow one another (their sum is the iteration's wall time, near
#: enough); 'pairs' is the pair-making threads' busy time, overlapping training, and is left out.
_SEQUENTIAL_SECONDS = ("predicting", "validation_pairs", "training", "final_predicting")
#: Keys of refine_iterNN.json that are records, not settings.
_RECORDS = ("history", "losses", "val_losses", "iter_count")
#: Disk use groups: (label, test on the path relative to the result folder).
_DISK_GROUPS = (
    ("networks (model_iterNN.h5 and their info)", lambda p: re.match(r"model_iter\d+\.", os.path.basename(p))),
    ("subtomograms predicted per iteration (*_iterNN.mrc)", lambda p: re.search(r"_iter\d+\.mrc$", p)),
    ("training noise cubes", lambda p: p.split(os.sep)[0] == "training_noise"),
    ("pictures and this report", lambda p: p.endswith((".png", ".html"))),
    ("iteration records (refine_iterNN.json)", lambda p: _ITERATION_JSON.search(p)),
)

_STYLE = """body { font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222 }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0 }
td, th { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: right }
td:first-child, th:first-child { text-align: left }
img { max-width: 100%; border: 1px solid #ddd }
.small { color: #666; font-size: 0.9em }"""


def _numbered(folder, pattern):
    """``{number: path}`` of the files of ``folder`` whose names match ``pattern`` (one group: the number)."""
    found = {}
    for name in os.listdir(folder):
        match = pattern.fullmatch(name)
        if match:
            found[int(match.group(1))] = os.path.join(folder, name)
    return found


def disk_usage(result_dir):
    """Bytes used under ``result_dir``, total and by group; returns ``(total, [(label, bytes), ...])``.

    Groups are those of :data:`_DISK_GROUPS` (first match wins) plus 'other files'.
    """
    sizes = [0] * (len(_DISK_GROUPS) + 1)
    for folder, _, names in os.walk(result_dir):
        for name in names:
            path = os.path.join(folder, name)
            try:
                size = os.lstat(path).st_size
            except FileNotFoundError:  # removed while we walk (refine deletes intermediates)
                continue
            relative = os.path.relpath(path, result_dir)
            group = next((i for i, (_, test) in enumerate(_DISK_GROUPS) if test(relative)), len(_DISK_GROUPS))
            sizes[group] += size
    labels = [label for label, _ in _DISK_GROUPS] + ["other files"]
    return sum(sizes), [(label, size) for label, size in zip(labels, sizes) if size]


def _bytes_text(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _duration_text(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _image(path, alt):
    with open(path, "rb") as handle:
        data = base64.b64encode(handle.read()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header, rows):
    """An HTML table; ``header`` None for none."""
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header or ())
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{cells}</tr>' if header else ''}{body}</table>"


def _wall_seconds(entry):
    seconds = entry.get("seconds", {})
    return sum(float(seconds.get(key, 0.0)) for key in _SEQUENTIAL_SECONDS)


def build_report(result_dir):
    """The HTML text of the report of the refine run in ``result_dir``.

    Parameters
    ----------
    result_dir : str
        A refine result folder holding at least one ``refine_iterNN.json``.

    Returns
    -------
    str
        A complete HTML page; pictures embedded as ``data:`` URIs.
    """
    records = _numbered(result_dir, _ITERATION_JSON)
    if not records:
        raise IsonetError(f"{result_dir}: no refine_iterNN.json (not a refine result folder, or no iteration "
                          f"finished yet)")
    newest = records[max(records)]
    try:
        with open(newest) as handle:
            state = json.load(handle)
        history = list(state["history"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IsonetError(f"{newest}: not a readable refine record ({type(exc).__name__}: {exc})") from None
    done, planned = int(state.get("iter_count", max(records))), int(state.get("iterations", max(records)))
    walls = [_wall_seconds(entry) for entry in history]
    per_iteration = sum(walls) / len(walls) if walls else 0.0

    parts = [f"<h1>isonet refine: {html.escape(os.path.abspath(result_dir))}</h1>",
             f'<p class="small">Written {datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")} from '
             f"{html.escape(os.path.basename(newest))}.</p>"]
    summary = [("iterations finished", f"{done} of {planned}"),
               ("time of the finished iterations", _duration_text(sum(walls))),
               ("time per iteration (mean)", _duration_text(per_iteration))]
    if done < planned:
        summary.append(("estimated time left", _duration_text(per_iteration * (planned - done))))
    total, groups = disk_usage(result_dir)
    summary.append(("disk used by the result folder", _bytes_text(total)))
    parts += ["<h2>Summary</h2>", _table(None, summary)]
    parts += ["<h2>Disk use</h2>", _table(("files", "size"), [(label, _bytes_text(size)) for label, size in groups])]

    parts.append("<h2>Losses</h2>")
    loss_png = os.path.join(result_dir, "loss.png")
    if os.path.isfile(loss_png):
        parts.append(_image(loss_png, "loss per iteration"))
    rows = []
    for entry, wall in zip(history, walls):
        seconds = entry.get("seconds", {})
        loss, val_loss = entry.get("loss") or [], entry.get("val_loss") or []
        rows.append((entry["iteration"], f"{entry.get('noise_level', 0.0):g}",
                     f"{loss[-1]:.4f}" if loss else "-", f"{val_loss[-1]:.4f}" if val_loss else "-",
                     f"{float(seconds.get('training', 0.0)):.1f}",
                     f"{float(seconds.get('predicting', 0.0)) + float(seconds.get('final_predicting', 0.0)):.1f}",
                     f"{wall:.1f}"))
    parts.append(_table(("iteration", "noise level", "loss (last epoch)", "validation loss", "training s",
                         "predicting s", "iteration s"), rows))

    parts.append("<h2>Snapshots</h2><p>One subtomogram before and after the network of each iteration, and "
                 "their difference (see the note under each picture for the contrast).</p>")
    snapshots = _numbered(result_dir, _SNAPSHOT)
    for iteration in sorted(set(snapshots) | {int(entry["iteration"]) for entry in history}):
        parts.append(f'<h3 id="iteration{iteration}">Iteration {iteration}</h3>')
        if iteration in snapshots:
            parts.append(_image(snapshots[iteration], f"snapshot of iteration {iteration}"))
        else:
            parts.append("<p>No snapshot.</p>")

    settings = [(key, json.dumps(value)) for key, value in sorted(state.items()) if key not in _RECORDS]
    parts += ["<h2>Settings</h2>", _table(("setting", "value"), settings)]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>isonet refine report</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


@REPORT.implements
def report_files(result_dir, out):
    """The ``report`` command: write ``report.html`` of a refine result folder.

    Parameters
    ----------
    result_dir : str
        Refine result folder.
    out : str or None
        HTML file written (default ``<result_dir>/report.html``).
    """
    if not os.path.isdir(result_dir):
        raise IsonetError(f"{result_dir}: folder not found")
    out = out or os.path.join(result_dir, REPORT_NAME)
    text = build_report(result_dir)
    atomic_write_text(out, text)
    log.info("wrote %s", out)


def refresh_report(result_dir):
    """Rewrite ``<result_dir>/report.html`` (refine, after every iteration); a failure only warns.

    Parameters
    ----------
    result_dir : str
        Refine result folder.
    """
    try:
        atomic_write_text(os.path.join(result_dir, REPORT_NAME), build_report(result_dir))
    except Exception as exc:  # the report is a convenience: never stop training for it
        log.warning("%s not written (%s: %s)", REPORT_NAME, type(exc).__name__, exc)

"""The JSON beside a trained network that tells predict how to use it (``model_iterNN.json``).

Written by refine for the halves method: ``{"method": "halves",
"normalization": "slab_mean_std", "slab_fraction": 0.333...}``, meaning that
a tomogram is normalised with the mean and standard deviation of its central
slab (:func:`isonet.normalize.slab_statistics`). A network without this file
is an IsoNet 1 network (per-tomogram percentile or mean/std normalisation).
Files written before the methods were renamed say ``"isonet2"``: predict
reads that as ``"halves"``, with a warning.
"""

import json
import os

from isonet.errors import IsonetError
from isonet.io.atomic import atomic_write_text


def model_info_path(model_path):
    """``model_iterNN.h5`` -> ``model_iterNN.json`` (same folder)."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"


def write_model_info(model_path, info):
    """Write ``info`` (a JSON-ready dict) beside ``model_path``, atomically."""
    atomic_write_text(model_info_path(model_path), json.dumps(info, indent=4, sort_keys=True) + "\n")


def read_model_info(model_path):
    """The dict written by :func:`write_model_info`, or ``None`` if there is no such file."""
    path = model_info_path(model_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            info = json.load(handle)
    except (OSError, ValueError) as exc:
        raise IsonetError(f"{path}: not a readable model JSON ({exc})") from None
    if not isinstance(info, dict) or "method" not in info:
        raise IsonetError(f"{path}: expected a JSON object with 'method'")
    return info

"""Names of refine's files in ``result_dir``: the network of each iteration and its predicted subtomograms."""

import os

from isonet.io.paths import file_root


def model_path(result_dir, iteration):
    """``<result_dir>/model_iterNN.h5``: the network after iteration NN (00: before training)."""
    return os.path.join(result_dir, f"model_iter{iteration:02d}.h5")


def prediction_path(result_dir, subtomo_path, iteration):
    """``<result_dir>/<root>_iterNN.mrc``: the network of iteration NN applied to one subtomogram.

    ``root`` is the subtomogram's file name without its extension.
    """
    return os.path.join(result_dir, f"{file_root(subtomo_path)}_iter{iteration:02d}.mrc")

"""Checks of a refine run that need the subtomograms or several settings, done before any output exists.

:func:`validate_refine` runs after the settings are merged (``--continue_from``)
and before ``result_dir`` is renamed aside or created: a run that cannot
finish for a reason visible up front (a truncated subtomogram, a cube size the
network cannot down-sample, a missing pretrained model, a full disk) fails
without touching its outputs.
"""

import os

from isonet.errors import IsonetError, UsageError
from isonet.io.mrc import read_header
from isonet.io.paths import check_free_space, check_output_folder
from isonet.log import progress


def network_size_multiple(unet_depth):
    """Edge multiple a U-Net of ``unet_depth`` down-sampling levels needs: ``2**unet_depth``."""
    return 2 ** int(unet_depth)


def check_network_shape(cube_size, unet_depth, where):
    """Raise :class:`UsageError` unless cubes of edge ``cube_size`` fit a U-Net of depth ``unet_depth``.

    Parameters
    ----------
    cube_size : int
        Training cube edge in voxels (``rlnCubeSize``).
    unet_depth : int
        Down-sampling levels (``--unet_depth``).
    where : str
        Where ``cube_size`` comes from, for the message.
    """
    multiple = network_size_multiple(unet_depth)
    if cube_size % multiple:
        raise UsageError(f"--unet_depth {unet_depth}: needs cubes whose edge is a multiple of {multiple}; "
                         f"{where} has rlnCubeSize {cube_size} (lower --unet_depth)")


def validate_refine(config, subtomos, continue_from=None):
    """Check everything a refine run needs before it writes anything; raise on the first problem.

    Parameters
    ----------
    config : isonet.refine.config.RefineConfig
        Merged settings (the ranges of single settings are checked by the spec).
    subtomos : isonet.refine.subtomograms.Subtomograms
        Subtomograms of ``config.subtomo_star``.
    continue_from : str, optional
        The refine JSON resumed from (a new network is not built then).
    """
    star = config.subtomo_star
    for path in progress(subtomos.paths, desc="checking subtomograms", unit="file", leave=False):
        shape = read_header(path).shape
        if shape != (subtomos.crop_size,) * 3:
            raise IsonetError(f"{path}: subtomogram of shape (z, y, x) = {shape}; {star} gives rlnCropSize "
                              f"{subtomos.crop_size} (all subtomograms must be cubes of that edge)")
    if continue_from is None and config.pretrained_model is None:
        check_network_shape(subtomos.cube_size, config.unet_depth, star)
    if continue_from is None and config.pretrained_model is not None and not os.path.isfile(config.pretrained_model):
        raise IsonetError(f"--pretrained_model {config.pretrained_model}: file not found")
    check_output_folder(config.result_dir, "--result_dir")
    for name in ("data_dir", "noise_dir"):
        if getattr(config, name):
            check_output_folder(getattr(config, name), f"--{name}")
    # predictions of one iteration plus those of the previous one, and a margin for models and noise
    needed = 2 * len(subtomos) * (subtomos.crop_size ** 3 * 4 + 1024) + 64 * 2 ** 20
    check_free_space(config.result_dir, needed, "--result_dir")

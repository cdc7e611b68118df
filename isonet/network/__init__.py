"""The 3-D U-Net of IsoNet 1: building, saving and loading (see :mod:`isonet.network.unet`)."""

from isonet.network.unet import (build_unet, load_model, network_depth, save_model, size_multiple,
                                 with_dtype_policy)

__all__ = ["build_unet", "load_model", "network_depth", "save_model", "size_multiple", "with_dtype_policy"]

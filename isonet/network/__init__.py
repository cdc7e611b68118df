"""The 3-D U-Net of IsoNet 1 (:mod:`isonet.network.unet`) and the model runtime shared by refine and
predict (:mod:`isonet.network.runtime`)."""

from isonet.network.unet import build_unet, load_model, network_depth, save_model, size_multiple

__all__ = ["build_unet", "load_model", "network_depth", "save_model", "size_multiple"]

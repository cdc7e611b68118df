"""Adapters that install and run the programs users would pick instead of isonet (docs/peers.md).

:data:`ADAPTERS` maps a table row's name to (module, class) in this package; :func:`adapter` builds one.
"""

import importlib

#: row name -> (module, class). Order: the order of the rows in the tables.
ADAPTERS = {
    "isonet2": ("isonet2", "IsoNet2"),
    "deepdewedge": ("deepdewedge", "DeepDeWedge"),
    "cryocare": ("cryocare", "CryoCARE"),
    "isonet1_original": ("isonet1_original", "IsoNet1Original"),
}


def adapter(name, root, checkout=None, row=None):
    """The adapter of peer ``name``, installed under ``root/<name>`` (``checkout``: its repository's local copy).

    ``row``: the name of its table row (default ``name``; '<name>_seedN' for another training seed).
    """
    module, cls = ADAPTERS[name]
    peer = getattr(importlib.import_module(f"{__name__}.{module}"), cls)(f"{root}/{name}", checkout)
    peer.name = row or name  # the row's name, whatever the class calls itself
    return peer

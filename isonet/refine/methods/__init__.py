"""Refine's methods, one class each behind one interface (:class:`~isonet.refine.methods.base.RefineMethod`).

:data:`REGISTRY` maps each name of ``--method`` (:data:`isonet.commands.METHODS`)
to its class. A new method is one module here with a subclass, its name in
both lists, and nothing in the loop.
"""

from isonet.refine.methods.halves import HalvesMethod
from isonet.refine.methods.isonet1 import IsoNet1Method

#: ``--method`` name -> class.
REGISTRY = {cls.name: cls for cls in (IsoNet1Method, HalvesMethod)}

"""Refine: IsoNet 1's iterative self-supervised training (spec §1.6, §3.4).

Modules: :mod:`~isonet.refine.rotations` (the 20 orientations),
:mod:`~isonet.refine.wedge_ops` (wedge imposition and merge over batches),
:mod:`~isonet.refine.noise` (back-projected noise cubes and schedule),
:mod:`~isonet.refine.pairs` (in-memory training pairs streamed through tf.data),
:mod:`~isonet.refine.config` (settings, defaults, JSON round trip) and
:mod:`~isonet.refine.loop` (:func:`~isonet.refine.loop.refine`).
"""

"""Refine: IsoNet 1's iterative self-supervised training, with IsoNet 1's method and the halves method.

Modules: :mod:`~isonet.refine.subtomograms` (what subtomo.star lists),
:mod:`~isonet.refine.rotations` (the 20 orientations),
:mod:`~isonet.refine.wedge_ops` (wedge imposition and merge over batches),
:mod:`~isonet.refine.noise` (back-projected noise cubes and schedule),
:mod:`~isonet.refine.pairs` (IsoNet 1's pairs, streamed through tf.data),
:mod:`~isonet.refine.half_pairs` (the halves method's pairs),
:mod:`~isonet.refine.fourier_weights` and :mod:`~isonet.refine.losses` (the masked Fourier loss),
:mod:`~isonet.refine.methods` (one class per method), :mod:`~isonet.refine.training` (one iteration's
training), :mod:`~isonet.refine.config` (settings, defaults, JSON round trip) and
:mod:`~isonet.refine.loop` (:func:`~isonet.refine.loop.refine`).
"""

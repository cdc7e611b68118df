"""Preprocessing of tomograms before training: ``deconv``, ``make_mask``, ``extract``, ``resize``.

Modules: :mod:`~isonet.preprocess.deconv` (CTF deconvolution, spec §3.1),
:mod:`~isonet.preprocess.mask` (sample masks, §3.2), :mod:`~isonet.preprocess.imod`
(IMOD model and point files for the polygon boundary), :mod:`~isonet.preprocess.extract`
(subtomograms, §3.3) and :mod:`~isonet.preprocess.resize` (pixel-size change, §1.8).
Volumes are numpy arrays indexed ``[z, y, x]`` (axis 0 = beam/Z, tilt axis = Y).
"""

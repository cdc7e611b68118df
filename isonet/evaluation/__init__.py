"""Evaluation tools: correlations and FSC against a ground truth or between half maps, and PNG pictures.

Modules: :mod:`~isonet.evaluation.fourier` (shells, cones, wedge regions, FSC),
:mod:`~isonet.evaluation.metrics` (``evaluate``), :mod:`~isonet.evaluation.fsc`
(``fsc3d``), :mod:`~isonet.evaluation.pictures` (snapshots, loss and FSC plots).
"""

"""geomreg: DAGR (Dispersive and Anchoring Geometric Regularizer, arXiv 2601.21670) for multimodal models.

Standalone (torch only): :class:`DAGR` (the losses and the paper's Pareto-balanced weighting),
:mod:`geomreg.functional` (the two terms as functions), :mod:`geomreg.pareto` (the min-norm rules),
:mod:`geomreg.lastlayer` (an encoder's last layer for the last-layer α, not the paper's rule),
:mod:`geomreg.geometry` (representation-geometry diagnostics) and :mod:`geomreg.controls` (the objective
controls of the paper's Table 7). See ``docs/dagr.md`` and ``docs/controls.md``.
"""

from . import controls, functional, geometry, lastlayer, pareto
from .geometry import geometry_summary
from .lastlayer import LastLayer
from .pareto import ParetoResult, balance_geometry, min_norm_weights, pareto_combine
from .regularizer import DAGR, GeometryGradients, GeometryTerms, Regularizer

__all__ = ["DAGR", "GeometryGradients", "GeometryTerms", "LastLayer", "Regularizer", "controls", "functional",
           "geometry", "geometry_summary", "lastlayer", "pareto", "ParetoResult", "balance_geometry",
           "min_norm_weights", "pareto_combine"]

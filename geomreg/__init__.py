"""geomreg: DAGR (Dispersive and Anchoring Geometric Regularizer, arXiv 2601.21670), reconstructed.

Standalone (torch only). The paper's exact formulas are not public; see :mod:`geomreg.functional`.
Representation-geometry diagnostics (effective rank, cross-modal cosines, Recall@K) are in
:mod:`geomreg.geometry`.
"""

from . import functional, geometry, pareto
from .geometry import geometry_summary
from .pareto import ParetoResult, min_norm_weights, pareto_combine
from .regularizer import DAGR

__all__ = ["DAGR", "functional", "geometry", "geometry_summary", "pareto", "ParetoResult", "min_norm_weights",
           "pareto_combine"]

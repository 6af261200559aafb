"""geomreg: DAGR (Dispersive and Anchoring Geometric Regularizer, arXiv 2601.21670), reconstructed.

Standalone (torch only). The paper's exact formulas are not public; see :mod:`geomreg.functional`.
"""

from . import functional, pareto
from .pareto import ParetoResult, min_norm_weights, pareto_combine
from .regularizer import DAGR

__all__ = ["DAGR", "functional", "pareto", "ParetoResult", "min_norm_weights", "pareto_combine"]

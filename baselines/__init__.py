"""Methods for multimodal imbalance, each a small class with hooks (see ``baselines.base``)."""
# Importing registers the methods; this order (the paper's Table 1 order) is the row order of the tables.
from . import joint, gblending, ogm_ge, pmr, agm, mmpareto, dnr, dgl, unimodal  # noqa: F401, I001
from .base import Method, MethodSetup, NoParams
from .registry import METHODS, get_method, register

__all__ = ["METHODS", "Method", "MethodSetup", "NoParams", "get_method", "register"]

"""Methods for multimodal imbalance, each a small class with hooks (see ``baselines.base``)."""
from . import dgl, gblending, joint, mmpareto, ogm_ge, pmr, unimodal  # noqa: F401  (importing registers them)
from .base import Method, MethodSetup, NoParams
from .registry import METHODS, get_method, register

__all__ = ["METHODS", "Method", "MethodSetup", "NoParams", "get_method", "register"]

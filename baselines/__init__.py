"""Methods for multimodal imbalance, each a small class with hooks (see ``baselines.base``)."""
from . import joint, unimodal  # noqa: F401  (importing registers the methods)
from .base import Method, MethodSetup, NoParams
from .registry import METHODS, get_method, register

__all__ = ["METHODS", "Method", "MethodSetup", "NoParams", "get_method", "register"]

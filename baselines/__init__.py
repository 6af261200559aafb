"""Methods for multimodal imbalance, each a small class with hooks (see ``baselines.base``).

A method is one file: every module of this package is imported here, and its ``@register``-ed
classes join ``METHODS``. ``Method`` and ``register`` are bound before the modules are imported, so a
method module may import them from the package (``from baselines import Method, register``) as well as
from ``.base`` and ``.registry``. Methods outside the package are loaded by ``baselines.plugins``.
"""
import importlib
import pkgutil

from .base import Method, MethodSetup, NoParams
from .registry import METHODS, get_method, register

# The paper's Table 1 order, which is the row order of the tables; the package's other modules follow
# in alphabetical order.
TABLE_ORDER = ("joint", "gblending", "ogm_ge", "pmr", "agm", "mmpareto", "dnr", "dgl")


def method_modules(names: list[str]) -> list[str]:
    """The package's module names in import order: ``TABLE_ORDER``, then the rest alphabetically."""
    rank = {name: i for i, name in enumerate(TABLE_ORDER)}
    public = [n for n in names if not n.startswith("_")]
    return sorted(public, key=lambda n: (rank.get(n, len(rank)), n))


def import_method_modules() -> None:
    for name in method_modules([m.name for m in pkgutil.iter_modules(__path__)]):
        importlib.import_module(f"{__name__}.{name}")


import_method_modules()

__all__ = ["METHODS", "Method", "MethodSetup", "NoParams", "get_method", "register"]

"""Method registry: a plain dict filled by the ``@register`` decorator."""
from __future__ import annotations

from benchmarks.core.strict import ConfigError, did_you_mean

METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    from .base import Method

    if not issubclass(cls, Method):
        raise TypeError(f"{cls.__name__} must subclass baselines.base.Method")
    if cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is registered twice ({METHODS[cls.name].__module__} and "
                         f"{cls.__module__})")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {sorted(METHODS)}"
                          + did_you_mean(name, METHODS)) from None

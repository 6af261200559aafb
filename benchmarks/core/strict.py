"""Strict conversion of plain YAML data into dataclasses.

Every config in the suite goes through :func:`from_dict`: an unknown key, a missing required
key or a value of the wrong type is a :class:`ConfigError` that names the dotted key, so a typo
in a YAML file can never be silently ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


class InvalidValue(ConfigError):
    """A value outside what its setting allows, raised by a dataclass's ``__post_init__`` (through
    :func:`require`); :func:`from_dict` names the setting by its whole dotted key."""

    def __init__(self, key: str, value: Any, rule: str) -> None:
        super().__init__(f"{key} must be {rule}, got {value!r}")
        self.key, self.value, self.rule = key, value, rule


def require(condition: bool, key: str, value: Any, rule: str) -> None:
    """One check of one setting: ``require(self.epochs >= 1, "epochs", self.epochs, ">= 1")`` raises
    ``epochs must be >= 1, got -3`` (``run.optim.epochs ...`` when read from a grid)."""
    if not condition:
        raise InvalidValue(key, value, rule)


def did_you_mean(name: str, choices: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean 'dgl'?"`` for the choice closest to a mistyped ``name`` (written with ``prefix``,
    e.g. the dotted path of its mapping), or ``""``: the end of an error message."""
    close = difflib.get_close_matches(name, [c for c in choices if isinstance(c, str)], n=1)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    where = path or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key {_join(path, unknown[0])!r}; allowed keys here: {sorted(known)}"
                          + did_you_mean(unknown[0], known, prefix=_join(path, "")))
    hints = typing.get_type_hints(cls)
    kwargs = {name: coerce(hints[name], value, _join(path, name)) for name, value in data.items()}
    missing = [
        name
        for name, f in known.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required config key {_join(path, missing[0])!r}")
    try:
        return cls(**kwargs)
    except InvalidValue as err:  # named by the key as written: run.optim.epochs, not epochs
        raise InvalidValue(_join(path, err.key), err.value, err.rule) from None
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: {err}") from err


def to_dict(obj: Any) -> Any:
    """Plain-data view of a (nested) dataclass, for YAML/JSON output and hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted where floats are)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            close = did_you_mean(value, args) if isinstance(value, str) else ""
            raise ConfigError(f"{path}: {value!r} is not one of {list(args)}{close}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        val_tp = args[1] if args else Any
        return {str(k): coerce(val_tp, v, _join(path, str(k))) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"{path}: unsupported annotation {tp!r}")  # a bug in our dataclasses


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating mappings on the way."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted!r}: {key!r} is not a mapping")
        node = child
    node[keys[-1]] = value


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursive merge; values of ``override`` win, mappings are merged key by key."""
    out = {key: deep_merge({}, value) if isinstance(value, Mapping) else value for key, value in base.items()}
    for key, value in override.items():
        if isinstance(value, Mapping):  # merged into a fresh dict: the result never aliases an input
            out[key] = deep_merge(out[key] if isinstance(out.get(key), Mapping) else {}, value)
        else:
            out[key] = value
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key

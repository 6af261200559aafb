"""Methods from outside the package: a file or a module named on the command line (``--plugin``), or a
module an installed package declares in the entry-point group ``geomreg.methods``.

A plugin is a module that registers its methods with ``@register`` when it is imported, as a file of
this package does. Each source is imported once per process; worker processes and cluster jobs import
the same sources again before they train (``benchmarks.run.parallel``), and every run records where its
method came from (:func:`method_origin`, in ``final.json``).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core.strict import ConfigError

from .registry import METHODS

ENTRY_POINT_GROUP = "geomreg.methods"


@dataclass(frozen=True)
class PluginSource:
    kind: str  # "file" (an absolute path), "module" (a dotted name) or "entry point"
    target: str  # the path or the module name
    entry_point: str = ""  # the entry point's name (kind "entry point")

    def describe(self) -> str:
        if self.kind == "entry point":
            return f"entry point {self.entry_point} = {self.target} (group {ENTRY_POINT_GROUP})"
        return f"--plugin {self.target}"


LOADED: dict[PluginSource, tuple[str, ...]] = {}  # each source imported in this process -> its methods


def plugin_source(text: str) -> PluginSource:
    """``--plugin TEXT``: a ``.py`` file (any path) or a module importable from ``sys.path``."""
    path = Path(text)
    if text.endswith(".py") or path.exists():
        if not path.is_file():
            raise ConfigError(f"--plugin {text}: " + ("a folder: name a .py file, or a module importable from "
                                                      "sys.path" if path.exists() else "no such file"))
        return PluginSource("file", str(path.resolve()))
    return PluginSource("module", text)


def load_plugins(sources) -> None:
    """Import every source not yet imported in this process (the order given)."""
    for source in sources:
        if source not in LOADED:
            LOADED[source] = import_source(source)


def load_entry_points() -> None:
    """Import the methods of every installed package that declares the entry-point group."""
    load_plugins(PluginSource("entry point", ep.module, ep.name)
                 for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def import_source(source: PluginSource) -> tuple[str, ...]:
    """Import one plugin; the names of the methods it registered. Any failure is one ConfigError that
    names the plugin (the method's own error, or two methods of one name)."""
    before = set(METHODS)
    try:
        if source.kind == "file":
            import_file(Path(source.target))
        else:
            importlib.import_module(source.target)
    except ConfigError as err:
        raise ConfigError(f"{source.describe()}: {err}") from None
    except Exception as err:  # noqa: BLE001 - the plugin's own code: report it as the plugin's error
        raise ConfigError(f"{source.describe()}: {type(err).__name__}: {err}") from err
    added = tuple(name for name in METHODS if name not in before)
    if not added:
        raise ConfigError(f"{source.describe()}: registers no method (decorate its Method class with "
                          "@register from baselines)")
    return added


def import_file(path: Path) -> None:
    """Import a ``.py`` file as a module of its own (dataclasses look their module up in ``sys.modules``)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"geomreg_plugin_{path.stem}_{digest}"  # two plugins of one file name stay apart
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def loaded_plugins() -> tuple[PluginSource, ...]:
    """The sources this process imported, for worker processes and cluster jobs to import alike."""
    return tuple(LOADED)


def method_origin(name: str) -> dict[str, str]:
    """Where a registered method's code comes from: its module, and for code outside this package (which
    the run's git commit does not cover) the plugin that loaded it, its file and the file's sha256."""
    cls = METHODS[name]
    origin = {"module": cls.__module__}
    if cls.__module__.startswith(f"{__package__}."):
        return origin
    source = next((s for s, names in LOADED.items() if name in names), None)
    if source is not None:
        origin["plugin"] = source.describe()
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if file:
        origin.update(file=str(Path(file).resolve()), sha256=hashlib.sha256(Path(file).read_bytes()).hexdigest())
    return origin

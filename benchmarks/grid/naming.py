"""The names of what a grid produces: each run's directory and each method's title in tables."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from baselines import METHODS

from ..core.records import RunDir
from ..data import data_tag
from .config import RunConfig


def run_dir_for(cfg: RunConfig, runs_root: Path) -> RunDir:
    """``<benchmark>/<label>-<run id>``, plus ``-<data tag>`` for a dataset read from a root."""
    return RunDir(Path(runs_root) / cfg.benchmark / run_dir_name(cfg, data_tag(cfg.data)))


def run_dir_name(cfg: RunConfig, tag: str | None) -> str:
    return f"{cfg.label}-{cfg.run_id()}" + (f"-{tag}" if tag else "")


def method_title(method: str, params: dict[str, Any] | None = None) -> str:
    if method == "unimodal":
        return f"{params['modality'].capitalize()} only (unimodal reference)"
    cls = METHODS.get(method)
    return cls.title if cls is not None else method

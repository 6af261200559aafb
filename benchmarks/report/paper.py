"""Published numbers (``paper_numbers.yaml``) and the table that puts ours beside them.

The published numbers were selected on the test set, so they are compared with our test-selected
("paper protocol") numbers; the difference is ours − paper, with a Welch 95% interval from both
sides' mean, std and seed count (the runs are not paired). A row of a method we do not run is kept
as a paper-only row, marked so.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..grid.config import ARMS
from ..core.strict import ConfigError, from_dict
from .statistics import judge_table, welch_interval

PAPER_FILE = Path(__file__).with_name("paper_numbers.yaml")
COLUMNS = ("Audio", "Visual", "Multi")


@dataclass(frozen=True)
class PaperRow:
    title: str  # the row name in the paper
    method: str | None = None  # our method name; None = a method this suite does not run
    arm: str = "none"  # our regularizer arm (DAGR or a control) that corresponds to the row
    audio: float | None = None
    visual: float | None = None
    multi: float | None = None
    audio_std: float | None = None
    visual_std: float | None = None
    multi_std: float | None = None

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ConfigError(f"paper row {self.title!r}: unknown arm {self.arm!r}")

    def cell(self, column: str) -> str:
        mean, std = getattr(self, column.lower()), getattr(self, f"{column.lower()}_std")
        if mean is None:
            return "–"
        return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


@dataclass(frozen=True)
class PaperTable:
    source: str
    caption: str
    rows: list[PaperRow] = field(default_factory=list)
    seeds: int = 3  # runs behind a published mean ± std (the paper reports over 3 seeds)


def load_paper_table(key: str, path: Path = PAPER_FILE) -> PaperTable:
    raw = yaml.safe_load(path.read_text()) or {}
    if key not in raw:
        raise ConfigError(f"paper: no table {key!r} in {path}; available: {sorted(raw)}")
    return from_dict(PaperTable, raw[key], f"paper.{key}")


def comparison_table(paper: PaperTable, summary: pd.DataFrame, title_of: Callable[[str], str]) -> pd.DataFrame:
    """One line per paper row: our test-selected mean ± std, the paper's number, and ours − paper
    with its Welch interval (a number published without std counts as exact).

    ``summary`` is the test-selected summary (method title, arm, column → mean, std, n);
    ``title_of(method)`` names our rows the way the other tables do."""
    lookup = {(r.method, r.arm, r.column): r for r in summary.itertuples()}
    lines = []
    for row in paper.rows:
        ours_title = title_of(row.method) if row.method else None
        line = {"Method (paper row)": row.title + ("" if row.method else " — paper only, not run here")}
        for col in COLUMNS:
            ours = lookup.get((ours_title, row.arm, col))
            published = getattr(row, col.lower())
            line[f"{col} ours"] = "–" if ours is None else mean_std(ours.mean, ours.std)
            line[f"{col} paper"] = row.cell(col)
            line[f"{col} Δ (Welch 95% CI)"] = "–"
            if ours is not None and published is not None:
                published_std = getattr(row, f"{col.lower()}_std") or 0.0
                line[f"{col} Δ (Welch 95% CI)"] = welch_interval(ours.mean, ours.std, int(ours.n), published,
                                                                 published_std, paper.seeds)
        lines.append(line)
    return judge_table(pd.DataFrame(lines))  # the table's Δ cells are one family


def mean_std(mean: float, std: float) -> str:
    """A table cell: mean ± sample std (n/a for a single seed)."""
    return f"{mean:.2f} ± {'n/a' if pd.isna(std) else f'{std:.2f}'}"

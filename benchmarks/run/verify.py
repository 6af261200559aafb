"""``make verify``: re-train a small fixed sample of a committed grid and compare it with the committed
per-seed results (``results/<grid>/per_seed.csv``), bit for bit.

The sample is one seed of one method without and with DAGR, plus the unimodal references (4 runs of
the default grid, about a minute on 2 cores). The answer is "identical", or the largest difference
per metric, with the hardware and numerics of both sides. A run whose identity (the hash of its
resolved config) is not in the committed file means the committed tables are stale: an error too.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..report.summaries import HARDWARE_KEYS, grid_records, per_seed_frame, run_title
from ..grid.config import GridConfig

COMPARED = [f"{rule}_{field}" for rule in ("best_val", "last")
            for field in ("epoch", "val_acc", "test_acc", "test_acc_audio", "test_acc_visual")]


@dataclass
class Verdict:
    lines: list[str]
    identical: bool
    comparable: bool

    @property
    def exit_code(self) -> int:
        return 0 if self.identical or not self.comparable else 1


def sample_grid(grid: GridConfig, method: str) -> GridConfig:
    """``method`` without and with DAGR and the references, at the grid's first seed, no sweep."""
    if method not in grid.methods:
        raise ValueError(f"verify: method {method!r} is not in the grid; choose from {sorted(grid.methods)}")
    return replace(grid, methods={method: grid.methods[method]}, seeds=[grid.seeds[0]], sweep={})


def hardware_line(frame: pd.DataFrame) -> str:
    parts = []
    for key in HARDWARE_KEYS:
        values = sorted({str(v) for v in frame[f"hw_{key}"].dropna()})
        parts.append(f"{key} {' / '.join(values) if values else '?'}")
    return "; ".join(parts)


def compare(committed: pd.DataFrame, fresh: pd.DataFrame) -> Verdict:
    lines = [f"committed: {hardware_line(committed)}", f"this run:  {hardware_line(fresh)}"]
    merged = fresh.merge(committed, on="run_id", how="left", suffixes=("", "_committed"), indicator=True)
    stale = merged.loc[merged["_merge"] == "left_only", "label"].tolist()
    if stale:
        lines.append(f"NOT IN THE COMMITTED RESULTS (config changed since they were trained): {', '.join(stale)}")
        return Verdict(lines, identical=False, comparable=True)
    differences = {}
    for column in COMPARED:
        gap = (merged[column].astype(float) - merged[f"{column}_committed"].astype(float)).abs().max()
        if gap > 0:
            differences[column] = gap
    comparable = portable(committed) and portable(fresh)
    if not differences:
        lines.append(f"identical: {len(merged)} runs ({', '.join(merged['label'])}), {len(COMPARED)} values each")
        return Verdict(lines, identical=True, comparable=comparable)
    lines += [f"DIFFERENT: {column} differs by up to {gap:.6g}" for column, gap in differences.items()]
    if not comparable:
        lines.append("not comparable bit for bit: the two sides do not both run the portable numerics on x86-64 "
                     "with AVX2 (docs/performance.md)")
    return Verdict(lines, identical=False, comparable=comparable)


def portable(frame: pd.DataFrame) -> bool:
    """All runs in the portable mode on an x86-64 processor with AVX2 (the guarantee's domain)."""
    return bool((frame["hw_numerics"] == "portable").all() and (frame["hw_machine"] == "x86_64").all()
                and frame["hw_isa"].astype(str).str.contains("avx2").all())


def verify(grid: GridConfig, grid_name: str, results: Path, runs_root: Path, method: str, jobs: int) -> Verdict:
    from .runner import run_grid

    committed_path = Path(results) / grid_name / "per_seed.csv"
    if not committed_path.exists():
        raise FileNotFoundError(f"verify: no committed per-seed results at {committed_path}")
    sample = sample_grid(grid, method)
    report = run_grid(sample, runs_root, progress=False, jobs=jobs)
    records, failed, missing = grid_records(sample, runs_root)
    if failed or missing or report.failed:
        return Verdict([f"verify: runs did not finish: {failed or missing or report.failed}"], False, True)
    fresh = per_seed_frame(records, grid_name)
    fresh["label"] = [run_title(r["final"]["label"], r["config"]) for r in records]  # names the references
    return compare(pd.read_csv(committed_path), fresh)

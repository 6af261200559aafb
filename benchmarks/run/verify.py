"""``make verify``: re-train a small fixed sample of a committed grid and compare it with the committed
per-seed results (``results/<grid>/per_seed.csv``), with one of three verdicts.

The sample is one seed of one method without and with DAGR, plus the unimodal references (4 runs of
the default grid, about a minute on 2 cores). Then:

* **identical**: every compared value equals the committed one, bit for bit (on any machine);
* on *bit-comparable* hardware (:func:`benchmarks.core.numerics.bit_class`: both sides in the portable
  numerics, on the same class of processor) anything else is **DIFFERENT**: the code or its
  environment changed what it computes (exit 1);
* elsewhere a re-trained run is a fresh draw from its cell's seed distribution, so each re-trained
  value is checked against the committed seeds of its cell (the spread grid: by default the grid
  itself; ``make verify`` names the powered grid, whose many seeds give a tight spread). It is
  **consistent** when it lies inside the cell's two-sided prediction interval
  ``mean ± t(1 − a/2, n − 1) · s · √(1 + 1/n)``, at a = 0.05 split over all values checked (Bonferroni),
  with ``s`` floored at one test sample; otherwise **INCONSISTENT** (exit 1).

Each verification trains into a new folder under its runs root (:func:`fresh_folder`), never resuming.
A run whose identity (the hash of its resolved config) is not in the committed file means the
committed tables are stale: an error too.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..core.numerics import bit_class
from ..grid.config import GridConfig, RunConfig, expand_grid
from ..report.summaries import HARDWARE_KEYS, grid_records, per_seed_frame, run_title

COMPARED = [f"{rule}_{field}" for rule in ("best_val", "last")
            for field in ("epoch", "val_acc", "test_acc", "test_acc_audio", "test_acc_visual")]
# The values a consistency check reads: the table's validation-selected test accuracies.
CHECKED = ("best_val_test_acc", "best_val_test_acc_audio", "best_val_test_acc_visual")
FAMILY_LEVEL = 0.05  # the chance that a consistent machine is called INCONSISTENT, over all checked values
SD_FLOOR = 0.001  # one test sample of AV-Digits' 1,000: a spread of 0 still admits a one-sample change
PASSING = ("identical", "consistent")


@dataclass
class Verdict:
    outcome: str  # identical | consistent | DIFFERENT | INCONSISTENT | STALE | UNFINISHED
    lines: list[str]

    @property
    def exit_code(self) -> int:
        return 0 if self.outcome in PASSING else 1


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


def classes(frame: pd.DataFrame) -> set[str | None]:
    """The bit-comparable class of every run in a per-seed frame (None: outside the guarantee)."""
    return {bit_class({key: row.get(f"hw_{key}") for key in HARDWARE_KEYS}) for _, row in frame.iterrows()}


def comparability(committed: pd.DataFrame, fresh: pd.DataFrame) -> tuple[bool, str]:
    """Whether the two sides must compute the same bits, and the class (or why not)."""
    ours, theirs = classes(fresh), classes(committed)
    if None in ours or None in theirs:
        return False, "a side does not run the portable numerics on x86-64 with AVX2"
    if ours != theirs or len(ours) != 1:
        return False, f"other hardware classes: committed {sorted(theirs)}, this run {sorted(ours)}"
    return True, next(iter(ours))


def compare(committed: pd.DataFrame, fresh: pd.DataFrame, spread: pd.DataFrame | None = None) -> Verdict:
    """The verdict on ``fresh`` runs against the ``committed`` rows of the same run ids; ``spread`` holds
    the committed seeds of each fresh run's cell (a ``cell`` column naming the fresh run id)."""
    lines = [f"committed: {hardware_line(committed)}", f"this run:  {hardware_line(fresh)}"]
    merged = fresh.merge(committed, on="run_id", how="left", suffixes=("", "_committed"), indicator=True)
    stale = merged.loc[merged["_merge"] == "left_only", "label"].tolist()
    if stale:
        lines.append(f"NOT IN THE COMMITTED RESULTS (config changed since they were trained): {', '.join(stale)}")
        return Verdict("STALE", lines)
    gaps = {column: gap for column in COMPARED
            if (gap := (merged[column].astype(float) - merged[f"{column}_committed"].astype(float)).abs().max()) > 0}
    if not gaps:
        lines.append(f"identical: {len(merged)} runs ({', '.join(merged['label'])}), {len(COMPARED)} values each")
        return Verdict("identical", lines)
    lines += [f"differs: {column} by up to {gap:.6g}" for column, gap in gaps.items()]
    comparable, why = comparability(committed, fresh)
    if comparable:
        lines.append(f"DIFFERENT: both sides are bit-comparable ({why}), so they must be identical")
        return Verdict("DIFFERENT", lines)
    return consistency(fresh, spread if spread is not None else committed.assign(cell=committed["run_id"]),
                       lines, why)


def consistency(fresh: pd.DataFrame, spread: pd.DataFrame, lines: list[str], why: str) -> Verdict:
    """Each checked value of each fresh run against its cell's prediction interval (module docstring)."""
    checks = [(row, column) for _, row in fresh.iterrows() for column in CHECKED if pd.notna(row.get(column))]
    level = FAMILY_LEVEL / max(len(checks), 1)
    outside = []
    for row, column in checks:
        seeds = spread.loc[spread["cell"] == row["run_id"], column].dropna().astype(float)
        low, high = prediction_interval(seeds.tolist(), level)
        value = float(row[column])
        text = f"{row['label']} {column} {value:.4f} vs [{low:.4f}, {high:.4f}] from {len(seeds)} committed seeds"
        lines.append(("  " if low <= value <= high else "  OUTSIDE ") + text)
        if not low <= value <= high:
            outside.append(text)
    if outside:
        lines.append(f"INCONSISTENT (not bit-comparable: {why}): {len(outside)} of {len(checks)} values lie outside "
                     f"their cell's prediction interval (family level {FAMILY_LEVEL}, Bonferroni)")
        return Verdict("INCONSISTENT", lines)
    lines.append(f"consistent (not bit-comparable: {why}): all {len(checks)} values lie inside their cell's "
                 f"prediction interval (family level {FAMILY_LEVEL}, Bonferroni)")
    return Verdict("consistent", lines)


def prediction_interval(values: list[float], level: float) -> tuple[float, float]:
    """Where one more independent draw falls with probability ``1 − level``, from ``values`` (Student t).
    Fewer than 2 values cannot tell a spread: the whole accuracy range [0, 1]."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return 0.0, 1.0
    mean = sum(values) / n
    sd = max(math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)), SD_FLOOR)
    half = stats.t.ppf(1 - level / 2, n - 1) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def spread_frame(spread_grid: GridConfig, spread_name: str, results: Path, fresh_runs: list[RunConfig]) -> pd.DataFrame:
    """The committed seeds of each fresh run's cell in the spread grid, with the fresh run id as ``cell``.
    A run of the spread grid is in a fresh run's cell when it equals that run but for its seed."""
    path = Path(results) / spread_name / "per_seed.csv"
    if not path.exists():
        raise FileNotFoundError(f"verify: no committed per-seed results of the spread grid at {path}")
    committed = pd.read_csv(path)
    cells = {}
    for cfg in expand_grid(spread_grid):
        for fresh in fresh_runs:
            if replace(cfg, seed=fresh.seed).run_id() == fresh.run_id():
                cells[cfg.run_id()] = fresh.run_id()
    rows = committed[committed["run_id"].isin(cells)]
    return rows.assign(cell=rows["run_id"].map(cells))


def verify(grid: GridConfig, grid_name: str, results: Path, runs_root: Path, method: str, jobs: int,
           spread: tuple[GridConfig, str] | None = None) -> Verdict:
    """Re-train the sample of ``grid`` under ``runs_root`` and judge it against ``results/<grid_name>``;
    ``spread`` is ``(grid, name)`` of the grid whose committed seeds give each cell's spread."""
    from .runner import run_grid

    committed_path = Path(results) / grid_name / "per_seed.csv"
    if not committed_path.exists():
        raise FileNotFoundError(f"verify: no committed per-seed results at {committed_path}")
    sample = sample_grid(grid, method)
    runs_dir = fresh_folder(Path(runs_root))
    report = run_grid(sample, runs_dir, progress=False, jobs=jobs)
    records, failed, missing = grid_records(sample, runs_dir)
    if failed or missing or report.failed:
        return Verdict("UNFINISHED", [f"verify: runs did not finish in {runs_dir}: "
                                      f"{failed or missing or report.failed}"])
    fresh = per_seed_frame(records, grid_name)
    fresh["label"] = [run_title(r["final"]["label"], r["config"]) for r in records]  # names the references
    spread_grid, spread_name = spread or (grid, grid_name)
    cells = spread_frame(spread_grid, spread_name, Path(results), expand_grid(sample))
    verdict = compare(pd.read_csv(committed_path), fresh, cells)
    return replace(verdict, lines=[f"re-trained in {runs_dir}", *verdict.lines])


def fresh_folder(root: Path) -> Path:
    """A new, empty folder under ``root`` for one verification's runs. A grid resumes the finished runs it
    finds, so re-training into a folder used before would compare the runs of earlier code."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("verify-%Y%m%d-%H%M%S", time.gmtime())
    for attempt in itertools.count():
        folder = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue

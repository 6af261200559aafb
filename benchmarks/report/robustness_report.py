"""The robustness table and figure of a grid, from the runs' robustness records (``benchmarks.train.robustness``).

Written to ``results/<grid>/robustness/``:

* ``table.md``: per method, the multimodal accuracy (%) under each degradation and level, mean ± std
  over seeds per arm, and each arm's Δ against the baseline arm ("none" when the grid has it), paired
  by seed with its 95% interval and verdict (Holm over the Δ cells of each printed table,
  :mod:`benchmarks.report.statistics`); the same for the degraded
  modality's own unimodal head; the paired statistics of each degradation's mean over its degraded
  levels; the runs whose clean accuracy differs from their recorded one (none expected).
* ``table.csv``: one row per (method, arm, degradation, level, column): ``mean``, ``std``, ``n``, and
  against the baseline arm ``baseline_arm``, ``delta``, ``ci_low``, ``ci_high``, ``t_p_value`` (paired t,
  unadjusted: the verdicts depend on the family a table prints), ``p_value``, ``p_floor`` (sign flip),
  ``improved``, ``ties`` (empty for the baseline itself). ``level`` is the
  nominal level (``clean`` for the noise-free point, ``mean`` for the mean over degraded levels).
* ``per_run.csv``: one row per (run, degradation, level): ``method``, ``arm``, ``seed``, ``label``,
  ``family``, ``level``, ``achieved``, ``Multi``, ``Audio``, ``Visual`` (accuracy, %).
* ``robustness_<method>.png`` / ``.pdf``: one panel per degradation, a curve per arm (mean over seeds,
  band ± std).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tabulate import tabulate

from ..grid.config import ARM_TITLES
from ..core.records import atomic_write_text
from ..train.perturbations import PROTOCOL
from ..train.robustness import GridRobustness, RunResult
from .figures import ARM_COLORS, save
from .paper import mean_std
from .statistics import PairedComparison, judge_table, paired_comparison
from .summaries import MissingData

COLUMNS = {"Multi": "acc", "Audio": "acc_audio", "Visual": "acc_visual"}
FAMILIES = {f.name: f for f in PROTOCOL}
MEAN = "mean"  # the level label of a degradation's mean over its degraded levels


def level_label(level: float | None) -> str:
    return "clean" if level is None else f"{level:g}"


def per_run_frame(results: list[RunResult]) -> pd.DataFrame:
    """One row per (run, degradation, level), accuracies in %; plus each degradation's mean over its
    degraded (non-clean) levels, level ``mean``."""
    rows = []
    for result in results:
        run = {"method": result.method, "arm": result.arm, "seed": result.seed, "label": result.label}
        for family in PROTOCOL:  # the protocol's order (a record read back has its keys sorted)
            points = result.record["families"].get(family.name, {}).get("points", [])
            for point in points:
                rows.append({**run, "family": family.name, "level": level_label(point["level"]),
                             "achieved": point["achieved"], **percent(point)})
            degraded = [p for p in points if not family.clean(p["level"])]
            if degraded:
                means = {key: float(np.mean([p[key] for p in degraded]))
                         for key in COLUMNS.values() if key in degraded[0]}
                rows.append({**run, "family": family.name, "level": MEAN, "achieved": np.nan, **percent(means)})
    return pd.DataFrame(rows, columns=["method", "arm", "seed", "label", "family", "level", "achieved", *COLUMNS])


def percent(accuracies: dict[str, float]) -> dict[str, float]:
    """The table columns of a point's accuracies, in % (NaN for a head the run does not have)."""
    return {col: 100 * accuracies[key] if key in accuracies else np.nan for col, key in COLUMNS.items()}


class Cells:
    """The per-run frame indexed by (method, arm, degradation, level): seed -> that run's row."""

    def __init__(self, frame: pd.DataFrame, resolution: float = 0.0) -> None:
        self.frame = frame
        self.resolution = resolution  # one test sample, in points: the floor of a difference's spread
        self.runs: dict[tuple[str, str, str, str], dict[int, dict]] = {}
        for row in frame.to_dict("records"):
            seeds = self.runs.setdefault((row["method"], row["arm"], row["family"], row["level"]), {})
            if row["seed"] in seeds:
                raise MissingData(f"{row['method']}, {row['arm']}: several runs per seed (a sweep grid?); "
                                  "evaluate one point at a time")
            seeds[int(row["seed"])] = row

    def values(self, method: str, arm: str, family: str, level: str, column: str) -> dict[int, float]:
        """seed -> accuracy (%) of one cell, seeds without the column left out."""
        runs = self.runs.get((method, arm, family, level), {})
        return {seed: row[column] for seed, row in runs.items() if not pd.isna(row[column])}

    def against(self, method: str, arm: str, baseline: str, family: str, level: str,
                column: str) -> PairedComparison | None:
        """``arm`` − ``baseline`` at one point, paired by seed (None without a common seed)."""
        a = self.values(method, arm, family, level, column)
        b = self.values(method, baseline, family, level, column)
        seeds = sorted(set(a) & set(b))
        return paired_comparison([a[s] - b[s] for s in seeds], resolution=self.resolution) if seeds else None

    def families(self) -> list[str]:
        return list(dict.fromkeys(self.frame["family"]))

    def levels(self, family: str) -> list[str]:
        return levels_of(self.frame, family)


def mean_std_cell(values: list[float]) -> str:
    """mean ± sample std over seeds, as the accuracy tables write it ("–" without runs)."""
    if not values:
        return "–"
    return mean_std(float(np.mean(values)), np.std(values, ddof=1) if len(values) > 1 else float("nan"))


def levels_of(frame: pd.DataFrame, family: str) -> list[str]:
    present = list(dict.fromkeys(frame.loc[frame["family"] == family, "level"]))
    return [l for l in present if l != MEAN] + ([MEAN] if MEAN in present else [])


def stats_rows(cells: Cells, methods: list[str], arms: list[str], baseline: str) -> pd.DataFrame:
    """Every (method, arm, family, level, column) cell with its statistics: ``table.csv``."""
    rows = []
    for method in methods:
        for family in cells.families():
            for level in cells.levels(family):
                for column in COLUMNS:
                    for arm in arms:
                        values = list(cells.values(method, arm, family, level, column).values())
                        if not values:
                            continue
                        row = {"method": method, "arm": arm, "family": family, "level": level, "column": column,
                               "mean": np.mean(values), "std": np.std(values, ddof=1) if len(values) > 1 else np.nan,
                               "n": len(values)}
                        c = cells.against(method, arm, baseline, family, level, column) if arm != baseline else None
                        if c is not None:
                            row.update(baseline_arm=baseline, delta=c.mean, ci_low=c.ci_low, ci_high=c.ci_high,
                                       t_p_value=c.t_p_value, p_value=c.p_value, p_floor=c.p_floor,
                                       improved=c.improved, ties=c.ties)
                        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_table(cells: Cells, method: str, arms: list[str], baseline: str, own_head: bool) -> pd.DataFrame:
    """Rows: degradation × level; per arm mean ± std and (not the baseline) Δ vs the baseline.
    ``own_head``: the degraded modality's unimodal head instead of the fused one."""
    lines = []
    for family in cells.families():
        column = FAMILIES[family].modality.capitalize() if own_head else "Multi"
        for level in cells.levels(family):
            line = {"Degradation": FAMILIES[family].title, "Level": level}
            for arm in arms:
                line[ARM_TITLES[arm]] = mean_std_cell(list(cells.values(method, arm, family, level, column).values()))
                if arm != baseline:
                    c = cells.against(method, arm, baseline, family, level, column)
                    line[f"{ARM_TITLES[arm]} Δ [95% CI]"] = "–" if c is None else c
            lines.append(line)
    return judge_table(pd.DataFrame(lines))  # the table's Δ cells are one family


def paired_table(cells: Cells, method: str, arms: list[str], baseline: str) -> pd.DataFrame:
    """The paired statistics of each degradation's mean multimodal accuracy over its degraded levels."""
    lines = []
    for family in cells.families():
        for arm in arms:
            c = cells.against(method, arm, baseline, family, MEAN, "Multi") if arm != baseline else None
            if c is None:
                continue
            lines.append({"Degradation": FAMILIES[family].title,
                          "Comparison": f"{ARM_TITLES[arm]} − {ARM_TITLES[baseline]}", "seeds": str(c.n),
                          "Δ [95% CI] verdict": c,
                          "paired-t p": "–" if np.isnan(c.t_p_value) else f"{c.t_p_value:.3g}",
                          "sign-flip p (floor)": f"{c.p_value:.3f} ({c.p_floor:.3f})",
                          "seeds improving": f"{c.improved}/{c.n}" + (f" ({c.ties} tied)" if c.ties else "")})
    return judge_table(pd.DataFrame(lines))  # the table's Δ cells are one family


def _markdown(frame: pd.DataFrame) -> str:
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def header_lines(grid: GridRobustness, seed: int) -> list[str]:
    records = [r.record for r in grid.results]
    lines = [f"- runs: {len(records)} evaluated (the selected checkpoint, `best.pt`, of each finished multimodal "
             f"run), {len(grid.missing)} not finished, {len(grid.failed)} could not be evaluated; protocol seed {seed}"]
    if records:
        lines.append(f"- selection: {', '.join(sorted({r['selection'] for r in records}))}; wall time per run "
                     f"{np.mean([r['wall_time_s'] for r in records]):.1f} s (mean)")
    differ = [r.label for r in grid.results if r.record["clean"] != r.record["recorded_test"]]
    lines.append(f"- **WARNING: the clean accuracy differs from the recorded test accuracy for {', '.join(differ)}** "
                 "(another machine or numerics?)" if differ else
                 "- the clean accuracy equals the recorded test accuracy at the selected epoch for every run")
    skipped = {name: outcome["skipped"] for r in records for name, outcome in r["families"].items()
               if "skipped" in outcome}
    lines += [f"- skipped: {FAMILIES[name].title}: {why}" for name, why in skipped.items()]
    lines += [f"- MISSING: {label}" for label in grid.missing]
    lines += [f"- FAILED: {why}" for why in grid.failed]
    return lines


def render(grid: GridRobustness, arms: list[str], out_dir: Path, title: str, seed: int) -> str:
    """Write the table, the CSVs and the figures; returns the markdown."""
    frame = per_run_frame(grid.results)
    cells = Cells(frame, 100 / grid.test_samples if grid.test_samples else 0.0)
    arms = [a for a in arms if a in set(frame["arm"])]
    baseline = "none" if "none" in arms else (arms[0] if arms else "none")
    methods = list(dict.fromkeys(frame["method"]))
    parts = [f"# {title}", "", "Generated by `python -m benchmarks robustness` from the runs' robustness records; "
             "do not edit.", "", *header_lines(grid, seed), "",
             "Cells: test accuracy (%) at the selected epoch with one modality degraded, mean ± sample std over "
             f"seeds; Δ = the arm − {ARM_TITLES.get(baseline, baseline)}, paired by seed, with its 95% paired-t "
             "interval and a verdict: the Δ cells of each table are one family, \"better\"/\"worse\" where the "
             "paired-t p, Holm-adjusted over that family, is at most 0.05. Level `mean`: the mean over the "
             "degraded levels. Definitions: docs/robustness.md.", ""]
    for method in methods:
        parts += [f"## {method}: multimodal accuracy", "",
                  _markdown(accuracy_table(cells, method, arms, baseline, False)), "",
                  f"## {method}: the degraded modality's own head", "",
                  _markdown(accuracy_table(cells, method, arms, baseline, True)), ""]
        paired = paired_table(cells, method, arms, baseline)
        if len(paired):
            parts += [f"## {method}: paired statistics (mean over the degraded levels, multimodal)", "",
                      "Exact two-sided sign-flip p over the per-seed differences (its floor, 2/2^n, in parentheses) "
                      "and the seeds whose difference is > 0.", "", _markdown(paired), ""]
    markdown = "\n".join(parts)
    atomic_write_text(out_dir / "table.md", markdown)
    stats = stats_rows(cells, methods, arms, baseline)
    atomic_write_text(out_dir / "table.csv", stats.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out_dir / "per_run.csv", frame.to_csv(index=False, float_format="%.4f"))
    for method in methods:
        robustness_figure(frame, method, arms, grid, out_dir / f"robustness_{method_stem(method)}")
    return markdown


def method_stem(method: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in method.lower()).strip("_")


def robustness_figure(frame: pd.DataFrame, method: str, arms: list[str], grid: GridRobustness,
                      out_stem: Path) -> list[Path]:
    """One panel per degradation: multimodal accuracy per level, a curve per arm (mean, band ± std)."""
    fig = Figure(figsize=(16, 7.5), layout="constrained")
    axes = fig.subplots(2, (len(PROTOCOL) + 1) // 2).ravel()
    skipped = {name: o["skipped"] for r in grid.results for name, o in r.record["families"].items() if "skipped" in o}
    own = frame[(frame["method"] == method) & (frame["level"] != MEAN)]
    for ax, family in zip(axes, PROTOCOL):
        ax.set(title=f"{family.title}", xlabel=family.unit, ylabel="multimodal test accuracy (%)")
        if family.name in skipped:
            ax.text(0.5, 0.5, f"skipped:\n{skipped[family.name]}", ha="center", va="center", transform=ax.transAxes)
            continue
        levels = levels_of(own, family.name)
        for arm in arms:
            values = own[(own["family"] == family.name) & (own["arm"] == arm)]
            if values.empty:
                continue
            table = values.pivot(index="seed", columns="level", values="Multi")[levels]
            mean, std = table.mean().to_numpy(), table.std(ddof=1).to_numpy()
            x = np.arange(len(levels))
            ax.plot(x, mean, marker="o", color=ARM_COLORS[arm], label=f"{ARM_TITLES[arm]} (n={len(table)})")
            if len(table) > 1:
                ax.fill_between(x, mean - std, mean + std, color=ARM_COLORS[arm], alpha=0.2, linewidth=0)
        ax.set_xticks(np.arange(len(levels)), levels)
    for ax in axes[len(PROTOCOL):]:
        ax.axis("off")
    legend = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    if legend:
        (axes[len(PROTOCOL)] if len(axes) > len(PROTOCOL) else axes[0]).legend(legend.values(), legend.keys(),
                                                                             loc="center")
    fig.suptitle(f"{method}: test accuracy with one modality missing or corrupted (mean ± std over seeds)")
    return save(fig, out_stem)

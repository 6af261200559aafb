"""Figures drawn from run records only: ``python -m benchmarks figures CONFIG [--runs] [--results] [--set]``.

A record is ``{"config", "metrics", "final"}`` as read by :func:`benchmarks.report.summaries.grid_records`;
geometry comes from ``row[split]["geometry"]`` (:func:`geomreg.geometry.geometry_summary`, recorded
each epoch when ``eval.geometry`` is on). Figures, PNG and PDF each:

* ``training_curves``: the paper's Figure 2 analogue, per-epoch semantic margin, effective rank and
  cross-modal deviation per regularizer arm, mean ± std over seeds.
* ``similarity_figure``: Figure 3 analogue, matched vs mismatched cross-modal cosine histograms at the
  validation-selected epoch without and with DAGR (pooled over seeds), with Δμ and KS, and Recall@K.
* ``accuracy_overview``: multimodal test accuracy per method and arm, unimodal references as lines,
  and below it each regularizer arm's Δ against no regularizer with its 95% paired interval (the
  README embeds it).
* ``sensitivity_figure``: validation accuracy over a (τ, t) sweep
  (:func:`benchmarks.report.summaries.sensitivity_summary`).

With several modality pairs, scalar pair metrics are averaged over pairs and histograms pooled.
Matplotlib is used without pyplot (no global figure state); output carries no timestamps.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..grid.config import ARM_TITLES, load_grid
from .readme import OVERVIEW
from .statistics import PairedComparison, paired_verdicts
from .summaries import (COLUMNS, SELECTION, MissingData, Record, arm_of, compare, grid_records, method_of,
                        results_frame, row_name, row_order, selected_row, sensitivity_summary)

Draw = Callable[[], list[Path]]

ARM_COLORS = {"none": "tab:gray", "disperse": "tab:orange", "anchor": "tab:green", "dagr": "tab:blue",
              "dagr-fixed": "tab:purple", "dagr-last-layer": "tab:cyan", "naive-align": "tab:red",
              "vicreg": "tab:brown", "barlow-twins": "tab:pink", "unit-sphere": "tab:olive"}
CURVE_ARMS = ("none", "disperse", "dagr", "dagr-fixed")  # the paper's Figure 2 legend, plus the fixed form
SIMILARITY_ARMS = ("none", "dagr")
VERDICT_MARKERS = {"better": "^", "worse": "v", "within noise": "o", "no test": "o"}
PDF_METADATA = {"CreationDate": None}  # no timestamp: same records, same bytes
PNG_METADATA = {"Software": None}


def linestyles() -> Iterator[str]:
    """Line styles that tell curves of one colour apart, repeating when there are many."""
    return itertools.cycle(("-", "--", ":", "-."))


def shared_method(records: Iterable[Record], method: str | None = None) -> str:
    """``method`` if given, else the one multimodal method all records share."""
    if method is not None:
        return method
    methods = sorted({method_of(r) for r in records} - {"unimodal"})
    if len(methods) != 1:
        raise MissingData(f"records hold methods {methods}; pass method=")
    return methods[0]


def records_by_arm(records: Iterable[Record], method: str, arms: Sequence[str]) -> dict[str, list[Record]]:
    """The method's records per arm, in ``arms`` order, arms without records left out.

    Each arm must hold one record per seed: records of several sweep points would be mixed."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        if method_of(record) == method and arm_of(record) in arms:
            groups.setdefault(arm_of(record), []).append(record)
    for arm, group in groups.items():
        seeds = [r["config"]["seed"] for r in group]
        if len(set(seeds)) != len(seeds):
            raise MissingData(f"{method}, arm {arm}: several records per seed (a sweep?); pass one point's records")
    return {arm: groups[arm] for arm in arms if arm in groups}


def require_arms(present: Iterable[str], arms: Sequence[str], what: str) -> None:
    """Raise MissingData naming the arms of ``arms`` that are not ``present``."""
    present = set(present)
    absent = [a for a in arms if a not in present]
    if absent:
        raise MissingData(f"{what} needs arm(s) {absent}, which have no finished runs")


def geometry_of(record: Record, row: dict[str, Any], split: str) -> dict[str, Any]:
    try:
        return row[split]["geometry"]
    except KeyError:
        raise MissingData(f"run {method_of(record)}/{arm_of(record)}/seed {record['config']['seed']} has no "
                          f"{split} geometry at epoch {row['epoch']} (trained with eval.geometry off?)") from None


def pair_mean(geometry: dict[str, Any], key: str) -> float:
    """Mean of a scalar pair metric over the modality pairs (undefined values, None, ignored)."""
    values = [p[key] for p in geometry["pairs"].values() if p[key] is not None]
    return float(np.mean(values)) if values else float("nan")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1; NaN for one value), the convention of the tables."""
    series = pd.Series(values, dtype=float)
    return float(series.mean()), float(series.std())


# --- output -----------------------------------------------------------------------------------

def save(fig: Figure, out_stem: str | Path) -> list[Path]:
    """Write ``<out_stem>.png`` and ``.pdf`` (folders created) and return their paths."""
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    fig.savefig(paths[0], dpi=150, metadata=PNG_METADATA)
    fig.savefig(paths[1], metadata=PDF_METADATA)
    return paths


# --- Figure 2: training curves ----------------------------------------------------------------

CURVE_PANELS: tuple[tuple[str, Callable[[dict[str, Any]], float]], ...] = (
    ("(a) semantic margin $\\Delta_{sem}$ (Eq. 45, fusion input)", lambda g: g["semantic_margin"]["fused"]),
    ("(b) effective rank (mean over modalities)", lambda g: g["effective_rank"]["mean"]),
    ("(c) cross-modal deviation $E\\|\\hat z_a - \\hat z_v\\|^2$", lambda g: pair_mean(g, "deviation")),
)


def curve_matrix(group: list[Record], split: str, metric: Callable[[dict[str, Any]], float]
                 ) -> tuple[list[int], np.ndarray]:
    """Epochs recorded by every seed of the group, and the metric as a seeds × epochs array."""
    epochs = sorted(set.intersection(*({row["epoch"] for row in r["metrics"]} for r in group)))
    values = [[metric(geometry_of(r, row, split)) for row in r["metrics"] if row["epoch"] in epochs] for r in group]
    return epochs, np.array(values, dtype=float)


def training_curves(records: list[Record], out_stem: str | Path, split: str = "test",
                    method: str | None = None) -> list[Path]:
    """Figure 2 analogue: per-epoch geometry of ``split`` per arm (mean over seeds, ±std band)."""
    method = shared_method(records, method)
    groups = records_by_arm(records, method, CURVE_ARMS)
    if not groups:
        raise MissingData(f"{method}: no finished runs of arms {list(CURVE_ARMS)}")
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, len(CURVE_PANELS))
    for ax, (title, metric) in zip(axes, CURVE_PANELS):
        for arm, group in groups.items():
            epochs, values = curve_matrix(group, split, metric)
            mean = values.mean(axis=0)
            label = f"{ARM_TITLES[arm]} (n={len(group)})"
            ax.plot(epochs, mean, color=ARM_COLORS[arm], label=label)
            if len(group) > 1:
                std = values.std(axis=0, ddof=1)
                ax.fill_between(epochs, mean - std, mean + std, color=ARM_COLORS[arm], alpha=0.2, linewidth=0)
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{method}: training-time geometry ({split} split; mean ± std over seeds)")
    return save(fig, out_stem)


# --- Figure 3: cross-modal similarity ---------------------------------------------------------

def pooled_histograms(group: list[Record], split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Matched and mismatched cosine counts at each seed's selected epoch, summed over seeds and pairs."""
    geometries = [geometry_of(r, selected_row(r), split) for r in group]
    bins = {g["bins"] for g in geometries}
    if len(bins) != 1:
        raise MissingData(f"histograms with different bin counts {sorted(bins)} cannot be pooled")
    pairs = [p for g in geometries for p in g["pairs"].values()]
    if not pairs:
        raise MissingData("no modality pair recorded (unimodal runs?)")
    matched = np.sum([p["hist"]["matched"] for p in pairs], axis=0)
    mismatched = np.sum([p["hist"]["mismatched"] for p in pairs], axis=0)
    return matched, mismatched, bins.pop()


def seed_stats(group: list[Record], split: str, key: str) -> tuple[float, float]:
    """Mean ± std over seeds of a pair metric at each seed's selected epoch."""
    return mean_std([pair_mean(geometry_of(r, selected_row(r), split), key) for r in group])


def recall_curves(group: list[Record], split: str) -> dict[str, tuple[list[int], np.ndarray, np.ndarray]]:
    """Per retrieval direction: K values, mean and std over seeds of Recall@K (%)."""
    geometries = [geometry_of(r, selected_row(r), split) for r in group]
    curves = {}
    for pair in geometries[0]["pairs"]:
        for direction, by_k in geometries[0]["pairs"][pair]["recall"].items():
            ks = sorted(by_k, key=int)
            values = 100 * np.array([[g["pairs"][pair]["recall"][direction][k] for k in ks] for g in geometries])
            std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(len(ks))
            curves[direction] = ([int(k) for k in ks], values.mean(axis=0), std)
    return curves


def occupied_range(counts: Iterable[np.ndarray], bins: int) -> tuple[float, float]:
    """The cosine interval covered by non-empty bins (the histograms' x-limits)."""
    nonzero = np.flatnonzero(np.sum(list(counts), axis=0))
    width = 2.0 / bins
    return -1.0 + width * nonzero[0], -1.0 + width * (nonzero[-1] + 1)


def similarity_figure(records: list[Record], out_stem: str | Path, split: str = "test",
                      method: str | None = None) -> list[Path]:
    """Figure 3 analogue: cosine histograms without / with DAGR and Recall@K, at the selected epoch."""
    method = shared_method(records, method)
    groups = records_by_arm(records, method, SIMILARITY_ARMS)
    require_arms(groups, SIMILARITY_ARMS, "the similarity figure")
    hists = {arm: pooled_histograms(group, split) for arm, group in groups.items()}
    xlim = occupied_range([c for matched, mismatched, _ in hists.values() for c in (matched, mismatched)],
                          hists["none"][2])
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, panel, arm in zip(axes, ("(a)", "(b)"), SIMILARITY_ARMS):
        histogram_panel(ax, hists[arm], groups[arm], split, xlim)
        ax.set_title(f"{panel} {ARM_TITLES[arm]} (n={len(groups[arm])})")
    recall_panel(axes[2], groups, split)
    fig.suptitle(f"{method}: cross-modal similarity at the validation-selected epoch "
                 f"({split} split; histograms pooled over seeds, statistics mean ± std)")
    return save(fig, out_stem)


def histogram_panel(ax, hist: tuple[np.ndarray, np.ndarray, int], group: list[Record], split: str,
                    xlim: tuple[float, float]) -> None:
    """Matched and mismatched cosine densities, annotated with Δμ and KS (mean ± std over seeds)."""
    matched, mismatched, bins = hist
    edges = np.linspace(-1.0, 1.0, bins + 1)
    for counts, label, color in ((matched, "matched", "tab:red"), (mismatched, "mismatched", "tab:blue")):
        ax.stairs(counts / (counts.sum() * (2.0 / bins)), edges, label=label, color=color, fill=True, alpha=0.4)
    dmu, dks = seed_stats(group, split, "delta_mu"), seed_stats(group, split, "ks")
    ax.text(0.02, 0.97, f"$\\Delta\\mu$ = {dmu[0]:+.4f} ± {dmu[1]:.4f}\n$D_{{KS}}$ = {dks[0]:.4f} ± {dks[1]:.4f}",
            transform=ax.transAxes, va="top", fontsize="small")
    ax.set(xlabel="cross-modal cosine", ylabel="density", xlim=xlim)
    ax.legend(fontsize="small", loc="upper right")


def recall_panel(ax, groups: dict[str, list[Record]], split: str) -> None:
    """Recall@K (%) against K per arm (colour) and retrieval direction (line style), ± std over seeds."""
    all_ks: set[int] = set()
    for arm, group in groups.items():
        for (direction, (ks, mean, std)), style in zip(recall_curves(group, split).items(), linestyles()):
            all_ks.update(ks)
            ax.errorbar(ks, mean, yerr=std, color=ARM_COLORS[arm], linestyle=style, marker="o", markersize=3,
                        capsize=2, label=f"{ARM_TITLES[arm]}: {direction}")
    ax.set(title="(c) Recall@K", xlabel="K", ylabel="Recall@K (%)", xscale="log")
    ax.set_xticks(sorted(all_ks), [str(k) for k in sorted(all_ks)])
    ax.minorticks_off()
    ax.legend(fontsize="small")


# --- accuracy overview ------------------------------------------------------------------------

def selected_accuracy(record: Record) -> float:
    """Test accuracy (%) at the validation-selected epoch; a unimodal reference's own modality."""
    test = selected_row(record)["test"]
    if method_of(record) == "unimodal":
        modality = record["config"]["method"]["params"]["modality"]
        return 100 * test.get(f"acc_{modality}", test["acc"])
    return 100 * test["acc"]


def accuracy_overview(records: list[Record], out_stem: str | Path) -> list[Path]:
    """Top: per method, multimodal test accuracy (validation-selected) per arm, bars ± seed std,
    unimodal references as horizontal lines. Below: per method, each regularizer arm's Δ against
    no regularizer, paired by seed, with its 95% interval (marker: the verdict)."""
    cells: dict[str, dict[str, list[float]]] = {}
    references: dict[str, list[float]] = {}
    for record in records:
        name = row_name(record["config"])
        if method_of(record) == "unimodal":
            references.setdefault(name, []).append(selected_accuracy(record))
        else:
            cells.setdefault(name, {}).setdefault(arm_of(record), []).append(selected_accuracy(record))
    if not cells:
        raise MissingData("no finished multimodal runs")
    methods = sorted(cells, key=row_order)
    arms = [a for a in ARM_TITLES if any(a in cells[m] for m in methods)]
    # One above the other, the methods at the same x: a figure about as wide as a page (the README's).
    fig = Figure(figsize=(max(8.0, 1.2 * len(methods) + 2), 8.0), layout="constrained")
    accuracy_ax, delta_ax = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 2]})
    accuracy_panel(accuracy_ax, cells, references, methods, arms)
    delta_panel(delta_ax, records, methods, [a for a in arms if a != "none"])
    fig.suptitle("Multimodal test accuracy at the validation-selected epoch")
    return save(fig, out_stem)


def accuracy_panel(ax, cells: dict[str, dict[str, list[float]]], references: dict[str, list[float]],
                   methods: list[str], arms: list[str]) -> None:
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        stats = [mean_std(cells[m].get(arm, [])) for m in methods]
        x = np.arange(len(methods)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(x, [s[0] for s in stats], width, yerr=[np.nan_to_num(s[1]) for s in stats], capsize=3,
               color=ARM_COLORS[arm], label=ARM_TITLES[arm])
    for (name, values), style in zip(sorted(references.items()), linestyles()):
        mean, std = mean_std(values)
        ax.axhline(mean, color="black", linestyle=style, linewidth=1, label=f"{name}: {mean:.1f} ± {std:.1f}")
    ax.set_xticks(np.arange(len(methods)), methods, rotation=20, ha="right")
    ax.set(ylabel="test accuracy (%)", title="mean ± std over seeds")
    plotted = [v for m in methods for values in cells[m].values() for v in values]
    plotted += [np.mean(v) for v in references.values()]
    ax.set_ylim(bottom=max(0.0, min(plotted) - 10))  # a cut axis: differences of a point stay visible
    ax.legend(fontsize="small", loc="lower left")


def delta_panel(ax, records: list[Record], methods: list[str], arms: list[str]
                ) -> list[tuple[str, str, PairedComparison, str]]:
    """Δ (arm − no regularizer) per method with its 95% paired-t interval (no bar from one seed) and its
    verdict as in the grid's table: Holm over every Δ cell of the table (all columns), so the figure and
    the table agree; returns what it plotted: (method, arm, statistics, verdict)."""
    frame = results_frame(records, SELECTION)
    cells = [(method, arm, column) for arm in arms for method in methods for column, _ in COLUMNS]
    compared = [(cell, compare(frame, records, SELECTION, (cell[0], cell[1]), (cell[0], "none"), cell[2]).stats)
                for cell in cells]
    compared = [(cell, stats) for cell, stats in compared if stats is not None]
    verdicts = dict(zip([cell for cell, _ in compared], paired_verdicts([stats for _, stats in compared])))
    width = 0.8 / max(len(arms), 1)
    plotted = []
    for (method, arm, column), stats in compared:
        if column != "Multi":
            continue
        i, j = arms.index(arm), methods.index(method)
        verdict = verdicts[(method, arm, column)].text
        plotted.append((method, arm, stats, verdict))
        x = j + (i - (len(arms) - 1) / 2) * width
        bar = None if np.isinf(stats.ci_low) else [[stats.mean - stats.ci_low], [stats.ci_high - stats.mean]]
        ax.errorbar([x], [stats.mean], yerr=bar, color=ARM_COLORS[arm], marker=VERDICT_MARKERS[verdict],
                    capsize=4, linestyle="none", label=ARM_TITLES[arm] if j == 0 else None)
    ax.axhline(0.0, color="black", linewidth=1)
    ax.set_xticks(np.arange(len(methods)), methods, rotation=20, ha="right")
    ax.set(ylabel="Δ test accuracy (points)", xlim=(-0.5, len(methods) - 0.5),
           title="Δ vs no regularizer, 95% paired CI\n▲ better, ▼ worse (Holm over the table's Δ cells), "
                 "● within noise")
    if plotted:
        ax.legend(fontsize="small")
    return plotted


# --- sensitivity ------------------------------------------------------------------------------

def sensitivity_figure(summary: pd.DataFrame, out_stem: str | Path,
                       keys: Sequence[str] = ("dagr.tau", "dagr.t")) -> list[Path]:
    """Heat map of mean validation accuracy over the sweep (rows: ``keys[0]``, columns: ``keys[1]``,
    one row when there is one key), one panel per (method, arm); the chosen point is outlined."""
    keys = list(keys)
    if not 1 <= len(keys) <= 2:
        raise MissingData(f"a heat map shows one or two swept keys, got {keys}")
    panels = list(summary.groupby(["method", "arm"], sort=False))
    fig = Figure(figsize=(5.2 * len(panels), 4.2), layout="constrained")
    for ax, ((method, arm), points) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        heat_panel(fig, ax, points, keys)
        ax.set_title(f"{method}, {ARM_TITLES[arm]} (red: chosen)")
    return save(fig, out_stem)


def heat_panel(fig: Figure, ax, points: pd.DataFrame, keys: list[str]) -> None:
    """One (method, arm)'s sweep points as a heat map, sweep values in sweep order, cells annotated."""
    rows = list(dict.fromkeys(points[keys[0]]))
    cols = list(dict.fromkeys(points[keys[1]])) if len(keys) == 2 else [""]
    cells = [(rows.index(p[keys[0]]), cols.index(p[keys[1]]) if len(keys) == 2 else 0, p)
             for _, p in points.iterrows()]
    grid = np.full((len(rows), len(cols)), np.nan)  # a point without finished runs stays blank
    for i, j, point in cells:
        grid[i, j] = point["val_acc_mean"]
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    for i, j, point in cells:
        std = "" if pd.isna(point["val_acc_std"]) else f"\n± {point['val_acc_std']:.2f}"
        light = image.norm(point["val_acc_mean"]) > 0.5  # dark text on the bright end of viridis
        ax.text(j, i, f"{point['val_acc_mean']:.2f}{std}", ha="center", va="center", fontsize="small",
                color="black" if light else "white")
        if point["chosen"]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_yticks(range(len(rows)), [str(v) for v in rows])
    ax.set_xticks(range(len(cols)), [str(v) for v in cols])
    ax.set(ylabel=keys[0], xlabel=keys[1] if len(keys) == 2 else "")


# --- command line -----------------------------------------------------------------------------

def figure_plan(grid, records: list[Record], stem: Path) -> list[tuple[str, list[Record], tuple[str, ...], Draw]]:
    """The figures the grid's design supports: (name, the records it reads, the arms that must have
    finished runs among them, draw). Per-arm figures need one point per arm, so a sweep grid gets
    only the sensitivity figure."""
    if grid.sweep:
        reason = f"the grid sweeps {list(grid.sweep)}; these figures compare one point per arm"
        return [("curves, similarity, overview", [], (), unavailable(reason)),
                ("sensitivity", records, (), lambda: sensitivity_figure(
                    sensitivity_summary(records, tuple(grid.sweep)), f"{stem}/sensitivity", tuple(grid.sweep)))]
    plan = []
    curve_arms = tuple(a for a in CURVE_ARMS if a in grid.dagr_arms)
    for method in grid.methods:
        own = [r for r in records if method_of(r) == method]
        if "none" in curve_arms and len(curve_arms) > 1:
            plan.append((f"curves_{method}", own, curve_arms, lambda own=own, method=method: training_curves(
                own, f"{stem}/curves_{method}", method=method)))
        if set(SIMILARITY_ARMS) <= set(grid.dagr_arms):
            plan.append((f"similarity_{method}", own, SIMILARITY_ARMS, lambda own=own, method=method:
                         similarity_figure(own, f"{stem}/similarity_{method}", method=method)))
    if {"none", "dagr"} <= set(grid.dagr_arms):
        plan.append((OVERVIEW, records, ("none", "dagr"), lambda: accuracy_overview(records, f"{stem}/{OVERVIEW}")))
    return plan


def unavailable(reason: str) -> Draw:
    def draw() -> list[Path]:
        raise MissingData(reason)
    return draw


def draw_grid_figures(config: str | Path, overrides: Sequence[str], runs_root: Path, out_dir: Path) -> int:
    """Draw every figure the grid supports into ``out_dir`` (``results/<config stem>/figures``); say what
    was skipped."""
    grid = load_grid(config, list(overrides))
    records, failed, missing = grid_records(grid, runs_root)
    print(f"{len(records)} finished, {len(failed)} failed, {len(missing)} missing runs"
          + (f" (missing: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})" if missing else ""))
    for name, used, arms, draw in figure_plan(grid, records, Path(out_dir)):
        try:
            require_arms({arm_of(r) for r in used if method_of(r) != "unimodal"}, arms, "this figure")
            print(f"wrote {', '.join(map(str, draw()))}")
        except MissingData as err:
            print(f"skipped {name}: {err}")
    return 0

"""Render result tables from run records (never typed by hand).

Takes the records of the runs a grid expands to, applies a selection rule to each run's per-epoch
metrics and writes ``table.md`` (+ ``.csv``, ``.tex``) with the Audio / Visual / Multi test accuracy
as mean ± sample std over seeds, and ``per_seed.csv`` (one row per run, see
:mod:`benchmarks.report.summaries`). A grid with the arms "none" and "dagr" gets one row per method
(without DAGR, with DAGR, Δ); other arm sets (the ablation) get one row per method and arm; a grid
with published numbers (``paper:``) gets them beside ours. Every Δ is paired by seed, with its 95%
interval and a verdict; the verdicts of one printed table are one family, controlled by Holm's
correction (:mod:`benchmarks.report.statistics`). A table of the paired statistics adds the raw and
adjusted paired-t p, the sign-flip p-value, the seeds that improve and the test samples fixed and broken.

``table.csv`` has one row per (selection, method, arm, column) cell: ``mean``, ``std``, ``n`` and,
for a cell compared with a baseline cell (``baseline_method``, ``baseline_arm``; one row per
comparison), ``pairs``, ``seeds`` and ``differences`` (per seed, ";"-separated, in points),
``delta``, ``ci_low``, ``ci_high``, ``t_p_value`` (paired t), ``holm_p_value`` and ``family_size`` (the
table the cell is judged in), ``p_value`` and ``p_floor`` (sign flip), ``improved``, ``ties``, ``verdict``,
and ``fixed``, ``broken``, ``samples_p`` (empty where predictions were not kept).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from baselines import METHODS

from ..data.fingerprint import fingerprint_lines
from ..grid.config import ARM_TITLES, arm_reads, run_arm
from ..grid.naming import method_title
from ..core.records import GRID_TIME, atomic_write_text
from .paper import PaperTable, comparison_table, mean_std
from .statistics import ALPHA, binomial_se, detectable_difference, interval_cell
from .summaries import (COLUMNS, HARDWARE_KEYS, Comparison, MissingData, Record, compare, hardware_of, judged,
                        per_seed_frame, results_frame, row_name, row_order, selected_row,
                        sensitivity_summary, test_set_size)

RULE_TEXT = {
    "best_val": "test accuracy at the epoch with the highest validation accuracy (validation = "
                "a stratified split carved from train)",
    "best_test": "PAPER PROTOCOL: test accuracy at the epoch with the highest *test* accuracy, as the "
                 "field's original code selects; optimistic, shown only to compare with published numbers",
    "last": "test accuracy at the last epoch",
}
PAIR = ("none", "dagr")
DELTA_TEXT = ("Δ [95% CI] verdict: mean over seeds of the per-seed difference (both arms trained with the same "
              "seed) and its 95% paired-t confidence interval; the verdicts of one table are one family: "
              "\"better\"/\"worse\" where the paired-t p, Holm-adjusted over every Δ cell of that table, is at "
              "most 0.05, else \"within noise\" (\"no test\" with one seed); raw and adjusted p are in the "
              "paired statistics")


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n per method, DAGR arm and column."""
    long = frame.melt(id_vars=["method", "reference", "arm", "seed"], value_vars=[c for c, _ in COLUMNS],
                      var_name="column", value_name="accuracy").dropna(subset=["accuracy"])
    stats = long.groupby(["method", "reference", "arm", "column"], sort=False)["accuracy"]
    return stats.agg(mean="mean", std="std", n="count").reset_index()


class Cells:
    """One selection rule's per-run accuracies, their summary, and the comparisons made from them
    (collected for the statistics table and the CSV)."""

    def __init__(self, records: list[Record], rule: str) -> None:
        self.records, self.rule = records, rule
        self.frame = results_frame(records, rule)
        self.summary = summarize(self.frame)
        self.lookup = {(r.method, r.arm, r.column): r for r in self.summary.itertuples()}
        self.comparisons: list[Comparison] = []
        samples = test_set_size(records)
        self.resolution = 100 / samples if samples else 0.0  # one test sample, in points

    def cell(self, method: str, arm: str, column: str) -> str:
        stat = self.lookup.get((method, arm, column))
        return "–" if stat is None else mean_std(stat.mean, stat.std)

    def delta(self, treated: tuple[str, str], baseline: tuple[str, str], column: str) -> Comparison | str:
        """The comparison behind a Δ cell (judged with the rest of its table by :meth:`judge`), or "–"."""
        if treated == baseline:
            return "–"
        comparison = compare(self.frame, self.records, self.rule, treated, baseline, column, self.resolution)
        return "–" if comparison.stats is None else comparison

    def judge(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table with its Δ cells judged as one family (Holm) and written out; the judged comparisons
        join :attr:`comparisons` (the paired statistics and the CSV)."""
        pending = [v for v in table.to_numpy().ravel() if isinstance(v, Comparison)]
        done = dict(zip(map(id, pending), judged(pending)))
        self.comparisons += done.values()
        return table.map(lambda v: delta_cell(done[id(v)]) if isinstance(v, Comparison) else v)


def delta_cell(c: Comparison) -> str:
    return interval_cell(c.stats.mean, c.stats.ci_low, c.stats.ci_high, c.verdict.text)


def pair_table(cells: Cells, methods: list[str]) -> pd.DataFrame:
    """Rows: methods; columns: <col> w/o DAGR, w/ DAGR, Δ [95% CI] verdict."""
    table = []
    for method in methods:
        line = {"Method": method}
        for col, _ in COLUMNS:
            line[f"{col} w/o DAGR"] = cells.cell(method, "none", col)
            line[f"{col} w/ DAGR"] = cells.cell(method, "dagr", col)
            line[f"{col} Δ [95% CI]"] = cells.delta((method, "dagr"), (method, "none"), col)
        table.append(line)
    return cells.judge(pd.DataFrame(table))


def arm_table(cells: Cells, methods: list[str], arms: list[str]) -> pd.DataFrame:
    """Rows: method × arm (the ablation layout); Δ = the arm − no regularizer, paired by seed."""
    table = []
    for method in methods:
        for arm in (["none"] if method.endswith("(unimodal reference)") else arms):
            line = {"Method": method, "Regularizer": ARM_TITLES[arm]}
            for col, _ in COLUMNS:
                line[col] = cells.cell(method, arm, col)
                line[f"{col} Δ [95% CI]"] = cells.delta((method, arm), (method, "none"), col)
            table.append(line)
    return cells.judge(pd.DataFrame(table))


def against_table(cells: Cells, methods: list[str], arms: list[str], reference: str) -> pd.DataFrame:
    """Rows: method × arm; Δ = the method − ``reference`` in the same arm, paired by seed."""
    table = []
    for method in methods:
        if method == reference or method.endswith("(unimodal reference)"):
            continue
        for arm in arms:
            line = {"Method": method, "Regularizer": ARM_TITLES[arm]}
            for col, _ in COLUMNS:
                line[f"{col} Δ [95% CI]"] = cells.delta((method, arm), (reference, arm), col)
            table.append(line)
    return cells.judge(pd.DataFrame(table))


def arm_pair_table(cells: Cells, methods: list[str], treated: str, baseline: str) -> pd.DataFrame:
    """Rows: the methods (not the unimodal references); Δ = ``treated`` − ``baseline``, paired by seed."""
    table = []
    for method in methods:
        if method.endswith("(unimodal reference)"):
            continue
        line = {"Method": method}
        for col, _ in COLUMNS:
            line[f"{col} Δ [95% CI]"] = cells.delta((method, treated), (method, baseline), col)
        table.append(line)
    return cells.judge(pd.DataFrame(table))


def comparison_name(c: Comparison) -> str:
    (method, arm), (base_method, base_arm) = c.treated, c.baseline
    if method == base_method:
        return f"{ARM_TITLES[arm]} − {ARM_TITLES[base_arm]}"
    return f"− {base_method} (both {ARM_TITLES[arm]})"


def statistics_table(comparisons: list[Comparison]) -> pd.DataFrame:
    """The paired statistics behind every Δ cell, one line per comparison and column."""
    lines = []
    for c in comparisons:
        s, samples = c.stats, c.samples
        lines.append({
            "Method": c.treated[0], "Comparison": comparison_name(c), "Column": c.column, "seeds": str(s.n),
            "Δ [95% CI] verdict": delta_cell(c),
            "paired-t p": p_text(s.t_p_value),
            "Holm p (family)": f"{p_text(c.verdict.adjusted_p)} ({c.verdict.family_size})",
            "sign-flip p (floor)": f"{s.p_value:.3f} ({s.p_floor:.3f})",
            "seeds improving": f"{s.improved}/{s.n}" + (f" ({s.ties} tied)" if s.ties else ""),
            "test samples fixed / broken": "–" if samples is None else f"{samples.fixed} / {samples.broken}",
            "exact p (samples)": "–" if samples is None else f"{samples.p_value:.3g}",
        })
    return pd.DataFrame(lines)


def p_text(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def comparisons_frame(comparisons: list[Comparison], rule: str) -> pd.DataFrame:
    rows = []
    for c in comparisons:
        s, samples = c.stats, c.samples
        rows.append({
            "selection": rule, "method": c.treated[0], "arm": c.treated[1], "column": c.column,
            "baseline_method": c.baseline[0], "baseline_arm": c.baseline[1], "pairs": s.n,
            "seeds": ";".join(map(str, c.seeds)), "differences": ";".join(f"{d:.4f}" for d in s.differences),
            "delta": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "t_p_value": s.t_p_value,
            "holm_p_value": c.verdict.adjusted_p, "family_size": c.verdict.family_size, "p_value": s.p_value,
            "p_floor": s.p_floor, "improved": s.improved, "ties": s.ties, "verdict": c.verdict.text,
            "fixed": None if samples is None else samples.fixed, "broken": None if samples is None else samples.broken,
            "samples_p": None if samples is None else samples.p_value,
        })
    return pd.DataFrame(rows)


def header(records: list[dict[str, Any]], failed: list[dict[str, Any]], missing: list[str]) -> list[str]:
    lines = []
    if records:
        cfg = records[0]["config"]
        seeds = sorted({r["config"]["seed"] for r in records})
        epochs = sorted({r["config"]["optim"]["epochs"] for r in records})
        commits = sorted({r["final"]["git"]["commit"][:10] + ("+dirty" if r["final"]["git"]["dirty"] else "")
                          for r in records})
        data = cfg["data"]
        lines += [
            f"- benchmark: `{cfg['benchmark']}`; dataset `{data['name']}` with params "
            f"`{json.dumps(_shown_params(data['params']), sort_keys=True)}`",
            f"- seeds: {', '.join(map(str, seeds))}; epochs: {', '.join(map(str, epochs))}; "
            f"encoder `{cfg['model']['encoder']}`, fusion `{cfg['model']['fusion']}`",
            "- cells: mean ± sample standard deviation (ddof=1) over seeds, in %; " + DELTA_TEXT
            + f"; with n seeds the sign-flip p cannot go below 2/2^n ({2 / 2 ** len(seeds):.3g} here)",
            f"- runs: {len(records)} finished, {len(failed)} failed; code commit(s): {', '.join(commits)}",
            *hardware_lines(records),
            *test_set_lines(records),
            *fingerprint_lines([r["final"].get("data") for r in records]),  # datasets read from disk
        ]
    else:
        lines.append("- no finished runs yet: our cells read –, the published numbers are filled in")
    lines += [f"- FAILED: {f['label']} ({f['error'].splitlines()[0]})" for f in failed]
    if len(missing) > 12:
        lines.append(f"- MISSING: {len(missing)} runs, e.g. {', '.join(missing[:6])}")
    else:
        lines += [f"- MISSING: {m}" for m in missing]
    return lines


def hardware_lines(records: list[Record]) -> list[str]:
    """The hardware and numerics the runs recorded; a loud warning when they differ."""
    groups = Counter(tuple(hardware_of(r).values()) for r in records)
    if set(groups) == {(None,) * len(HARDWARE_KEYS)}:
        return ["- hardware: not recorded in these run records"]
    lines = [f"- hardware ({count} runs): " + ", ".join(f"{k} `{v}`" for k, v in zip(HARDWARE_KEYS, values))
             for values, count in sorted(groups.items(), key=lambda item: -item[1])]
    if len(groups) > 1:
        differing = [k for i, k in enumerate(HARDWARE_KEYS) if len({values[i] for values in groups}) > 1]
        lines.append(f"- **WARNING: MIXED HARDWARE/NUMERICS — these tables combine runs that differ in "
                     f"{', '.join(differing)}; a difference between such runs includes the machine's, not only "
                     f"the method's**")
    return lines


def test_set_lines(records: list[Record]) -> list[str]:
    """The finite test set: one sample's weight and one evaluation's binomial standard error."""
    samples = test_set_size(records)
    multi = [100 * selected_row(r)["test"]["acc"] for r in records if r["config"]["method"]["name"] != "unimodal"]
    if samples is None or not multi:
        return []
    accuracy = sum(multi) / len(multi) / 100
    return [f"- test set: {samples} samples (one sample: {100 / samples:.2g} pt); at {100 * accuracy:.1f}% "
            f"one evaluation has a binomial standard error of {100 * binomial_se(accuracy, samples):.2f} points"]


def _shown_params(params: dict[str, Any]) -> dict[str, Any]:
    """Dataset params without where the data lies (a machine detail, not part of the result)."""
    return {k: v for k, v in params.items() if k not in ("root", "cache_dir")}


def cost_table(records: list[dict[str, Any]]) -> pd.DataFrame | None:
    """Mean wall seconds per epoch (training + evaluation) per method and arm, relative to joint training."""
    rows = [{"method": row_name(r["config"]), "arm": run_arm(r["config"]),
             "s_per_epoch": r["final"]["wall_time_s"] / r["final"]["epochs"]}
            for r in records if "wall_time_s" in r["final"]]
    if not rows:
        return None
    mean = pd.DataFrame(rows).groupby(["method", "arm"], sort=False)["s_per_epoch"].mean()
    joint = mean.get((METHODS["joint"].title, "none"))
    arms = [a for a in ARM_TITLES if a in set(mean.index.get_level_values("arm"))]
    table = []
    for method in sorted(dict.fromkeys(m for m, _ in mean.index), key=row_order):
        off = mean.get((method, "none"))
        line = {"Method": method, "× joint (no regularizer)": _num(off / joint if off and joint else None, ".2f")}
        for arm in arms:
            on = mean.get((method, arm))
            line[f"s/epoch {arm}"] = _num(on, ".2f")
            if arm != "none":
                line[f"{arm} overhead ×"] = _num(on / off if on is not None and off else None, ".2f")
        table.append(line)
    return pd.DataFrame(table)


def _num(value, fmt: str) -> str:
    return "–" if value is None or pd.isna(value) else format(value, fmt)


def _markdown(frame: pd.DataFrame) -> str:
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def accuracy_section(cells: Cells, arms: list[str], rows: list[str]) -> pd.DataFrame:
    methods = sorted(dict.fromkeys([*rows, *cells.summary["method"]]), key=row_order)
    return pair_table(cells, methods) if list(arms) == list(PAIR) else arm_table(cells, methods, arms)


def sensitivity_section(records: list[dict[str, Any]], keys: list[str], out_dir: Path) -> list[str]:
    """A sweep grid's table: validation accuracy per point (the choice is made on it), each point
    against the chosen one on validation, test for information; the summary also goes to ``selection.csv``."""
    try:
        summary = sensitivity_summary(records, keys)
    except MissingData as err:
        return ["## Sensitivity", "", f"Not available yet: {err}.", ""]
    atomic_write_text(out_dir / "selection.csv", summary.to_csv(index=False, float_format="%.4f"))
    table = pd.DataFrame({
        "Method": [method_title(m) for m in summary["method"]],
        "Regularizer": [ARM_TITLES[a] for a in summary["arm"]],
        **{k: summary[k].map(str) for k in keys},
        "seeds": summary["seeds"].map(str),
        "Validation acc": [mean_std(m, s) for m, s in zip(summary["val_acc_mean"], summary["val_acc_std"])],
        "Validation Δ vs chosen [95% CI]": [
            "← best on validation" if chosen else ("–" if v == "" else interval_cell(d, lo, hi, v))
            for chosen, d, lo, hi, v in zip(summary["chosen"], summary["val_delta"], summary["val_ci_low"],
                                            summary["val_ci_high"], summary["val_verdict"])],
        "Test acc (same epoch)": [mean_std(m, s) for m, s in zip(summary["test_acc_mean"], summary["test_acc_std"])],
        "Epochs at chance, per seed": summary["collapsed_epochs"],
    })
    return ["## Sensitivity", "", "Each point: multimodal accuracy (%) at the validation-selected epoch, mean ± std "
            "over seeds. The point with the highest mean *validation* accuracy is chosen; every other point is "
            "compared with it on validation, paired by seed, its verdict Holm-adjusted over the other points of its "
            "method and regularizer (one family per choice). Test accuracy is shown for information only and plays "
            "no part in the choice. Epochs at chance: how many epochs of each seed's run ended with the "
            "fused validation accuracy below twice chance after the run had reached four times chance (a collapse). "
            "The choice is also in `selection.csv`.",
            "", *choice_lines(summary, keys), "", _markdown(table), ""]


def choice_lines(summary: pd.DataFrame, keys: list[str]) -> list[str]:
    """Per (method, arm): how many other points are within noise of the chosen one on validation."""
    lines = []
    for (method, arm), points in summary.groupby(["method", "arm"], sort=False):
        chosen = points[points["chosen"]].iloc[0]
        others = points[~points["chosen"]]
        close = int((others["val_verdict"] == "within noise").sum())
        where = ", ".join(f"{k} = {chosen[k]}" for k in keys)
        verdict = ("the choice is not distinguishable from them" if close else
                   "the choice is distinguishable from every other point")
        lines.append(f"- {method_title(method)}, {ARM_TITLES[arm]}: chosen {where}; {close} of {len(others)} other "
                     f"points are within noise of it on validation: {verdict}.")
    return lines


def render(records: list[dict[str, Any]], out_dir: Path, title: str, *, failed: list[dict[str, Any]] = (),
           missing: list[str] = (), arms: list[str] = PAIR, paper: PaperTable | None = None,
           sweep: list[str] = (), rows: list[str] = (), against: str | None = None, grid: str | None = None,
           powered: str | None = None, arm_comparisons: list[tuple[str, str]] = ()) -> str:
    """Write table.md, table.csv, table.tex and per_seed.csv for one grid; returns the markdown.

    ``rows`` names the method rows to show even before any of their runs finished; ``against``
    (a method name) adds every method's Δ against it; ``arm_comparisons`` ((treated, baseline) arms) adds a
    table per pair, the two arms compared directly; ``powered`` (a grid's stem) checks the verdicts
    against that grid's committed table (:func:`agreement_section`); ``grid`` names the grid in per_seed.csv
    (default: the output folder's name). A sweep grid's accuracy tables would pool its points, so it
    gets the per-point sensitivity table after the references and unswept runs."""
    out_dir = Path(out_dir)
    per_seed = per_seed_frame(records, grid or out_dir.name, list(sweep))
    parts = [f"# {title}", "", "Generated by `python -m benchmarks tables` from the run records; do not edit.", "",
             *header(records, list(failed), list(missing)), ""]
    if sweep:
        parts += sensitivity_section(records, list(sweep), out_dir)
        # the accuracy tables show the runs the sweep leaves alone (its points would be pooled)
        records = [r for r in records if not any(arm_reads(run_arm(r["config"]), key) for key in sweep)]
    cells = {rule: Cells(records, rule) for rule in ("best_val", "best_test")}
    tables = {rule: accuracy_section(c, list(arms), list(rows)) for rule, c in cells.items()}
    for rule, heading in (("best_val", "Validation-selected (our protocol)"),
                          ("best_test", "Test-selected (paper protocol, optimistic)")):
        parts += [f"## {heading}", "", f"Selection `{rule}`: {RULE_TEXT[rule]}.", "", _markdown(tables[rule]), ""]
    if powered is not None:
        parts += agreement_section(cells["best_val"].comparisons, out_dir.parent / powered / "table.csv", powered)
    if against is not None:
        parts += against_section(cells["best_val"], list(arms), list(rows), method_title(against))
    for treated, baseline in arm_comparisons:
        parts += arm_pair_section(cells["best_val"], list(rows), treated, baseline)
    if cells["best_val"].comparisons:
        parts += ["## Paired statistics (validation-selected)", "",
                  "Per compared cell: the seeds both sides finished, Δ with its 95% paired-t interval and verdict, "
                  "the two-sided paired-t p and its Holm-adjusted value over the cell's family (every Δ cell of "
                  "the table it is printed in; the family's size in parentheses; the verdict reads the adjusted "
                  "p), the exact two-sided sign-flip permutation p over the per-seed differences (descriptive; "
                  "its floor, 2/2^n, in parentheses), the seeds whose difference is > 0, and the test samples the "
                  "first side gets "
                  "right and the second wrong (fixed) or the reverse (broken), summed over the seed pairs, with "
                  "an exact binomial p (McNemar; samples repeat across seeds, so read it as descriptive).", "",
                  _markdown(statistics_table(cells["best_val"].comparisons)), ""]
    if paper is not None:
        parts += ["## Beside the published numbers", "",
                  f"{paper.caption} Source: {paper.source}. The published numbers were selected on the test set, "
                  "so ours here are test-selected too (paper protocol); Δ = ours − paper with a Welch 95% interval "
                  f"(unpaired: ours over our seeds, the paper's over {paper.seeds} seeds; a number published "
                  "without std is taken as exact).", "",
                  _markdown(comparison_table(paper, cells["best_test"].summary, method_title)), ""]
    costs = cost_table(records)
    if costs is not None:
        parts += ["## Cost", "", *grid_time_lines(out_dir / GRID_TIME),
                  "Mean wall time per epoch (training, the method's own passes, evaluation on val "
                  "and test) over seeds, measured on the machine named in each run's final.json; "
                  "timings of runs trained concurrently or on different machines are not comparable.", "",
                  _markdown(costs), ""]
    markdown = "\n".join(parts)
    write_outputs(out_dir, markdown, cells, tables["best_val"], per_seed)
    return markdown


def minutes(seconds: float) -> str:
    """``612.3`` → ``10 min 12 s``."""
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def grid_time_lines(path: Path) -> list[str]:
    """The last complete training of the grid (written by ``reproduce`` when it trained every run)."""
    if not path.exists():
        return []
    t = json.loads(path.read_text())
    cpu = f"{t['cpu']} ({'with' if t['avx512'] else 'without'} AVX-512)"
    return [f"The whole grid was last trained from scratch in **{minutes(t['wall_s'])}**: {t['runs']} runs, "
            f"{t['jobs']} at a time, on {cpu}, {t['numerics']} numerics, commit {t['git']}, {t['date']} "
            f"(`{path.name}`).", ""]


def agreement(quick: str, powered: str) -> str:
    """How a verdict of few seeds stands against the powered grid's verdict of the same cell."""
    if quick == powered:
        return "agrees"
    if quick == "within noise":
        return "not detected here"  # the powered grid finds an effect this grid is too small to see
    return "DISAGREES"


def agreement_section(comparisons: list[Comparison], powered_table: Path, powered: str) -> list[str]:
    """Each Δ cell's verdict here beside the powered grid's, with the smallest |Δ| this grid detects."""
    title = f"## Against the powered grid `{powered}`"
    if not comparisons:  # a sweep grid's table compares nothing
        return []
    if not powered_table.exists():
        return [title, "", f"Not available: `{powered_table}` is not rendered yet (`make powered`).", ""]
    theirs = pd.read_csv(powered_table)
    theirs = theirs[theirs["selection"] == "best_val"].dropna(subset=["verdict"])
    verdicts = {(r.method, r.arm, r.column, r.baseline_method, r.baseline_arm): r for r in theirs.itertuples()}
    lines, counts = [], Counter()
    for c in comparisons:
        other = verdicts.get((*c.treated, c.column, *c.baseline))
        if other is None or c.stats.n < 2:
            continue
        level = 1 - ALPHA / c.verdict.family_size  # Bonferroni: the strictest level Holm applies
        result = agreement(c.verdict.text, other.verdict)
        counts[result] += 1
        lines.append({"Method": c.treated[0], "Comparison": comparison_name(c), "Column": c.column,
                      f"here ({c.stats.n} seeds)": delta_cell(c),
                      "detectable here": f"±{detectable_difference(c.stats.n, c.stats.std, level):.2f}",
                      f"powered ({int(other.pairs)} seeds)": interval_cell(other.delta, other.ci_low, other.ci_high,
                                                                          other.verdict),
                      "agreement": result})
    if not lines:
        return [title, "", "Not available: no cell of this table is in the powered grid's table.", ""]
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return [title, "", f"Every Δ cell here beside the same cell of `{powered}` ({powered_table.parent}/table.md), "
            "both verdicts Holm-controlled within their own tables. \"agrees\": the same verdict; \"not detected "
            "here\": within noise here, a verdict there (this grid has too few seeds for that effect); "
            "\"DISAGREES\": a verdict here that the powered grid does not confirm. \"detectable here\": the |Δ| "
            "this grid finds with 80% power at its seeds and the cell's spread, at the level of the cell's "
            f"first Holm step. Result: {summary}.", "", _markdown(pd.DataFrame(lines)), ""]


def against_section(cells: Cells, arms: list[str], rows: list[str], reference: str) -> list[str]:
    methods = sorted(dict.fromkeys([*rows, *cells.summary["method"]]), key=row_order)
    if reference not in set(cells.summary["method"]):
        return [f"## Against {reference}", "", f"Not available: {reference} has no finished runs.", ""]
    return [f"## Against {reference} (validation-selected)", "",
            f"Δ = the method − {reference}, both with the same regularizer arm and seed. {DELTA_TEXT}.", "",
            _markdown(against_table(cells, methods, arms, reference)), ""]


def arm_pair_section(cells: Cells, rows: list[str], treated: str, baseline: str) -> list[str]:
    methods = sorted(dict.fromkeys([*rows, *cells.summary["method"]]), key=row_order)
    title = f"{ARM_TITLES[treated]} against {ARM_TITLES[baseline]}"
    return [f"## {title} (validation-selected)", "",
            f"Δ = {ARM_TITLES[treated]} − {ARM_TITLES[baseline]}, the same method and seed; the cells of this "
            f"table are a family of their own. {DELTA_TEXT}.", "",
            _markdown(arm_pair_table(cells, methods, treated, baseline)), ""]


def write_outputs(out_dir: Path, markdown: str, cells: dict[str, Cells], table: pd.DataFrame,
                  per_seed: pd.DataFrame) -> None:
    atomic_write_text(out_dir / "table.md", markdown)
    csv = []
    for rule, c in cells.items():
        summary = c.summary.assign(selection=rule)
        comparisons = comparisons_frame(c.comparisons, rule)
        csv.append(summary.merge(comparisons, how="left", on=["selection", "method", "arm", "column"])
                   if len(comparisons) else summary)
    atomic_write_text(out_dir / "table.csv", pd.concat(csv).to_csv(index=False, float_format="%.4f"))
    latex = tabulate(table, headers="keys", tablefmt="latex_booktabs", showindex=False, disable_numparse=True)
    atomic_write_text(out_dir / "table.tex", latex + "\n")
    atomic_write_text(out_dir / "per_seed.csv", per_seed.to_csv(index=False))

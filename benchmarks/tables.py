"""Render result tables from run records (never typed by hand).

Takes the records of the runs a grid expands to, applies a selection rule to each run's per-epoch
metrics and writes ``table.md`` (+ ``.csv``, ``.tex``) with the Audio / Visual / Multi test accuracy
as mean ± sample std over seeds. A grid with the arms "none" and "dagr" gets one row per method
(without DAGR, with DAGR, Δ); other arm sets (the ablation) get one row per method and arm; a grid
with published numbers (``paper:``) gets them beside ours.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tabulate import tabulate

from baselines import METHODS

from .config import ARM_TITLES, dagr_arm
from .data.fingerprint import fingerprint_lines
from .paper import PaperTable, comparison_table, mean_std
from .records import RunDir, atomic_write_text
from .selection import select_epoch

COLUMNS = (("Audio", "acc_audio"), ("Visual", "acc_visual"), ("Multi", "acc"))
RULE_TEXT = {
    "best_val": "test accuracy at the epoch with the highest validation accuracy (validation = "
                "a stratified split carved from train)",
    "best_test": "PAPER PROTOCOL: test accuracy at the epoch with the highest *test* accuracy, as the "
                 "field's original code selects; optimistic, shown only to compare with published numbers",
    "last": "test accuracy at the last epoch",
}
PAIR = ("none", "dagr")


def read_record(run: RunDir) -> dict[str, Any]:
    """A finished run: its resolved config, per-epoch metrics and final record."""
    return {"config": yaml.safe_load(run.config.read_text()),
            "metrics": run.read_metrics(),
            "final": json.loads(run.final.read_text())}


def load_records(runs_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Finished runs and failed runs of every run directory under one benchmark folder."""
    finished, failed = [], []
    for path in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        run = RunDir(path)
        if run.is_done():
            finished.append(read_record(run))
        elif run.failed.exists():
            failed.append(json.loads(run.failed.read_text()))
    return finished, failed


def grid_records(grid, runs_root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The records of exactly the runs a grid expands to: (finished, failed, labels of missing runs).

    Grids share run directories when they share runs (e.g. the ablation's DGL rows and the main
    grid's), so tables and figures select their runs by the grid, never by globbing a folder."""
    from .config import expand_grid
    from .runner import run_dir_for

    finished, failed, missing = [], [], []
    for cfg in expand_grid(grid):
        run = run_dir_for(cfg, runs_root)
        if run.is_done():
            finished.append(read_record(run))
        elif run.failed.exists():
            failed.append(json.loads(run.failed.read_text()))
        else:
            missing.append(cfg.label)
    return finished, failed, missing


def method_title(method: str, params: dict[str, Any] | None = None) -> str:
    if method == "unimodal":
        return f"{params['modality'].capitalize()} only (unimodal reference)"
    cls = METHODS.get(method)
    return cls.title if cls is not None else method


def row_name(config: dict[str, Any]) -> str:
    return method_title(config["method"]["name"], config["method"]["params"])


def grid_row_titles(grid) -> list[str]:
    """The rows a grid's tables have: its unimodal references, then its methods."""
    return ([method_title("unimodal", {"modality": m}) for m in grid.references]
            + [method_title(name) for name in grid.methods])


def row_order(name: str) -> tuple[int, int, str]:
    """References first, then registered methods in registry order, then unknown names."""
    titles = [cls.title for cls in METHODS.values()]
    if name.endswith("(unimodal reference)"):
        return (0, 0, name)
    return (1, titles.index(name), name) if name in titles else (2, 0, name)


def results_frame(records: list[dict[str, Any]], rule: str) -> pd.DataFrame:
    """One row per run: method row name, DAGR arm, seed and the selected test accuracies."""
    rows = []
    for rec in records:
        cfg = rec["config"]
        test = select_epoch(rec["metrics"], rule)["test"]
        unimodal = cfg["method"]["name"] == "unimodal"
        row = {"method": row_name(cfg), "reference": unimodal, "arm": dagr_arm(cfg["dagr"]), "seed": cfg["seed"]}
        for col, key in COLUMNS:
            row[col] = 100 * test[key] if key in test and not (unimodal and key == "acc") else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "reference", "arm", "seed", *(c for c, _ in COLUMNS)])


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n per method, DAGR arm and column."""
    long = frame.melt(id_vars=["method", "reference", "arm", "seed"], value_vars=[c for c, _ in COLUMNS],
                      var_name="column", value_name="accuracy").dropna(subset=["accuracy"])
    stats = long.groupby(["method", "reference", "arm", "column"], sort=False)["accuracy"]
    return stats.agg(mean="mean", std="std", n="count").reset_index()


def pair_table(summary: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Rows: methods; columns: <col> w/o DAGR, w/ DAGR, Δ."""
    lookup = {(r.method, r.arm, r.column): r for r in summary.itertuples()}
    table = []
    for method in methods:
        line = {"Method": method}
        for col, _ in COLUMNS:
            off, on = lookup.get((method, "none", col)), lookup.get((method, "dagr", col))
            line[f"{col} w/o DAGR"] = _cell(off)
            line[f"{col} w/ DAGR"] = _cell(on)
            line[f"{col} Δ"] = _delta(on, off)
        table.append(line)
    return pd.DataFrame(table)


def arm_table(summary: pd.DataFrame, methods: list[str], arms: list[str]) -> pd.DataFrame:
    """Rows: method × arm (the ablation layout); Δ = mean of the arm − mean without regularizer."""
    lookup = {(r.method, r.arm, r.column): r for r in summary.itertuples()}
    table = []
    for method in methods:
        for arm in (["none"] if method.endswith("(unimodal reference)") else arms):
            line = {"Method": method, "Regularizer": ARM_TITLES[arm]}
            for col, _ in COLUMNS:
                line[col] = _cell(lookup.get((method, arm, col)))
                line[f"{col} Δ"] = _delta(lookup.get((method, arm, col)), lookup.get((method, "none", col)))
            table.append(line)
    return pd.DataFrame(table)


def _cell(stat) -> str:
    return "–" if stat is None else mean_std(stat.mean, stat.std)


def _delta(stat, base) -> str:
    return f"{stat.mean - base.mean:+.2f}" if stat is not None and base is not None and stat is not base else "–"


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
            "- cells: mean ± sample standard deviation (ddof=1) over seeds, in %; Δ = difference of means "
            "(with the regularizer − without)",
            f"- runs: {len(records)} finished, {len(failed)} failed; code commit(s): {', '.join(commits)}",
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


def _shown_params(params: dict[str, Any]) -> dict[str, Any]:
    """Dataset params without where the data lies (a machine detail, not part of the result)."""
    return {k: v for k, v in params.items() if k not in ("root", "cache_dir")}


def cost_table(records: list[dict[str, Any]]) -> pd.DataFrame | None:
    """Mean wall seconds per epoch (training + evaluation) per method and arm, relative to joint training."""
    rows = [{"method": row_name(r["config"]), "arm": dagr_arm(r["config"]["dagr"]),
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


def accuracy_section(summary: pd.DataFrame, arms: list[str], rows: list[str]) -> pd.DataFrame:
    methods = sorted(dict.fromkeys([*rows, *summary["method"]]), key=row_order)
    return pair_table(summary, methods) if list(arms) == list(PAIR) else arm_table(summary, methods, arms)


def sensitivity_section(records: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """A sweep grid's table: validation accuracy per point (the choice is made on it), test for information."""
    from .figures import MissingData, sensitivity_summary

    try:
        summary = sensitivity_summary(records, keys)
    except MissingData as err:
        return ["## Sensitivity", "", f"Not available yet: {err}.", ""]
    table = pd.DataFrame({
        "Method": [method_title(m) for m in summary["method"]],
        "Regularizer": [ARM_TITLES[a] for a in summary["arm"]],
        **{k: summary[k].map(str) for k in keys},
        "seeds": summary["seeds"].map(str),
        "Validation acc": [mean_std(m, s) for m, s in zip(summary["val_acc_mean"], summary["val_acc_std"])],
        "Test acc (same epoch)": [mean_std(m, s) for m, s in zip(summary["test_acc_mean"], summary["test_acc_std"])],
        "chosen": summary["chosen"].map({True: "← best on validation", False: ""}),
    })
    return ["## Sensitivity", "", "Each point: multimodal accuracy (%) at the validation-selected epoch, mean ± std "
            "over seeds. The point with the highest mean *validation* accuracy is chosen; test accuracy is shown "
            "for information only and plays no part in the choice.", "", _markdown(table), ""]


def render(records: list[dict[str, Any]], out_dir: Path, title: str, *, failed: list[dict[str, Any]] = (),
           missing: list[str] = (), arms: list[str] = PAIR, paper: PaperTable | None = None,
           sweep: list[str] = (), rows: list[str] = ()) -> str:
    """Write table.md, table.csv and table.tex for one grid; returns the markdown.

    ``rows`` names the method rows to show even before any of their runs finished.
    A sweep grid's accuracy tables would pool its points, so it gets the per-point sensitivity table
    after the references and unswept runs."""
    parts = [f"# {title}", "", "Generated by `python -m benchmarks tables` from the run records; do not edit.", "",
             *header(records, list(failed), list(missing)), ""]
    if sweep:
        parts += sensitivity_section(records, list(sweep))
        records = [r for r in records if dagr_arm(r["config"]["dagr"]) == "none"]
    summaries = {rule: summarize(results_frame(records, rule)) for rule in ("best_val", "best_test")}
    tables = {rule: accuracy_section(summary, list(arms), list(rows)) for rule, summary in summaries.items()}
    for rule, heading in (("best_val", "Validation-selected (our protocol)"),
                          ("best_test", "Test-selected (paper protocol, optimistic)")):
        parts += [f"## {heading}", "", f"Selection `{rule}`: {RULE_TEXT[rule]}.", "", _markdown(tables[rule]), ""]
    if paper is not None:
        parts += ["## Beside the published numbers", "",
                  f"{paper.caption} Source: {paper.source}. The published numbers were selected on the test set, "
                  "so ours here are test-selected too (paper protocol); Δ = ours − paper.", "",
                  _markdown(comparison_table(paper, summaries["best_test"], method_title)), ""]
    costs = cost_table(records)
    if costs is not None:
        parts += ["## Cost", "", "Mean wall time per epoch (training, the method's own passes, evaluation on val "
                  "and test) over seeds, measured on the machine named in each run's final.json; "
                  "timings of runs trained concurrently or on different machines are not comparable.", "",
                  _markdown(costs), ""]
    markdown = "\n".join(parts)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "table.md", markdown)
    csv = pd.concat([summary.assign(selection=rule) for rule, summary in summaries.items()])
    atomic_write_text(out_dir / "table.csv", csv.to_csv(index=False, float_format="%.4f"))
    latex = tabulate(tables["best_val"], headers="keys", tablefmt="latex_booktabs", showindex=False,
                     disable_numparse=True)
    atomic_write_text(out_dir / "table.tex", latex + "\n")
    return markdown

"""Render result tables from run records (never typed by hand).

Reads every run directory of a benchmark, applies a selection rule to its per-epoch metrics and
writes ``table.md`` (+ ``.csv``, ``.tex``): a row per method, the Audio / Visual / Multi test
accuracy without DAGR, with DAGR and the difference, as mean ± sample std over seeds.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tabulate import tabulate

from baselines import METHODS

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


def load_records(runs_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Finished runs (config, metrics, final record) and failed runs of one benchmark folder."""
    finished, failed = [], []
    for path in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        run = RunDir(path)
        if run.is_done():
            finished.append({"config": yaml.safe_load(run.config.read_text()),
                             "metrics": run.read_metrics(),
                             "final": json.loads(run.final.read_text())})
        elif run.failed.exists():
            failed.append(json.loads(run.failed.read_text()))
    return finished, failed


def row_name(config: dict[str, Any]) -> str:
    method = config["method"]
    if method["name"] == "unimodal":
        return f"{method['params']['modality'].capitalize()} only (unimodal reference)"
    cls = METHODS.get(method["name"])
    return cls.title if cls is not None else method["name"]


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
        row = {"method": row_name(cfg), "reference": unimodal, "dagr": bool(cfg["dagr"]["enabled"]),
               "seed": cfg["seed"]}
        for col, key in COLUMNS:
            row[col] = 100 * test[key] if key in test and not (unimodal and key == "acc") else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n per method, DAGR arm and column."""
    long = frame.melt(id_vars=["method", "reference", "dagr", "seed"], value_vars=[c for c, _ in COLUMNS],
                      var_name="column", value_name="accuracy").dropna(subset=["accuracy"])
    stats = long.groupby(["method", "reference", "dagr", "column"], sort=False)["accuracy"]
    return stats.agg(mean="mean", std="std", n="count").reset_index()


def wide_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows: references first, then methods in registry order; columns: <col> w/o DAGR, w/ DAGR, Δ."""
    order = sorted(dict.fromkeys(summary["method"]), key=row_order)
    lookup = {(r.method, r.dagr, r.column): r for r in summary.itertuples()}
    table = []
    for method in order:
        line = {"Method": method}
        for col, _ in COLUMNS:
            off, on = lookup.get((method, False, col)), lookup.get((method, True, col))
            line[f"{col} w/o DAGR"] = _cell(off)
            line[f"{col} w/ DAGR"] = _cell(on)
            line[f"{col} Δ"] = f"{on.mean - off.mean:+.2f}" if off is not None and on is not None else "–"
        table.append(line)
    return pd.DataFrame(table)


def _cell(stat) -> str:
    if stat is None:
        return "–"
    std = "n/a" if pd.isna(stat.std) else f"{stat.std:.2f}"
    return f"{stat.mean:.2f} ± {std}"


def header(records: list[dict[str, Any]], failed: list[dict[str, Any]], missing: list[str]) -> list[str]:
    cfg = records[0]["config"]
    seeds = sorted({r["config"]["seed"] for r in records})
    epochs = sorted({r["config"]["optim"]["epochs"] for r in records})
    commits = sorted({r["final"]["git"]["commit"][:10] + ("+dirty" if r["final"]["git"]["dirty"] else "")
                      for r in records})
    data = cfg["data"]
    lines = [
        f"- benchmark: `{cfg['benchmark']}`; dataset `{data['name']}` with params `{json.dumps(data['params'], sort_keys=True)}`",
        f"- seeds: {', '.join(map(str, seeds))}; epochs: {', '.join(map(str, epochs))}; "
        f"encoder `{cfg['model']['encoder']}`, fusion `{cfg['model']['fusion']}`",
        "- cells: mean ± sample standard deviation (ddof=1) over seeds, in %; Δ = mean with DAGR − mean without",
        f"- runs: {len(records)} finished, {len(failed)} failed; code commit(s): {', '.join(commits)}",
    ]
    lines += [f"- FAILED: {f['label']} ({f['error'].splitlines()[0]})" for f in failed]
    lines += [f"- MISSING: {m}" for m in missing]
    return lines


def cost_table(records: list[dict[str, Any]]) -> pd.DataFrame | None:
    """Mean wall seconds per epoch (training + evaluation) per method and arm, relative to joint training."""
    rows = [{"method": row_name(r["config"]), "dagr": bool(r["config"]["dagr"]["enabled"]),
             "s_per_epoch": r["final"]["wall_time_s"] / r["final"]["epochs"]}
            for r in records if "wall_time_s" in r["final"]]
    if not rows:
        return None
    mean = pd.DataFrame(rows).groupby(["method", "dagr"], sort=False)["s_per_epoch"].mean()
    joint = mean.get((METHODS["joint"].title, False))
    table = []
    for method in sorted(dict.fromkeys(m for m, _ in mean.index), key=row_order):
        off, on = mean.get((method, False)), mean.get((method, True))
        table.append({
            "Method": method,
            "s/epoch w/o DAGR": _num(off, ".2f"),
            "s/epoch w/ DAGR": _num(on, ".2f"),
            "× joint (w/o DAGR)": _num(off / joint if off is not None and joint else None, ".2f"),
            "DAGR overhead ×": _num(on / off if on is not None and off else None, ".2f"),
        })
    return pd.DataFrame(table)


def _num(value, fmt: str) -> str:
    return "–" if value is None or pd.isna(value) else format(value, fmt)


def render(runs_dir: Path, out_dir: Path, title: str, missing: list[str] = ()) -> str:
    """Write table.md, table.csv and table.tex for one benchmark; returns the markdown."""
    records, failed = load_records(runs_dir)
    if not records:
        raise FileNotFoundError(f"no finished runs under {runs_dir}; run the grid first")
    parts = [f"# {title}", "", "Generated by `python -m benchmarks tables` from the run records; do not edit.", "",
             *header(records, failed, list(missing)), ""]
    csv_frames = []
    for rule in ("best_val", "best_test"):
        summary = summarize(results_frame(records, rule))
        csv_frames.append(summary.assign(selection=rule))
        table = wide_table(summary)
        heading = "Validation-selected (our protocol)" if rule == "best_val" else "Test-selected (paper protocol, optimistic)"
        parts += [f"## {heading}", "", f"Selection `{rule}`: {RULE_TEXT[rule]}.", "",
                  tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True), ""]
        if rule == "best_val":
            latex = tabulate(table, headers="keys", tablefmt="latex_booktabs", showindex=False, disable_numparse=True)
    costs = cost_table(records)
    if costs is not None:
        parts += ["## Cost", "", "Mean wall time per epoch (training, the method's own passes, evaluation on val "
                  "and test) over seeds, measured on the machine named in each run's final.json; "
                  "timings of runs trained concurrently or on different machines are not comparable.", "",
                  tabulate(costs, headers="keys", tablefmt="github", showindex=False, disable_numparse=True), ""]
    markdown = "\n".join(parts)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "table.md", markdown)
    atomic_write_text(out_dir / "table.csv", pd.concat(csv_frames).to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out_dir / "table.tex", latex + "\n")
    return markdown

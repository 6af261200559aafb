"""Run records and the summaries that tables and figures share: per-run accuracies, comparisons
paired by seed (and by test sample), the sensitivity summary, and the per-seed CSV.

A record is ``{"config", "metrics", "final"}`` (plus ``predictions``, the path of the run's
``test_predictions.npz`` or None) as read by :func:`grid_records`.

``per_seed.csv`` (written by ``python -m benchmarks tables`` into ``results/<grid>/``) has one row
per finished run, columns in this order:

* ``grid`` (the config's stem), ``benchmark``, ``label`` and ``run_id`` (from ``final.json``; empty
  in records that lack them), ``method`` (registry name), ``arm`` (the regularizer arm), one column
  per swept key named by the dotted key (e.g. ``dagr.tau``; only on sweep grids; blank in a run that
  does not read the key, such as DAGR's settings in a run without DAGR), ``seed``;
* for each selection rule ``R`` in ``best_val``, ``last``, ``best_test``: ``R_epoch`` (the selected
  epoch), ``R_val_acc``, ``R_val_acc_audio``, ``R_val_acc_visual``, ``R_test_acc``,
  ``R_test_acc_audio``, ``R_test_acc_visual`` — accuracies as recorded, fractions in [0, 1] at full
  precision (``acc`` is the fused head; a unimodal run's fused head is its one modality; a value the
  run did not record is empty);
* ``hw_cpu``, ``hw_vendor``, ``hw_isa``, ``hw_torch_cpu_capability``, ``hw_numerics``, ``hw_pinned`` (the
  pinned variables, ``NAME=value`` separated by spaces), ``hw_threads``, ``hw_machine``:
  ``final.json["environment"]["hardware"]``, empty where a record has none (the vendor of a record
  without one is read from its processor's name).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from baselines import METHODS

from ..core.numerics import cpu_vendor, pinned_text
from ..core.records import RunDir, test_samples_in
from ..core.selection import SELECTION_RULES, select_epoch
from ..grid.config import expand_grid, run_arm, unused_keys
from ..grid.naming import method_title, run_dir_for
from .statistics import PairedComparison, SampleCounts, Verdict, paired_comparison, paired_verdicts, sample_counts

Record = dict[str, Any]
COLUMNS = (("Audio", "acc_audio"), ("Visual", "acc_visual"), ("Multi", "acc"))
HEADS = {"Audio": "audio", "Visual": "visual", "Multi": "fused"}  # table column -> prediction head
MODALITIES = ("audio", "visual")
HARDWARE_KEYS = ("cpu", "vendor", "isa", "torch_cpu_capability", "numerics", "pinned", "threads", "machine")
SELECTION = "best_val"  # figures and the sensitivity choice read the validation-selected epoch


class MissingData(ValueError):
    """The records cannot support a summary or figure (absent arm, no geometry recorded, ...)."""


# --- reading records ---------------------------------------------------------------------------

def read_record(run: RunDir) -> Record:
    """A finished run: its resolved config, per-epoch metrics, final record and predictions file."""
    return {"config": yaml.safe_load(run.config.read_text()),
            "metrics": run.read_metrics(),
            "final": json.loads(run.final.read_text()),
            "predictions": run.test_predictions if run.test_predictions.exists() else None}


def load_records(runs_dir: Path) -> tuple[list[Record], list[dict[str, Any]]]:
    """Finished runs and failed runs of every run directory under one benchmark folder."""
    finished, failed = [], []
    for path in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        run = RunDir(path)
        if run.is_done():
            finished.append(read_record(run))
        elif run.failed.exists():
            failed.append(json.loads(run.failed.read_text()))
    return finished, failed


def grid_records(grid, runs_root: Path) -> tuple[list[Record], list[dict[str, Any]], list[str]]:
    """The records of exactly the runs a grid expands to: (finished, failed, labels of missing runs).

    Grids share run directories when they share runs (e.g. the ablation's DGL rows and the main
    grid's), so tables and figures select their runs by the grid, never by globbing a folder."""
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


def arm_of(record: Record) -> str:
    return run_arm(record["config"])


def method_of(record: Record) -> str:
    return record["config"]["method"]["name"]


def dotted(config: dict[str, Any], key: str) -> Any:
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def selected_row(record: Record, rule: str = SELECTION) -> dict[str, Any]:
    return select_epoch(record["metrics"], rule)


# --- row names ---------------------------------------------------------------------------------

def run_title(label: str, config: dict[str, Any]) -> str:
    """A run's label, naming a unimodal reference's modality (its label leaves it out)."""
    method = config["method"]
    return f"{label} ({method['params']['modality']})" if method["name"] == "unimodal" else label


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


# --- per-run accuracies and comparisons --------------------------------------------------------

def results_frame(records: list[Record], rule: str) -> pd.DataFrame:
    """One row per run: method row name, arm, seed, the selected test accuracies (%) and ``record``,
    the run's index in ``records``."""
    rows = []
    for index, rec in enumerate(records):
        cfg = rec["config"]
        test = select_epoch(rec["metrics"], rule)["test"]
        unimodal = cfg["method"]["name"] == "unimodal"
        row = {"method": row_name(cfg), "reference": unimodal, "arm": run_arm(cfg), "seed": cfg["seed"],
               "record": index}
        for col, key in COLUMNS:
            row[col] = 100 * test[key] if key in test and not (unimodal and key == "acc") else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "reference", "arm", "seed", "record", *(c for c, _ in COLUMNS)])


@dataclass(frozen=True)
class Comparison:
    """One compared cell: ``treated`` − ``baseline`` (each a (row name, arm)) in one column."""

    treated: tuple[str, str]
    baseline: tuple[str, str]
    column: str
    seeds: tuple[int, ...]  # the seeds both sides finished, in order
    stats: PairedComparison | None  # None without a common seed
    samples: SampleCounts | None  # None where a pair lacks its predictions file
    verdict: Verdict | None = None  # set once the comparisons of its table are judged as one family


def cell_values(frame: pd.DataFrame, cell: tuple[str, str], column: str) -> dict[int, tuple[float, int]]:
    """seed -> (accuracy, record index) of one (row name, arm) cell; one run per seed."""
    rows = frame[(frame["method"] == cell[0]) & (frame["arm"] == cell[1])].dropna(subset=[column])
    if rows["seed"].duplicated().any():
        raise MissingData(f"{cell[0]}, {cell[1]}: several runs per seed; compare one sweep point at a time")
    return {int(r.seed): (float(getattr(r, column)), int(r.record)) for r in rows.itertuples()}


def compare(frame: pd.DataFrame, records: list[Record], rule: str, treated: tuple[str, str],
            baseline: tuple[str, str], column: str, resolution: float = 0.0) -> Comparison:
    """Pair ``treated`` and ``baseline`` by seed (and, where both runs kept predictions, by sample);
    ``resolution``: one test sample, in the accuracies' unit (:func:`paired_comparison`)."""
    a, b = cell_values(frame, treated, column), cell_values(frame, baseline, column)
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return Comparison(treated, baseline, column, (), None, None)
    stats = paired_comparison([a[s][0] - b[s][0] for s in seeds], resolution=resolution)
    correct = [(correct_at_selection(records[a[s][1]], rule, HEADS[column]),
                correct_at_selection(records[b[s][1]], rule, HEADS[column])) for s in seeds]
    samples = None
    if all(t is not None and u is not None for t, u in correct):
        samples = sample_counts([t for t, _ in correct], [u for _, u in correct])
    return Comparison(treated, baseline, column, seeds, stats, samples)


def judged(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons of one printed table, each with its verdict within that family (Holm)."""
    tested = [c for c in comparisons if c.stats is not None]
    verdicts = dict(zip(map(id, tested), paired_verdicts([c.stats for c in tested])))
    return [replace(c, verdict=verdicts[id(c)]) if c.stats is not None else c for c in comparisons]


def correct_at_selection(record: Record, rule: str, head: str) -> np.ndarray | None:
    """Per test sample, whether ``head`` was right at the epoch ``rule`` selects (None: not kept)."""
    path = record.get("predictions")
    if path is None:
        return None
    epoch = select_epoch(record["metrics"], rule)["epoch"]
    with np.load(path, allow_pickle=False) as data:
        if head not in data.files:
            return None
        index = np.flatnonzero(data["epochs"] == epoch)
        if len(index) != 1:
            raise MissingData(f"{path}: no predictions for the selected epoch {epoch}")
        return data[head][index[0]] == data["labels"]


def test_set_size(records: Iterable[Record]) -> int | None:
    """Samples in the test split, from the first run that kept its predictions."""
    for record in records:
        if record.get("predictions") is not None:
            return test_samples_in(record["predictions"])
    return None


# --- sensitivity -------------------------------------------------------------------------------

def sensitivity_summary(records: list[Record], keys: Sequence[str] = ("dagr.tau", "dagr.t")) -> pd.DataFrame:
    """Validation accuracy over a sweep: one row per (method, arm, sweep point).

    Columns: ``method``, ``arm``, the ``keys``, ``seeds`` (n), ``val_acc_mean``/``val_acc_std``
    (validation accuracy, %, at the validation-selected epoch; sample std, ddof=1),
    ``test_acc_mean``/``test_acc_std`` (test accuracy there, for information only), ``collapsed_epochs``
    (per seed, in seed order: the epochs at chance, :func:`collapsed_epochs`), ``chosen``:
    True on the point with the highest mean validation accuracy of its (method, arm) (ties go to
    the first point in sweep order, i.e. the order in which points first occur in ``records``;
    :func:`grid_records` returns them in the grid's sweep order), and the point's validation
    accuracy against the chosen point's, paired by seed (:func:`benchmarks.report.statistics.paired_comparison`):
    ``val_delta``, ``val_ci_low``, ``val_ci_high``, ``val_p`` (paired t), ``val_p_adjusted`` and
    ``val_verdict`` (Holm over the compared points of the same method and arm: one family per choice;
    empty on the chosen point and where no seed is shared). Unimodal references are left out, and so are runs
    without the regularizer when every key is a ``dagr.*`` key (the grid does not sweep them).
    """
    keys = list(keys)
    only_dagr = all(k.startswith("dagr.") for k in keys)
    rows = []
    for record in records:
        if method_of(record) == "unimodal" or (only_dagr and arm_of(record) == "none"):
            continue
        selected = selected_row(record)
        rows.append({"method": method_of(record), "arm": arm_of(record),
                     **{k: dotted(record["config"], k) for k in keys}, "seed": record["config"]["seed"],
                     "val": 100 * selected["val"]["acc"], "test": 100 * selected["test"]["acc"],
                     "collapsed": collapsed_epochs(record)})
    if not rows:
        raise MissingData("no finished regularized runs to summarize")
    runs = pd.DataFrame(rows)
    stats = runs.groupby(["method", "arm", *keys], sort=False)
    summary = stats["val"].agg(seeds="count", val_acc_mean="mean", val_acc_std="std").join(
        stats["test"].agg(test_acc_mean="mean", test_acc_std="std")).join(
        stats["collapsed"].agg(collapsed_epochs=lambda c: " ".join(map(str, c)))).reset_index()
    best = summary.groupby(["method", "arm"], sort=False)["val_acc_mean"].idxmax()  # first maximum
    summary["chosen"] = summary.index.isin(best.values)
    return summary.join(against_chosen(summary, runs, keys))


CHANCE_FACTOR = 2  # an epoch "at chance": fused validation accuracy below twice chance (2 / classes)


def collapsed_epochs(record: Record) -> int | str:
    """How many epochs end with the fused validation accuracy below twice chance after the run had once
    reached four times chance (a collapse of a model that had learned, not a slow start); "?" when the
    run kept no test labels to count its classes."""
    if record.get("predictions") is None:
        return "?"
    with np.load(record["predictions"]) as data:
        classes = len(np.unique(data["labels"]))
    chance = CHANCE_FACTOR / classes
    accs = [row["val"]["acc"] for row in record["metrics"]]
    learned = next((i for i, acc in enumerate(accs) if acc >= 2 * chance), len(accs))
    return sum(acc < chance for acc in accs[learned + 1:])


def against_chosen(summary: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each sweep point's validation accuracy − its (method, arm)'s chosen point's, paired by seed."""
    def seeds_of(point) -> dict[int, float]:
        match = np.logical_and.reduce([runs[c] == point[c] for c in ("method", "arm", *keys)])
        return dict(zip(runs.loc[match, "seed"], runs.loc[match, "val"]))

    chosen = {(p["method"], p["arm"]): seeds_of(p) for _, p in summary[summary["chosen"]].iterrows()}
    comparisons = []
    for _, point in summary.iterrows():
        own, best = seeds_of(point), chosen[(point["method"], point["arm"])]
        common = sorted(set(own) & set(best))
        comparisons.append(paired_comparison([own[s] - best[s] for s in common])
                           if common and not point["chosen"] else None)
    # One family per (method, arm): each asks whether its own choice stands out from its other points.
    groups = list(zip(summary["method"], summary["arm"]))
    verdicts = {}
    for group in dict.fromkeys(groups):
        members = [i for i, (g, c) in enumerate(zip(groups, comparisons)) if g == group and c is not None]
        verdicts.update(zip(members, paired_verdicts([comparisons[i] for i in members])))
    columns = {"val_delta": [], "val_ci_low": [], "val_ci_high": [], "val_p": [], "val_p_adjusted": [],
               "val_verdict": []}
    for i, c in enumerate(comparisons):
        v = verdicts.get(i)
        values = (c.mean, c.ci_low, c.ci_high, c.t_p_value, v.adjusted_p, v.text) if c else (np.nan,) * 5 + ("",)
        for column, value in zip(columns, values):
            columns[column].append(value)
    return pd.DataFrame(columns, index=summary.index)


# --- per-seed export and hardware --------------------------------------------------------------

def hardware_of(record: Record) -> dict[str, Any]:
    """``final.json["environment"]["hardware"]`` with every key present (None where absent)."""
    hardware = record["final"].get("environment", {}).get("hardware") or {}
    values = {key: hardware.get(key) for key in HARDWARE_KEYS}
    if isinstance(values["isa"], list):  # flags as one hashable, CSV-friendly string
        values["isa"] = " ".join(values["isa"])
    values["pinned"] = pinned_text(values["pinned"])
    if values["vendor"] is None and values["cpu"]:  # records from before the vendor was recorded
        values["vendor"] = cpu_vendor(values["cpu"])
    return values


ACCURACY_FIELDS = tuple(f"{split}_{key}" for split in ("val", "test")
                        for key in ("acc", *(f"acc_{m}" for m in MODALITIES)))


def swept_values(cfg: dict[str, Any], sweep: Sequence[str]) -> dict[str, Any]:
    """The run's value of each swept key, or None for a key the run does not read (the sweep's ``dagr.*``
    keys in a run without DAGR: they only hold the config's default)."""
    unused = unused_keys(cfg)
    return {key: None if any(key == u or key.startswith(u + ".") for u in unused) else dotted(cfg, key)
            for key in sweep}


def per_seed_frame(records: list[Record], grid: str, sweep: Sequence[str] = ()) -> pd.DataFrame:
    """One row per finished run, the columns of the module docstring's ``per_seed.csv``."""
    rows = []
    for record in records:
        cfg, final = record["config"], record["final"]
        row = {"grid": grid, "benchmark": cfg["benchmark"], "label": final.get("label", ""),
               "run_id": final.get("run_id", ""), "method": method_of(record), "arm": arm_of(record),
               **swept_values(cfg, sweep), "seed": cfg["seed"]}
        for rule in SELECTION_RULES:
            selected = select_epoch(record["metrics"], rule)
            row[f"{rule}_epoch"] = selected["epoch"]
            for field in ACCURACY_FIELDS:
                split, key = field.split("_", 1)
                row[f"{rule}_{field}"] = selected[split].get(key)
        row.update({f"hw_{key}": value for key, value in hardware_of(record).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=per_seed_columns(sweep))


def per_seed_columns(sweep: Sequence[str] = ()) -> list[str]:
    selected = [f"{rule}_{field}" for rule in SELECTION_RULES for field in ("epoch", *ACCURACY_FIELDS)]
    return ["grid", "benchmark", "label", "run_id", "method", "arm", *sweep, "seed", *selected,
            *(f"hw_{key}" for key in HARDWARE_KEYS)]

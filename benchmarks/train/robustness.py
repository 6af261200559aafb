"""Robustness of finished runs to a missing or corrupted modality (the paper's Fig. 9 analogue).

``python -m benchmarks robustness CONFIG`` loads the selected checkpoint (``best.pt``) of every
finished multimodal run of a grid and measures its test accuracy (fused and unimodal heads) with one
modality degraded at a time (:data:`benchmarks.train.perturbations.PROTOCOL`). No retraining: the model,
its method's evaluation protocol and the accuracies come from the trainer's own evaluation
(``Trainer.evaluate_split``); the degradations hook into it (``benchmarks.train.evaluation.Perturbation``).

Each run's results are a record, ``robustness.json`` in its run directory (written atomically, kept
while the protocol and its seed are unchanged)::

    {"protocol": digest, "seed", "selection", "epoch" (the selected epoch best.pt holds),
     "recorded_test" (accuracies the run recorded at that epoch), "clean" (measured here),
     "families": {name: {"points": [{"level", "achieved", "acc", "acc_audio", "acc_visual"}, ...]}
                         | {"skipped": reason}},
     "wall_time_s"}

Accuracies are fractions; ``level`` is the nominal level (``null``: clean), ``achieved`` what the
shapes allow (share of samples, of bins, of frames or of the frame area; the SNR in dB).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


import torch
import yaml

from ..grid.config import GridConfig, RunConfig, expand_grid
from ..grid.naming import method_title, run_dir_for
from ..core.records import RunDir, atomic_write_json
from ..core.strict import from_dict
from .perturbations import PROTOCOL, SplitShape
from ..core.selection import select_epoch
from .trainer import Trainer

RECORD = "robustness.json"
PROTOCOL_VERSION = 1  # bump when a degradation's definition changes: older records are recomputed


def protocol_digest(seed: int) -> str:
    """Names the protocol a record was measured with (families, levels, seed, version)."""
    blob = json.dumps({"version": PROTOCOL_VERSION, "seed": seed, "families": [asdict(f) for f in PROTOCOL]},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def accuracies(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k == "acc" or k.startswith("acc_")}


def split_shape(split, dataset: str) -> SplitShape:
    """The split's size and one sample's shape per modality (from its first item, read through a
    one-item subset: a split read from disk serves one pass at a time, so it is never left mid-pass)."""
    (first,) = list(split.subset(torch.arange(1)).batches(1))
    return SplitShape(len(split), dataset, {m: tuple(x.shape[1:]) for m, x in first.inputs.items()})


def load_selected(run: RunDir) -> tuple[RunConfig, Trainer]:
    """The run's trainer (data, model, method as in training) holding the selected checkpoint."""
    cfg = from_dict(RunConfig, yaml.safe_load(run.config.read_text()))
    if not run.best.exists():
        raise FileNotFoundError(f"{run.path}: no best.pt (the selected checkpoint)")
    trainer = Trainer(cfg, run)
    trainer.model.load_state_dict(torch.load(run.best, map_location=trainer.device, weights_only=True))
    return cfg, trainer


def evaluate_run(run: RunDir, seed: int = 0) -> dict[str, Any]:
    """The robustness record of one finished run (see the module docstring)."""
    start = time.perf_counter()
    cfg, trainer = load_selected(run)
    test = trainer.data.test
    shape = split_shape(test, cfg.data.name)
    clean = accuracies(trainer.evaluate_split(test))
    families = {}
    for family in PROTOCOL:
        reason = family.skip_reason(shape)
        if reason is not None:
            families[family.name] = {"skipped": reason}
            continue
        points = []
        for level in family.levels:
            if family.clean(level):
                points.append({"level": level, "achieved": level, **clean})
                continue
            degradation = family.make(level, shape, seed)
            measured = accuracies(trainer.evaluate_split(test, perturbation=degradation))
            points.append({"level": level, "achieved": degradation.achieved, **measured})
        families[family.name] = {"points": points}
    selected = select_epoch(run.read_metrics(), cfg.eval.selection)
    return {"protocol": protocol_digest(seed), "seed": seed, "selection": cfg.eval.selection,
            "epoch": selected["epoch"], "recorded_test": accuracies(selected["test"]), "clean": clean,
            "families": families, "wall_time_s": time.perf_counter() - start}


@dataclass
class RunResult:
    """One run's robustness record with what identifies its cell in the tables."""

    method: str  # row title
    arm: str
    seed: int
    label: str
    record: dict[str, Any]


@dataclass
class GridRobustness:
    results: list[RunResult]
    missing: list[str]  # labels of runs not finished
    failed: list[str]  # "label: why" of runs that could not be evaluated
    evaluated: int  # records measured now (the others were read back)
    test_samples: int | None = None  # the test split's size, from the first run's kept predictions


def grid_robustness(grid: GridConfig, runs_root: Path, seed: int = 0, force: bool = False,
                    announce=print) -> GridRobustness:
    """The robustness records of a grid's finished multimodal runs, measured where absent or stale."""
    out = GridRobustness([], [], [], 0)
    for cfg, run in multimodal_runs(grid, runs_root):
        if not run.is_done():
            out.missing.append(cfg.label)
            continue
        path = run.path / RECORD
        record = read_record(path, seed) if not force else None
        if record is None:
            try:
                record = evaluate_run(run, seed)
            except (RuntimeError, ValueError, FileNotFoundError) as err:
                # e.g. a method whose evaluation needs state from training (AGM), or a run without best.pt
                out.failed.append(f"{cfg.label}: {type(err).__name__}: {err}")
                continue
            atomic_write_json(path, record)
            out.evaluated += 1
            announce(f"{cfg.label}: {record['wall_time_s']:.1f} s")
        out.results.append(RunResult(method_title(cfg.method.name), cfg.arm, cfg.seed, cfg.label, record))
        if out.test_samples is None:
            out.test_samples = run.test_samples()
    return out


def multimodal_runs(grid: GridConfig, runs_root: Path) -> Iterator[tuple[RunConfig, RunDir]]:
    """The grid's runs except its unimodal references (a model of one modality cannot lose the other)."""
    for cfg in expand_grid(grid):
        if cfg.method.name != "unimodal":
            yield cfg, run_dir_for(cfg, runs_root)


def read_record(path: Path, seed: int) -> dict[str, Any] | None:
    """The record at ``path`` if it was measured with this protocol and seed, else None."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record.get("protocol") == protocol_digest(seed) else None

"""``make repeatability``: what must hold on any machine, whatever its processor.

A short sample of a grid (one method without and with DAGR, its first seed, a few epochs) is trained
three ways on this machine, in this process's numerics:

* twice one run at a time (``--jobs 1``): the same run gives the same bits;
* two runs at once in worker processes (``--jobs 2``): parallel execution changes nothing;
* from the command line, interrupted by SIGINT (Ctrl-C) once the first epoch is checkpointed, then
  run again: the resumed runs equal the uninterrupted ones.

Every record is compared: each epoch's metrics (timings aside), the per-sample test predictions and the
selected model's weights. Unlike ``make verify`` this needs no committed results, so it holds on
any CPU vendor.
"""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from ..core.numerics import current_mode
from ..core.strict import ConfigError, to_dict
from ..grid.config import GridConfig, RunConfig, expand_grid
from ..grid.naming import run_dir_for
from .runner import run_grid

TIMING_KEYS = ("time_s",)


def sample_grid(grid: GridConfig, method: str, epochs: int) -> GridConfig:
    """``method`` without and with DAGR at the grid's first seed, ``epochs`` epochs, no references."""
    if method not in grid.methods:
        raise ValueError(f"repeatability: method {method!r} is not in the grid; choose from {sorted(grid.methods)}")
    run = {**grid.run, "optim": {**grid.run.get("optim", {}), "epochs": epochs}}
    return replace(grid, methods={method: grid.methods[method]}, seeds=[grid.seeds[0]], sweep={}, references=[],
                   dagr_arms=[arm for arm in grid.dagr_arms if arm in ("none", "dagr")] or grid.dagr_arms[:1], run=run)


def fingerprint(run_dir) -> dict:
    """Everything a run recorded that must repeat: metrics without timings, predictions, selected weights."""
    rows = [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in run_dir.read_metrics()]
    best = torch.load(run_dir.best, map_location="cpu", weights_only=True)
    return {"metrics": json.dumps(rows, sort_keys=True), "predictions": run_dir.test_predictions.read_bytes(),
            "weights": b"".join(best[k].numpy().tobytes() for k in sorted(best))}


@contextlib.contextmanager
def interruptible_children():
    """Child processes started inside take SIGINT at its default. A shell starts its background jobs
    with SIGINT ignored, a child inherits an ignored signal, and Python then installs no
    ``KeyboardInterrupt`` handler: a grid started from a background job would not stop. A handler set
    in this process, unlike an ignored signal, is reset to the default in the child (main thread only)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


def interrupted_then_resumed(grid_file: Path, runs: Path, first_run_dir: Path, timeout_s: float = 600) -> str:
    """Train the grid from the command line, send SIGINT once the first run's first epoch is checkpointed,
    then train it again; returns what happened, for the report."""
    cmd = [sys.executable, "-m", "benchmarks", "grid", str(grid_file), "--runs", str(runs), "--no-progress"]
    with interruptible_children():
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while not (first_run_dir / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupted = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout_s)
    if interrupted and proc.returncode != 130:
        raise RuntimeError(f"an interrupted grid must exit 130, got {proc.returncode}: {err.strip()[-500:]}")
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout_s)
    return "interrupted after its first checkpoint, then resumed" if interrupted else "finished before the interrupt"


def check(grid: GridConfig, method: str, epochs: int, root: Path) -> tuple[list[str], bool]:
    """Train the sample the three ways under ``root``; the report's lines and whether everything repeated.
    Only the portable numerics promise it: there every run uses one thread, in this process or a worker."""
    if current_mode() != "portable":
        raise ConfigError("repeatability: run it in the portable numerics (the native mode's thread count differs "
                          "between this process and the workers, and so do its records)")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"repeatability: {root} is not empty; earlier records would be compared instead "
                              "of training afresh")
    sample = sample_grid(grid, method, epochs)
    runs = expand_grid(sample)
    ways = {"one job": root / "one-job", "again, one job": root / "again", "two jobs": root / "two-jobs"}
    for way, folder in ways.items():
        report = run_grid(sample, folder, progress=False, jobs=2 if way == "two jobs" else 1)
        if not report.ok:
            return [f"repeatability: the sample did not train ({way}): {report.summary()}"], False
    grid_file = root / "sample.yaml"
    grid_file.write_text(yaml.safe_dump(to_dict(sample), sort_keys=False))
    resumed = root / "resumed"
    how = interrupted_then_resumed(grid_file, resumed, run_dir_for(runs[0], resumed).path)
    ways[f"command line, {how}"] = resumed
    return compare_ways(runs, ways)


def compare_ways(runs: list[RunConfig], ways: dict[str, Path]) -> tuple[list[str], bool]:
    """Each way's records against the first way's: the report's lines and whether all are identical."""
    first, *others = ways.items()
    reference = {cfg.label: fingerprint(run_dir_for(cfg, first[1])) for cfg in runs}
    lines, ok = [f"sample: {', '.join(reference)} ({runs[0].optim.epochs} epochs)"], True
    for way, folder in others:
        differing = []
        for cfg in runs:
            got = fingerprint(run_dir_for(cfg, folder))
            parts = [key for key, value in got.items() if value != reference[cfg.label][key]]
            if parts:
                differing.append(f"{cfg.label} ({', '.join(parts)})")
        ok &= not differing
        lines.append(f"{way}: " + (f"DIFFERENT: {'; '.join(differing)}" if differing else f"identical to {first[0]}"))
    return lines, ok

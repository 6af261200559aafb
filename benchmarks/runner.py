"""Runs a grid: one directory per run, finished runs skipped, failures recorded, the grid goes on.

The runs execute in this process, in worker processes or as cluster jobs (``benchmarks.parallel``);
each calls :func:`run_one`, so records and resume behave the same everywhere. Under ``torchrun``
every rank walks the grid in the same order and trains each run together (``benchmarks.distributed``).
"""
from __future__ import annotations

import functools
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .config import GridConfig, RunConfig, expand_grid
from .distributed import current as current_ranks
from .parallel import ClusterOptions, execute
from .records import RunDir, atomic_write_json
from .strict import ConfigError
from .trainer import NonFiniteLossError, Trainer


@dataclass
class GridReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "path: why" for runs whose worker or job died
    wall_time_s: float = 0.0

    def summary(self) -> str:
        text = (f"{len(self.done)} runs trained, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed, {len(self.missing)} missing, in {self.wall_time_s:.1f} s")
        return text + "".join(f"\n  failed: {f}" for f in self.failed) + "".join(
            f"\n  missing: {m}" for m in self.missing)


def run_dir_for(cfg: RunConfig, runs_root: Path) -> RunDir:
    return RunDir(Path(runs_root) / cfg.benchmark / f"{cfg.label}-{cfg.run_id()}")


def run_one(cfg: RunConfig, runs_root: Path, progress: bool = False) -> tuple[str, RunDir]:
    """Train one run unless it is done; returns ("done" | "skipped" | "failed", its directory)."""
    run_dir = run_dir_for(cfg, runs_root)
    if run_dir.is_done():
        return "skipped", run_dir
    ranks = current_ranks()
    if ranks.is_main:
        run_dir.failed.unlink(missing_ok=True)
    try:
        Trainer(cfg, run_dir, progress=progress).fit()
    except Exception as err:  # noqa: BLE001 - any failure of one run must not stop the grid
        if not ranks.is_main:  # rank 0 records the failure; every rank failed the same step together
            return "failed", run_dir
        record = {"label": cfg.label, "run_id": cfg.run_id(), "error": f"{type(err).__name__}: {err}",
                  "traceback": traceback.format_exc()}
        if isinstance(err, NonFiniteLossError):
            record.update(method=err.method, epoch=err.epoch, step=err.step)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.last.unlink(missing_ok=True)  # a diverged state is not worth resuming
        atomic_write_json(run_dir.failed, record)
        return "failed", run_dir
    return "done", run_dir


def run_grid(grid: GridConfig, runs_root: Path, progress: bool = True, jobs: int = 1, executor: str = "local",
             cluster: ClusterOptions | None = None) -> GridReport:
    """Train every run of the grid that is not done; see ``benchmarks.parallel`` for the executors."""
    ranks = current_ranks()
    if ranks.active and (jobs > 1 or executor != "local"):
        raise ConfigError("under torchrun the ranks train one run at a time together: use the local "
                          "executor with --jobs 1")
    progress = progress and ranks.is_main
    report = GridReport()
    start = time.perf_counter()
    pending = set_aside_finished(expand_grid(grid), runs_root, report)
    in_process = executor == "local" and jobs == 1
    # Epoch bars only in this process: from several workers they would overwrite each other.
    task = functools.partial(run_one, progress=progress) if in_process else run_one
    bar = tqdm(total=len(pending), desc=f"grid {grid.benchmark}", disable=not progress)
    for cfg, outcome in execute(task, pending, Path(runs_root), executor, jobs, cluster):
        record_outcome(report, cfg, runs_root, outcome, announce=ranks.is_main)
        bar.update()
    bar.close()
    report.wall_time_s = time.perf_counter() - start
    return report


def set_aside_finished(runs: list[RunConfig], runs_root: Path, report: GridReport) -> list[RunConfig]:
    """The runs still to train; finished ones are reported skipped up front, so that no worker or
    cluster job is spent on them (and, under torchrun, every rank decides alike before training)."""
    pending = []
    for cfg in runs:
        run_dir = run_dir_for(cfg, runs_root)
        if run_dir.is_done():
            report.skipped.append(str(run_dir.path))
        else:
            pending.append(cfg)
    return pending


def record_outcome(report: GridReport, cfg: RunConfig, runs_root: Path, outcome, announce: bool) -> None:
    """File one finished task; an exception means its worker or job died before the run could record
    anything (killed, out of memory, out of time): the run is missing and a rerun resumes it."""
    if isinstance(outcome, BaseException):
        why = f"{run_dir_for(cfg, runs_root).path}: {type(outcome).__name__}: {outcome}".strip()
        report.missing.append(why)
        message = f"run {cfg.label} ended without a record; {why}"
    else:
        status, run_dir = outcome
        getattr(report, status).append(str(run_dir.path))
        message = f"run {cfg.label} failed; see {run_dir.failed}" if status == "failed" else ""
    if message and announce:  # under torchrun, rank 0 speaks for all ranks
        tqdm.write(message)

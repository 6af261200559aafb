"""Runs a grid: one directory per run, finished runs skipped, failures recorded, the grid goes on.

The runs execute in this process, in worker processes or as cluster jobs (``benchmarks.run.parallel``);
each calls :func:`run_one`, so records and resume behave the same everywhere. Under ``torchrun``
every rank walks the grid in the same order and trains each run together (``benchmarks.train.distributed``).
A grid on a dataset read from disk first prepares (or refreshes) its cache here, once, and stops
unless the copy is complete or within the allowance for missing clips.
"""
from __future__ import annotations

import functools
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..data import data_tag, fingerprint_tag
from ..data.check import AllowMissing, Report, data_check, disk_data
from ..train.trainer import NonFiniteLossError, Trainer
from ..grid.config import GridConfig, RunConfig, expand_grid
from ..grid.naming import run_dir_for, run_dir_name
from ..train.distributed import current as current_ranks
from ..core.errors import DataNotSufficient, require_writable
from .parallel import ClusterOptions, execute
from ..core.records import RunDir, atomic_write_json
from ..core.strict import ConfigError


class DataChangedError(RuntimeError):
    """The prepared data differs from the data the run directory was named after."""


@dataclass
class GridReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "path: why" for runs whose worker or job died
    reasons: dict[str, str] = field(default_factory=dict)  # failed path -> its error, one line
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.missing)

    def summary(self) -> str:
        text = (f"{len(self.done)} runs trained, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed, {len(self.missing)} missing, in {self.wall_time_s:.1f} s")
        return text + "".join(f"\n  failed: {f}: {self.reasons.get(f, 'see failed.json')}" for f in self.failed) + \
            "".join(f"\n  missing: {m}" for m in self.missing)


def grid_time_record(report: GridReport, jobs: int, executor: str) -> dict | None:
    """How long training the whole grid took, when this invocation trained every run of it (none skipped,
    none failed); None otherwise (a resumed or partial grid says nothing about the whole)."""
    if not report.done or report.skipped or not report.ok:
        return None
    from ..core.numerics import cpu_flags, cpu_model, current_mode
    from ..core.records import git_commit

    return {"runs": len(report.done), "jobs": jobs, "executor": executor, "wall_s": round(report.wall_time_s, 1),
            "cpu": cpu_model(), "avx512": any(flag.startswith("avx512") for flag in cpu_flags()),
            "numerics": current_mode(), "git": git_commit()["commit"][:10],
            "date": time.strftime("%Y-%m-%d", time.gmtime())}



def run_one(cfg: RunConfig, runs_root: Path, progress: bool = False) -> tuple[str, RunDir]:
    """Train one run unless it is done; returns ("done" | "skipped" | "failed", its directory)."""
    tag = data_tag(cfg.data)
    run_dir = RunDir(Path(runs_root) / cfg.benchmark / run_dir_name(cfg, tag))
    if run_dir.is_done():
        return "skipped", run_dir
    ranks = current_ranks()
    if ranks.is_main:
        run_dir.failed.unlink(missing_ok=True)
    try:
        trainer = Trainer(cfg, run_dir, progress=progress)
        require_same_data(trainer.data.fingerprint, tag)
        trainer.fit()
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


def require_same_data(fingerprint: dict | None, tag: str | None) -> None:
    """The data a run loaded must be the data its directory is named after (files may change mid-grid)."""
    if fingerprint is not None and fingerprint_tag(fingerprint) != tag:
        raise DataChangedError(f"the dataset's files changed while the grid ran: this run directory is for "
                               f"data {tag}, the cache now holds {fingerprint_tag(fingerprint)}; run the grid "
                               f"again to train on the new data")


def run_grid(grid: GridConfig, runs_root: Path, progress: bool = True, jobs: int = 1, executor: str = "local",
             cluster: ClusterOptions | None = None, allow_missing: AllowMissing = AllowMissing()) -> GridReport:
    """Train every run of the grid that is not done; see ``benchmarks.run.parallel`` for the executors."""
    ranks = current_ranks()
    if ranks.active and (jobs > 1 or executor != "local"):
        raise ConfigError("under torchrun the ranks train one run at a time together: use the local "
                          "executor with --jobs 1")
    progress = progress and ranks.is_main
    report = GridReport()
    start = time.perf_counter()
    runs = expand_grid(grid)
    if ranks.is_main:
        require_writable(Path(runs_root), "runs folder (--runs, RUNS= for make)")
        for data in prepare_grid_data(runs, allow_missing):
            tqdm.write(data.render(allow_missing))
    ranks.barrier()  # the other ranks find the caches rank 0 prepared
    pending = set_aside_finished(runs, runs_root, report)
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


def prepare_grid_data(runs: list[RunConfig], allow: AllowMissing) -> list[Report]:
    """Prepare (or refresh) the cache of every dataset the runs read from disk, once, here: the runs
    then find it, and their directories are named after its fingerprint. Stops unless each copy is
    complete or within ``allow``."""
    reports = [data_check(data.name, data.params) for data in disk_data(cfg.data for cfg in runs)]
    for report in reports:
        if not report.sufficient(allow):
            raise DataNotSufficient(report.render(allow))
    return reports


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
        message = ""
        if status == "failed":
            report.reasons[str(run_dir.path)] = failure_reason(run_dir)
            message = f"run {cfg.label} failed; see {run_dir.failed}"
    if message and announce:  # under torchrun, rank 0 speaks for all ranks
        tqdm.write(message)


def failure_reason(run_dir: RunDir) -> str:
    """The first line of a failed run's error (a rank other than 0 records none)."""
    if not run_dir.failed.exists():
        return "see the log of rank 0"
    return json.loads(run_dir.failed.read_text())["error"].splitlines()[0]

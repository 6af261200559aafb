"""Runs a grid: one directory per run, finished runs skipped, failures recorded, the grid goes on."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .config import GridConfig, RunConfig, expand_grid
from .records import RunDir, atomic_write_json
from .trainer import NonFiniteLossError, Trainer


@dataclass
class GridReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    def summary(self) -> str:
        text = (f"{len(self.done)} runs trained, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed, in {self.wall_time_s:.1f} s")
        return text + ("".join(f"\n  failed: {f}" for f in self.failed))


def run_dir_for(cfg: RunConfig, runs_root: Path) -> RunDir:
    return RunDir(Path(runs_root) / cfg.benchmark / f"{cfg.label}-{cfg.run_id()}")


def run_one(cfg: RunConfig, runs_root: Path, progress: bool = False) -> tuple[str, RunDir]:
    """Train one run unless it is done; returns ("done" | "skipped" | "failed", its directory)."""
    run_dir = run_dir_for(cfg, runs_root)
    if run_dir.is_done():
        return "skipped", run_dir
    run_dir.failed.unlink(missing_ok=True)
    try:
        Trainer(cfg, run_dir, progress=progress).fit()
    except Exception as err:  # noqa: BLE001 - any failure of one run must not stop the grid
        record = {"label": cfg.label, "run_id": cfg.run_id(), "error": f"{type(err).__name__}: {err}",
                  "traceback": traceback.format_exc()}
        if isinstance(err, NonFiniteLossError):
            record.update(method=err.method, epoch=err.epoch, step=err.step)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.last.unlink(missing_ok=True)  # a diverged state is not worth resuming
        atomic_write_json(run_dir.failed, record)
        return "failed", run_dir
    return "done", run_dir


def run_grid(grid: GridConfig, runs_root: Path, progress: bool = True) -> GridReport:
    runs = expand_grid(grid)
    report = GridReport()
    start = time.perf_counter()
    for cfg in tqdm(runs, desc=f"grid {grid.benchmark}", disable=not progress):
        status, run_dir = run_one(cfg, runs_root, progress=progress)
        getattr(report, status).append(str(run_dir.path))
        if status == "failed":
            tqdm.write(f"run {cfg.label} failed; see {run_dir.failed}")
    report.wall_time_s = time.perf_counter() - start
    return report

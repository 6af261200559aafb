"""Where a run's time goes, and what the default grid costs.

One seed of every run of a grid (by default the embedded default of ``make reproduce``: each method
without and with DAGR, and the unimodal references) is trained in full, exactly as the grid trains it:
the portable numerics, one thread per run, ``jobs`` runs at a time in fresh worker processes. Inside each
run a :class:`StageClock` splits the wall time into stages by wrapping the trainer's pieces (nothing in
the training code changes; the wrappers cost about a microsecond per call):

* ``forward`` — the model's forward pass and the method's losses inside a training step;
* ``backward`` — ``Tensor.backward`` and ``torch.autograd.grad`` inside a training step (the task's
  backward; MMPareto's two gradients);
* ``DAGR pull-back`` — DAGR's per-term gradients and their Pareto balancing (Algorithm 1);
* ``gradient processing`` — the method's modulation and clipping between backward and step;
* ``optimizer`` — ``optimizer.step``;
* ``step overhead`` — the rest of a training step (Python, logs);
* ``data`` — waiting for the next training batch;
* ``method epoch passes`` — the method's epoch hooks (G-Blending's probe copies, PMR's prototypes,
  D&R's diagnoses, AGM's and DGL's bookkeeping);
* ``evaluation`` — the forward passes and metrics over the validation and test splits each epoch;
* ``geometry`` — the representation-geometry summary of those splits (``geomreg.geometry``);
* ``records`` — metrics, per-sample predictions and checkpoints written each epoch;
* ``set-up`` — building the trainer (data, model, method); ``other`` — the rest of ``fit``.

The seed's slice is a third of a 3-seed grid run the same way, so the grid's projected wall time is the
slice's wall time times the number of seeds.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

STEP = "step overhead"
EPOCH = "epoch loop"
EVALUATION = "evaluation"
STAGES = ("forward", "backward", "DAGR pull-back", "gradient processing", "optimizer", STEP, "data", EPOCH,
          "method epoch passes", EVALUATION, "geometry", "records", "set-up", "other")


class StageClock:
    """Exclusive wall time per stage: a stage's time excludes the stages entered inside it."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = [["other", clock()]]  # [stage, start of its current segment]

    def enter(self, stage: str) -> None:
        now = self.clock()
        top = self.stack[-1]
        self.seconds[top[0]] += now - top[1]
        self.stack.append([stage, now])

    def leave(self) -> None:
        now = self.clock()
        stage, start = self.stack.pop()
        self.seconds[stage] += now - start
        self.stack[-1][1] = now

    def current(self) -> str:
        return self.stack[-1][0]

    def wrap(self, fn: Callable, stage: str, within: tuple[str, ...] | None = None) -> Callable:
        """``fn`` timed as ``stage``; with ``within``, only when called directly inside one of those
        stages (a forward pass inside the evaluation counts as evaluation)."""
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if within is not None and self.current() not in within:
                return fn(*args, **kwargs)
            self.enter(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()
        return timed

    def totals(self) -> dict[str, float]:
        """Seconds per stage so far (the open segments included)."""
        now = self.clock()
        out = dict(self.seconds)
        for stage, start in self.stack:
            out[stage] = out.get(stage, 0.0) + now - start
        return out


def timed_batches(batches: Callable, clock: StageClock, within: tuple[str, ...]) -> Callable:
    """``split.batches`` whose iterator's ``next`` counts as ``data`` when asked for inside ``within``."""
    @functools.wraps(batches)
    def iterate(*args, **kwargs):
        iterator = iter(batches(*args, **kwargs))
        while True:
            counted = clock.current() in within
            if counted:
                clock.enter("data")
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                if counted:
                    clock.leave()
            yield batch
    return iterate


def instrument(trainer, clock: StageClock) -> Callable[[], None]:
    """Wrap the trainer's pieces with ``clock``; returns the function that removes the global wrappers."""
    import torch

    import benchmarks.train.evaluation as evaluation

    in_step = (STEP,)
    trainer.train_step = clock.wrap(trainer.train_step, STEP)
    trainer.train_epoch = clock.wrap(trainer.train_epoch, EPOCH)
    method = trainer.method
    method.losses = clock.wrap(method.losses, "forward", in_step)
    method.process_gradients = clock.wrap(method.process_gradients, "gradient processing", in_step)
    method.clip_gradients = clock.wrap(method.clip_gradients, "gradient processing", in_step)
    method.on_epoch_start = clock.wrap(method.on_epoch_start, "method epoch passes")
    method.on_epoch_end = clock.wrap(method.on_epoch_end, "method epoch passes")
    trainer._geometry_gradients = clock.wrap(trainer._geometry_gradients, "DAGR pull-back", in_step)
    trainer.optimizer.step = clock.wrap(trainer.optimizer.step, "optimizer", in_step)
    trainer.data.train.batches = timed_batches(trainer.data.train.batches, clock, (EPOCH,))
    trainer.evaluate_split = clock.wrap(trainer.evaluate_split, EVALUATION)
    trainer._checkpoint = clock.wrap(trainer._checkpoint, "records")
    trainer.run_dir.write_metrics = clock.wrap(trainer.run_dir.write_metrics, "records")
    trainer.test_predictions.write = clock.wrap(trainer.test_predictions.write, "records")
    # The model's class, not the instance: a copy of the model (G-Blending's probes) must not share it.
    model_class = type(trainer.model)
    originals = {(torch.autograd, "backward"): torch.autograd.backward, (torch.autograd, "grad"): torch.autograd.grad,
                 (evaluation, "geometry_summary"): evaluation.geometry_summary,
                 (model_class, "forward"): model_class.forward}
    model_class.forward = clock.wrap(model_class.forward, "forward", in_step)
    torch.autograd.backward = clock.wrap(torch.autograd.backward, "backward", in_step)
    torch.autograd.grad = clock.wrap(torch.autograd.grad, "backward", in_step)
    evaluation.geometry_summary = clock.wrap(evaluation.geometry_summary, "geometry", (EVALUATION,))

    def restore() -> None:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)
    return restore


def profile_run(cfg, runs_root: str) -> dict[str, Any]:
    """Train one run with its stages timed (in a worker process: the portable numerics, one thread)."""
    from benchmarks.report.summaries import run_title
    from benchmarks.grid.naming import run_dir_for
    from benchmarks.core.strict import to_dict
    from benchmarks.train.trainer import Trainer

    clock = StageClock()
    clock.enter("set-up")
    trainer = Trainer(cfg, run_dir_for(cfg, Path(runs_root)))
    clock.leave()
    restore = instrument(trainer, clock)
    try:
        trainer.fit()
    finally:
        restore()
    seconds = clock.totals()
    return {"label": cfg.label, "title": run_title(cfg.label, to_dict(cfg)), "method": cfg.method.name,
            "dagr": cfg.dagr.enabled, "wall_s": sum(seconds.values()),
            "stages": {stage: seconds.get(stage, 0.0) for stage in STAGES}, "steps": trainer.global_step}


def seed_slice(grid_path: str, overrides: list[str] = ()) -> tuple[list, int]:
    """The grid's runs of its first seed (in grid order), and the grid's number of seeds."""
    from benchmarks.grid.config import expand_grid, load_grid

    grid = load_grid(grid_path, list(overrides))
    return expand_grid(replace(grid, seeds=grid.seeds[:1])), len(grid.seeds)


def measure(grid_path: str = "benchmarks/configs/avdigits.yaml", overrides: list[str] = (), jobs: int = 2) -> dict:
    """Profile the first seed's slice of the grid, ``jobs`` runs at a time, in the portable numerics."""
    runs, seeds = seed_slice(grid_path, overrides)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, portable_workers():
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            rows = list(pool.map(profile_run, runs, [tmp] * len(runs)))
    wall = time.perf_counter() - start
    return {"grid": grid_path, "overrides": list(overrides), "jobs": jobs, "numerics": "portable", "seeds": seeds,
            "rows": rows, "slice_wall_s": wall, "projected_s": wall * seeds}


@contextlib.contextmanager
def portable_workers():
    """Worker processes spawned inside get the portable numerics (this process may run native ones:
    its torch is already imported, so only a fresh interpreter can take the pinned settings)."""
    from benchmarks.core.numerics import MODE_VARIABLE, PORTABLE_ENVIRONMENT

    pinned = {MODE_VARIABLE: "portable", **PORTABLE_ENVIRONMENT}
    saved = {k: os.environ.get(k) for k in pinned}
    os.environ.update(pinned)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measured(results: Path, grid_path: str) -> dict | None:
    """The last complete ``make reproduce`` of the grid (``results/<grid>/grid_time.json``), if recorded."""
    import json

    from benchmarks.core.records import GRID_TIME

    path = Path(results) / Path(grid_path).stem / GRID_TIME
    return json.loads(path.read_text()) if path.exists() else None

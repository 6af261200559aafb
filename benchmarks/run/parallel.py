"""Where the runs of a grid execute. Every executor calls the same task, ``runner.run_one``, once per run:

* ``local`` (default): on this machine, in this process (``jobs=1``) or in ``jobs`` worker processes;
* ``submitit-local``: a submitit job array on this machine (``submitit.LocalExecutor``). It starts
  every job at once, so it is meant for testing the cluster path and for small grids;
* ``slurm``: a submitit job array on a SLURM cluster, one job per run.

An executor yields ``(config, outcome)`` as runs finish, where the outcome is what the task returned,
or the exception that ended the worker or job before the task could return (the runner then reports
the run as missing: a rerun resumes it from its ``last.pt``).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from baselines.plugins import PluginSource, load_plugins, loaded_plugins

from ..grid.config import RunConfig
from ..core.strict import ConfigError

Task = Callable[[RunConfig, Path], Any]
Outcome = Any  # the task's result, or the exception that ended its worker or job

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class ClusterOptions:
    """Resources of one job of a submitit job array (one run per job); ``None`` leaves the
    cluster's default. Only ``time_min`` and ``gpus_per_job`` apply to ``submitit-local``."""

    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    time_min: int = 60
    array_parallelism: int | None = None  # how many jobs of the array SLURM runs at once
    extra: dict[str, str] = field(default_factory=dict)  # any other sbatch option, e.g. account, qos

    def submitit_parameters(self) -> dict[str, Any]:
        params = {"timeout_min": self.time_min, "gpus_per_node": self.gpus_per_job,
                  "cpus_per_task": self.cpus_per_job, "mem_gb": self.mem_gb,
                  "slurm_partition": self.partition, "slurm_array_parallelism": self.array_parallelism,
                  "slurm_additional_parameters": dict(self.extra) or None}
        return {k: v for k, v in params.items() if v is not None}


def available_cores() -> int:
    """Cores this process may use (the affinity mask, e.g. a container's or a job's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_with_threads(task: Task, cfg: RunConfig, runs_root: Path, threads: int | None,
                     plugins: tuple[PluginSource, ...] = ()) -> Any:
    """The body of every worker process and cluster job: import the methods the command line loaded from
    outside the package (a fresh process has only the package's), cap torch's threads, run the task.

    Without the cap, N workers each start one thread per core and oversubscribe the machine."""
    load_plugins(plugins)
    if threads is not None:
        torch.set_num_threads(threads)
    return task(cfg, runs_root)


def in_process(task: Task, runs: list[RunConfig], runs_root: Path) -> Iterator[tuple[RunConfig, Outcome]]:
    for cfg in runs:
        yield cfg, task(cfg, runs_root)


def in_worker_processes(task: Task, runs: list[RunConfig], runs_root: Path,
                        jobs: int) -> Iterator[tuple[RunConfig, Outcome]]:
    """``jobs`` spawned worker processes (fork is unsafe once torch has started threads)."""
    threads = max(1, available_cores() // jobs)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        plugins = loaded_plugins()
        futures = {pool.submit(run_with_threads, task, cfg, runs_root, threads, plugins): cfg for cfg in runs}
        for future in concurrent.futures.as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


def job_executor(cluster: str, options: ClusterOptions, log_folder: Path, name: str):
    """A submitit executor ("local" or "slurm") whose jobs get ``options``' resources."""
    import submitit

    executor = submitit.AutoExecutor(folder=log_folder, cluster=cluster)
    executor.update_parameters(name=name, **options.submitit_parameters())
    return executor


def as_job_array(task: Task, runs: list[RunConfig], runs_root: Path, cluster: str, options: ClusterOptions,
                 log_folder: Path) -> Iterator[tuple[RunConfig, Outcome]]:
    """One submitit job per run, submitted as one array; waits for the jobs and yields as they end."""
    from submitit.helpers import as_completed

    executor = job_executor(cluster, options, log_folder, name=f"geomreg-{runs[0].benchmark}")
    # A local array runs every job at once, so they share the cores; a cluster job owns its CPUs.
    threads = max(1, available_cores() // len(runs)) if cluster == "local" else options.cpus_per_job
    n = len(runs)
    jobs = executor.map_array(run_with_threads, [task] * n, runs, [runs_root] * n, [threads] * n,
                              [loaded_plugins()] * n)
    print(f"submitted {n} {cluster} jobs ({jobs[0].job_id} ...); logs in {log_folder}", flush=True)
    run_of = {job.job_id: cfg for job, cfg in zip(jobs, runs)}
    for job in as_completed(jobs, poll_frequency=1 if cluster == "local" else 30):
        yield run_of[job.job_id], job.exception() or job.result()


def execute(task: Task, runs: list[RunConfig], runs_root: Path, executor: str = "local", jobs: int = 1,
            cluster: ClusterOptions | None = None) -> Iterator[tuple[RunConfig, Outcome]]:
    """Run ``task(cfg, runs_root)`` for every run with the chosen executor, yielding as runs finish."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose from {EXECUTORS}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if not runs:
        return iter(())
    if executor == "local":
        return in_process(task, runs, runs_root) if jobs == 1 else in_worker_processes(task, runs, runs_root, jobs)
    log_folder = Path(runs_root) / runs[0].benchmark / "_submitit"
    return as_job_array(task, runs, runs_root, executor.removeprefix("submitit-"), cluster or ClusterOptions(),
                        log_folder)

"""Grids run by several worker processes or as submitit job arrays: same records, same resume rules."""
import json
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.grid.config import GridConfig, expand_grid
from benchmarks.run.parallel import ClusterOptions, available_cores, job_executor
from benchmarks.core.records import RunDir
from benchmarks.grid.naming import run_dir_for
from benchmarks.run.runner import GridReport, record_outcome, run_grid



def debug_grid(seeds, epochs=2, **fields) -> GridConfig:
    """Joint training only, no DAGR arm, no references: the smallest grid of real runs."""
    run = {"data": {"name": "debug", "batch_size": 16}, "model": {"width": 8},
           "optim": {"epochs": epochs, "lr": 0.05, "scheduler": "none"}}
    return GridConfig(benchmark="debug", seeds=seeds, methods={"joint": {}}, dagr_arms=["none"], references=[],
                      run=run, **fields)


def metrics(run: RunDir) -> list:
    rows = run.read_metrics()
    for row in rows:
        row.pop("time_s")  # wall time is the only field that may differ
    return rows


@pytest.fixture
def worker_threads():
    """The thread count a worker of a 2-job pool uses. Float sums depend on how a reduction is
    split over threads, so records are bitwise equal only between runs with equal thread counts."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, available_cores() // 2))
    yield
    torch.set_num_threads(before)


def test_two_workers_give_the_records_of_one_process_and_a_diverging_run_fails_alone(tmp_path, worker_threads):
    # lr 1e30 makes the loss non-finite at the first steps: those runs fail, the others finish.
    grid = debug_grid(seeds=[0, 1], sweep={"optim.lr": [0.05, 1e30]})
    one = run_grid(grid, tmp_path / "one", progress=False)
    assert (len(one.done), len(one.failed)) == (2, 2)

    code = main(["grid", "benchmarks/configs/debug.yaml", "--runs", str(tmp_path / "two"), "--no-progress",
                 "--jobs", "2", "--set", "seeds=[0, 1]", "--set", "dagr_arms=[none]", "--set", "references=[]",
                 "--set", "run.model.width=8", "--set", "run.optim.epochs=2",
                 "--set", "sweep={optim.lr: [0.05, 1.0e+30]}"])
    assert code == 3  # some runs failed (the others finished)
    for cfg in expand_grid(grid):
        a, b = run_dir_for(cfg, tmp_path / "one"), run_dir_for(cfg, tmp_path / "two")
        if cfg.optim.lr > 1:
            failed = json.loads(b.failed.read_text())
            assert failed["error"].startswith("NonFiniteLossError") and not b.last.exists() and not b.is_done()
        else:
            assert b.is_done() and metrics(a) == metrics(b), cfg.label

    again = run_grid(debug_grid(seeds=[0, 1]), tmp_path / "two", progress=False, jobs=2)
    assert (len(again.skipped), len(again.done)) == (2, 0)  # nothing left to train: no worker started


def test_submitit_local_job_array_trains_every_run(tmp_path):
    grid = debug_grid(seeds=[0, 1], epochs=1)
    report = run_grid(grid, tmp_path, progress=False, executor="submitit-local",
                      cluster=ClusterOptions(time_min=5))
    assert len(report.done) == 2 and not (report.failed or report.missing)
    assert all(run_dir_for(cfg, tmp_path).is_done() for cfg in expand_grid(grid))
    logs = tmp_path / "debug" / "_submitit"
    assert len(list(logs.glob("*_log.out"))) == 2


def test_slurm_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    # submitit only builds a SLURM executor where `srun` exists; a stub stands in for the cluster.
    stub = tmp_path / "bin" / "srun"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    options = ClusterOptions(partition="gpu", gpus_per_job=1, cpus_per_job=8, mem_gb=32.0, time_min=90,
                             array_parallelism=4, extra={"account": "proj"})
    executor = job_executor("slurm", options, tmp_path / "logs", name="geomreg-test")
    script = executor._executor._make_submission_file_text("python -m run", "uid")  # the sbatch header
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--time=90",
                 "--account=proj", "--job-name=geomreg-test"):
        assert f"#SBATCH {line}\n" in script
    assert executor._executor.parameters["array_parallelism"] == 4


def test_a_worker_that_died_leaves_its_run_missing_not_failed(tmp_path):
    (cfg,) = expand_grid(debug_grid(seeds=[0]))
    report = GridReport()
    record_outcome(report, cfg, tmp_path, BrokenProcessPool("a worker was killed"), announce=False)
    assert report.missing == [f"{run_dir_for(cfg, tmp_path).path}: BrokenProcessPool: a worker was killed"]
    assert not report.failed and "1 missing" in report.summary()

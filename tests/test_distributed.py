"""One run trained by two CPU processes (gloo), compared with the same run in one process."""
import contextlib
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from benchmarks.__main__ import main
from benchmarks.data import Batch
from benchmarks.grid.config import expand_grid, load_grid, resolve_run
from benchmarks.train.distributed import Ranks
from benchmarks.core.records import RunDir
from benchmarks.grid.naming import run_dir_for
from benchmarks.run.runner import run_one
from benchmarks.train.trainer import Trainer

ROOT = Path(__file__).parents[1]
GRID_ARGS = [str(ROOT / "benchmarks/configs/debug.yaml"), "--set", "seeds=[0]", "--set", "dagr_arms=[none]",
             "--set", "references=[]"]
DEBUG_RUN = {"benchmark": "debug", "seed": 0, "data": {"name": "debug", "batch_size": 16},
             "model": {"encoder": "small_cnn", "width": 16}, "optim": {"lr": 0.05, "epochs": 2, "scheduler": "none"},
             "method": {"name": "joint"}}


def test_shards_are_contiguous_slices_that_cover_the_batch():
    batch = Batch({"audio": torch.arange(7).view(7, 1)}, torch.arange(7))
    shards = [Ranks(rank, 2).shard(batch) for rank in range(2)]
    assert [s.labels.tolist() for s in shards] == [[0, 1, 2, 3], [4, 5, 6]]
    assert Ranks().shard(batch) is batch
    with pytest.raises(ValueError, match="cannot be split over 8 ranks"):
        Ranks(0, 8).shard(batch)


def first_step_gradients(raw: dict) -> dict[str, torch.Tensor]:
    """Gradients of the first training step (this rank's shard under torchrun), with BatchNorm on
    its running statistics: then every sample's loss is independent of the rest of the batch, so
    averaging the shards' gradients must give the whole batch's gradient up to float summation order."""
    trainer = Trainer(resolve_run(raw), RunDir(Path("unused")))
    trainer.model.eval()
    batch = next(trainer.data.train.batches(raw["data"]["batch_size"], shuffle=True, generator=trainer.generator))
    trainer.train_step(trainer.ranks.shard(batch))
    return {name: p.grad.clone() for name, p in trainer.model.named_parameters()}


def rank_worker(rank: int, world_size: int, port: int, raw: dict, out: Path) -> None:
    """What torchrun would start: the same environment, then one gradient step and the CLI's grid."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.save(first_step_gradients(raw), out / f"grads{rank}.pt")
    with open(out / f"stdout{rank}.txt", "w") as stdout, contextlib.redirect_stdout(stdout):
        assert main(["grid", *GRID_ARGS, "--runs", str(out / "runs"), "--no-progress"]) == 0


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """One launch of two gloo ranks for the tests below (each launch costs seconds of imports)."""
    out = tmp_path_factory.mktemp("ranks")
    for attempt in range(3):  # a free port can be taken by another process before rank 0 binds it
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            mp.spawn(rank_worker, args=(2, port, DEBUG_RUN, out), nprocs=2)
            return out
        except mp.ProcessRaisedException as err:
            if "address already in use" not in str(err).lower() or attempt == 2:
                raise


@pytest.fixture
def one_thread():
    """The single-process references run with the ranks' thread count: on a busy 2-core machine
    a second thread only waits for the core (and, as everywhere, float sums follow the thread split)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_two_ranks_take_the_whole_batch_gradient_step(two_ranks, one_thread):
    reference = first_step_gradients(DEBUG_RUN)
    ranks = [torch.load(two_ranks / f"grads{r}.pt") for r in range(2)]
    for name, grad in reference.items():
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)  # one all-reduce result
        torch.testing.assert_close(ranks[0][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_grid_on_two_ranks_writes_the_records_once_and_tracks_the_single_process_run(two_ranks, tmp_path, one_thread):
    """BatchNorm in training mode (3 epochs of the debug grid, joint training, no DAGR).

    Each rank normalizes with its shard's statistics (8 samples instead of 16), so the runs are not
    equal. Over the first epoch the weights stay near their shared initialization and the mean
    training loss differs by ~0.3% (measured); 2% allows for that without hiding a wrong gradient
    (a missing average or a doubled one changes the step size and moves the loss by far more).
    Later epochs drift apart (20% by epoch 3), as two runs with different batch statistics do."""
    assert "1 runs trained" in (two_ranks / "stdout0.txt").read_text()
    assert (two_ranks / "stdout1.txt").read_text() == ""  # rank 0 alone reports
    (cfg,) = expand_grid(load_grid(ROOT / GRID_ARGS[0], GRID_ARGS[2::2]))
    ddp = run_dir_for(cfg, two_ranks / "runs")
    assert ddp.is_done() and not ddp.last.exists() and not ddp.failed.exists()
    single = run_one(cfg, tmp_path)[1]
    rows, reference = ddp.read_metrics(), single.read_metrics()
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in reference] == list(range(cfg.optim.epochs))
    assert all({"val", "test"} <= set(r) for r in rows)
    assert rows[0]["train"]["ce_fused"] == pytest.approx(reference[0]["train"]["ce_fused"], rel=0.02)
    assert json.loads(ddp.final.read_text())["epochs"] == cfg.optim.epochs

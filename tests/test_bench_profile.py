"""The stage profile of ``make bench``: exclusive stage times on a fake clock, and instrumentation that
times a real run without changing what it trains."""
from __future__ import annotations

import torch

from benchmarks.bench.profile import STAGES, StageClock, instrument, timed_batches
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.train.trainer import Trainer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stage_time_excludes_the_stages_inside_it():
    t = FakeClock()
    clock = StageClock(t)
    t.now = 1.0  # 1 s of "other"
    clock.enter("step")
    t.now = 3.0  # 2 s of step before the forward pass
    clock.enter("forward")
    t.now = 7.0  # 4 s forward
    clock.leave()
    t.now = 8.0  # 1 s of step after it
    clock.leave()
    t.now = 10.0  # 2 s of "other" again
    assert clock.totals() == {"other": 3.0, "step": 3.0, "forward": 4.0}


def test_a_wrapped_call_counts_only_inside_its_stages():
    t = FakeClock()
    clock = StageClock(t)

    def work(seconds):
        t.now += seconds
        return seconds

    forward = clock.wrap(work, "forward", within=("step",))
    step = clock.wrap(lambda: forward(2.0) + work(1.0), "step")
    evaluation = clock.wrap(lambda: forward(5.0), "evaluation")
    assert step() == 3.0 and evaluation() == 5.0
    assert clock.totals() == {"other": 0.0, "step": 1.0, "forward": 2.0, "evaluation": 5.0}


def test_waiting_for_a_batch_counts_as_data_inside_the_epoch_loop_only():
    t = FakeClock()
    clock = StageClock(t)

    def batches():
        for i in range(3):
            t.now += 1.0  # each batch takes 1 s to produce
            yield i

    timed = timed_batches(batches, clock, within=("epoch",))
    clock.enter("epoch")
    assert list(timed()) == [0, 1, 2]
    clock.leave()
    assert list(timed()) == [0, 1, 2]  # outside the epoch loop: not data
    assert clock.totals() == {"other": 3.0, "epoch": 0.0, "data": 3.0}


def test_an_instrumented_run_trains_the_same_weights_and_its_stages_add_up(debug_raw, tmp_path):
    """G-Blending copies the model for its probes: the timing wrappers must not leak into the copies."""
    cfg = resolve_run({**debug_raw, "method": {"name": "gblending"}, "dagr": {"enabled": True}})
    plain = Trainer(cfg, run_dir_for(cfg, tmp_path / "plain"))
    plain.fit()
    timed = Trainer(cfg, run_dir_for(cfg, tmp_path / "timed"))
    clock = StageClock()
    restore = instrument(timed, clock)
    wrapped_grad = torch.autograd.grad
    try:
        timed.fit()
    finally:
        restore()
    assert torch.autograd.grad is not wrapped_grad  # restored
    for name, p in plain.model.state_dict().items():
        assert torch.equal(p, timed.model.state_dict()[name]), name
    seconds = clock.totals()
    assert set(seconds) <= set(STAGES)
    for stage in ("forward", "backward", "DAGR pull-back", "optimizer", "method epoch passes", "evaluation",
                  "geometry", "records"):
        assert seconds[stage] > 0, stage

"""DAGR's Pareto step at the suite's two substrates and at 1 and 2 threads: the exact rule against its floor
and against joint training, the last-layer α (not the paper's rule) against joint training when it joins a
plain backward and against DGL when it takes a pull-back of its own; and the last-layer α's agreement with
the exact α* over a training run.

* **small CNN, AV-Digits**: the default grid's run settings (``benchmarks/configs/avdigits.yaml``: the
  embedded AV-Digits data, the small CNN, batch 64), several steps per timed call (a step takes
  milliseconds);
* **ResNet-18, CREMA-D shapes**: the ``debug`` dataset with CREMA-D's input shapes, batch 16, as the
  "steps" section.

The floor is measured inside a step: ``joint+dagr-floor`` is joint training with DAGR's fixed form (the
same forward, DAGR's terms included) and its backward split in the head's part and the encoders' part
(``compute.SplitBackward``); the floor of the exact rule is that step's time plus twice its encoder part,
``F + 3·B_enc + B_head``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .compute import CREMAD, DAGR_FLOOR, DAGR_VARIANTS, Shapes, build_trainer, first_batch, prepare_step, step_trainer
from .timing import interleave, paired

# Each round runs these pairs back to back (``timing.paired``): a target's ratio comes from adjacent steps.
PAIRS = (("joint+dagr", DAGR_FLOOR), ("joint+dagr-last-layer", "joint"), ("dgl+dagr-last-layer", "dgl"))
VARIANTS = tuple(name for pair in PAIRS for name in pair)
FLOOR_TIMES = "joint+dagr floor"  # the computed floor's entry in the times (not a variant that runs)
THREADS = (1, 2)
DEFAULT_GRID = "benchmarks/configs/avdigits.yaml"


@dataclass(frozen=True)
class Substrate:
    name: str
    title: str
    batch: int
    steps_per_call: int
    reps: int  # interleaved repetitions (fewer when over the section's time budget)
    shapes: Shapes | None = None  # None: the default grid's AV-Digits data
    encoder: str = "resnet18"
    more_reps: int = 0  # the exact rule's pair, timed again on its own after the rotation (``time_substrate``)

    def trainer(self, variant: str, device: str):
        if self.shapes is not None:
            return step_trainer(variant, self.shapes, self.batch, device, encoder=self.encoder)
        method, _, arm = ("joint+dagr-fixed" if variant == DAGR_FLOOR else variant).partition("+")
        return prepare_step(build_trainer(default_grid_config(method, DAGR_VARIANTS.get(arm), device)), variant)


# The small CNN's step takes milliseconds, and the ratio of two adjacent 10-step calls spreads with a
# standard deviation of 4% (1 thread) to 10% (2 threads): many cheap repetitions (151: a 93% interval from
# the 65th to the 87th, about ±1.7% at 2 threads; about 4 minutes for both thread counts). ResNet-18's
# step takes seconds: 11 rounds of the three pairs, then 39 more of the exact rule's pair alone, 50 in all
# (a 94% interval from the 19th to the 32nd): where two adjacent steps differ by 5-10%, as on a 2-core
# EPYC without AVX-512, 11 repetitions cannot place a ratio of 1.01 below 1.05.
SUBSTRATES = (Substrate("small_cnn", "small CNN, AV-Digits (the default grid's run settings), batch 64", 64, 10, 151),
              Substrate("resnet18", f"ResNet-18, {CREMAD.describe()}, batch 16", 16, 1, 11, CREMAD, more_reps=39))
QUICK_SUBSTRATES = (Substrate("small_cnn", "small CNN, AV-Digits (the default grid's run settings), batch 64", 64, 2,
                              2),
                    Substrate("resnet18", "small CNN in place of ResNet-18, quick smoke shapes, batch 4", 4, 1, 2,
                              Shapes(32, 24, 32, 1, "quick smoke shapes"), "small_cnn", more_reps=2))
EXACT_PAIR = PAIRS[0]


def default_grid_config(method: str, dagr: dict[str, Any] | None, device: str = "cpu", epochs: int | None = None,
                        seed: int = 0):
    """A run of the default grid's settings: ``method`` (its grid params) with ``dagr`` over the grid's."""
    from benchmarks.core.strict import deep_merge
    from benchmarks.grid.config import load_grid, resolve_run

    grid = load_grid(DEFAULT_GRID)
    raw = deep_merge(grid.run, {"benchmark": "bench", "seed": seed, "device": device,
                                "method": {"name": method, "params": grid.methods.get(method, {})},
                                "dagr": dagr or {"enabled": False}})
    if epochs is not None:
        raw["optim"]["epochs"] = epochs
    return resolve_run(raw)


def time_substrate(substrate: Substrate, device: str, warmup: int, budget_s: float | None,
                   threads: tuple[int, ...] = THREADS, settle: bool = True,
                   more_budget_s: float | None = None) -> dict[str, Any]:
    """Seconds per step of every variant, interleaved, at each thread count, in wall time and in this
    process's CPU time; and the floor's (``FLOOR_TIMES``) from the same rounds. At each thread count the
    exact rule's pair then runs ``substrate.more_reps`` more rounds on its own (within ``more_budget_s``),
    appended to its two variants' repetitions."""
    calls, split = {}, None
    for name in VARIANTS:
        trainer = substrate.trainer(name, device)
        batch = first_batch(trainer)

        def call(trainer=trainer, batch=batch):
            for _ in range(substrate.steps_per_call):
                trainer.train_step(batch)

        calls[name] = call
        if name == DAGR_FLOOR:
            split = trainer.method.backward
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    before = torch.get_num_threads()
    out = {}
    try:
        for n in threads:
            torch.set_num_threads(n)
            cpu: dict[str, list[float]] = {}
            wall = interleave(calls, substrate.reps, warmup, sync=sync, budget_s=budget_s, cpu=cpu, settle=settle,
                              order=paired(list(PAIRS)))
            more = 0
            if substrate.more_reps:
                more_cpu: dict[str, list[float]] = {}
                extra = interleave({k: calls[k] for k in EXACT_PAIR}, substrate.more_reps, 0, sync=sync,
                                   budget_s=more_budget_s, cpu=more_cpu, settle=settle, order=paired([EXACT_PAIR]))
                for k in EXACT_PAIR:
                    wall[k] += extra[k]
                    cpu[k] += more_cpu[k]
                more = len(extra[DAGR_FLOOR])
            out[n] = {"more_reps": more}
            for clock, times, encoder in (("times", wall, split.encoder_s), ("cpu", cpu, split.encoder_cpu_s)):
                times = {k: [t / substrate.steps_per_call for t in v] for k, v in times.items()}
                encoder_s = timed_calls(encoder, len(times[DAGR_FLOOR]), substrate.steps_per_call, settle)
                times[FLOOR_TIMES] = [t + 2 * b for t, b in zip(times[DAGR_FLOOR], encoder_s)]
                out[n][clock] = times
                out[n][f"encoder_{clock}"] = encoder_s
    finally:
        torch.set_num_threads(before)
    return {"substrate": substrate.title, "batch": substrate.batch, "steps_per_call": substrate.steps_per_call,
            "warmup": warmup, "settle": settle, "threads": out}


def per_call(seconds: list[float], steps_per_call: int) -> list[float]:
    """Mean seconds per step of each timed call, from the per-step seconds in call order."""
    return [sum(seconds[i:i + steps_per_call]) / steps_per_call for i in range(0, len(seconds), steps_per_call)]


def timed_calls(seconds: list[float], timed: int, steps_per_call: int, settle: bool) -> list[float]:
    """Mean seconds per step of the last ``timed`` timed calls, from the per-step seconds of every call
    in order: with ``settle`` an untimed call of the same variant came right before each (``interleave``)."""
    calls = per_call(seconds, steps_per_call)
    return calls[-2 * timed + 1::2] if settle else calls[-timed:]


def alpha_agreement(device: str, epochs: int | None = None) -> dict[str, Any]:
    """Train joint training with the last-layer α on the default grid's settings (seed 0), recording the
    exact α* beside it: per epoch and modality, the mean |α − α*| and their correlation over the steps."""
    import tempfile
    from pathlib import Path

    from benchmarks.core.records import RunDir
    from benchmarks.train.trainer import Trainer

    dagr = {**DAGR_VARIANTS["dagr-last-layer"], "record_exact_alpha": True}
    cfg = default_grid_config("joint", dagr, device, epochs)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the grid trains it
    try:
        with tempfile.TemporaryDirectory(prefix="bench-alpha-") as tmp:
            run_dir = RunDir(Path(tmp) / cfg.label)
            Trainer(cfg, run_dir).fit()
            rows = run_dir.read_metrics()
    finally:
        torch.set_num_threads(before)
    keys = sorted(k for k in rows[0]["train"] if k.startswith("dagr/alpha"))
    return {"label": cfg.label, "epochs": len(rows), "train": [{k: row["train"][k] for k in keys} for row in rows],
            "test_acc": [row["test"]["acc"] for row in rows]}

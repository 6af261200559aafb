"""Gradient-Blending (Wang, Tran, Feiszli — CVPR 2020), re-implemented from the paper (no official code
computes the weights).

Objective: ``Σ_k w_k CE_k`` over k ∈ {fused, <modality>...}, where the unimodal CEs use **separate** linear heads.
The weights come from the paper's estimate ``w_k ∝ ΔG_k / ΔO_k²`` (no official code computes them):
from the current model, for each k a ``copy.deepcopy`` of the model is trained for n epochs with loss k only
(fresh SGD), and the **mean per-sample** CE of head k is measured (eval mode) on the train split and on the
held-out set V at the start and at the end: ``ΔG = L^V_start - L^V_end``, ``ΔO = O_end - O_start`` with
``O = L^V - L^T``. Online G-Blend re-estimates at the start of every super-epoch (a third of the run, as
BalanceBenchmark's 10 of 30 epochs: at epochs 0, 5 and 10 of 15), offline once at epoch 0.

Choices where the references are silent or differ (see :func:`blend_weights`):

* V is the run's validation split (``setup.data.val``, carved from train by ``data.val_fraction``), never
  the test split (BalanceBenchmark's estimator reads the test set). The same split selects the reported
  epoch (``eval.selection: best_val``), so the weights and the selection see the same held-out clips;
  neither sees the test split.
* The estimation copies train with SGD at the run's lr unless ``estimation_lr`` is set (the paper is silent).
* Losses are per-sample means over whole splits (BalanceBenchmark sums batch means, mixing split sizes), and
  "start" is measured before any estimation training (BB measures after one epoch).
* The unimodal "model" is the shared encoder + its separate head (BB zeroes the other input and uses the fused
  head; MultiBench uses separate heads, as here).
* ``|ΔO|`` is floored at ``delta_o_floor`` = 1e-4 (MultiBench clamps O at 1e-4), i.e. ``ΔO² ≥ 1e-8``; the
  sign of ΔO is irrelevant (it is squared). ΔG ≤ 0 (V loss did not improve) gets the floor weight
  ``weight_floor`` instead of BB/MultiBench's ``|ΔG|`` (which would reward a head whose V loss rose); if every
  ΔG ≤ 0 the weights are uniform.
* Before the first estimation (or for a model step taken outside the epoch hooks) the weights are uniform.
* The estimation copies train without DAGR (it is the method's own probe); DAGR's loss is added to the
  blended total (default backward).
* Offline mode estimates once, with probes of n = super-epoch epochs (``estimation_epochs`` sets n);
  BalanceBenchmark's offline probes train for all epochs of the run.
* Cost: each estimation trains (1 + #modalities) copies for n epochs; with n = super-epoch length (default)
  online G-Blend costs ≈ (2 + #modalities)× the forward/backward work of joint training.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.models.fusion import SeparateHeads
from benchmarks.core.strict import ConfigError

from .base import Method, ceil_fraction
from .registry import register

FUSED = "fused"


@dataclass(frozen=True)
class GBlendingParams:
    mode: Literal["online", "offline"] = "online"  # paper: both; BalanceBenchmark config: online
    # super-epoch = ceil(fraction · epochs) epochs: BalanceBenchmark's super_epoch 10 of its 30 epochs
    # (re-estimations at epochs 0, 10, 20), so 1/3 of the run; the paper says only "n epochs".
    super_epoch_fraction: float = 1 / 3
    estimation_epochs: int = 0  # 0 → = super-epoch length (paper: the n of ΔG_{N,n}; BB: super_epoch)
    # None → the run's lr (paper silent; BB re-creates the main optimizer, i.e. the run's settings)
    estimation_lr: float | None = None
    estimation_momentum: float = 0.9  # our choice, the SGD settings of OGM-GE/MMPareto code
    estimation_weight_decay: float = 1e-4  # our choice, as above
    delta_o_floor: float = 1e-4  # |ΔO| floor (MultiBench clamps O at 1e-4)
    weight_floor: float = 0.01  # weight of a head whose V loss did not improve (ΔG ≤ 0); our choice

    def __post_init__(self) -> None:
        if not 0.0 < self.super_epoch_fraction <= 1.0:
            raise ConfigError(f"super_epoch_fraction must be in (0, 1], got {self.super_epoch_fraction}")
        if self.estimation_lr is not None and self.estimation_lr <= 0:
            raise ConfigError(f"estimation_lr must be > 0, got {self.estimation_lr}")
        if self.estimation_epochs < 0:
            raise ConfigError(f"estimation_epochs must be >= 0, got {self.estimation_epochs}")
        if self.delta_o_floor <= 0:
            raise ConfigError(f"delta_o_floor must be > 0, got {self.delta_o_floor}")
        if not 0.0 <= self.weight_floor < 1.0:
            raise ConfigError(f"weight_floor must be in [0, 1), got {self.weight_floor}")


def blend_weights(train_start: dict[str, float], train_end: dict[str, float], val_start: dict[str, float],
                  val_end: dict[str, float], delta_o_floor: float = 1e-4,
                  weight_floor: float = 0.01) -> dict[str, float]:
    """G-Blend weights ``w_k ∝ ΔG_k / max(ΔO_k², delta_o_floor²)``, normalised to sum 1.

    ``ΔG = val_start - val_end``, ``ΔO = (val_end - train_end) - (val_start - train_start)``. Heads with
    ``ΔG ≤ 0`` get exactly ``weight_floor``; the others share ``1 - n_bad · weight_floor`` in proportion to
    their ratio. All ``ΔG ≤ 0`` → uniform weights.
    """
    keys = list(train_start)
    if not keys or any(set(d) != set(keys) for d in (train_end, val_start, val_end)):
        raise ValueError("blend_weights needs the same non-empty set of heads in all four loss dicts")
    raw: dict[str, float] = {}
    for k in keys:
        d_g = val_start[k] - val_end[k]
        d_o = (val_end[k] - train_end[k]) - (val_start[k] - train_start[k])
        if not (math.isfinite(d_g) and math.isfinite(d_o)):
            raise ValueError(f"non-finite loss for head {k!r}")
        raw[k] = d_g / max(d_o * d_o, delta_o_floor ** 2) if d_g > 0 else 0.0
    good = [k for k in keys if raw[k] > 0]
    if not good:
        return {k: 1.0 / len(keys) for k in keys}
    share = 1.0 - weight_floor * (len(keys) - len(good))
    total = sum(raw[k] for k in good)
    return {k: share * raw[k] / total if k in good else weight_floor for k in keys}


def head_logits(model, inputs: dict[str, Tensor], heads: tuple[str, ...]) -> dict[str, Tensor]:
    """Logits of the given heads: the fused one and/or modalities' separate heads. A lone unimodal head
    runs its own encoder only; several heads share one forward pass (the same logits, bit for bit)."""
    if len(heads) == 1 and heads[0] != FUSED and isinstance(model.unimodal_heads, SeparateHeads):
        m = heads[0]
        return {m: model.unimodal_heads.fc[m](model.encode(inputs, (m,))[m])}
    out = model(inputs)
    return {k: out.logits if k == FUSED else out.unimodal_logits[k] for k in heads}


@torch.no_grad()
def mean_losses(model, split, heads: tuple[str, ...], batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean per-sample CE of each of ``heads`` over a whole split, in evaluation mode, in one pass."""
    was_training = model.training
    model.eval()
    totals = {k: torch.zeros((), dtype=torch.float64, device=device) for k in heads}
    for batch in split.batches(batch_size):
        batch = batch.to(device)
        for k, logits in head_logits(model, batch.inputs, heads).items():
            totals[k] += F.cross_entropy(logits.float(), batch.labels, reduction="sum").double()
    model.train(was_training)
    return {k: total.item() / max(len(split), 1) for k, total in totals.items()}


@register
class GBlending(Method):
    name = "gblending"
    title = "G-Blending"
    Params = GBlendingParams
    unimodal_heads = "separate"
    dagr_rule = "added to the blended total loss (Σ_k w_k CE_k + DAGR); the weight-estimation copies train without it"

    def __init__(self, params, model, setup) -> None:
        super().__init__(params, model, setup)
        self.heads = (FUSED, *model.modalities)
        self.weights = {k: 1.0 / len(self.heads) for k in self.heads}  # until the first estimation
        self.super_epoch = max(1, ceil_fraction(params.super_epoch_fraction, setup.epochs))
        self.n_estimation = params.estimation_epochs or self.super_epoch
        self.estimation_lr = params.estimation_lr if params.estimation_lr is not None else setup.lr
        if self.estimation_lr is None:
            raise ConfigError("gblending: set estimation_lr, or give the method setup the run's lr")
        # The probes' batch order: a generator of its own, since the run's also shuffles the training
        # batches (drawing from it would change the run's data order against every other method's).
        self.generator = torch.Generator().manual_seed(setup.generator.initial_seed())

    # --- estimation ---------------------------------------------------------------------------
    def is_estimation_epoch(self, epoch: int) -> bool:
        if self.params.mode == "offline":
            return epoch == 0
        return epoch % self.super_epoch == 0

    def _probe(self, head: str, start: dict[str, dict[str, float]]) -> tuple[float, float, float, float]:
        """Train a copy with head ``head``'s loss only; (train_start, train_end, val_start, val_end).
        ``start`` holds the current model's losses per split and head (one pass serves every probe)."""
        s, p = self.setup, self.params
        train, val = s.data.train, s.data.val
        probe = copy.deepcopy(self.model)
        probe.train()
        opt = torch.optim.SGD(probe.parameters(), lr=self.estimation_lr, momentum=p.estimation_momentum,
                              weight_decay=p.estimation_weight_decay)
        for _ in range(self.n_estimation):
            probe.train()
            for batch in train.batches(s.batch_size, shuffle=True, generator=self.generator,
                                       drop_last=len(train) > s.batch_size):
                batch = batch.to(s.device)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(head_logits(probe, batch.inputs, (head,))[head], batch.labels).backward()
                opt.step()
        t1, v1 = (mean_losses(probe, x, (head,), s.batch_size, s.device)[head] for x in (train, val))
        return start["train"][head], t1, start["val"][head], v1

    def start_losses(self) -> dict[str, dict[str, float]]:
        s = self.setup
        return {name: mean_losses(self.model, split, self.heads, s.batch_size, s.device)
                for name, split in (("train", s.data.train), ("val", s.data.val))}

    def estimate(self) -> dict[str, float]:
        t0 = time.perf_counter()
        start = self.start_losses()
        probes = {k: self._probe(k, start) for k in self.heads}
        self.weights = blend_weights({k: v[0] for k, v in probes.items()}, {k: v[1] for k, v in probes.items()},
                                     {k: v[2] for k, v in probes.items()}, {k: v[3] for k, v in probes.items()},
                                     self.params.delta_o_floor, self.params.weight_floor)
        logs = {"gblend/estimate_s": time.perf_counter() - t0}
        for k, (ts, te, vs, ve) in probes.items():
            logs[f"gblend/dG_{k}"] = vs - ve
            logs[f"gblend/dO_{k}"] = (ve - te) - (vs - ts)
        return logs

    # --- hooks --------------------------------------------------------------------------------
    def on_epoch_start(self, epoch):
        super().on_epoch_start(epoch)
        logs = self.estimate() if self.is_estimation_epoch(epoch) else {}
        return {**{f"gblend/w_{k}": float(w) for k, w in self.weights.items()}, **logs}

    def losses(self, out, batch):
        terms = {"ce_fused": self.weights[FUSED] * F.cross_entropy(out.logits, batch.labels)}
        for m in self.model.modalities:
            terms[f"ce_{m}"] = self.weights[m] * F.cross_entropy(out.unimodal_logits[m], batch.labels)
        return terms

    def state_dict(self):
        return {"weights": dict(self.weights), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        weights = state.get("weights")
        if weights is None or set(weights) != set(self.heads) or set(state) != {"weights", "generator"}:
            raise ValueError(f"gblending state must hold weights for {self.heads} and the probes' generator, "
                             f"got keys {sorted(state)}")
        self.weights = {k: float(weights[k]) for k in self.heads}
        self.generator.set_state(state["generator"].cpu())  # a generator state is a CPU tensor

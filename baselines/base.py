"""The method contract: a method is a small class with hooks; the one trainer owns the loop.

Per training step the trainer calls, in order::

    out = model(batch.inputs)                       # ModelOutput
    losses = method.losses(out, batch)              # named terms; their sum is the objective
    reg = dagr(out.embeddings)                      # only when DAGR is on
    method.backward(losses, reg)                    # default: (Σ losses + reg).backward()
    logs = method.process_gradients(out, batch)     # between backward and step (OGM-GE)
    (gradients averaged across ranks under torchrun)
    logs |= method.clip_gradients()                 # on the averaged gradient (DGL)
    optimizer.step()

and ``on_epoch_start`` / ``on_epoch_end`` around each epoch (prototype passes, weight estimation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from benchmarks.data import Batch, DatasetSplits
from geomreg.pareto import pareto_combine
from benchmarks.models import ModelOutput, MultimodalModel
from benchmarks.strict import ConfigError


@dataclass(frozen=True)
class NoParams:
    """For methods without hyper-parameters."""


@dataclass
class MethodSetup:
    """What a method may need besides the model: the data, the schedule, the device."""

    data: DatasetSplits
    epochs: int
    batch_size: int
    device: torch.device
    generator: torch.Generator  # seeded; use it for any randomness the method draws
    lr: float | None = None  # the run's optimizer lr (G-Blending's estimation lr unless set)
    dagr_combine: Literal["sum", "pareto"] = "sum"  # how DAGR's gradient meets the task gradient
    dagr_pareto_gamma: float = 1.0


class Method:
    name: ClassVar[str]
    title: ClassVar[str]  # row name in the tables
    Params: ClassVar[type] = NoParams
    # Which unimodal logits the method needs: the fused head's weight split, separate heads, or either.
    unimodal_heads: ClassVar[Literal["split", "separate", "any"]] = "any"
    supports_dagr: ClassVar[bool] = True
    # True for methods written for an audio/visual pair (OGM-GE's ratio, PMR's switch).
    needs_two_modalities: ClassVar[bool] = False
    # False where the method builds encoder gradients itself and DAGR already joins one of its sides.
    supports_dagr_pareto: ClassVar[bool] = True
    # How DAGR's loss joins this method's objective (shown in the docs and the README table).
    dagr_rule: ClassVar[str] = "added to the total loss before backward"

    def __init__(self, params: Any, model: MultimodalModel, setup: MethodSetup) -> None:
        if self.needs_two_modalities and len(model.modalities) != 2:
            raise ConfigError(f"method {self.name!r} needs two modalities, got {model.modalities}")
        self.params = params
        self.model = model
        self.setup = setup
        self.epoch = 0

    def in_window(self, start: int, end_fraction: float) -> bool:
        """Whether this epoch is in ``start <= epoch <= floor(end_fraction · epochs)``: the originals'
        inclusive modulation windows (e.g. OGM-GE 0..50 of 100), scaled to the run's epochs."""
        return modulation_active(self.epoch, start, end_fraction, self.setup.epochs)

    @classmethod
    def resolve_unimodal_heads(cls, requested: str) -> str:
        if requested == "auto":
            return "split" if cls.unimodal_heads == "any" else cls.unimodal_heads
        if cls.unimodal_heads not in ("any", requested):
            raise ConfigError(f"method {cls.name!r} needs model.unimodal_heads={cls.unimodal_heads!r}, "
                              f"got {requested!r}")
        return requested

    @classmethod
    def modalities(cls, params: Any, available: tuple[str, ...]) -> tuple[str, ...]:
        """The modalities the model is built with (all of them, except for unimodal references)."""
        return available

    # --- hooks -------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> dict[str, float]:
        self.epoch = epoch
        return {}

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        return {}

    def losses(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def backward(self, losses: dict[str, Tensor], regularizer: Tensor | None) -> None:
        total = sum(losses.values())
        if regularizer is None:
            total.backward()
        elif self.setup.dagr_combine == "sum":
            (total + regularizer).backward()
        else:
            pareto_backward(self.model, total, regularizer, self.setup.dagr_pareto_gamma)

    def process_gradients(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        return {}

    def clip_gradients(self) -> dict[str, Tensor]:
        """After the gradients are averaged across ranks (under torchrun; else right after
        ``process_gradients``): norm clipping must see the whole batch's gradient (DGL)."""
        return {}

    def eval_unimodal_logits(self, out: ModelOutput) -> dict[str, Tensor]:
        """The unimodal logits that evaluation scores (the method's own protocol; default: the model's)."""
        return out.unimodal_logits

    # --- checkpointing of method state (prototypes, blending weights, ...) -------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"method {self.name!r} has no state to restore, got keys {sorted(state)}")


def modulation_active(epoch: int, start: int, end_fraction: float, epochs: int) -> bool:
    """Inclusive window ``start <= epoch <= floor(end_fraction · epochs)``."""
    return start <= epoch <= math.floor(end_fraction * epochs)


def pareto_backward(model: MultimodalModel, task: Tensor, regularizer: Tensor, gamma: float) -> None:
    """DAGR's "Pareto" combination: per encoder, the task gradient and DAGR's gradient are combined by
    MMPareto's rule (cosine test, two-task min-norm weights, per-tensor norm restoration, × gamma).
    Parameters outside the encoders (the heads) get the task gradient, which is all they receive anyway.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    g_task = list(torch.autograd.grad(task, params, retain_graph=True, allow_unused=True))
    g_reg = torch.autograd.grad(regularizer, params, allow_unused=True)
    position = {id(p): i for i, p in enumerate(params)}
    for m in model.modalities:
        idx = [position[id(p)] for p in model.encoder_parameters(m) if p.requires_grad]
        combined = pareto_combine([g_task[i] for i in idx], [g_reg[i] for i in idx], gamma).grads
        for i, g in zip(idx, combined):
            g_task[i] = g
    for p, g in zip(params, g_task):
        if g is not None:
            p.grad = g.detach() if p.grad is None else p.grad + g.detach()

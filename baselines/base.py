"""The method contract: a method is a small class with hooks; the one trainer owns the loop.

Per training step the trainer calls, in order::

    out = model(batch.inputs)                       # ModelOutput
    losses = method.losses(out, batch)              # named terms; their sum is the objective
    reg = dagr(out.embeddings)                      # only when DAGR is on
    method.backward(losses, reg)                    # default: (Σ losses + reg).backward()
    logs = method.process_gradients(out, batch)     # between backward and step (OGM-GE)
    optimizer.step()

and ``on_epoch_start`` / ``on_epoch_end`` around each epoch (prototype passes, weight estimation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from benchmarks.data import Batch, DatasetSplits
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


class Method:
    name: ClassVar[str]
    title: ClassVar[str]  # row name in the tables
    Params: ClassVar[type] = NoParams
    # Which unimodal logits the method needs: the fused head's weight split, separate heads, or either.
    unimodal_heads: ClassVar[Literal["split", "separate", "any"]] = "any"
    supports_dagr: ClassVar[bool] = True
    # How DAGR's loss joins this method's objective (shown in the docs and the README table).
    dagr_rule: ClassVar[str] = "added to the total loss before backward"

    def __init__(self, params: Any, model: MultimodalModel, setup: MethodSetup) -> None:
        self.params = params
        self.model = model
        self.setup = setup
        self.epoch = 0

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
        if regularizer is not None:
            total = total + regularizer
        total.backward()

    def process_gradients(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        return {}

    # --- checkpointing of method state (prototypes, blending weights, ...) -------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"method {self.name!r} has no state to restore, got keys {sorted(state)}")

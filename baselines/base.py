"""The method contract: a method is a small class with hooks; the one trainer owns the loop.

Per training step the trainer calls, in order::

    out = model(batch.inputs)                       # ModelOutput
    losses = method.losses(out, batch)              # named terms; their sum is the objective
    reg = dagr(out.embeddings)                      # only when DAGR is on
    geom = dagr.geometry_gradients(...)             # Pareto weighting: g_geom per encoder, kept aside
    method.backward(losses, reg_loss)               # default: (Σ losses [+ fixed-form DAGR]).backward()
    logs = method.process_gradients(out, batch)     # between backward and step (OGM-GE)
    (gradients averaged across ranks under torchrun)
    logs |= method.clip_gradients()                 # on the averaged gradient (DGL)
    geom.apply()                                    # g_geom added to the method's gradient, unmodulated
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
from benchmarks.models import ModelOutput, MultimodalModel
from benchmarks.core.strict import ConfigError


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
    # The run's, seeded by its seed: it also shuffles the training data each epoch, so a method draws its own
    # randomness from a generator of its own, seeded from this one's seed (docs/extending.md).
    generator: torch.Generator
    lr: float | None = None  # the run's optimizer lr (G-Blending's estimation lr unless set)


class Method:
    name: ClassVar[str]
    title: ClassVar[str]  # row name in the tables
    Params: ClassVar[type] = NoParams
    # Which unimodal logits the method needs: the fused head's weight split, separate heads, or either.
    unimodal_heads: ClassVar[Literal["split", "separate", "any"]] = "any"
    supports_dagr: ClassVar[bool] = True
    # True for methods written for an audio/visual pair (OGM-GE's ratio, PMR's switch).
    needs_two_modalities: ClassVar[bool] = False
    # How DAGR's fixed-form loss joins this method's objective (`python -m benchmarks list` and docs/methods.md
    # show it).
    # The Pareto form never enters the objective: its gradient is added after process_gradients.
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
        (total if regularizer is None else total + regularizer).backward()

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


# Fractions of a count are rounded as exact decimals would be: 0.7 · 90 is 62.999… in binary floating point.
ROUNDING_SLACK = 1e-9


def floor_fraction(fraction: float, count: int) -> int:
    """``floor(fraction · count)`` of the decimal numbers written (``floor_fraction(0.7, 90) == 63``)."""
    return math.floor(fraction * count + ROUNDING_SLACK)


def ceil_fraction(fraction: float, count: int) -> int:
    """``ceil(fraction · count)`` of the decimal numbers written (``ceil_fraction(0.1, 30) == 3``)."""
    return math.ceil(fraction * count - ROUNDING_SLACK)


def modulation_active(epoch: int, start: int, end_fraction: float, epochs: int) -> bool:
    """Inclusive window ``start <= epoch <= floor(end_fraction · epochs)``."""
    return start <= epoch <= floor_fraction(end_fraction, epochs)

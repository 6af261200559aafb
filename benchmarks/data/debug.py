"""A tiny random-tensor dataset for tests and ``make smoke`` (DomainBed's Debug datasets).

Each class has a fixed random pattern per modality; a sample is ``signal · pattern + noise``.
Different signal strengths per modality make one modality dominant, so imbalance is observable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .core import TensorSplit


@dataclass(frozen=True)
class DebugParams:
    # Samples per class are n / num_classes (train: before the validation split is carved).
    num_classes: int = 4
    n_train: int = 160
    n_test: int = 80
    size: int = 12  # spatial size of both modalities (unless overridden below)
    # Optional per-modality shapes, e.g. CREMA-D's (benchmarks.bench): audio 1×257×188, visual 224×224.
    audio_height: int | None = None  # None → size
    audio_width: int | None = None  # None → size
    visual_size: int | None = None  # None → size
    frames: int = 2  # visual frames per sample (folded into the batch by the encoder)
    # Class-pattern strength per modality against unit noise: audio dominates by default.
    audio_signal: float = 1.5
    visual_signal: float = 0.5
    seed: int = 0  # the patterns and the noise (fixed, whatever the training seed)


class DebugAV:
    name = "debug"
    Params = DebugParams
    channels = {"audio": 1, "visual": 3}

    @staticmethod
    def load(p: DebugParams) -> tuple[TensorSplit, TensorSplit, tuple[str, ...]]:
        gen = torch.Generator().manual_seed(p.seed)
        ah, aw = p.audio_height or p.size, p.audio_width or p.size
        vs = p.visual_size or p.size
        shapes = {"audio": (1, ah, aw), "visual": (p.frames, 3, vs, vs)}
        strength = {"audio": p.audio_signal, "visual": p.visual_signal}
        patterns = {m: torch.randn(p.num_classes, *s, generator=gen) for m, s in shapes.items()}

        def make(n: int) -> TensorSplit:
            labels = torch.arange(n) % p.num_classes
            inputs = {m: strength[m] * patterns[m][labels] + torch.randn(n, *shapes[m], generator=gen)
                      for m in shapes}
            return TensorSplit(inputs, labels)

        names = tuple(f"class{c}" for c in range(p.num_classes))
        return make(p.n_train), make(p.n_test), names

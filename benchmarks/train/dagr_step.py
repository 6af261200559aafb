"""What the training step needs to run DAGR's approximate α: whether a method's gradient may take
``g_geom`` in its own backward, and the per-epoch agreement of the approximate α with the exact α*."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import torch
from torch import Tensor

from baselines import Method

GRADIENT_HOOKS = ("backward", "process_gradients", "clip_gradients")


def plain_gradient(method: Method) -> bool:
    """Whether the method's gradient is the plain backward of its summed losses, untouched until
    ``optimizer.step`` (it overrides none of the gradient hooks). Then a term added to that loss
    reaches ``.grad`` exactly as if its gradient were added after the method's: ``g_geom`` can join
    the method's backward instead of taking a pass of its own (joint, G-Blending, PMR, D&R)."""
    return all(getattr(type(method), hook) is getattr(Method, hook) for hook in GRADIENT_HOOKS)


class AlphaAgreement:
    """The α each step used and the exact α* of the same step, per modality, over one epoch.

    ``summary()`` (once per epoch, one host sync) gives per modality the mean absolute difference and
    the Pearson correlation over the epoch's steps (NaN when either is constant), and starts afresh."""

    def __init__(self) -> None:
        self.steps: dict[str, list[Tensor]] = defaultdict(list)

    def add(self, used: Mapping[str, Tensor], exact: Mapping[str, Tensor]) -> None:
        for modality, alpha in used.items():
            self.steps[modality].append(torch.stack([alpha.double(), exact[modality].double()]))

    def summary(self) -> dict[str, float]:
        out = {}
        for modality, steps in self.steps.items():
            used, exact = torch.stack(steps).unbind(1)
            out[f"dagr/alpha_agreement/{modality}/mean_abs_diff"] = (used - exact).abs().mean().item()
            out[f"dagr/alpha_agreement/{modality}/correlation"] = correlation(used, exact)
        self.steps.clear()
        return out


def correlation(a: Tensor, b: Tensor) -> float:
    """Pearson's r of two float64 vectors; NaN when either has no spread (or fewer than two values)."""
    da, db = a - a.mean(), b - b.mean()
    denom = (da.square().sum() * db.square().sum()).sqrt()
    return (da @ db / denom).item() if denom > 0 else float("nan")

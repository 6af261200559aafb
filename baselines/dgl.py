"""DGL: disentangled gradient learning (Wei et al., ICCV 2025), DAGR's base method on CREMA-D/KS.

The unimodal losses ``α·Σ_m CE(o_m)`` train only the encoders and the fused loss only the fusion
head (``docs/methods.md``). The official code does this with two
backwards, zeroing the fusion grads in between and detaching the fused head's input; here one
backward gives the same gradients because

* ``o_m`` is computed from the embedding through the fusion head's weights **detached**
  (concat: ``o_m = φ_m W_mᵀ + b``; the official ``fc_out(cat(φ_a, 0))`` includes the full bias), and
* the fused logits are ``fusion({m: φ_m.detach()})``.

Gradient-norm clipping (official ``max_norm=40``) is applied in ``clip_gradients``, after the gradients are
averaged across ranks under torchrun: the norm of the whole batch's gradient, as in one process.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.models.fusion import ConcatFusion, SumFusion
from benchmarks.core.strict import ConfigError

from .base import Method
from .registry import register


@dataclass(frozen=True)
class DGLParams:
    # α, the unimodal-loss weight: DGL's CREMA-D scripts use 4 or 5 (KS: 2 or 3).
    alpha: float = 4.0
    # clip_grad_norm_ max_norm over all parameters: DGL's code uses 40. None disables it.
    grad_clip_norm: float | None = 40.0
    # Bias in the concat unimodal logits: "full" = official fc_out(cat(φ_m, 0)) = W_m φ_m + b;
    # "half" = the repo's weight split W_m φ_m + b/M. (Sum fusion always uses its own full bias.)
    unimodal_bias: Literal["full", "half"] = "full"


def dgl_unimodal_logits(fusion: torch.nn.Module, embeddings: Mapping[str, Tensor],
                        unimodal_bias: str = "full") -> dict[str, Tensor]:
    """Unimodal logits through the fusion head's weights, **detached** (no gradient reaches the head)."""
    if isinstance(fusion, ConcatFusion):
        weight, bias = fusion.fc.weight.detach(), fusion.fc.bias.detach()
        if unimodal_bias == "half":
            bias = bias / len(fusion.modalities)
        elif unimodal_bias != "full":
            raise ValueError(f"unknown unimodal_bias {unimodal_bias!r}")
        out, start = {}, 0
        for m in fusion.modalities:
            block = weight[:, start:start + fusion.dims[m]]
            out[m] = embeddings[m] @ block.t() + bias
            start += fusion.dims[m]
        return out
    if isinstance(fusion, SumFusion):
        return {m: F.linear(embeddings[m], fusion.fc[m].weight.detach(), fusion.fc[m].bias.detach())
                for m in fusion.modalities}
    raise TypeError(f"DGL supports concat and sum fusion, got {type(fusion).__name__}")


def dgl_losses(fusion: torch.nn.Module, embeddings: Mapping[str, Tensor], labels: Tensor, alpha: float,
               unimodal_bias: str = "full") -> dict[str, Tensor]:
    """``ce_unimodal = α Σ_m CE(o_m, y)`` (encoders only), ``ce_fused = CE(fusion(φ.detach()), y)`` (head only)."""
    uni = dgl_unimodal_logits(fusion, embeddings, unimodal_bias)
    ce_unimodal = alpha * sum(F.cross_entropy(o, labels) for o in uni.values())
    fused = fusion({m: e.detach() for m, e in embeddings.items()})
    return {"ce_unimodal": ce_unimodal, "ce_fused": F.cross_entropy(fused, labels)}


@register
class DGL(Method):
    name = "dgl"
    title = "DGL"
    Params = DGLParams
    unimodal_heads = "split"
    dagr_rule = ("added to the total loss before backward; it acts on the embeddings, so like DGL's unimodal "
                 "losses it trains only the encoders (the fused loss sees detached embeddings); gradients "
                 "are clipped to norm 40 afterwards")

    def __init__(self, params, model, setup):
        super().__init__(params, model, setup)
        if not isinstance(model.fusion, (ConcatFusion, SumFusion)):
            raise ConfigError(f"method 'dgl' supports concat and sum fusion, got {type(model.fusion).__name__}")

    def losses(self, out, batch):
        # out.logits were computed from non-detached embeddings; recompute both sides here.
        return dgl_losses(self.model.fusion, out.embeddings, batch.labels, self.params.alpha,
                          self.params.unimodal_bias)

    def eval_unimodal_logits(self, out):
        # DGL's code scores fc_out(cat(a, 0)): the unimodal logits it trains, with the bias it chose.
        return dgl_unimodal_logits(self.model.fusion, out.embeddings, self.params.unimodal_bias)

    def clip_gradients(self):
        if self.params.grad_clip_norm is None:
            return {}
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.params.grad_clip_norm)
        return {"dgl/grad_norm": norm}

"""MMPareto (Wei & Hu, ICML 2024): per-encoder Pareto combination of the multimodal and unimodal gradients.

One step, as ``code/MMPareto.py::train_epoch`` executes it (``docs/methods.md``):
losses ``L_mm = CE(fused)``, ``L_m = CE(separate head m)``; for each encoder ``θ^m`` the gradients
``g_mm = ∇_θm L_mm`` and ``g_u = ∇_θm L_m`` are combined by :func:`geomreg.pareto.pareto_combine`
(cos > 0 → ½/½, else MGDA min-norm weights; per tensor rescaled to at least the norm of the plain sum, times
γ = 1.5). Every non-encoder parameter (the heads) keeps the plain summed gradient of all losses.

Implementation notes (where the official code is silent or we differ in form, not in result):

* Parameters are grouped by module reference (``model.encoder_parameters(m)``), not by name matching.
* Two ``torch.autograd.grad`` calls instead of four ``backward``/``zero_grad`` rounds: one for ``L_mm``
  and one for ``Σ_m L_m (+ DAGR)``, both w.r.t. encoders + heads. Because encoder ``m`` only sees modality
  ``m`` and the heads are separate, ``∇_θm Σ_m' L_m' = ∇_θm L_m`` exactly; the head gradient is the sum of the
  two calls' head parts (= ∇ of the total). No second forward pass.
* DAGR: its loss joins the **unimodal** side, ``g_u^m = ∇_θm (L_m + R)``; the conflict test and the min-norm
  weights then see DAGR's pull on the embeddings as part of the unimodal objective.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from geomreg.pareto import pareto_combine

from .base import Method
from .registry import register


@dataclass(frozen=True)
class MMParetoParams:
    gamma: float = 1.5  # hard-coded `1.5` in official code/MMPareto.py (BalanceBenchmark: alpha 1.5)


def _accumulate(p: torch.nn.Parameter, g: Tensor | None) -> None:
    """Add ``g`` into ``p.grad`` (``.backward()`` semantics)."""
    if g is None:
        return
    g = g.detach()  # a fresh tensor from autograd.grad or the combination: no copy needed
    p.grad = g if p.grad is None else p.grad + g


def mmpareto_backward(model, losses: dict[str, Tensor], regularizer: Tensor | None, gamma: float,
                      fused_key: str = "ce_fused") -> dict[str, Tensor]:
    """Write MMPareto's gradients into ``p.grad`` of every parameter of ``model``; returns log tensors.

    ``losses`` must hold ``fused_key`` and ``ce_<m>`` for every modality of the model.
    """
    modalities = tuple(model.modalities)
    enc = {m: [p for p in model.encoder_parameters(m) if p.requires_grad] for m in modalities}
    enc_ids = {id(p) for ps in enc.values() for p in ps}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in enc_ids]  # the heads
    enc_flat = [p for m in modalities for p in enc[m]]
    params = enc_flat + others

    l_mm = losses[fused_key]
    l_uni = sum(losses[f"ce_{m}"] for m in modalities)
    if regularizer is not None:
        l_uni = l_uni + regularizer
    g_mm = torch.autograd.grad(l_mm, params, retain_graph=True, allow_unused=True)
    g_u = torch.autograd.grad(l_uni, params, allow_unused=True)

    n_enc = len(enc_flat)
    # heads: plain summed gradient of all losses
    for p, a, b in zip(others, g_mm[n_enc:], g_u[n_enc:]):
        if a is None and b is None:
            continue
        _accumulate(p, a if b is None else (b if a is None else a + b))

    logs: dict[str, Tensor] = {}
    start = 0
    for m in modalities:
        n = len(enc[m])
        res = pareto_combine(list(g_mm[start:start + n]), list(g_u[start:start + n]), gamma)
        start += n
        for p, g in zip(enc[m], res.grads):
            _accumulate(p, g)
        logs[f"mmpareto/cos_{m}"] = res.cosine.detach()
        logs[f"mmpareto/w_mm_{m}"] = res.weights[0].detach()  # weight of the multimodal gradient
    return logs


@register
class MMPareto(Method):
    name = "mmpareto"
    title = "MMPareto"
    Params = MMParetoParams
    unimodal_heads = "separate"
    dagr_rule = ("added to each unimodal loss: per encoder g_u = grad(CE_m + DAGR) enters the Pareto combination "
                 "with g_mm = grad(CE_fused); heads get the plain summed gradient")

    def __init__(self, params, model, setup) -> None:
        super().__init__(params, model, setup)
        self._logs: dict[str, Tensor] = {}

    def losses(self, out, batch):
        terms = {"ce_fused": F.cross_entropy(out.logits, batch.labels)}
        for m in self.model.modalities:
            terms[f"ce_{m}"] = F.cross_entropy(out.unimodal_logits[m], batch.labels)
        return terms

    def backward(self, losses, regularizer):
        self._logs = mmpareto_backward(self.model, losses, regularizer, self.params.gamma)

    def process_gradients(self, out, batch):
        logs, self._logs = self._logs, {}
        return logs

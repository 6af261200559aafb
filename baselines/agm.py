"""AGM: adaptive gradient modulation (Li et al., ICCV 2023), as its official code executes it.

Per training step (two modalities; the first plays the official code's audio role):

1. Besides the trainer's full pass ``f(a,v)`` (train mode), the fused logits with one modality's input
   zeroed, ``f(a,0)`` and ``f(0,v)``, are computed with the model in **eval** mode (BatchNorm on its
   running statistics) and with autograd on, as the official ``GradMod.forward`` does.
2. Shapley-style unimodal logits ``m_a = ½[f(a,v) − f(0,v) + f(a,0)]``, ``m_v = ½[f(a,v) − f(a,0) + f(0,v)]``;
   the trained output is ``m_a + m_v`` (equal to ``f(a,v)`` in value).
3. Scores ``s_m`` = batch cross-entropy of ``m_m`` (probabilities clamped at 1e-8); ratios
   ``r_a = exp(s_v − s_a)``, ``r*_a = exp(T_v − T_a)`` from the running averages ``T`` before this batch;
   coefficients ``c_m = exp(α·min(r*_m − r_m, 10))``; then ``T ← T·(t−1)/t + s/t`` over all iterations.
4. ``c_m`` scales the gradient that flows back through ``m_m`` (the official backward hooks on identity
   modules; here :func:`scale_gradient`, which gives the same gradients and the exact forward value).
5. After backward (and, under torchrun, after the gradients are averaged across ranks): if any element of
   the fusion weight's gradient lies outside ±1, every gradient is clipped to total norm 1.

Besides the epoch means of ``c_m`` and ``s_m``, each epoch records the per-step extremes of the applied
coefficients and of ``|c_a − c_v|`` (``on_epoch_end``): the share of the upstream gradient that the
eval-mode passes receive, ½(c_a − c_v), is what separates AGM from joint training.

Passes on an all-zero input are run on one zero sample and broadcast over the batch: in eval mode
BatchNorm acts per sample, so values and gradients equal those of a batch of zero inputs. The official
code's fourth pass ``f(0,0)`` is never used and is not computed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

from .base import Method
from .registry import register


@dataclass(frozen=True)
class AGMParams:
    # α: 1.5 for CREMA-D from the authors (lihongcs/AGM issues #3, #5, #10; the code's default is 1.0).
    alpha: float = 1.5
    # Modulated epochs start..floor(end_fraction · epochs), inclusive: the authors' CREMA-D answer is
    # "continuous modulation", window [0, 1500] of 1500 epochs (issues #3, #5).
    modulation_start: int = 0
    modulation_end_fraction: float = 1.0
    # Cap on r* − r inside the exponential: min(·, 10) in the official CREMA-D code (7 in UR-Funny's);
    # None = no cap, as the official AV-MNIST and AVE code.
    ratio_cap: float | None = 10.0
    # Official behaviour: the scale of the backward hooks is only updated inside the window, so the last
    # in-window coefficients stay in effect after it. False (default, the fix): coefficients 1 outside.
    keep_last_coefficients: bool = False
    # Conditional clipping of the official code: if any |grad| of the fusion weight exceeds this value,
    # clip_grad_norm_(all parameters, max_norm=this value). Official: 1.0 for both; None disables it.
    grad_clip: float | None = 1.0


# --- pure functions --------------------------------------------------------------------------------
def shapley_logits(full: Tensor, only: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Two-modality Shapley logits from ``full = f(a,v)`` and ``only[m]`` = f with only m present:
    ``m_x = ½[full − only[other] + only[x]]`` (official ``Modality_Audio`` / ``Modality_Visual``)."""
    if len(only) != 2:
        raise ValueError(f"AGM's Shapley logits need exactly two modalities, got {sorted(only)}")
    first, second = only
    return {first: 0.5 * (full - only[second] + only[first]),
            second: 0.5 * (full - only[first] + only[second])}


def agm_scores(shapley: Mapping[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    """``s_m = mean_i −log max(softmax(m_m)_i[y_i], 1e-8)`` (detached, float64 like the official floats)."""
    idx = labels.view(-1, 1)
    return {m: -F.softmax(o.detach().float(), dim=1).gather(1, idx).double().clamp_min(1e-8).log().mean()
            for m, o in shapley.items()}


def agm_coefficients(scores: Mapping[str, Tensor], running: Mapping[str, Tensor], alpha: float,
                     cap: float | None = 10.0) -> dict[str, Tensor]:
    """``c_m = exp(α·min(r*_m − r_m, cap))`` with ``r_a = exp(s_v − s_a)`` and ``r*_a = exp(T_v − T_a)``.

    A modality whose current loss is better than its long-run average (relative to the other) gets
    ``c < 1``, one that is worse gets ``c > 1`` (the official direction)."""
    first, second = scores
    other = {first: second, second: first}
    coef = {}
    for m in (first, second):
        ratio = torch.exp(scores[other[m]] - scores[m])
        optimal = torch.exp(running[other[m]] - running[m])
        gap = optimal - ratio if cap is None else (optimal - ratio).clamp(max=cap)
        coef[m] = torch.exp(alpha * gap)
    return coef


def running_average(previous: Tensor, value: Tensor, iteration: int) -> Tensor:
    """Cumulative mean over iterations 1..t: ``T·(t−1)/t + s/t``."""
    return previous * (iteration - 1) / iteration + value / iteration


def scale_gradient(x: Tensor, scale: Tensor) -> Tensor:
    """``x`` in value (exactly: ``x − x`` is 0), with the gradient reaching ``x`` multiplied by ``scale``."""
    frozen = x.detach()
    return frozen + scale.to(x.dtype) * (x - frozen)


# --- the method ------------------------------------------------------------------------------------
@register
class AGM(Method):
    name = "agm"
    title = "AGM"
    Params = AGMParams
    unimodal_heads = "split"
    needs_two_modalities = True
    dagr_rule = ("added to the total loss before backward; it acts on the embeddings of the full (train-mode) "
                 "pass, so its gradient is not scaled by AGM's coefficients, which scale only the fused "
                 "cross-entropy's gradient; the conditional clipping afterwards covers both")

    def __init__(self, params, model, setup):
        super().__init__(params, model, setup)
        self.iteration = 0  # t, over all epochs
        zero = torch.zeros((), dtype=torch.float64, device=setup.device)
        self.running = {m: zero.clone() for m in model.modalities}  # T, starts at 0 as in the official code
        self.last_coefficients: dict[str, Tensor] | None = None
        self.zero_inputs: dict[str, Tensor] | None = None  # one all-zero sample per modality
        self._logs: dict[str, Tensor] = {}
        self._extremes: dict[str, Tensor] = {}  # this epoch's per-step min/max, kept on the device

    def on_epoch_start(self, epoch):
        self._extremes = {}
        return super().on_epoch_start(epoch)

    def on_epoch_end(self, epoch):
        return {k: v.item() for k, v in self._extremes.items()}

    def track_extremes(self, applied: dict[str, Tensor]) -> None:
        first, second = applied
        values = {**{f"agm/c_{m}": c for m, c in applied.items()}, "agm/gap": (applied[first] - applied[second]).abs()}
        for key, value in values.items():
            low, high = f"{key}_min", f"{key}_max"
            self._extremes[low] = torch.minimum(self._extremes.get(low, value), value)
            self._extremes[high] = torch.maximum(self._extremes.get(high, value), value)

    def active(self) -> bool:
        return self.in_window(self.params.modulation_start, self.params.modulation_end_fraction)

    def zero_embeddings(self, batch_size: int) -> dict[str, Tensor]:
        """Each encoder's output on an all-zero input, broadcast to the batch (call in eval mode)."""
        if self.zero_inputs is None:
            raise RuntimeError("AGM's zero-input passes take their input shapes from a training batch; "
                               "run a training step first")
        return {m: z.expand(batch_size, -1) for m, z in self.model.encode(self.zero_inputs).items()}

    def padded_logits(self, embeddings: Mapping[str, Tensor], zero: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Fused logits with only modality m present: ``only[m] = fusion(φ_m, zeros' embeddings)``."""
        mods = self.model.modalities
        return {m: self.model.fusion({k: embeddings[k] if k == m else zero[k] for k in mods}) for m in mods}

    def eval_mode_passes(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``only[m]`` for a training batch, with the whole model in eval mode (the official mode)."""
        was_training = self.model.training
        self.model.eval()
        try:
            present = self.model.encode(inputs)  # as the full pass embeds (the unit-sphere control included)
            zero = self.zero_embeddings(len(next(iter(inputs.values()))))
        finally:
            self.model.train(was_training)
        return self.padded_logits(present, zero)

    def applied_coefficients(self, coef: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.active():
            self.last_coefficients = coef
            return coef
        if self.params.keep_last_coefficients and self.last_coefficients is not None:
            return self.last_coefficients
        return {m: torch.ones_like(c) for m, c in coef.items()}

    def losses(self, out, batch):
        if self.zero_inputs is None:
            self.zero_inputs = {m: torch.zeros_like(x[:1]) for m, x in batch.inputs.items()}
        shapley = shapley_logits(out.logits.float(),
                                 {m: o.float() for m, o in self.eval_mode_passes(batch.inputs).items()})
        scores = agm_scores(shapley, batch.labels)
        self.iteration += 1
        coef = agm_coefficients(scores, self.running, self.params.alpha, self.params.ratio_cap)
        self.running = {m: running_average(self.running[m], scores[m], self.iteration) for m in scores}
        applied = self.applied_coefficients(coef)
        self.track_extremes(applied)
        fused = sum(scale_gradient(shapley[m], applied[m]) for m in shapley)
        self._logs = {**{f"agm/c_{m}": applied[m] for m in applied}, **{f"agm/score_{m}": scores[m] for m in scores}}
        return {"ce_fused": F.cross_entropy(fused, batch.labels)}

    def process_gradients(self, out, batch):
        logs, self._logs = self._logs, {}
        return logs

    def clip_gradients(self):
        """On the whole batch's gradient (after the all-reduce under torchrun), so every rank decides alike."""
        if self.params.grad_clip is None:
            return {}
        return {"agm/clipped": self.clip_if_head_gradient_large(self.params.grad_clip)}

    @torch.no_grad()
    def clip_if_head_gradient_large(self, limit: float) -> Tensor:
        """The official conditional clipping, without a host sync: scaling by the clip coefficient when
        triggered, by exactly 1 otherwise (a zero norm makes ``clip_grads_with_norm_``'s coefficient 1)."""
        head = [p.grad for p in self.model.fusion.parameters() if p.dim() == 2 and p.grad is not None]
        params = [p for p in self.model.parameters() if p.grad is not None]
        triggered = torch.stack([g.abs().amax() for g in head]).amax() > limit
        norm = get_total_norm([p.grad for p in params])
        clip_grads_with_norm_(params, limit, torch.where(triggered, norm, torch.zeros_like(norm)))
        return triggered.float()

    def eval_unimodal_logits(self, out):
        # The official test scores the Shapley logits, every pass in eval mode.
        zero = self.zero_embeddings(len(out.logits))
        return shapley_logits(out.logits, self.padded_logits(out.embeddings, zero))

    # --- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        last = self.last_coefficients
        return {"iteration": self.iteration,
                "running": {m: t.detach().cpu() for m, t in self.running.items()},
                "last_coefficients": None if last is None else {m: c.detach().cpu() for m, c in last.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"iteration", "running", "last_coefficients"}
        if set(state) != expected:
            raise ValueError(f"method 'agm': expected state keys {sorted(expected)}, got {sorted(state)}")
        device = self.setup.device
        self.iteration = state["iteration"]
        self.running = {m: t.to(device) for m, t in state["running"].items()}
        last = state["last_coefficients"]
        self.last_coefficients = None if last is None else {m: c.to(device) for m, c in last.items()}

"""PMR: prototypical modal rebalance (Fan et al., CVPR 2023).

At the start of every epoch class prototypes (class means of each modality's embedding) are
estimated on ~10% of the shuffled training batches; prototype logits are negative Euclidean
distances. The weaker modality (lower summed prototype softmax score on the batch) gets an extra
prototypical cross-entropy (PCE). See ``docs/methods.md``.

The first modality plays the audio role: ρ = s_first / s_second (official ``ratio_a``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


from .base import Method, floor_fraction
from .registry import register


@dataclass(frozen=True)
class PMRParams:
    # α: official bash.sh for CREMA-D (concat/sum/gated) uses --alpha 2.0 (argparse default 1.0).
    alpha: float = 2.0
    # Prototype EMA μ: bash.sh uses --momentum_coef 0.0 (argparse default 0.2).
    momentum: float = 0.0
    # Prototypes from the first max(1, floor(fraction · n_batches)) shuffled train batches: official
    # `sample_count >= len(loader) // 10` after each batch (n_batches counts the last partial batch).
    prototype_fraction: float = 0.1
    # Modulated epochs start..floor(end_fraction · epochs), inclusive: bash.sh --modulation_starts 0
    # --modulation_ends 70 of 100 epochs.
    modulation_start: int = 0
    modulation_end_fraction: float = 0.7
    # "switch": official code, α·PCE on the weaker modality (ρ<1 → first, ρ>1 → second, equal → none).
    # "continuous": paper Eq. 11 (third-party reading), α·clip(1/ρ_m - 1, 0, 1) for each modality m (0 for the
    # dominant).
    coefficient: Literal["switch", "continuous"] = "switch"
    # PER weight μ_PER (paper Eq. 13 only, not in the official code; BB's old config: mu 0.01): adds
    # -μ_PER · clip(ρ_m - 1, 0, 1) · H(p_m) for the first ``per_epochs`` epochs. 0 disables it.
    per_weight: float = 0.0
    # PER epochs: BB's old config norm_epoch 10.
    per_epochs: int = 10


# --- pure functions --------------------------------------------------------------------------------
def class_sums(embeddings: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class sums (K×D) and counts (K) of a batch, vectorised with ``index_add_``."""
    emb = embeddings.float()
    sums = emb.new_zeros(num_classes, emb.shape[1]).index_add_(0, labels, emb)
    counts = emb.new_zeros(num_classes).index_add_(0, labels, emb.new_ones(len(labels)))
    return sums, counts


def update_prototypes(sums: Tensor, counts: Tensor, previous: Tensor | None, momentum: float) -> Tensor:
    """Class means; an empty class keeps its previous prototype (zeros if none); EMA with ``previous``.

    ``c ← (1-μ)·ĉ + μ·c_old`` when ``previous`` is given (after the first epoch), else ``ĉ``.
    """
    prev = previous.to(sums) if previous is not None else torch.zeros_like(sums)
    means = sums / counts.clamp_min(1).unsqueeze(1)
    means = torch.where((counts > 0).unsqueeze(1), means, prev)
    if previous is None:
        return means
    return (1 - momentum) * means + momentum * prev


def prototype_batches(n_batches: int, fraction: float) -> int:
    """Batches of the prototype pass: the official loop stops once ``count >= len(loader) // 10``, checked
    after each batch, so ``max(1, floor(fraction · n_batches))``."""
    return max(1, floor_fraction(fraction, n_batches))


def blends_with_previous(epoch: int) -> bool:
    """Whether the prototypes of epoch ``epoch`` are blended with the previous ones. The official code
    computes them before training (epoch 0) and after training epoch e with ``epoch=e``, blending only for
    e > 0; here they are computed at the start of epoch e + 1, so the blend starts at epoch 2."""
    return epoch >= 2


def prototype_logits(embeddings: Tensor, prototypes: Tensor) -> Tensor:
    """ℓ_ik = -‖φ_i - c_k‖₂ (no temperature, as the official code)."""
    return -torch.cdist(embeddings, prototypes.to(embeddings.dtype), compute_mode="donot_use_mm_for_euclid_dist")


def prototype_scores(proto_logits: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    """s_m = Σ_i softmax(ℓ_m)_i[y_i] (detached)."""
    idx = labels.view(-1, 1)
    return {m: F.softmax(l.detach().float(), dim=1).gather(1, idx).sum() for m, l in proto_logits.items()}


def pmr_coefficients(scores: dict[str, Tensor], alpha: float, form: str = "switch") -> dict[str, Tensor]:
    """PCE weights ``{first: β, second: λ, "ratio": ρ = s_first/s_second}``.

    switch (official): ρ>1 → (0, α); ρ<1 → (α, 0); ρ == 1 → (0, 0).
    continuous (paper): weight_m = α·clip(1/ρ_m - 1, 0, 1) with ρ_m = s_m / s_other (0 for the dominant one).
    """
    if len(scores) != 2:
        raise ValueError(f"PMR needs exactly two modalities, got {sorted(scores)}")
    first, second = scores
    rho = scores[first] / scores[second].clamp_min(1e-12)
    rho_second = scores[second] / scores[first].clamp_min(1e-12)
    zero = torch.zeros_like(rho)
    if form == "switch":
        w_first = torch.where(rho < 1, zero + alpha, zero)
        w_second = torch.where(rho > 1, zero + alpha, zero)
    elif form == "continuous":
        w_first = alpha * (1 / rho.clamp_min(1e-12) - 1).clamp(0, 1)
        w_second = alpha * (1 / rho_second.clamp_min(1e-12) - 1).clamp(0, 1)
    else:
        raise ValueError(f"unknown PMR coefficient {form!r}")
    return {first: w_first, second: w_second, "ratio": rho}


def prototype_entropy(proto_logits: Tensor) -> Tensor:
    """Batch mean of H(softmax(ℓ)) (used by PER)."""
    logp = F.log_softmax(proto_logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


# --- the method ------------------------------------------------------------------------------------
@register
class PMR(Method):
    name = "pmr"
    title = "PMR"
    Params = PMRParams
    unimodal_heads = "split"
    dagr_rule = ("added to the total loss before backward; PCE and DAGR both act on the embeddings, and the "
                 "prototypes are estimated from the (DAGR-shaped) embeddings at each epoch start")

    needs_two_modalities = True

    def __init__(self, params, model, setup):
        super().__init__(params, model, setup)
        self.num_classes = setup.data.num_classes
        self.prototypes: dict[str, Tensor] | None = None
        # The prototype pass's batch order: a generator of its own, since the run's also shuffles the training
        # data, and drawing from it would change every later epoch's batches against the other methods'.
        self.generator = torch.Generator().manual_seed(setup.generator.initial_seed())

    def active(self) -> bool:
        return self.in_window(self.params.modulation_start, self.params.modulation_end_fraction)

    @torch.no_grad()
    def compute_prototypes(self, epoch: int) -> dict[str, Tensor]:
        split, bs = self.setup.data.train, self.setup.batch_size
        n_batches = prototype_batches(math.ceil(len(split) / bs), self.params.prototype_fraction)
        was_training = self.model.training
        self.model.eval()
        try:
            sums = counts = None
            batches = split.batches(bs, shuffle=True, generator=self.generator)
            for _, batch in zip(range(n_batches), batches):
                batch = batch.to(self.setup.device)
                emb = self.model.encode(batch.inputs)
                part = {m: class_sums(e, batch.labels, self.num_classes) for m, e in emb.items()}
                if sums is None:
                    sums = {m: s for m, (s, _) in part.items()}
                    counts = {m: c for m, (_, c) in part.items()}
                else:
                    for m, (s, c) in part.items():
                        sums[m] += s
                        counts[m] += c
        finally:
            self.model.train(was_training)
        previous = self.prototypes if (self.prototypes is not None and blends_with_previous(epoch)) else None
        return {m: update_prototypes(sums[m], counts[m], previous[m] if previous else None, self.params.momentum)
                for m in sums}

    def on_epoch_start(self, epoch):
        super().on_epoch_start(epoch)
        # Official: prototypes before training and after every epoch (see blends_with_previous).
        self.prototypes = self.compute_prototypes(epoch)
        return {}

    def losses(self, out, batch):
        losses = {"ce_fused": F.cross_entropy(out.logits, batch.labels)}
        p = self.params
        use_per = p.per_weight > 0 and self.epoch < p.per_epochs
        if self.prototypes is None or not (self.active() or use_per):
            return losses
        first, second = self.model.modalities
        logits = {m: prototype_logits(out.embeddings[m], self.prototypes[m]) for m in (first, second)}
        scores = prototype_scores(logits, batch.labels)
        if self.active():
            coef = pmr_coefficients(scores, p.alpha, p.coefficient)
            for m in (first, second):
                losses[f"pce_{m}"] = coef[m] * F.cross_entropy(logits[m], batch.labels)
        if use_per:
            rho = {first: scores[first] / scores[second].clamp_min(1e-12),
                   second: scores[second] / scores[first].clamp_min(1e-12)}
            losses["per"] = sum(-p.per_weight * (rho[m] - 1).clamp(0, 1) * prototype_entropy(logits[m])
                                for m in (first, second))
        return losses

    def state_dict(self):
        state = {"generator": self.generator.get_state()}
        if self.prototypes is not None:
            state["prototypes"] = {m: c.detach().cpu() for m, c in self.prototypes.items()}
        return state

    def load_state_dict(self, state):
        unknown = set(state) - {"prototypes", "generator"}
        if unknown:
            raise ValueError(f"method 'pmr': unexpected state keys {sorted(unknown)}")
        if "generator" in state:
            self.generator.set_state(state["generator"].cpu())  # a generator state is a CPU tensor
        if "prototypes" in state:
            self.prototypes = {m: c.to(self.setup.device) for m, c in state["prototypes"].items()}

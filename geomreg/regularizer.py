"""DAGR as an ``nn.Module``: the paper's losses (Eqs. 3-6) and its Pareto-balanced weighting (Algorithm 1)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from . import functional as GF
from .pareto import balance_geometry

__all__ = ["DAGR", "GeometryGradients", "Regularizer", "TERMS", "WEIGHTINGS"]

WEIGHTINGS: tuple[str, ...] = ("pareto", "fixed")
# Which geometric terms are on: both (DAGR), or one of them (the paper's ablation rows 2 and 3).
TERMS: tuple[str, ...] = ("both", "disperse", "anchor")


def _check(name: str, value: float, *, strict: bool) -> float:
    """Validate a numeric hyperparameter; the error names the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value > 0 if strict else value >= 0)
    if not ok:
        raise ValueError(f"{name} must be finite and {'> 0' if strict else '>= 0'}, got {value}")
    return value


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


class Regularizer(Protocol):
    """What a training loop needs of a regularizer (DAGR, or an objective control of ``geomreg.controls``).

    ``regularizer(embeddings)`` returns scalar terms, logged under ``log_prefix``. When
    ``adds_own_gradient`` is false, its ``"loss"`` joins the task objective (one backward for both);
    when true, the loop calls ``geometry_gradients(terms, embeddings, params)`` before the task backward
    and applies the returned gradient after the host method has produced and processed its own.
    """

    log_prefix: str
    adds_own_gradient: bool

    def __call__(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]: ...


@dataclass
class GeometryGradients:
    """DAGR's gradient ``g_geom`` for each encoder's parameters, computed before the task backward.

    ``apply()`` adds it to ``.grad`` (after the host method has produced and processed its own task
    gradient), so the task gradient itself is never changed: Algorithm 1's ``g_task + g_geom``.
    ``alphas`` holds α* per modality (the anchoring share; 1 for anchoring only, 0 for dispersion only).
    """

    params: dict[str, list[Tensor]]
    grads: dict[str, list[Tensor | None]]
    alphas: dict[str, Tensor]

    def tensors(self) -> list[Tensor]:
        """Every gradient tensor held (e.g. to average them across processes before :meth:`apply`)."""
        return [g for grads in self.grads.values() for g in grads if g is not None]

    def apply(self) -> None:
        for name, params in self.params.items():
            for p, g in zip(params, self.grads[name]):
                if g is not None:
                    p.grad = g.detach().clone() if p.grad is None else p.grad.add_(g)


class DAGR(nn.Module):
    """Dispersive and Anchoring Geometric Regularizer (Xia et al., arXiv 2601.21670).

    On L2-normalized per-modality embeddings ``z̃^m`` of a batch (``docs/dagr.md``)::

        L_intra = mean_m L_disp^m,  L_disp^m = log mean_{i≠j} exp(-t ||z̃_i^m - z̃_j^m||²)      (Eqs. 3-4)
        L_inter = mean_i mean_{m≠n} (||z̃_i^m - z̃_i^n|| - τ)₊²                               (Eq. 5)

    Two weightings:

    * ``"pareto"`` (the paper's default, Algorithm 1): per encoder ``m``, the gradients
      ``g_disp = ∇θm L_disp^m`` and ``g_inter = ∇θm L_inter`` are balanced by the two-objective min-norm
      point ``α*`` and ``g_geom = β (α* g_inter + (1 - α*) g_disp)`` is added to whatever gradient the
      host method produced (:meth:`geometry_gradients`).
    * ``"fixed"`` (Eq. 6): ``loss = λ_intra L_intra + λ_inter L_inter`` joins the task objective.

    Args:
        t: dispersion temperature (not published; 4.0 was chosen on AV-Digits' validation split,
            ``docs/dagr.md``).
        tau: admissible radius of the anchoring band (paper's best: 0.25, on the distance scale [0, 2]).
        anchor_form: ``"distance"`` (Eq. 5) or ``"squared_distance"`` (the earlier reconstruction).
        weighting: ``"pareto"`` or ``"fixed"``.
        beta: total geometric strength of the Pareto weighting (paper's best: 0.2).
        lambda_disperse, lambda_anchor: weights of the fixed form (paper's best direct form on CREMA-D:
            0.14 and 0.05).
        terms: ``"both"``, or ``"disperse"``/``"anchor"`` alone (then the Pareto form is ``β g_term``
            and the fixed form ``λ_term L_term``).
        dispersion_form: ``"uniformity"`` (Eq. 4) or ``"infonce_l2"`` (Wang & He's dispersive loss).

    ``forward(embeddings)`` takes ``{name: (B, D) tensor}`` with >= 2 modalities and returns scalar
    tensors: ``loss`` (the fixed-form objective), ``disperse`` (``L_intra``), ``anchor`` (``L_inter``),
    ``disperse/<name>`` and ``anchor/<a>-<b>``. A term that is off is still computed, without a graph,
    so logs stay comparable across ablations.
    """

    log_prefix: ClassVar[str] = "dagr"

    def __init__(
        self,
        t: float = 4.0,
        tau: float = 0.25,
        anchor_form: str = "distance",
        weighting: str = "pareto",
        beta: float = 0.2,
        lambda_disperse: float = 0.14,
        lambda_anchor: float = 0.05,
        terms: str = "both",
        dispersion_form: str = "uniformity",
    ) -> None:
        super().__init__()
        self.t = _check("t", t, strict=True)
        self.tau = _check("tau", tau, strict=False)
        self.beta = _check("beta", beta, strict=False)
        self.lambda_disperse = _check("lambda_disperse", lambda_disperse, strict=False)
        self.lambda_anchor = _check("lambda_anchor", lambda_anchor, strict=False)
        self.anchor_form = _check_choice("anchor_form", anchor_form, GF.ANCHOR_FORMS)
        self.weighting = _check_choice("weighting", weighting, WEIGHTINGS)
        self.terms = _check_choice("terms", terms, TERMS)
        self.dispersion_form = _check_choice("dispersion_form", dispersion_form, GF.DISPERSION_FORMS)

    @property
    def adds_own_gradient(self) -> bool:
        """The Pareto form adds ``g_geom`` after the method's gradient; the fixed form joins the loss."""
        return self.weighting == "pareto"

    @property
    def disperses(self) -> bool:
        return self.terms in ("both", "disperse")

    @property
    def anchors(self) -> bool:
        return self.terms in ("both", "anchor")

    def forward(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        names, zs = self._unpack(embeddings)
        grad_on = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad_on and self.disperses):
            d_terms = [GF.dispersion(z, t=self.t, form=self.dispersion_form) for z in zs]
        # Eq. 5 averages over ordered pairs m ≠ n; the distance is symmetric, so unordered pairs give
        # the same mean.
        pairs = list(itertools.combinations(range(len(zs)), 2))
        with torch.set_grad_enabled(grad_on and self.anchors):
            a_terms = [GF.anchoring(zs[i], zs[j], tau=self.tau, form=self.anchor_form) for i, j in pairs]
        disperse, anchor = torch.stack(d_terms).mean(), torch.stack(a_terms).mean()

        loss = sum((z.sum() * 0.0 for z in zs[1:]), zs[0].sum() * 0.0)  # exact, graph-connected zero
        if self.disperses:
            loss = loss + self.lambda_disperse * disperse
        if self.anchors:
            loss = loss + self.lambda_anchor * anchor
        out = {"loss": loss, "disperse": disperse, "anchor": anchor}
        out.update({f"disperse/{n}": v for n, v in zip(names, d_terms)})
        out.update({f"anchor/{names[i]}-{names[j]}": v for (i, j), v in zip(pairs, a_terms)})
        return out

    def geometry_gradients(
        self,
        terms: Mapping[str, Tensor],
        embeddings: Mapping[str, Tensor],
        params: Mapping[str, Iterable[Tensor]],
    ) -> GeometryGradients:
        """``g_geom`` per encoder (Algorithm 1), from ``terms = self(embeddings)``.

        Call it before the task backward frees the encoders' graph. ``params`` maps each modality to its
        encoder's parameters (only these receive ``g_geom``). The per-term gradients are one
        vector-Jacobian product through each encoder: the terms are first differentiated with respect to
        the (small) embeddings, then both cotangents are pulled back together.
        """
        names = list(embeddings)
        zs = [embeddings[n] for n in names]
        params = {n: [p for p in params[n] if p.requires_grad] for n in names}
        u_disp = self._cotangents(sum(terms[f"disperse/{n}"] for n in names), zs) if self.disperses else None
        u_inter = self._cotangents(terms["anchor"], zs) if self.anchors else None
        grads: dict[str, list[Tensor | None]] = {}
        alphas: dict[str, Tensor] = {}
        for k, name in enumerate(names):
            cotangents = [u[k] for u in (u_disp, u_inter) if u is not None]
            pulled = _pull_back(zs[k], params[name], cotangents)
            if self.weighting == "pareto" and self.terms == "both":
                grads[name], alphas[name] = balance_geometry(pulled[0], pulled[1], self.beta)
            else:
                weight = self._single_weight()
                grads[name] = _weighted_sum(pulled, weight)
                alphas[name] = torch.tensor(1.0 if self.terms == "anchor" else 0.0)
        return GeometryGradients(params=params, grads=grads, alphas=alphas)

    def _single_weight(self) -> list[float]:
        """Weights of the pulled-back gradients when no min-norm balancing happens."""
        if self.weighting == "pareto":  # one term: the min-norm point of one gradient is itself
            return [self.beta]
        return [w for w, on in ((self.lambda_disperse, self.disperses), (self.lambda_anchor, self.anchors)) if on]

    @staticmethod
    def _cotangents(term: Tensor, zs: list[Tensor]) -> list[Tensor]:
        return list(torch.autograd.grad(term, zs, retain_graph=True, allow_unused=True, materialize_grads=True))

    @staticmethod
    def _unpack(embeddings: Mapping[str, Tensor]) -> tuple[list[str], list[Tensor]]:
        if not isinstance(embeddings, Mapping):
            raise TypeError(f"embeddings must be a mapping name -> tensor, got {type(embeddings).__name__}")
        names = [str(k) for k in embeddings]
        if len(names) < 2:
            raise ValueError(f"DAGR needs at least 2 modalities, got {len(names)}: {names}")
        zs = list(embeddings.values())
        sizes = {n: int(z.shape[0]) if z.dim() else -1 for n, z in zip(names, zs)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all modalities must share the batch size, got {sizes}")
        return names, zs

    def extra_repr(self) -> str:
        return (f"weighting={self.weighting!r}, terms={self.terms!r}, t={self.t}, tau={self.tau}, "
                f"anchor_form={self.anchor_form!r}, beta={self.beta}, lambda_disperse={self.lambda_disperse}, "
                f"lambda_anchor={self.lambda_anchor}, dispersion_form={self.dispersion_form!r}")


def _pull_back(z: Tensor, params: list[Tensor], cotangents: list[Tensor]) -> list[list[Tensor | None]]:
    """``J^T u`` for each cotangent ``u`` of ``z``, w.r.t. ``params`` (one batched VJP for several)."""
    if len(cotangents) == 1:
        grads = torch.autograd.grad(z, params, grad_outputs=cotangents[0], retain_graph=True, allow_unused=True)
        return [list(grads)]
    grads = torch.autograd.grad(z, params, grad_outputs=torch.stack(cotangents), retain_graph=True,
                                allow_unused=True, is_grads_batched=True)
    return [[None if g is None else g[k] for g in grads] for k in range(len(cotangents))]


def _weighted_sum(grad_lists: Sequence[list[Tensor | None]], weights: Sequence[float]) -> list[Tensor | None]:
    out: list[Tensor | None] = []
    for per_param in zip(*grad_lists):
        present = [(w, g) for w, g in zip(weights, per_param) if g is not None]
        out.append(sum((w * g for w, g in present[1:]), present[0][0] * present[0][1]) if present else None)
    return out

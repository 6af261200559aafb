"""Objective controls: other losses on the same per-modality embeddings as DAGR (the paper's Table 7).

Each control is written from its original paper's definition, with the original coefficients, and
acts on the pooled per-modality embeddings the fusion head consumes (``docs/controls.md``):

* :class:`NaiveAlignment`: an always-on per-sample cross-modal pull, DAGR's anchoring (Eq. 5) with
  ``τ = 0``: ``mean_i ‖z̃_i^a − z̃_i^b‖²`` on L2-normalized embeddings.
* :class:`VICReg`: Bardes, Ponce & LeCun, *VICReg* (ICLR 2022): invariance between the paired
  embeddings, a variance hinge and a covariance penalty per modality.
* :class:`BarlowTwins`: Zbontar et al., *Barlow Twins* (ICML 2021): the cross-modal cross-correlation
  matrix of batch-centred embeddings pulled to the identity.
* ``unit_sphere`` (no loss): the embeddings the fusion head sees are L2-normalized; a switch of the
  model (``benchmarks.models.MultimodalModel``), not a module here.

**How strongly a control joins the objective.** A control's loss is ``Σ_k c_k T_k`` (its authors'
coefficients ``c_k`` and terms ``T_k``). It joins the task objective as

    L_control = S · (Σ_k c_k T_k) / (Σ_k c_k)

with one total strength ``S`` for every control (default 0.19 = ``λ_intra + λ_inter`` of DAGR's fixed
form at the paper's best point, which the paper calls the total strength; its Pareto default is
``β = 0.2``). The relative weights of a control's terms stay its authors'; only the overall scale is
set, the same way for all. Terms are per embedding dimension (VICReg's own normalization; Barlow
Twins' sums are divided by the width ``D``), so the strength does not grow with the embedding width.

With more than two modalities, every pairwise loss is averaged over the unordered modality pairs
(for two modalities: the original two-branch loss).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from . import functional as GF

__all__ = ["BarlowTwins", "BarlowTwinsParams", "CONTROL_KINDS", "CONTROL_LOSSES", "DEFAULT_STRENGTH",
           "NaiveAlignment", "NoParams", "VICReg", "VICRegParams", "alignment", "barlow_twins_terms",
           "control_loss", "control_params", "cross_correlation", "vicreg_terms"]

# λ_intra + λ_inter of DAGR's fixed form at the paper's best direct-form point (0.14 + 0.05).
DEFAULT_STRENGTH = 0.19
_EPS = 1e-12  # a constant (zero-variance) dimension correlates with nothing instead of giving NaN


def _nonnegative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{owner}.{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class NoParams:
    """For controls without coefficients of their own."""


@dataclass(frozen=True)
class VICRegParams:
    """The defaults of Bardes, Ponce & LeCun (ICLR 2022): ``λ = μ = 25``, ``ν = 1``, ``γ = 1``, ``ε = 1e-4``."""

    invariance: float = 25.0  # λ, weight of s(Z, Z')
    variance: float = 25.0  # μ, weight of v(Z) + v(Z')
    covariance: float = 1.0  # ν, weight of c(Z) + c(Z')
    gamma: float = 1.0  # γ, the target standard deviation of every dimension
    eps: float = 1e-4  # ε in S(x, ε) = sqrt(Var(x) + ε)

    def __post_init__(self) -> None:
        _nonnegative("VICReg", **asdict(self))
        if self.eps <= 0:
            raise ValueError(f"VICReg.eps must be > 0, got {self.eps}")


@dataclass(frozen=True)
class BarlowTwinsParams:
    """The default of Zbontar et al. (ICML 2021): the off-diagonal weight ``λ = 5·10⁻³``."""

    redundancy: float = 5e-3  # λ, weight of the off-diagonal (redundancy-reduction) term

    def __post_init__(self) -> None:
        _nonnegative("BarlowTwins", **asdict(self))


# --- the losses as functions -------------------------------------------------------------------

def alignment(z_a: Tensor, z_b: Tensor) -> Tensor:
    """``mean_i ‖z̃_a,i − z̃_b,i‖²`` of L2-normalized rows: DAGR's anchoring (Eq. 5) with ``τ = 0``."""
    return GF.anchoring(z_a, z_b, tau=0.0, form="distance")


def _two_views(z_a: Tensor, z_b: Tensor, owner: str) -> tuple[Tensor, Tensor]:
    if z_a.dim() != 2 or z_a.shape != z_b.shape:
        raise ValueError(f"{owner} needs two (B, D) embeddings of one shape, got {tuple(z_a.shape)} and "
                         f"{tuple(z_b.shape)}")
    if z_a.shape[0] < 2:
        raise ValueError(f"{owner} needs at least 2 samples per batch (batch statistics), got {z_a.shape[0]}")
    return z_a, z_b


def _variance_hinge(z: Tensor, gamma: float, eps: float) -> Tensor:
    """VICReg's ``v(Z) = 1/d Σ_j max(0, γ − sqrt(Var(z^j) + ε))`` (unbiased variance, as its C(Z))."""
    return torch.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance_penalty(z: Tensor) -> Tensor:
    """VICReg's ``c(Z) = 1/d Σ_{i≠j} C(Z)_ij²``, ``C(Z) = 1/(n−1) Σ_k (z_k − z̄)(z_k − z̄)ᵀ``."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def vicreg_terms(z_a: Tensor, z_b: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> dict[str, Tensor]:
    """VICReg's three criteria for paired ``(B, D)`` embeddings of two modalities.

    * ``invariance`` ``s(Z, Z')``: the mean squared difference of paired rows, averaged over samples
      *and dimensions* (the paper's Algorithm 1, ``mse_loss``; its text writes the sum over
      dimensions, which is ``D`` times larger);
    * ``variance`` ``v(Z) + v(Z')`` and ``covariance`` ``c(Z) + c(Z')``, one term per modality.
    """
    z_a, z_b = _two_views(z_a, z_b, "VICReg")
    return {"invariance": (z_a - z_b).pow(2).mean(),
            "variance": _variance_hinge(z_a, gamma, eps) + _variance_hinge(z_b, gamma, eps),
            "covariance": _covariance_penalty(z_a) + _covariance_penalty(z_b)}


def cross_correlation(z_a: Tensor, z_b: Tensor) -> Tensor:
    """Barlow Twins' ``C_ij = Σ_b a_bi b_bj / (sqrt(Σ_b a_bi²) sqrt(Σ_b b_bj²))`` (D×D) of the
    batch-centred embeddings ``a``, ``b``: the correlation of dimension ``i`` of one modality with
    dimension ``j`` of the other over the batch."""
    z_a, z_b = _two_views(z_a, z_b, "BarlowTwins")
    a, b = z_a - z_a.mean(dim=0), z_b - z_b.mean(dim=0)
    a = a / a.norm(dim=0).clamp_min(_EPS)
    b = b / b.norm(dim=0).clamp_min(_EPS)
    return a.T @ b


def barlow_twins_terms(z_a: Tensor, z_b: Tensor) -> dict[str, Tensor]:
    """``on_diagonal = Σ_i (1 − C_ii)²`` and ``off_diagonal = Σ_i Σ_{j≠i} C_ij²`` (the paper's Eq. 1
    terms), each divided by the width ``D`` (per dimension, like VICReg's)."""
    c = cross_correlation(z_a, z_b)
    diagonal = torch.diagonal(c)
    d = c.shape[0]
    return {"on_diagonal": (1 - diagonal).pow(2).sum() / d,
            "off_diagonal": (c.pow(2).sum() - diagonal.pow(2).sum()) / d}


# --- the losses as modules ---------------------------------------------------------------------

class _PairControl(nn.Module):
    """A control loss over modality pairs: ``S · Σ_k c_k T_k / Σ_k c_k``, terms averaged over pairs."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    # The regularizer protocol (``geomreg.Regularizer``): a control's loss joins the task objective.
    log_prefix: ClassVar[str] = "control"
    adds_own_gradient: ClassVar[bool] = False

    def __init__(self, strength: float = DEFAULT_STRENGTH, **params: Any) -> None:
        super().__init__()
        _nonnegative(type(self).__name__, strength=strength)
        self.strength = float(strength)
        self.params = self.Params(**params)

    def coefficients(self) -> dict[str, float]:
        """Each term's authors' coefficient ``c_k``."""
        raise NotImplementedError

    def terms(self, z_a: Tensor, z_b: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{name: (B, D)}`` (>= 2 modalities) -> ``loss`` (what joins the objective) and each term."""
        if not isinstance(embeddings, Mapping) or len(embeddings) < 2:
            raise ValueError(f"{type(self).__name__} needs a mapping of at least 2 modalities' embeddings")
        zs = list(embeddings.values())
        per_pair = [self.terms(zs[i], zs[j]) for i, j in itertools.combinations(range(len(zs)), 2)]
        weights = self.coefficients()
        terms = {k: torch.stack([p[k] for p in per_pair]).mean() for k in weights}
        total = sum(weights.values())
        combined = sum(w * terms[k] for k, w in weights.items())
        combined = combined / total if total > 0 else combined  # all coefficients 0: an exact, connected 0
        return {"loss": self.strength * combined, **terms}

    def extra_repr(self) -> str:
        return f"strength={self.strength}, " + ", ".join(f"{k}={v}" for k, v in asdict(self.params).items())


class NaiveAlignment(_PairControl):
    """Always-on per-sample cross-modal pull: ``S · mean_i ‖z̃_i^a − z̃_i^b‖²`` (DAGR's Eq. 5, ``τ = 0``,
    without dispersion). Every pair is pulled together, however close it already is."""

    name = "naive_align"

    def coefficients(self) -> dict[str, float]:
        return {"alignment": 1.0}

    def terms(self, z_a, z_b):
        return {"alignment": alignment(z_a, z_b)}


class VICReg(_PairControl):
    """VICReg (Bardes et al., ICLR 2022) between two modalities' paired embeddings:
    ``ℓ = λ s(Z, Z') + μ [v(Z) + v(Z')] + ν [c(Z) + c(Z')]`` (:func:`vicreg_terms`), here without the
    paper's expander (the embeddings are the encoders' pooled outputs, as for DAGR)."""

    name = "vicreg"
    Params = VICRegParams

    def coefficients(self) -> dict[str, float]:
        p = self.params
        return {"invariance": p.invariance, "variance": p.variance, "covariance": p.covariance}

    def terms(self, z_a, z_b):
        return vicreg_terms(z_a, z_b, self.params.gamma, self.params.eps)


class BarlowTwins(_PairControl):
    """Barlow Twins (Zbontar et al., ICML 2021) across modalities:
    ``L_BT = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij²`` on the cross-modal cross-correlation ``C``
    (:func:`cross_correlation`), per dimension (:func:`barlow_twins_terms`), without the projector."""

    name = "barlow_twins"
    Params = BarlowTwinsParams

    def coefficients(self) -> dict[str, float]:
        return {"on_diagonal": 1.0, "off_diagonal": self.params.redundancy}

    def terms(self, z_a, z_b):
        return barlow_twins_terms(z_a, z_b)


CONTROL_LOSSES: dict[str, type[_PairControl]] = {c.name: c for c in (NaiveAlignment, VICReg, BarlowTwins)}
# "none": no control; "unit_sphere": L2-normalized embeddings, no loss (a switch of the model).
CONTROL_KINDS: tuple[str, ...] = ("none", *CONTROL_LOSSES, "unit_sphere")


def control_params(kind: str) -> type:
    """The dataclass a control's coefficients are checked against (``NoParams`` when it has none)."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control {kind!r}; choose from {', '.join(CONTROL_KINDS)}")
    return CONTROL_LOSSES[kind].Params if kind in CONTROL_LOSSES else NoParams


def control_loss(kind: str, strength: float = DEFAULT_STRENGTH, params: Mapping[str, Any] | None = None
                 ) -> _PairControl | None:
    """The loss module of a control, or None for the controls without a loss (``none``, ``unit_sphere``)."""
    control_params(kind)
    if kind not in CONTROL_LOSSES:
        if params:
            raise ValueError(f"control {kind!r} takes no params, got {sorted(params)}")
        return None
    return CONTROL_LOSSES[kind](strength, **dict(params or {}))

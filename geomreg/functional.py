"""Functional form of DAGR's two geometric terms (arXiv 2601.21670, Eqs. 3-5).

Both act on L2-normalized per-modality embeddings ``z̃ = z / ||z||`` (the normalization lives only
inside the regularizer; the fusion head still sees ``z``). See ``docs/dagr.md`` for the equations and
for which parts are the paper's and which are this suite's readings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ANCHOR_FORMS", "DISPERSION_FORMS", "anchoring", "dispersion"]

DISPERSION_FORMS: tuple[str, ...] = ("uniformity", "infonce_l2")
# "distance": the paper's Eq. 5, (||z̃_a - z̃_b|| - τ)₊², τ on the distance scale [0, 2].
# "squared_distance": this suite's earlier reconstruction, (||z̃_a - z̃_b||² - τ)₊, τ on [0, 4].
ANCHOR_FORMS: tuple[str, ...] = ("distance", "squared_distance")

_EPS = 1e-12  # normalization eps: a zero row stays zero instead of becoming NaN


def _as_batch(z: Tensor, name: str) -> Tensor:
    """Flatten trailing dims to ``B×D`` (as Wang & He's code does); reject scalars and vectors."""
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() < 2:
        raise ValueError(f"{name} must have shape (B, D, ...), got {tuple(z.shape)}")
    return z.reshape(z.shape[0], math.prod(z.shape[1:]))


def _graph_zero(*zs: Tensor) -> Tensor:
    """An exact 0 that stays connected to the inputs' graph (gradients are exact zeros, never NaN)."""
    out = zs[0].sum() * 0.0
    for z in zs[1:]:
        out = out + z.sum() * 0.0
    return out


def _sq_dists(z: Tensor) -> Tensor:
    """Pairwise squared distances via the Gram matrix.

    Avoids ``pdist``/``cdist`` (their sqrt has an infinite derivative at zero distance, so duplicate rows
    would give NaN gradients); the Gram form is smooth everywhere. Clamped at 0 against round-off.
    """
    sq_norm = z.pow(2).sum(dim=1)
    d2 = sq_norm[:, None] + sq_norm[None, :] - 2.0 * (z @ z.T)
    return d2.clamp_min(0.0)


def dispersion(z: Tensor, t: float = 2.0, form: str = "uniformity") -> Tensor:
    """Intra-modal dispersion of one modality's batch ``z`` (``B×D``; trailing dims are flattened).

    DAGR's ``L_disp^m`` (paper Eq. 4, the "uniformity-based RBF" instance of Eq. 2): Wang & Isola's
    uniformity loss on the unit sphere. Lower = more spread out. Computed with a stable logsumexp.

    Forms:
      * ``"uniformity"`` (default): rows are L2-normalized, then
        ``log( mean_{i≠j} exp(-t ||z̃_i - z̃_j||²) )`` over the ``B(B-1)`` off-diagonal pairs (identical to
        ``torch.pdist(z̃).pow(2).mul(-t).exp().mean().log()``). ``t=2`` is Wang & Isola's default.
        Invariant to positive rescaling of rows.
      * ``"infonce_l2"``: Wang & He (2025) "Diffuse and Disperse" dispersive loss, no normalization,
        ``log( mean_{i,j} exp(-t ||z_i - z_j||² / D) )`` over all ``B²`` pairs including ``i=j``. Their public
        code has an implicit temperature of 1, i.e. ``t=1`` reproduces it exactly (``t`` multiplies the
        exponent, so ``t = 1/τ_disp`` in their paper's notation).

    Args:
        z: embeddings of one modality, ``(B, D, ...)``.
        t: positive RBF bandwidth / inverse temperature multiplying the squared distance.
        form: ``"uniformity"`` or ``"infonce_l2"``.

    Returns:
        A scalar. With fewer than 2 rows there are no pairs: an exact 0 connected to the graph.
    """
    if form not in DISPERSION_FORMS:
        raise ValueError(f"unknown dispersion form {form!r}; allowed forms: {', '.join(DISPERSION_FORMS)}")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"t must be a finite number > 0, got {t}")
    z = _as_batch(z, "z")
    b, d = z.shape
    if b < 2:
        return _graph_zero(z)

    if form == "uniformity":
        z = F.normalize(z, dim=1, eps=_EPS)
        logits = -t * _sq_dists(z)
        eye = torch.eye(b, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(eye, float("-inf"))  # exclude i == j
        n_terms = b * (b - 1)
    else:  # "infonce_l2"
        z = z - z.mean(dim=0, keepdim=True).detach()  # distances are translation-invariant; less cancellation
        d2 = _sq_dists(z)
        eye = torch.eye(b, dtype=torch.bool, device=z.device)
        d2 = d2.masked_fill(eye, 0.0)  # exact zeros on the diagonal (their code concatenates B zeros)
        logits = -t * d2 / d
        n_terms = b * b
    return torch.logsumexp(logits.reshape(-1), dim=0) - math.log(n_terms)


def anchoring(z_a: Tensor, z_b: Tensor, tau: float = 0.25, form: str = "distance") -> Tensor:
    """Inter-modal anchoring of paired rows of two modalities: the mean over the batch of a hinge on
    their cross-modal drift, which penalizes only the part of the drift beyond the admissible radius ``τ``.

    Forms:
      * ``"distance"`` (default, paper Eq. 5): ``mean_i (||z̃_a,i - z̃_b,i||₂ - τ)₊²``, a squared hinge
        on the Euclidean distance between unit vectors, so ``τ`` lives on the distance scale ``[0, 2]``.
      * ``"squared_distance"`` (the suite's earlier reconstruction, kept to regenerate older results):
        ``mean_i (||z̃_a,i - z̃_b,i||₂² - τ)₊``, a plain hinge on the squared distance (``τ`` on ``[0, 4]``).

    Gradients flow into both sides (no stop-gradient). The distance is taken from the squared distance
    with a guarded square root, so identical rows give a zero gradient instead of NaN.

    Args:
        z_a, z_b: paired embeddings of equal shape ``(B, D, ...)``; row ``i`` of each is the same sample.
        tau: admissible radius (>= 0), on the scale of the chosen form.
        form: ``"distance"`` or ``"squared_distance"``.

    Returns:
        A scalar; exactly 0 when every pair lies inside the band (and for an empty batch).
    """
    if form not in ANCHOR_FORMS:
        raise ValueError(f"unknown anchoring form {form!r}; allowed forms: {', '.join(ANCHOR_FORMS)}")
    if not (tau >= 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a finite number >= 0, got {tau}")
    if not isinstance(z_a, Tensor) or not isinstance(z_b, Tensor):
        raise TypeError("z_a and z_b must be torch.Tensors")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    z_a, z_b = _as_batch(z_a, "z_a"), _as_batch(z_b, "z_b")
    if z_a.shape[0] == 0:
        return _graph_zero(z_a, z_b)
    a = F.normalize(z_a, dim=1, eps=_EPS)
    b = F.normalize(z_b, dim=1, eps=_EPS)
    sq_dist = (a - b).pow(2).sum(dim=1)
    if form == "squared_distance":
        return torch.relu(sq_dist - tau).mean()
    return torch.relu(_safe_sqrt(sq_dist) - tau).pow(2).mean()


def _safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt`` whose gradient at 0 is 0 rather than inf (so ``0 · inf`` never makes a NaN)."""
    positive = x > 0
    return torch.where(positive, x.where(positive, torch.ones_like(x)).sqrt(), torch.zeros_like(x))

"""Functional form of DAGR's two geometric terms (reconstruction).

The paper's exact formulas (arXiv 2601.21670, Eq. 6-7) are not public and there is no official code.
What is known (``dagr-paper.md`` §2.1-2.2): dispersion is an "RBF-based dispersive loss" with a clean
connection to "hyperspherical uniformity" (Wang & Isola 2020) and a temperature ``t``; anchoring is a
"hinge-based anchoring loss" on paired cross-modal embeddings with an "admissible radius" ``τ``, acting on
``||z̃_a - z̃_b||²`` of L2-normalized embeddings. The functions below are the best-supported reading of those
clues, not verbatim formulas.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DISPERSION_FORMS", "dispersion", "anchoring"]

DISPERSION_FORMS: tuple[str, ...] = ("uniformity", "infonce_l2")

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

    Reconstruction of DAGR's ``L_intra`` (paper Eq. 6 is not public; §2.2 of ``dagr-paper.md``): the paper
    calls it an "RBF-based dispersive loss" tied to "hyperspherical uniformity", so the default is Wang &
    Isola's uniformity loss. Lower = more spread out. Computed with a stable logsumexp.

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


def anchoring(z_a: Tensor, z_b: Tensor, tau: float = 0.5, squared_hinge: bool = False) -> Tensor:
    """Inter-modal anchoring of paired rows of two modalities.

    Reconstruction of DAGR's ``L_inter`` (paper Eq. 7 is not public; §2.2 of ``dagr-paper.md``): a
    "hinge-based anchoring loss" with an "admissible radius" ``τ`` that penalizes only the part of the paired
    cross-modal drift exceeding the band, so modality-specific information inside it is not pulled away:
    ``mean_i max(0, ||z̃_a,i - z̃_b,i||² - τ)`` on L2-normalized rows (``||z̃_a - z̃_b||² = 2 - 2cos``, so
    ``τ`` lives on the ``[0, 4]`` scale). ``τ=0.5`` matches Fig. 2c's converged ``E||z_a - z_v||² ≈ 0.5``:
    only drift beyond the typical modality gap is penalized. Gradients flow into both sides (no stop-grad).

    Args:
        z_a, z_b: paired embeddings of equal shape ``(B, D, ...)``; row ``i`` of each is the same sample.
        tau: admissible radius (>= 0) on squared distance between unit vectors.
        squared_hinge: use ``max(0, ·)²`` (smooth at the band edge) instead of the plain hinge.

    Returns:
        A scalar; exactly 0 when every pair lies inside the band (and for an empty batch).
    """
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
    excess = torch.relu((a - b).pow(2).sum(dim=1) - tau)
    if squared_hinge:
        excess = excess.pow(2)
    return excess.mean()

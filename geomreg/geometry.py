"""Representation-geometry diagnostics of paired multimodal embeddings (no gradients, torch only).

These are the quantities behind the paper's Figure 2 (semantic margin, effective rank, cross-modal
deviation over training) and Figure 3 (matched vs mismatched cross-modal cosine distributions with
their mean gap Δμ and Kolmogorov–Smirnov distance, Recall@K retrieval); see ``docs/protocol.md``.
The semantic margin follows the paper's Eq. 45; for the others the paper gives no formula, so every
function states the definition it implements.

Inputs are embedding matrices ``N×D`` whose row ``i`` of every modality belongs to the same sample
(row ``i`` of ``za`` is paired with row ``i`` of ``zv``). Everything is computed in float64.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "RECALL_KS", "HIST_BINS", "MAX_SAMPLES",
    "effective_rank", "cross_modal_deviation", "paired_cosines", "delta_mu", "ks_statistic",
    "recall_at_k", "semantic_margin", "cross_modal_cosine_margin", "cosine_histogram", "geometry_summary",
]

RECALL_KS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)  # the K axis of the paper's Figure 3(c)
HIST_BINS = 40  # equal-width cosine bins over [-1, 1] (width 0.05)
MAX_SAMPLES = 2000  # above this, geometry_summary subsamples: the N×N cosine matrix stays ≤ 32 MB


def _unit(z: Tensor) -> Tensor:
    """Rows L2-normalized in float64 (a zero row stays zero)."""
    return F.normalize(z.detach().double(), dim=1)


def _cosines(za: Tensor, zb: Tensor) -> Tensor:
    """``C[i, j] = cos(za_i, zb_j)``, N×N."""
    return _unit(za) @ _unit(zb).T


def effective_rank(z: Tensor) -> float:
    """Effective rank (Roy & Vetterli, 2007) of the column-centred matrix ``z`` (N×D).

    ``erank = exp(H(p))`` with ``p_k = σ_k / Σ_j σ_j`` the normalized singular values of
    ``z - mean(z, 0)`` and ``H`` the Shannon entropy (natural log, ``0 log 0 = 0``). It lies in
    ``[1, rank]``, equals ``r`` for ``r`` equal non-zero singular values and is invariant to scaling.
    Centring removes the common offset, which would otherwise count as one dominant direction.
    A matrix whose rows are all equal (up to round-off, relative to its size) has no spread and gets 0.
    """
    z = z.detach().double()
    sigma = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    if sigma.sum() <= 1e-12 * torch.linalg.matrix_norm(z):
        return 0.0
    p = sigma / sigma.sum()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def cross_modal_deviation(za: Tensor, zb: Tensor) -> float:
    """``E_i ||ẑa_i - ẑb_i||²`` over the paired rows, ``ẑ = z / ||z||``; equals ``2 - 2·mean cos``.

    The paper's Figure 2(c) quantity ``E[||z_a - z_v||²]`` on the normalized embeddings DAGR acts on;
    range ``[0, 4]``.
    """
    return (_unit(za) - _unit(zb)).pow(2).sum(dim=1).mean().item()


def paired_cosines(za: Tensor, zb: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-modal cosines ``cos(za_i, zb_j)``: (matched: the N pairs ``i = j``, mismatched: the
    ``N(N-1)`` ordered pairs ``i ≠ j``), both 1-D float64."""
    c = _cosines(za, zb)
    return c.diagonal().clone(), off_diagonal(c)


def off_diagonal(c: Tensor) -> Tensor:
    """The entries ``c[i, j]``, ``i ≠ j``, of a square matrix in row-major order (as ``c[~eye]``, without
    building an N×N mask): dropping every (N+1)-th entry of the flat matrix drops its diagonal."""
    n = len(c)
    if n < 2:
        return c.new_empty(0)
    return c.flatten()[1:].view(n - 1, n + 1)[:, :-1].reshape(-1)


def delta_mu(matched: Tensor, mismatched: Tensor) -> float:
    """Δμ = mean(matched) − mean(mismatched): the gap between the two cosine distributions' means."""
    return (matched.double().mean() - mismatched.double().mean()).item()


def ks_statistic(x: Tensor, y: Tensor) -> float:
    """Exact two-sample Kolmogorov–Smirnov statistic ``D = sup_v |F_x(v) − F_y(v)|``.

    ``F`` are the right-continuous empirical CDFs (``F_x(v) = #{x_i ≤ v} / n``); ties, within and
    across the samples, are handled exactly (two identical samples give 0). Same value as
    ``scipy.stats.ks_2samp``. Only the smaller sample is sorted, which matters for matched (N) vs
    mismatched (N²) cosines: with ``u_1 < … < u_K`` its distinct values, ``F_x`` is constant on
    ``[u_k, u_{k+1})`` while ``F_y`` rises from ``#{y ≤ u_k}/m`` to ``#{y < u_{k+1}}/m``, so the
    supremum is the largest gap at these two ends (with ``F_x = 0`` before ``u_1``).
    """
    x, y = x.detach().double().flatten(), y.detach().double().flatten()
    if len(x) == 0 or len(y) == 0:
        raise ValueError("ks_statistic needs two non-empty samples")
    if len(x) > len(y):
        x, y = y, x
    xs = x.sort().values
    u = xs.unique_consecutive()
    fx = torch.searchsorted(xs, u, right=True).double() / len(xs)
    fx_before = torch.cat([fx.new_zeros(1), fx[:-1]])
    y_at_or_below, y_at = _counts_at(y, u)
    fy_at = y_at_or_below / len(y)
    fy_below = (y_at_or_below - y_at) / len(y)
    return max((fx - fy_at).abs().max().item(), (fx_before - fy_below).abs().max().item())


def _counts_at(y: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``(#{y ≤ u_k}, #{y = u_k})`` for each sorted distinct ``u_k``, in one pass without sorting ``y``."""
    bucket = torch.bucketize(y, u)  # #{u_j < y_i}: y_i ≤ u_k  <=>  bucket_i ≤ k
    at_or_below = torch.bincount(bucket, minlength=len(u) + 1).cumsum(0)[:len(u)]
    tied = bucket[y == u[bucket.clamp(max=len(u) - 1)]]  # y_i = u_k lands in bucket k
    return at_or_below.double(), torch.bincount(tied, minlength=len(u)).double()


def recall_at_k(query: Tensor, gallery: Tensor, ks: Iterable[int] = RECALL_KS) -> dict[int, float]:
    """Cross-modal retrieval Recall@K: the fraction of queries whose own match is in the top K.

    Query ``i``'s match is gallery row ``i``; gallery rows are ranked by cosine similarity. Ties are
    resolved pessimistically: the match's rank is the number of *other* gallery rows with a
    similarity ``≥`` its own, so a collapsed embedding (all similarities equal) gets 0 for every
    ``K < N`` instead of a perfect score. Recall@K is 1 for ``K ≥ N``.
    """
    c = _cosines(query, gallery)
    own = c.diagonal()[:, None]
    others_ahead = (c >= own).sum(dim=1) - 1  # the match itself always satisfies ≥
    return {k: (others_ahead < k).double().mean().item() for k in ks}


def semantic_margin(z: Tensor, labels: Tensor) -> float:
    """The paper's semantic margin (Eq. 45) in one representation space ``z`` (``N×D``, not normalized):

        Δ_sem = E_{y≠y'}[ E_{i∈I_y, j∈I_y'} ||z_i - z_j|| ] - E_y[ E_{i,j∈I_y} ||z_i - z_j|| ]

    the mean Euclidean distance between two different classes minus the mean distance within a class,
    each expectation over classes taken with equal weight per class (pair). Within a class the pairs
    ``i = j`` (distance 0 by definition) are left out. Larger = better separated classes. NaN when
    there are fewer than two classes or no class has two samples.
    """
    labels = labels.flatten()
    # Each class becomes a contiguous block, its samples in their order. cdist runs before the reordering:
    # its rounding depends on the rows' positions, and the margin must not depend on the sample order.
    order = torch.sort(labels, stable=True).indices
    dist = torch.cdist(z.double(), z.double())[order][:, order]
    sizes = torch.unique_consecutive(labels[order], return_counts=True)[1].tolist()
    blocks = [slice(start, start + size) for start, size in zip(itertools.accumulate([0] + sizes), sizes)]
    within = [dist[b, b].contiguous() for b, size in zip(blocks, sizes) if size >= 2]
    within_means = [(w.sum() / (len(w) * (len(w) - 1))).item() for w in within]
    between_means = [dist[a, b].contiguous().mean().item() for a, b in itertools.permutations(blocks, 2)]
    if not within_means or not between_means:
        return math.nan
    return sum(between_means) / len(between_means) - sum(within_means) / len(within_means)


def cross_modal_cosine_margin(za: Tensor, zb: Tensor, labels: Tensor) -> float:
    """Mean cross-modal cosine of same-class pairs minus that of different-class pairs.

    Over the ordered pairs ``(i, j)``, ``i ≠ j``, of ``cos(za_i, zb_j)``: pairs with
    ``labels[i] == labels[j]`` against pairs with different labels. The matched pairs ``i = j`` are
    left out, so the margin measures class structure beyond the instance pairing (that is Δμ's job).
    A cross-modal companion of :func:`semantic_margin` (this suite's own definition). NaN when either
    set of pairs is empty.
    """
    c = _cosines(za, zb)
    labels = labels.flatten()
    same = labels[:, None] == labels[None, :]
    same.diagonal().fill_(False)  # the matched pairs i = j are neither
    different = ~same
    different.diagonal().fill_(False)
    pos, neg = c[same], c[different]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    return (pos.mean() - neg.mean()).item()


def cosine_histogram(cosines: Tensor, bins: int = HIST_BINS) -> list[int]:
    """Counts of ``cosines`` in ``bins`` equal-width bins over ``[-1, 1]`` (edges
    ``linspace(-1, 1, bins + 1)``; a bin holds ``[lo, hi)``, the last one also 1). Values a
    round-off outside ``[-1, 1]`` go to the end bins. Fixed bins let histograms be summed across
    seeds and epochs."""
    idx = ((cosines.double() + 1.0) * (bins / 2.0)).floor().long().clamp(0, bins - 1)
    return torch.bincount(idx, minlength=bins).tolist()


def _subsample(n: int, max_samples: int, seed: int) -> Tensor | None:
    """A fixed sorted subset of ``max_samples`` of ``n`` rows, or None when all rows fit."""
    if n <= max_samples:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:max_samples].sort().values


def _finite(value: float) -> float | None:
    """A JSON-safe float: undefined values (NaN) become None (``null``)."""
    return value if math.isfinite(value) else None


def _pair_summary(a: str, b: str, za: Tensor, zb: Tensor, labels: Tensor, ks: tuple[int, ...],
                  bins: int) -> dict[str, Any]:
    matched, mismatched = paired_cosines(za, zb)
    return {
        "deviation": cross_modal_deviation(za, zb),
        "matched_mean": matched.mean().item(),
        "mismatched_mean": mismatched.mean().item(),
        "delta_mu": delta_mu(matched, mismatched),
        "ks": ks_statistic(matched, mismatched),
        "cosine_margin": _finite(cross_modal_cosine_margin(za, zb, labels)),
        "recall": {f"{a}->{b}": {str(k): r for k, r in recall_at_k(za, zb, ks).items()},
                   f"{b}->{a}": {str(k): r for k, r in recall_at_k(zb, za, ks).items()}},
        "hist": {"matched": cosine_histogram(matched, bins), "mismatched": cosine_histogram(mismatched, bins)},
    }


def geometry_summary(embeddings: Mapping[str, Tensor], labels: Tensor, ks: Iterable[int] = RECALL_KS,
                     bins: int = HIST_BINS, max_samples: int = MAX_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """All diagnostics of one split's paired embeddings, as a JSON-ready dict of plain numbers.

    ``embeddings`` maps modality → ``N×D`` (rows paired across modalities), ``labels`` is ``N``.
    When ``N > max_samples``, the same ``max_samples`` rows of every modality are drawn once with a
    generator seeded by ``seed`` (so every epoch and run sees the same subset); Recall@K then ranks
    within that gallery. The effective rank is that of each modality's L2-normalized embeddings
    (the vectors DAGR and the cosine diagnostics act on), so per-sample norms do not count as
    directions. Returns::

        {"n": rows used, "bins": histogram bins over [-1, 1],
         "effective_rank": {<modality>: erank, ..., "mean": mean over modalities},
         "semantic_margin": {<modality>: Eq. 45 on its embeddings, ..., "fused": on their
                             concatenation (the fusion head's input)} (None if undefined),
         "pairs": {"<a>-<b>": {"deviation", "matched_mean", "mismatched_mean", "delta_mu", "ks",
                               "cosine_margin" (None if undefined),
                               "recall": {"<a>-><b>": {"<K>": recall}, "<b>-><a>": {...}},
                               "hist": {"matched": [counts], "mismatched": [counts]}}}}

    with one entry in ``pairs`` per unordered modality pair (none for a single modality).
    """
    modalities = list(embeddings)
    n = len(labels)
    if n < 2 or any(len(z) != n for z in embeddings.values()):
        raise ValueError(f"need >= 2 paired rows per modality and as many labels, got "
                         f"{ {m: len(z) for m, z in embeddings.items()} } and {n} labels")
    index = _subsample(n, max_samples, seed)
    if index is not None:
        embeddings = {m: z[index] for m, z in embeddings.items()}
        labels = labels[index]
    ranks = {m: effective_rank(_unit(z)) for m, z in embeddings.items()}
    ks = tuple(ks)
    return {
        "n": len(labels),
        "bins": bins,
        "effective_rank": {**ranks, "mean": sum(ranks.values()) / len(ranks)},
        "semantic_margin": {**{m: _finite(semantic_margin(z, labels)) for m, z in embeddings.items()},
                            "fused": _finite(semantic_margin(torch.cat(list(embeddings.values()), dim=1), labels))},
        "pairs": {f"{a}-{b}": _pair_summary(a, b, embeddings[a], embeddings[b], labels, ks, bins)
                  for a, b in itertools.combinations(modalities, 2)},
    }

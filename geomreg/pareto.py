"""Two-objective min-norm (MGDA) gradient combination, as MMPareto (Wei & Hu, ICML 2024) executes it.

Used by the MMPareto baseline (task vs unimodal gradients) and by DAGR's Pareto-balanced weighting
(dispersion vs anchoring gradients, :func:`balance_geometry`). Pure functions on gradient tensors: no
autograd, no parameters touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ParetoResult", "balance_geometry", "min_norm_weights", "pareto_combine"]

GradLike = Tensor | Sequence[Tensor | None]


def _flat(g: GradLike) -> Tensor:
    """Concatenate a tensor or list of tensors (``None`` entries skipped) into one flat vector."""
    if isinstance(g, Tensor):
        return g.reshape(-1)
    parts = [x.reshape(-1) for x in g if x is not None]
    if not parts:
        return torch.zeros(0)
    return torch.cat(parts)


def min_norm_weights(g1: GradLike, g2: GradLike) -> tuple[Tensor, Tensor]:
    """Weights ``(w1, 1 - w1)`` minimizing ``||w1 g1 + (1 - w1) g2||²`` over ``w1 ∈ [0, 1]``.

    Follows Sener & Koltun's ``MinNormSolver._min_norm_element_from2`` as MMPareto runs it, in its order:
    ``<g1,g2> >= ||g1||²`` → ``w1 = 0.999``; else ``<g1,g2> >= ||g2||²`` → ``w1 = 0.001``; else the closed
    form ``w1 = (||g2||² - <g1,g2>) / ||g1 - g2||²`` (strictly inside (0, 1) there). One deviation: when
    ``g1 == g2`` (zero denominator, incl. both zero) we return ``(0.5, 0.5)`` where the reference returns
    0.999; every weight is optimal then and the combination ``w1 g + (1-w1) g`` is the same vector.
    Inputs are tensors or lists of tensors (flattened and concatenated). Returns 0-d float64 tensors.
    """
    v1, v2 = _flat(g1).double(), _flat(g2).double()
    if v1.shape != v2.shape:
        raise ValueError(f"g1 and g2 must have the same number of elements, got {v1.numel()} and {v2.numel()}")
    v1v1, v2v2, v1v2 = v1 @ v1, v2 @ v2, v1 @ v2
    denom = v1v1 + v2v2 - 2.0 * v1v2
    if torch.equal(v1, v2) or denom <= 0:
        w1 = torch.tensor(0.5, dtype=torch.float64)
    elif v1v2 >= v1v1:
        w1 = torch.tensor(0.999, dtype=torch.float64)
    elif v1v2 >= v2v2:
        w1 = torch.tensor(0.001, dtype=torch.float64)
    else:
        w1 = ((v2v2 - v1v2) / denom).clamp(0.0, 1.0)
    return w1, 1.0 - w1


@dataclass(frozen=True)
class ParetoResult:
    """Output of :func:`pareto_combine`: combined per-tensor grads, weights ``(w_task, w_other)``, cosine."""

    grads: list[Tensor | None]
    weights: tuple[Tensor, Tensor]
    cosine: Tensor


def pareto_combine(
    grads_task: Sequence[Tensor | None], grads_other: Sequence[Tensor | None], gamma: float = 1.5
) -> ParetoResult:
    """MMPareto's gradient rule for one encoder (``baselines.md`` §5.1, steps 3-6).

    ``cos`` = cosine of the flattened concatenations (0 if either is all-zero, like
    ``F.cosine_similarity``'s eps). ``cos > 0`` → weights (0.5, 0.5), else :func:`min_norm_weights`. Then,
    per tensor ℓ: ``g̃ = 2(w1 g_task,ℓ + w2 g_other,ℓ)``, ``r = ||g_task,ℓ + g_other,ℓ|| / ||g̃||`` (r = 1 if
    ``||g̃|| = 0``), result ``gamma * max(r, 1) * g̃``: the min-norm direction with at least the norm of the
    plain sum, times gamma (1.5 hard-coded in MMPareto). Weights are global per encoder, magnitude per tensor.

    ``None`` (a parameter that got no gradient from one loss) is treated as zeros of the other's shape, both
    in the cosine/weights and per tensor; if both are ``None`` the output entry is ``None``.
    """
    if len(grads_task) != len(grads_other):
        raise ValueError(f"gradient lists differ in length: {len(grads_task)} vs {len(grads_other)}")
    gt: list[Tensor | None] = []
    go: list[Tensor | None] = []
    for i, (a, b) in enumerate(zip(grads_task, grads_other)):
        if a is not None and b is not None and a.shape != b.shape:
            raise ValueError(f"gradient {i}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
        gt.append(a if a is not None else (torch.zeros_like(b) if b is not None else None))
        go.append(b if b is not None else (torch.zeros_like(a) if a is not None else None))

    v1, v2 = _flat(gt).double(), _flat(go).double()
    n1, n2 = v1.norm(), v2.norm()
    cosine = (v1 @ v2) / (n1 * n2) if n1 > 0 and n2 > 0 else torch.zeros((), dtype=torch.float64)
    if cosine > 0:
        w1 = w2 = torch.tensor(0.5, dtype=torch.float64)
    else:
        w1, w2 = min_norm_weights(v1, v2)

    out: list[Tensor | None] = []
    for a, b in zip(gt, go):
        if a is None or b is None:
            out.append(None)
            continue
        new = 2.0 * (w1.item() * a + w2.item() * b)
        new_norm = new.norm()
        r = ((a + b).norm() / new_norm).item() if new_norm > 0 else 1.0
        out.append(gamma * max(r, 1.0) * new)
    return ParetoResult(grads=out, weights=(w1, w2), cosine=cosine)


def balance_geometry(
    g_disp: Sequence[Tensor | None], g_inter: Sequence[Tensor | None], beta: float
) -> tuple[list[Tensor | None], Tensor]:
    """DAGR's Pareto-balanced weighting for one encoder (paper §3.2.5, Algorithm 1).

    ``α* = argmin_{α∈[0,1]} ||α g_inter + (1-α) g_disp||²`` in closed form,
    ``clip(<g_disp - g_inter, g_disp> / ||g_inter - g_disp||², 0, 1)`` (the paper's Eq. 8 is not
    public; this is the standard two-objective min-norm point), and the result is
    ``β (α* g_inter + (1 - α*) g_disp)`` per parameter tensor. When the two gradients are equal (both
    zero included) every α gives the same vector and α* = 0.5. When one of them is zero the min-norm
    point is the origin: the step is zero (a Pareto-stationary point of the two geometric terms).

    The three dot products are summed in float64 from per-tensor float32 products; α* stays on the
    device (no host sync). ``None`` entries count as zeros; both ``None`` gives ``None``.
    Returns the combined list and α* (0-d float64 tensor).
    """
    if len(g_disp) != len(g_inter):
        raise ValueError(f"gradient lists differ in length: {len(g_disp)} vs {len(g_inter)}")
    pairs = [(d, i) for d, i in zip(g_disp, g_inter) if d is not None or i is not None]
    if not pairs:
        return [None] * len(g_disp), torch.tensor(0.5, dtype=torch.float64)
    device = next(t for pair in pairs for t in pair if t is not None).device
    dd, ii, di = (torch.zeros((), dtype=torch.float64, device=device) for _ in range(3))
    for d, i in pairs:
        if d is not None:
            dd = dd + torch.vdot(d.reshape(-1), d.reshape(-1)).double()
        if i is not None:
            ii = ii + torch.vdot(i.reshape(-1), i.reshape(-1)).double()
        if d is not None and i is not None:
            di = di + torch.vdot(d.reshape(-1), i.reshape(-1)).double()
    denom = dd + ii - 2.0 * di
    alpha = torch.where(denom > 0, (dd - di) / denom.clamp_min(torch.finfo(torch.float64).tiny), 0.5).clamp(0.0, 1.0)
    w_inter, w_disp = (beta * alpha).float(), (beta * (1.0 - alpha)).float()
    out: list[Tensor | None] = []
    for d, i in zip(g_disp, g_inter):
        if d is None and i is None:
            out.append(None)
        elif d is None:
            out.append(w_inter * i)
        elif i is None:
            out.append(w_disp * d)
        else:
            out.append(w_disp * d + w_inter * i)
    return out, alpha

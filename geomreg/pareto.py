"""Two-objective min-norm (MGDA) gradient combination, as MMPareto (Wei & Hu, ICML 2024) executes it.

Used by the MMPareto baseline (task vs unimodal gradients) and by DAGR's Pareto-balanced weighting
(dispersion vs anchoring gradients, :func:`balance_geometry`). Pure functions on gradient tensors: no
autograd, no parameters touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .cascade import cascade_sum

__all__ = ["ParetoResult", "alpha_from_products", "balance_geometries", "balance_geometry", "geometry_alpha",
           "geometry_weights", "gradient_products", "grouped_products", "min_norm_weights", "pareto_combine"]

GradLike = Tensor | Sequence[Tensor | None]


def _as_list(g: GradLike) -> list[Tensor | None]:
    return [g] if isinstance(g, Tensor) else list(g)


def _present_pairs(g1: Sequence[Tensor | None], g2: Sequence[Tensor | None]) -> list[tuple[Tensor, Tensor]]:
    """The positions where either list has a tensor, paired, an absent one as zeros of the other's shape."""
    if len(g1) != len(g2):
        raise ValueError(f"gradient lists differ in length: {len(g1)} vs {len(g2)}")
    return [(a if a is not None else torch.zeros_like(b), b if b is not None else torch.zeros_like(a))
            for a, b in zip(g1, g2) if a is not None or b is not None]


def _dot_terms(g1: Sequence[Tensor], g2: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Per pair of tensors: ``<a,a>``, ``<b,b>``, ``<a,b>`` as three float64 vectors (:func:`_products`)."""
    aa, bb, ab = _products(g1, g2).view(-1, 3).double().unbind(1)  # one row (aa, bb, ab) per pair
    return aa, bb, ab


def _products(g1: Sequence[Tensor], g2: Sequence[Tensor]) -> Tensor:
    """``<a,a>``, ``<b,b>``, ``<a,b>`` of each pair of tensors, in one vector. Each product is one ``dot``
    in the gradients' dtype (no float64 copy of a gradient); the sums over tensors are taken in float64.
    Equal inputs give bitwise equal terms, so ``g1 == g2`` is seen exactly (zero denominator)."""
    products = []
    for a, b in zip(g1, g2):
        if a.numel() != b.numel():
            raise ValueError(f"g1 and g2 must have the same number of elements, got {a.numel()} and {b.numel()}")
        if a.dim() != 1:  # a 1-d tensor is its own flat view: one dispatch less per tensor of a small model
            a, b = a.reshape(-1), b.reshape(-1)
        products += (a.dot(a), b.dot(b), a.dot(b))
    return torch.stack(products) if products else torch.zeros(0, dtype=torch.float64)


def _min_norm_w1(v1v1: Tensor, v2v2: Tensor, v1v2: Tensor) -> Tensor:
    """The solver's weight of g1 from the three global dot products, branch-free (``torch.where``)."""
    denom = v1v1 + v2v2 - 2.0 * v1v2
    closed = ((v2v2 - v1v2) / torch.where(denom > 0, denom, 1.0)).clamp(0.0, 1.0)
    w1 = torch.where(v1v2 >= v1v1, 0.999, torch.where(v1v2 >= v2v2, 0.001, closed))
    return torch.where(denom > 0, w1, 0.5)


def min_norm_weights(g1: GradLike, g2: GradLike) -> tuple[Tensor, Tensor]:
    """Weights ``(w1, 1 - w1)`` minimizing ``||w1 g1 + (1 - w1) g2||²`` over ``w1 ∈ [0, 1]``.

    Follows Sener & Koltun's ``MinNormSolver._min_norm_element_from2`` as MMPareto runs it, in its order:
    ``<g1,g2> >= ||g1||²`` → ``w1 = 0.999``; else ``<g1,g2> >= ||g2||²`` → ``w1 = 0.001``; else the closed
    form ``w1 = (||g2||² - <g1,g2>) / ||g1 - g2||²`` (strictly inside (0, 1) there). One deviation: when
    ``g1 == g2`` (zero denominator, incl. both zero) we return ``(0.5, 0.5)`` where the reference returns
    0.999; every weight is optimal then and the combination ``w1 g + (1-w1) g`` is the same vector.
    Inputs are tensors or lists of tensors, paired position by position (``None`` = zeros). Returns 0-d
    float64 tensors on the inputs' device, without a host sync.
    """
    l1, l2 = _as_list(g1), _as_list(g2)
    if len(l1) != len(l2):
        raise ValueError(f"g1 and g2 must hold the same number of tensors, got {len(l1)} and {len(l2)}")
    pairs = _present_pairs(l1, l2)
    aa, bb, ab = _dot_terms([a for a, _ in pairs], [b for _, b in pairs])
    w1 = _min_norm_w1(aa.sum(), bb.sum(), ab.sum())
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
    """MMPareto's gradient rule for one encoder (``docs/methods.md``, MMPareto).

    ``cos`` = cosine of the flattened concatenations (0 if either is all-zero, like
    ``F.cosine_similarity``'s eps). ``cos > 0`` → weights (0.5, 0.5), else :func:`min_norm_weights`. Then,
    per tensor ℓ: ``g̃ = 2(w1 g_task,ℓ + w2 g_other,ℓ)``, ``r = ||g_task,ℓ + g_other,ℓ|| / ||g̃||``
    (r = 1 if ``||g̃|| = 0``), result ``gamma * max(r, 1) * g̃``: the min-norm direction with at least the norm of the
    plain sum, times gamma (1.5 hard-coded in MMPareto). Weights are global per encoder, magnitude per tensor.

    ``None`` (a parameter that got no gradient from one loss) is treated as zeros of the other's shape, both
    in the cosine/weights and per tensor; if both are ``None`` the output entry is ``None``.

    Vectorised and free of host syncs: three ``dot`` per tensor (summed in float64), the weights by
    ``torch.where``, one pass that writes ``w1 a + w2 b``, its norms by ``torch._foreach_norm`` and one
    ``torch._foreach_mul_`` by the per-tensor scale. ``||a + b||²`` is taken as ``<a,a> + <b,b> + 2<a,b>``.
    """
    if len(grads_task) != len(grads_other):
        raise ValueError(f"gradient lists differ in length: {len(grads_task)} vs {len(grads_other)}")
    for i, (a, b) in enumerate(zip(grads_task, grads_other)):
        if a is not None and b is not None and a.shape != b.shape:
            raise ValueError(f"gradient {i}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    index = [i for i, (a, b) in enumerate(zip(grads_task, grads_other)) if a is not None or b is not None]
    ga = [grads_task[i] if grads_task[i] is not None else torch.zeros_like(grads_other[i]) for i in index]
    gb = [grads_other[i] if grads_other[i] is not None else torch.zeros_like(grads_task[i]) for i in index]
    out: list[Tensor | None] = [None] * len(grads_task)
    if not index:
        half = torch.tensor(0.5, dtype=torch.float64)
        return ParetoResult(grads=out, weights=(half, half), cosine=torch.zeros((), dtype=torch.float64))

    aa, bb, ab = _dot_terms(ga, gb)
    n1, n2, d = aa.sum(), bb.sum(), ab.sum()
    both = (n1 > 0) & (n2 > 0)
    cosine = torch.where(both, d / torch.where(both, n1 * n2, 1.0).sqrt(), 0.0)
    w1 = torch.where(cosine > 0, 0.5, _min_norm_w1(n1, n2, d))
    w2 = 1.0 - w1

    dtype = ga[0].dtype
    w1_local = w1.to(dtype)
    mixed = [torch.lerp(b, a, w1_local) for a, b in zip(ga, gb)]  # w1 a + w2 b = g̃ / 2
    half_norm = torch.stack(torch._foreach_norm(mixed)).double()
    plain = (aa + bb + 2.0 * ab).clamp_min(0.0).sqrt()  # ||a + b|| per tensor
    # gamma · max(r, 1) · g̃ = gamma · max(||a + b|| / ||g̃/2||, 2) · (g̃ / 2); r = 1 where g̃ = 0
    scale = gamma * torch.where(half_norm > 0, plain / torch.where(half_norm > 0, half_norm, 1.0), 0.0).clamp_min(2.0)
    torch._foreach_mul_(mixed, list(scale.to(dtype).unbind()))
    for i, g in zip(index, mixed):
        out[i] = g
    return ParetoResult(grads=out, weights=(w1, w2), cosine=cosine)


def geometry_alpha(g_disp: Sequence[Tensor | None], g_inter: Sequence[Tensor | None]) -> Tensor:
    """α* of :func:`balance_geometry` alone: ``clip(<g_disp - g_inter, g_disp> / ||g_inter - g_disp||², 0, 1)``,
    0.5 when the two are equal (both zero or all ``None`` included). A 0-d float64 tensor, no host sync."""
    return alpha_from_products(*gradient_products(g_disp, g_inter))


def gradient_products(g_disp: Sequence[Tensor | None], g_inter: Sequence[Tensor | None]
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """``<g_disp, g_disp>``, ``<g_inter, g_inter>``, ``<g_disp, g_inter>`` over all tensors (``None`` counts
    as zeros): 0-d float64 tensors, each the float64 sum of per-tensor float32 products."""
    dd, ii, di = grouped_products([(g_disp, g_inter)])
    return dd[0], ii[0], di[0]


def grouped_products(groups: Sequence[tuple[Sequence[Tensor | None], Sequence[Tensor | None]]]
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`gradient_products` of several ``(g_disp, g_inter)`` groups (one per encoder) at once: three
    float64 vectors, entry ``e`` bitwise equal to group ``e`` alone (the same per-tensor products, summed
    over the same strided slice), with one stack and one float64 cast for all groups."""
    return _summed_per_group(*_group_products(groups))


def _group_products(groups: Sequence[tuple[Sequence[Tensor | None], Sequence[Tensor | None]]]
                    ) -> tuple[Tensor, list[int]]:
    """The :func:`_products` of every group's tensors in one vector, and how many tensors each group has."""
    sizes, firsts, seconds = [], [], []
    for g_disp, g_inter in groups:
        pairs = _present_pairs(g_disp, g_inter)
        sizes.append(len(pairs))
        firsts += (d for d, _ in pairs)
        seconds += (i for _, i in pairs)
    return _products(firsts, seconds), sizes


def _summed_per_group(products: Tensor, sizes: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """The float64 sums of :func:`_group_products`' products over each group's tensors."""
    terms = products.view(-1, 3).double().unbind(1)
    sums, start = [], 0
    for size in sizes:
        sums += (t[start:start + size].sum() for t in terms)
        start += size
    dd, ii, di = torch.stack(sums).view(-1, 3).unbind(1)
    return dd, ii, di


_TINY = torch.finfo(torch.float64).tiny


def alpha_from_products(dd: Tensor, ii: Tensor, di: Tensor) -> Tensor:
    """The min-norm α of the anchoring gradient from the three inner products of :func:`gradient_products`."""
    denom = dd + ii - 2.0 * di
    return torch.where(denom > 0, (dd - di) / denom.clamp_min(_TINY), 0.5).clamp(0.0, 1.0)


def geometry_weights(alpha: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """The float32 weights ``(β α, β (1 - α))`` of the anchoring and the dispersion gradient."""
    return (beta * alpha).float(), (beta * (1.0 - alpha)).float()


def _alpha_of_floats(dd: float, ii: float, di: float) -> float:
    """:func:`alpha_from_products` of one group in Python floats: IEEE doubles, the same operations in the
    same order, so the same bits (``denom > 0`` is false for NaN, as in ``torch.where``)."""
    denom = dd + ii - 2.0 * di
    if not denom > 0:
        return 0.5
    alpha = (dd - di) / max(denom, _TINY)
    return alpha if math.isnan(alpha) else min(max(alpha, 0.0), 1.0)


def _alphas_and_weights(groups: Sequence[tuple[Sequence[Tensor | None], Sequence[Tensor | None]]], beta: float,
                        on_host: bool | None = None
                        ) -> tuple[Tensor, Sequence[Tensor], Sequence[Tensor]]:
    """α* of each group (a float64 vector) and its weights ``β α``, ``β (1 - α)`` (0-d float32 tensors).

    ``on_host`` (the default for CPU tensors): the per-tensor products are summed and α* and the weights
    computed on Python floats (:func:`~geomreg.cascade.cascade_sum`, :func:`_alpha_of_floats`), bitwise
    equal to the tensor operations of the other path (:func:`grouped_products`, :func:`alpha_from_products`,
    :func:`geometry_weights`), in 4 tensor operations after the products instead of about 35. Within a
    training step each tensor operation costs its dispatch and, right after a backward pass, some
    microseconds of cold caches: a measurable share of a small model's step (``docs/performance.md``).
    Otherwise everything stays on the device, without a host sync."""
    products, sizes = _group_products(groups)
    if not (products.device.type == "cpu" if on_host is None else on_host):
        alpha = alpha_from_products(*_summed_per_group(products, sizes))
        w_inter, w_disp = geometry_weights(alpha, beta)
        return alpha, w_inter.unbind(), w_disp.unbind()
    values, alphas, start = products.tolist(), [], 0
    for size in sizes:
        alphas.append(_alpha_of_floats(*(cascade_sum(values, 3 * start + k, 3, size) for k in range(3))))
        start += size
    # rounded to float32 as ``.float()`` rounds them; 0-d tensors, since a fused multiply by a Python
    # number wraps it in a new tensor for every gradient it scales
    weights = torch.tensor([beta * a for a in alphas] + [beta * (1.0 - a) for a in alphas],
                           dtype=torch.float32).unbind()
    return torch.tensor(alphas, dtype=torch.float64), weights[:len(alphas)], weights[len(alphas):]


def balance_geometry(
    g_disp: Sequence[Tensor | None], g_inter: Sequence[Tensor | None], beta: float, in_place: bool = False
) -> tuple[list[Tensor | None], Tensor]:
    """DAGR's Pareto-balanced weighting for one encoder (paper §3.2.5, Algorithm 1).

    ``α* = argmin_{α∈[0,1]} ||α g_inter + (1-α) g_disp||²`` in closed form,
    ``clip(<g_disp - g_inter, g_disp> / ||g_inter - g_disp||², 0, 1)`` (the paper's Eq. 8 is not
    public; this is the standard two-objective min-norm point), and the result is
    ``β (α* g_inter + (1 - α*) g_disp)`` per parameter tensor. When the two gradients are equal (both
    zero included) every α gives the same vector and α* = 0.5. When one of them is zero the min-norm
    point is the origin: the step is zero (a Pareto-stationary point of the two geometric terms).

    The three dot products are summed in float64 from per-tensor float32 products; on a GPU α* stays on
    the device (no host sync). ``None`` entries count as zeros; both ``None`` gives ``None``. With
    ``in_place`` the result is written into the given tensors (both lists are then used up): the same
    bits without a new gradient-sized tensor, which on a CPU means fresh pages to fault in.
    Returns the combined list and α* (0-d float64 tensor).
    """
    (out,), alphas = balance_geometries([(g_disp, g_inter)], beta, in_place)
    return out, alphas[0]


def balance_geometries(
    groups: Sequence[tuple[Sequence[Tensor | None], Sequence[Tensor | None]]], beta: float, in_place: bool = False
) -> tuple[list[list[Tensor | None]], Tensor]:
    """:func:`balance_geometry` of several ``(g_disp, g_inter)`` groups (one per encoder, each with its own
    α*), bitwise equal to one call per group. The small per-α operations run once on a vector of all the
    groups' α: at a small model's millisecond steps, each operation's dispatch is what they cost.
    Returns the combined lists and the α* vector (float64, one per group)."""
    alpha, w_inter, w_disp = _alphas_and_weights(groups, beta)
    outs, sums = [], ([], [])
    for (g_disp, g_inter), wd, wi in zip(groups, w_disp, w_inter):
        disp = [k for k, g in enumerate(g_disp) if g is not None]
        inter = [k for k, g in enumerate(g_inter) if g is not None]
        out: list[Tensor | None] = [None] * len(g_disp)
        for k, g in zip(disp, _scaled([g_disp[k] for k in disp], wd, in_place)):
            out[k] = g
        scaled_inter = dict(zip(inter, _scaled([g_inter[k] for k in inter], wi, in_place)))
        for k in inter:
            if out[k] is None:
                out[k] = scaled_inter[k]
            else:  # w_disp d + w_inter i, into the scaled w_disp d (a tensor of ours, or the caller's in place)
                sums[0].append(out[k])
                sums[1].append(scaled_inter[k])
        outs.append(out)
    if sums[0]:
        torch._foreach_add_(*sums)
    return outs, alpha


def _scaled(tensors: list[Tensor], weight: Tensor, in_place: bool) -> list[Tensor]:
    """``weight · t`` for every tensor in one fused call, written into the tensors with ``in_place``."""
    if not tensors:
        return []
    if in_place:
        torch._foreach_mul_(tensors, weight)
        return tensors
    return list(torch._foreach_mul(tensors, weight))

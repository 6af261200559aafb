"""DAGR as an ``nn.Module``: the paper's losses (Eqs. 3-6) and its Pareto-balanced weighting (Algorithm 1)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from . import functional as GF
from .lastlayer import LastLayer, LastLayerParameters
from .pareto import balance_geometries, geometry_weights

__all__ = ["ALPHA_RULES", "DAGR", "GeometryGradients", "GeometryTerms", "Regularizer", "TERMS", "WEIGHTINGS"]

WEIGHTINGS: tuple[str, ...] = ("pareto", "fixed")
# Which geometric terms are on: both (DAGR), or one of them (the paper's ablation rows 2 and 3).
TERMS: tuple[str, ...] = ("both", "disperse", "anchor")
# Where the Pareto weighting's α comes from: "exact" (Algorithm 1: the whole encoder's two gradients) or
# "last_layer" (the gradients of the encoder's last layer only: an approximation, not the paper's rule).
ALPHA_RULES: tuple[str, ...] = ("exact", "last_layer")


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
    when true, the loop calls ``geometry_gradients(terms, embeddings, params, alpha_params=..., fold=...)``
    before the task backward, adds the result's ``joined_loss`` (if any) to the loss it back-propagates,
    and applies the result after the host method has produced and processed its own gradient.
    """

    log_prefix: str
    adds_own_gradient: bool

    def __call__(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]: ...


@dataclass
class GeometryGradients:
    """DAGR's gradient ``g_geom`` for each encoder's parameters, computed before the task backward.

    ``apply()`` adds it to ``.grad`` (after the host method has produced and processed its own task
    gradient), so the task gradient itself is never changed: Algorithm 1's ``g_task + g_geom``.
    Folded instead (:meth:`DAGR.geometry_gradients` with ``fold``), ``grads`` is empty and
    ``joined_loss`` is a scalar whose gradient is ``g_geom``: added to the loss of a plain backward, it
    puts ``g_task + g_geom`` into ``.grad`` in one pass. ``alphas`` holds the α used per modality (the
    anchoring share; 1 for anchoring only, 0 for dispersion only); ``exact_alphas`` the exact α* beside
    an approximate one, when recorded.
    """

    params: dict[str, list[Tensor]]
    grads: dict[str, list[Tensor | None]]
    alphas: dict[str, Tensor]
    joined_loss: Tensor | None = None
    exact_alphas: dict[str, Tensor] = field(default_factory=dict)

    def tensors(self) -> list[Tensor]:
        """Every gradient tensor held (e.g. to average them across processes before :meth:`apply`)."""
        return [g for grads in self.grads.values() for g in grads if g is not None]

    def apply(self) -> None:
        present, absent = [], []
        for name, grads in self.grads.items():
            for p, g in zip(self.params[name], grads):
                if g is not None:
                    (absent if p.grad is None else present).append((p, g))
        for p, g in absent:
            p.grad = g.detach().clone()
        if present:  # .grad += g_geom for every tensor in one call
            torch._foreach_add_([p.grad for p, _ in present], [g for _, g in present])


class GeometryTerms(dict):
    """:meth:`DAGR.forward`'s named scalar terms. Under the Pareto weighting of both terms it also keeps
    the embeddings it was given and the views of them each term was computed on (``disperse_on``,
    ``anchor_on``): the gradient of a term with respect to its own views is that term's cotangent alone,
    so both cotangents come from one backward call (:meth:`DAGR.geometry_gradients`)."""

    def __init__(self, terms: Mapping[str, Tensor], embeddings: Sequence[Tensor] = (),
                 disperse_on: Sequence[Tensor] = (), anchor_on: Sequence[Tensor] = ()) -> None:
        super().__init__(terms)
        self.embeddings, self.disperse_on, self.anchor_on = list(embeddings), list(disperse_on), list(anchor_on)

    def views_of(self, zs: Sequence[Tensor]) -> bool:
        """Whether the per-term views were taken of exactly these embeddings."""
        return bool(self.disperse_on) and len(zs) == len(self.embeddings) and all(
            z is e for z, e in zip(zs, self.embeddings))


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
        t: dispersion temperature (not published; 2.0 was chosen on AV-Digits' validation split,
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
        alpha: ``"exact"`` (Algorithm 1) or ``"last_layer"``: **not the paper's rule**, α from the two
            terms' gradients on each encoder's last layer only, then ``g_geom`` from the combined cotangent
            ``β (α u_inter + (1 - α) u_disp)`` of the embeddings, in one pull-back (``docs/dagr.md``).
        record_exact_alpha: with ``alpha="last_layer"``, also compute the exact α* each step
            (the exact rule's two pull-backs, so no time is saved) and return it beside the one used.

    ``forward(embeddings)`` takes ``{name: (B, D) tensor}`` with >= 2 modalities and returns scalar
    tensors: ``loss`` (the fixed-form objective), ``disperse`` (``L_intra``), ``anchor`` (``L_inter``),
    ``disperse/<name>`` and ``anchor/<a>-<b>``. A term that is off is still computed, without a graph,
    so logs stay comparable across ablations.
    """

    log_prefix: ClassVar[str] = "dagr"

    def __init__(
        self,
        t: float = 2.0,
        tau: float = 0.25,
        anchor_form: str = "distance",
        weighting: str = "pareto",
        beta: float = 0.2,
        lambda_disperse: float = 0.14,
        lambda_anchor: float = 0.05,
        terms: str = "both",
        dispersion_form: str = "uniformity",
        alpha: str = "exact",
        record_exact_alpha: bool = False,
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
        self.alpha = _check_choice("alpha", alpha, ALPHA_RULES)
        if self.alpha != "exact" and (self.weighting, self.terms) != ("pareto", "both"):
            raise ValueError(f"alpha={alpha!r} approximates the α of the Pareto weighting of both terms; "
                             f"got weighting={weighting!r}, terms={terms!r}")
        if not isinstance(record_exact_alpha, bool):
            raise TypeError(f"record_exact_alpha must be a bool, got {type(record_exact_alpha).__name__}")
        if record_exact_alpha and self.alpha == "exact":
            raise ValueError("record_exact_alpha compares an approximate α with the exact one; alpha is 'exact'")
        self.record_exact_alpha = record_exact_alpha

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

    def forward(self, embeddings: Mapping[str, Tensor]) -> GeometryTerms:
        names, zs = self._unpack(embeddings)
        grad_on = torch.is_grad_enabled()
        # Only where two cotangents are taken (GeometryTerms): the fixed form's one backward gathers its
        # contributions at the embeddings themselves, in an order a view would change.
        split = grad_on and self.weighting == "pareto" and self.terms == "both"
        on_disp, on_anchor = ([z.view_as(z) for z in zs], [z.view_as(z) for z in zs]) if split else (zs, zs)
        with torch.set_grad_enabled(grad_on and self.disperses):
            d_terms = [GF.dispersion(z, t=self.t, form=self.dispersion_form) for z in on_disp]
        # Eq. 5 averages over ordered pairs m ≠ n; the distance is symmetric, so unordered pairs give
        # the same mean.
        pairs = list(itertools.combinations(range(len(zs)), 2))
        with torch.set_grad_enabled(grad_on and self.anchors):
            a_terms = [GF.anchoring(on_anchor[i], on_anchor[j], tau=self.tau, form=self.anchor_form) for i, j in pairs]
        disperse, anchor = torch.stack(d_terms).mean(), torch.stack(a_terms).mean()

        loss = sum((z.sum() * 0.0 for z in zs[1:]), zs[0].sum() * 0.0)  # exact, graph-connected zero
        if self.disperses:
            loss = loss + self.lambda_disperse * disperse
        if self.anchors:
            loss = loss + self.lambda_anchor * anchor
        out = {"loss": loss, "disperse": disperse, "anchor": anchor}
        out.update({f"disperse/{n}": v for n, v in zip(names, d_terms)})
        out.update({f"anchor/{names[i]}-{names[j]}": v for (i, j), v in zip(pairs, a_terms)})
        return GeometryTerms(out, zs, on_disp, on_anchor) if split else GeometryTerms(out)

    def geometry_gradients(
        self,
        terms: Mapping[str, Tensor],
        embeddings: Mapping[str, Tensor],
        params: Mapping[str, Iterable[Tensor]],
        alpha_params: Mapping[str, LastLayer | Iterable[Tensor]] | None = None,
        fold: bool = False,
    ) -> GeometryGradients:
        """``g_geom`` per encoder (Algorithm 1), from ``terms = self(embeddings)``.

        Call it before the task backward frees the encoders' graph. ``params`` maps each modality to its
        encoder's parameters (only these receive ``g_geom``). The terms are first differentiated with
        respect to the (small) embeddings; each term's cotangent is then pulled back through every
        encoder at once (one ``autograd.grad`` per term).

        With ``alpha="last_layer"``, ``alpha_params`` maps each modality to its encoder's last layer: a
        :class:`~geomreg.lastlayer.LastLayer` (whose recorded convolution may give α from its input, at
        fewer multiply-adds) or the parameters α is taken from; ``g_geom`` is one pull-back of the
        combined cotangent. With
        ``fold`` (the caller's backward is a plain backward of its loss, nothing processes the gradient
        before :meth:`GeometryGradients.apply`), that pull-back is left to the caller's backward: the
        result's ``joined_loss`` is to be added to its loss. ``fold`` saves nothing for the exact α,
        whose ``g_geom`` is made of the two pulled-back gradients, and is ignored there.
        """
        names = list(embeddings)
        zs = [embeddings[n] for n in names]
        params = {n: [p for p in params[n] if p.requires_grad] for n in names}
        u_disp, u_inter = self._term_cotangents(terms, names, zs)
        if self.alpha == "exact":
            return self._exact_gradients(zs, params, u_disp, u_inter)
        if alpha_params is None:
            raise ValueError(f"alpha={self.alpha!r} needs alpha_params: the parameters α is taken from, per modality")
        layers = {n: layer if isinstance(layer := alpha_params[n], LastLayer) else LastLayerParameters(layer)
                  for n in names}
        alphas = dict(zip(names, self._alphas(zs, layers, u_disp, u_inter)))
        exact = self._exact_gradients(zs, params, u_disp, u_inter).alphas if self.record_exact_alpha else {}
        cotangents = []
        for k, name in enumerate(names):
            w_inter, w_disp = geometry_weights(alphas[name], self.beta)
            cotangents.append(w_disp * u_disp[k] + w_inter * u_inter[k])
        if fold:  # Σ_m <u_m, z_m>: its gradient w.r.t. each z_m is u_m (the cotangents carry no graph)
            joined = sum((u * z).sum() for u, z in zip(cotangents, zs))
            return GeometryGradients(params=params, grads={}, alphas=alphas, joined_loss=joined, exact_alphas=exact)
        grads = _split(_pull_back(zs, [p for n in names for p in params[n]], cotangents), params)
        return GeometryGradients(params=params, grads=grads, alphas=alphas, exact_alphas=exact)

    def _exact_gradients(self, zs: list[Tensor], params: dict[str, list[Tensor]], u_disp: list[Tensor] | None,
                         u_inter: list[Tensor] | None) -> GeometryGradients:
        """Each term's gradient on every encoder, then α* and ``g_geom`` per encoder (Algorithm 1)."""
        flat = [p for ps in params.values() for p in ps]
        pulled = [_split(_pull_back(zs, flat, u), params) for u in (u_disp, u_inter) if u is not None]
        if self.weighting == "pareto" and self.terms == "both":
            disp, inter = pulled
            balanced, alpha = balance_geometries([(disp[name], inter[name]) for name in params], self.beta,
                                                 in_place=True)
            return GeometryGradients(params=params, grads=dict(zip(params, balanced)),
                                     alphas=dict(zip(params, alpha.unbind())))
        grads = {name: _weighted_sum([p[name] for p in pulled], self._single_weight()) for name in params}
        alphas = {name: torch.tensor(1.0 if self.terms == "anchor" else 0.0) for name in params}
        return GeometryGradients(params=params, grads=grads, alphas=alphas)

    @staticmethod
    def _alphas(zs: list[Tensor], layers: dict[str, LastLayer | LastLayerParameters], u_disp: list[Tensor],
                u_inter: list[Tensor]) -> list[Tensor]:
        """α per modality from the two terms' gradients on its last layer: one pull-back per term."""
        targets = {n: layer.pull_back_targets() for n, layer in layers.items()}
        flat = [t for ts in targets.values() for t in ts]
        g_disp, g_inter = (_split(_pull_back(zs, flat, u), targets) for u in (u_disp, u_inter))
        return [layer.alpha(g_disp[n], g_inter[n]) for n, layer in layers.items()]

    def _single_weight(self) -> list[float]:
        """Weights of the pulled-back gradients when no min-norm balancing happens."""
        if self.weighting == "pareto":  # one term: the min-norm point of one gradient is itself
            return [self.beta]
        return [w for w, on in ((self.lambda_disperse, self.disperses), (self.lambda_anchor, self.anchors)) if on]

    def _term_cotangents(self, terms: Mapping[str, Tensor], names: list[str], zs: list[Tensor]
                         ) -> tuple[list[Tensor] | None, list[Tensor] | None]:
        """The gradients of ``L_intra``'s sum over modalities and of ``L_inter`` w.r.t. the embeddings (None
        for a term that is off): one backward call on the terms' own views where :meth:`forward` took
        them, else one call per term. Both give the same bits: each view receives its term's gradient only."""
        disperse = None
        if self.disperses:  # summed from the first term: a sum from 0 is one more tensor operation per step
            first, *rest = (terms[f"disperse/{n}"] for n in names)
            disperse = sum(rest, first)
        anchor = terms["anchor"] if self.anchors else None
        if isinstance(terms, GeometryTerms) and terms.views_of(zs):
            both = self._cotangents([disperse, anchor], terms.disperse_on + terms.anchor_on)
            return both[:len(zs)], both[len(zs):]
        return (self._cotangents([disperse], zs) if disperse is not None else None,
                self._cotangents([anchor], zs) if anchor is not None else None)

    @staticmethod
    def _cotangents(outputs: list[Tensor], inputs: list[Tensor]) -> list[Tensor]:
        return list(torch.autograd.grad(outputs, inputs, retain_graph=True, allow_unused=True,
                                        materialize_grads=True))

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
                f"lambda_anchor={self.lambda_anchor}, dispersion_form={self.dispersion_form!r}, alpha={self.alpha!r}"
                + (", record_exact_alpha=True" if self.record_exact_alpha else ""))


def _pull_back(zs: list[Tensor], params: list[Tensor], cotangents: list[Tensor]) -> tuple[Tensor | None, ...]:
    """``Σ_k J_k^T u_k`` w.r.t. ``params``: one plain vector-Jacobian product through every encoder (each
    ``z_k`` depends on its own encoder only, so each parameter gets its own encoder's ``J^T u``)."""
    return torch.autograd.grad(zs, params, grad_outputs=cotangents, retain_graph=True, allow_unused=True)


def _split(grads: Sequence[Tensor | None], params: Mapping[str, list[Tensor]]) -> dict[str, list[Tensor | None]]:
    """A flat list of gradients, in the order of ``params``' values, back to one list per modality."""
    out, start = {}, 0
    for name, ps in params.items():
        out[name] = list(grads[start:start + len(ps)])
        start += len(ps)
    return out


def _weighted_sum(grad_lists: Sequence[list[Tensor | None]], weights: Sequence[float]) -> list[Tensor | None]:
    out: list[Tensor | None] = []
    for per_param in zip(*grad_lists):
        present = [(w, g) for w, g in zip(weights, per_param) if g is not None]
        out.append(sum((w * g for w, g in present[1:]), present[0][0] * present[0][1]) if present else None)
    return out

"""geomreg.DAGR module: aggregation, neutrality at zero weights, validation, gradcheck."""

import math

import pytest
import torch

import geomreg
import geomreg.functional as GF
from geomreg import DAGR

D64 = torch.float64


def embeddings(b: int = 6, d: int = 4, names: tuple[str, ...] = ("audio", "visual", "text"), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(b, d, generator=g, dtype=D64, requires_grad=True) for n in names}


def test_public_api() -> None:
    assert geomreg.DAGR is DAGR and geomreg.functional is GF
    for name in ("min_norm_weights", "pareto_combine", "ParetoResult", "balance_geometry", "GeometryGradients"):
        assert hasattr(geomreg, name)


def test_three_modalities_aggregation() -> None:
    emb = embeddings()
    reg = DAGR(t=1.5, tau=0.3, lambda_disperse=0.3, lambda_anchor=0.7, weighting="fixed")
    out = reg(emb)
    a, v, x = emb["audio"], emb["visual"], emb["text"]
    per_mod = [GF.dispersion(z, t=1.5) for z in (a, v, x)]
    per_pair = [GF.anchoring(p, q, tau=0.3) for p, q in ((a, v), (a, x), (v, x))]
    for n, val in zip(("audio", "visual", "text"), per_mod):
        assert out[f"disperse/{n}"].item() == pytest.approx(val.item(), rel=1e-12)
    for k, val in zip(("audio-visual", "audio-text", "visual-text"), per_pair):
        assert out[f"anchor/{k}"].item() == pytest.approx(val.item(), rel=1e-12)
    assert out["disperse"].item() == pytest.approx(sum(p.item() for p in per_mod) / 3, rel=1e-12)
    assert out["anchor"].item() == pytest.approx(sum(p.item() for p in per_pair) / 3, rel=1e-12)
    assert out["loss"].item() == pytest.approx(0.3 * out["disperse"].item() + 0.7 * out["anchor"].item(), rel=1e-12)


def test_two_modalities_by_hand() -> None:
    # audio (1,0),(0,1); visual (0,1),(1,0): disperse = -2t each = -4; pairs at 90 deg -> distance sqrt(2)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    out = DAGR(t=2.0, tau=0.5, lambda_disperse=0.1, lambda_anchor=0.2)({"a": a, "v": v})
    assert out["disperse"].item() == pytest.approx(-4.0)
    assert out["anchor"].item() == pytest.approx((math.sqrt(2) - 0.5) ** 2)
    assert out["loss"].item() == pytest.approx(0.1 * -4.0 + 0.2 * (math.sqrt(2) - 0.5) ** 2)
    assert set(out) == {"loss", "disperse", "anchor", "disperse/a", "disperse/v", "anchor/a-v"}


def test_three_modalities_eq5_by_hand() -> None:
    """Eq. 5 with M = 3: mean over samples and the 6 ordered pairs m != n of (distance - tau)+^2."""
    x = torch.tensor([[1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0]])  # 90 deg from x: distance sqrt(2)
    w = torch.tensor([[-1.0, 0.0]])  # 180 deg from x: distance 2; 90 deg from y
    out = DAGR(tau=0.25)({"x": x, "y": y, "w": w})
    h = lambda d: max(d - 0.25, 0.0) ** 2  # noqa: E731
    ordered = [h(math.sqrt(2)), h(2.0), h(math.sqrt(2))] * 2  # (x,y) (x,w) (y,w) and their reverses
    assert out["anchor"].item() == pytest.approx(sum(ordered) / 6)


def test_switched_off_term_has_no_graph_and_lambdas_zero_are_neutral() -> None:
    emb = embeddings()
    out = DAGR(weighting="fixed", lambda_disperse=0.0, lambda_anchor=0.0)(emb)
    assert out["loss"].item() == 0.0 and out["loss"].requires_grad
    out["loss"].backward()
    for z in emb.values():
        assert torch.equal(z.grad, torch.zeros_like(z))
    only_anchor = DAGR(terms="anchor", weighting="fixed", lambda_anchor=0.5)(embeddings(seed=1))
    assert only_anchor["anchor"].requires_grad and not only_anchor["disperse"].requires_grad
    assert math.isfinite(only_anchor["disperse"].item())  # still reported, for the logs
    assert only_anchor["loss"].item() == pytest.approx(0.5 * only_anchor["anchor"].item(), rel=1e-12)


def test_geometry_gradients_with_three_linear_encoders() -> None:
    """The user API: g_geom per encoder from one batched pull-back equals direct autograd + the rule."""
    g = torch.Generator().manual_seed(4)
    encoders = {n: torch.nn.Linear(5, 3).double() for n in ("a", "b", "c")}
    inputs = {n: torch.randn(6, 5, generator=g, dtype=D64) for n in encoders}
    emb = {n: encoders[n](inputs[n]) for n in encoders}
    reg = DAGR(t=1.0, tau=0.1, beta=0.3)
    terms = reg(emb)
    geom = reg.geometry_gradients(terms, emb, {n: e.parameters() for n, e in encoders.items()})
    for n, enc in encoders.items():
        params = list(enc.parameters())
        gd = torch.autograd.grad(terms[f"disperse/{n}"], params, retain_graph=True)
        gi = torch.autograd.grad(terms["anchor"], params, retain_graph=True)
        d, i = torch.cat([x.reshape(-1) for x in gd]), torch.cat([x.reshape(-1) for x in gi])
        alpha = float(((d - i) @ d / ((i - d) @ (i - d))).clamp(0, 1))
        assert geom.alphas[n].item() == pytest.approx(alpha)
        for got, x, y in zip(geom.grads[n], gd, gi):
            torch.testing.assert_close(got, 0.3 * (alpha * y + (1 - alpha) * x))
    geom.apply()
    torch.testing.assert_close(encoders["a"].weight.grad, geom.grads["a"][0])


def test_both_cotangents_from_one_backward_call_have_the_bits_of_one_call_per_term(monkeypatch) -> None:
    """The Pareto form's terms are computed on views of the embeddings, one set per term, so one backward
    call gives each term's cotangent; a plain dict of the terms (no views) takes one call per term."""
    g = torch.Generator().manual_seed(5)
    encoders = {n: torch.nn.Linear(5, 3) for n in ("a", "b", "c")}  # float32: summation order shows in the bits
    emb = {n: encoders[n](torch.randn(16, 5, generator=g)) for n in encoders}
    params = {n: list(e.parameters()) for n, e in encoders.items()}
    reg = DAGR(t=1.0, tau=0.1, beta=0.3)
    terms = reg(emb)
    assert isinstance(terms, geomreg.GeometryTerms) and terms.views_of(list(emb.values()))
    assert not terms.views_of([z.clone() for z in emb.values()])  # other embeddings: one call per term
    calls = []
    counting = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or counting(*a, **k))
    one_call = reg.geometry_gradients(terms, emb, params)
    assert len(calls) == 3  # both cotangents, then one pull-back per term
    per_term = reg.geometry_gradients(dict(terms), emb, params)
    assert len(calls) == 3 + 4
    for n in encoders:
        assert one_call.alphas[n].view(torch.int64) == per_term.alphas[n].view(torch.int64)
        assert all(torch.equal(x.view(torch.int32), y.view(torch.int32))
                   for x, y in zip(one_call.grads[n], per_term.grads[n]))
    for other in (DAGR(weighting="fixed"), DAGR(terms="anchor")):  # one backward of the loss; one term
        assert not other(emb).disperse_on
    with torch.no_grad():
        assert not reg(emb).disperse_on


def test_gradcheck_loss() -> None:
    emb = embeddings(b=4, d=3, names=("a", "b"), seed=2)
    reg = DAGR(t=2.0, tau=0.2, lambda_disperse=0.4, lambda_anchor=0.6, weighting="fixed")
    za, zb = emb["a"], emb["b"]
    sq = (torch.nn.functional.normalize(za, dim=1) - torch.nn.functional.normalize(zb, dim=1)).pow(2).sum(1)
    assert (sq.sqrt() - 0.2).abs().min() > 1e-3  # away from the hinge kink
    assert torch.autograd.gradcheck(lambda x, y: reg({"a": x, "b": y})["loss"], (za, zb))


def test_batch_of_one() -> None:
    emb = embeddings(b=1)
    out = DAGR()(emb)
    out["loss"].backward()
    assert out["disperse"].item() == 0.0
    for z in emb.values():
        assert torch.isfinite(z.grad).all()


def test_too_few_modalities_names_keys() -> None:
    with pytest.raises(ValueError, match="audio"):
        DAGR()({"audio": torch.randn(4, 3)})
    with pytest.raises(ValueError, match="at least 2"):
        DAGR()({})
    with pytest.raises(ValueError, match="batch size"):
        DAGR()({"a": torch.randn(4, 3), "b": torch.randn(5, 3)})


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"t": 0.0}, "t"),
        ({"t": -1.0}, "t"),
        ({"tau": -0.1}, "tau"),
        ({"lambda_disperse": -1.0}, "lambda_disperse"),
        ({"lambda_anchor": float("nan")}, "lambda_anchor"),
        ({"dispersion_form": "rbf"}, "dispersion_form"),
        ({"anchor_form": "cosine"}, "anchor_form"),
        ({"weighting": "mgda"}, "weighting"),
        ({"terms": "neither"}, "terms"),
        ({"beta": -0.1}, "beta"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DAGR(**kwargs)


def test_repr_and_no_parameters() -> None:
    reg = DAGR(dispersion_form="infonce_l2", anchor_form="squared_distance")
    r = repr(reg)
    assert "t=2.0" in r and "tau=0.25" in r and "infonce_l2" in r and "squared_distance" in r
    assert "weighting='pareto'" in r and "beta=0.2" in r
    assert list(reg.parameters()) == []


def test_regularizer_protocol_tells_a_gradient_of_its_own_from_a_loss_that_joins_the_objective():
    from geomreg.controls import control_loss

    assert DAGR().adds_own_gradient and DAGR().log_prefix == "dagr"
    assert not DAGR(weighting="fixed").adds_own_gradient
    vicreg = control_loss("vicreg")
    assert not vicreg.adds_own_gradient and vicreg.log_prefix == "control"

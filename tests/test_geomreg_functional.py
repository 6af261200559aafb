"""Hand-computed checks of geomreg.functional.dispersion / anchoring."""

import math

import pytest
import torch

import geomreg.functional as GF

D64 = torch.float64


def pts(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=D64)


# ---------------------------------------------------------------- dispersion: uniformity


def test_uniformity_two_points_by_hand() -> None:
    # (1,0),(0,1): ||d||^2 = 2 for both ordered pairs -> log(exp(-2t)) = -2t
    z = pts((1, 0), (0, 1))
    assert GF.dispersion(z).item() == pytest.approx(-4.0)  # default t=2
    assert GF.dispersion(z, t=1.0).item() == pytest.approx(-2.0)
    assert GF.dispersion(z, t=0.5).item() == pytest.approx(-1.0)


def test_uniformity_three_points_by_hand() -> None:
    # (1,0),(0,1),(-1,0): squared distances 2, 4, 2 -> log((2 e^{-2t} + e^{-4t}) / 3)
    z = pts((1, 0), (0, 1), (-1, 0))
    for t in (2.0, 1.0, 3.5):
        expected = math.log((2 * math.exp(-2 * t) + math.exp(-4 * t)) / 3)
        assert GF.dispersion(z, t=t).item() == pytest.approx(expected, rel=1e-12)
    # larger t -> more negative (the exponent scales with t)
    assert GF.dispersion(z, t=3.0) < GF.dispersion(z, t=2.0) < GF.dispersion(z, t=1.0)


def test_uniformity_matches_wang_isola_reference() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g, dtype=D64)
    zn = torch.nn.functional.normalize(z, dim=1)
    ref = torch.pdist(zn).pow(2).mul(-2.0).exp().mean().log()
    assert GF.dispersion(z).item() == pytest.approx(ref.item(), rel=1e-12)


def test_uniformity_more_spread_is_lower() -> None:
    clustered = pts((1, 0), (0.99, 0.1), (0.98, -0.1))
    spread = pts((1, 0), (-0.5, 0.866), (-0.5, -0.866))
    assert GF.dispersion(spread) < GF.dispersion(clustered)


# ---------------------------------------------------------------- dispersion: infonce_l2


def test_infonce_l2_by_hand() -> None:
    # (1,0),(0,1), D=2: full 2x2 matrix, diag 0, off-diag 2/D = 1 -> log((2 + 2 e^{-t}) / 4)
    z = pts((1, 0), (0, 1))
    for t in (1.0, 2.0):
        assert GF.dispersion(z, t=t, form="infonce_l2").item() == pytest.approx(
            math.log((1 + math.exp(-t)) / 2), rel=1e-12
        )
    # (2,0),(0,0),(0,2), D=2: sq dists 4, 8, 4 -> /D = 2, 4, 2; 9 terms: 3 zeros + 2*(2 e^{-2t} + e^{-4t})
    z = pts((2, 0), (0, 0), (0, 2))
    t = 1.0
    expected = math.log((3 + 2 * (2 * math.exp(-2 * t) + math.exp(-4 * t))) / 9)
    assert GF.dispersion(z, t=t, form="infonce_l2").item() == pytest.approx(expected, rel=1e-12)


def test_infonce_l2_t1_reproduces_wang_he_code() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 3, 4, generator=g, dtype=D64)  # trailing dims flattened like their code
    zf = z.reshape(6, -1)
    diff = torch.pdist(zf).pow(2) / zf.shape[1]
    diff = torch.cat((diff, diff, torch.zeros(zf.shape[0], dtype=D64)))  # full BxB matrix
    ref = torch.log(torch.exp(-diff).mean())
    assert GF.dispersion(z, t=1.0, form="infonce_l2").item() == pytest.approx(ref.item(), rel=1e-10)


def test_unknown_form_and_bad_t() -> None:
    z = pts((1, 0), (0, 1))
    with pytest.raises(ValueError, match="uniformity.*infonce_l2"):
        GF.dispersion(z, form="rbf")
    with pytest.raises(ValueError, match="t must"):
        GF.dispersion(z, t=0.0)
    with pytest.raises(ValueError):
        GF.dispersion(torch.ones(3))


# ---------------------------------------------------------------- anchoring


def unit(deg: float) -> tuple[float, float]:
    return (math.cos(math.radians(deg)), math.sin(math.radians(deg)))


def test_anchoring_by_hand() -> None:
    # ||a-b|| = 2 sin(angle/2): 30 deg -> 0.5176 (inside tau=0.6); 90 deg -> sqrt(2)
    a = pts((1, 0), (1, 0))
    b = pts(unit(30), unit(90))
    # paper Eq. 5: mean of (distance - tau)+^2
    assert GF.anchoring(a, b, tau=0.6).item() == pytest.approx((0 + (math.sqrt(2) - 0.6) ** 2) / 2)
    # earlier reconstruction: mean of (squared distance - tau)+, 2 - sqrt(3) ~ 0.268 inside tau=0.5
    assert GF.anchoring(a, b, tau=0.5, form="squared_distance").item() == pytest.approx((0 + 1.5) / 2)
    # 60 deg -> distance exactly 1; tau=0 gives the mean squared distance in both forms
    assert GF.anchoring(pts((1, 0)), pts(unit(60)), tau=0.0).item() == pytest.approx(1.0)
    assert GF.anchoring(pts((1, 0)), pts(unit(60)), tau=0.0, form="squared_distance").item() == pytest.approx(1.0)
    # 60 deg, tau = 0.25: (1 - 0.25)^2
    assert GF.anchoring(pts((1, 0)), pts(unit(60)), tau=0.25).item() == pytest.approx(0.5625)


def test_anchoring_gradient_by_hand() -> None:
    """d/dθ of (||a - b|| - τ)² for unit a = (1, 0) fixed and b at angle θ: 2 (d - τ) · cos(θ/2)."""
    theta = torch.tensor(math.radians(90), dtype=D64, requires_grad=True)
    a = torch.tensor([[1.0, 0.0]], dtype=D64)
    b = torch.stack([torch.cos(theta), torch.sin(theta)]).reshape(1, 2)
    GF.anchoring(a, b, tau=0.25).backward()
    d = math.sqrt(2)
    assert theta.grad.item() == pytest.approx(2 * (d - 0.25) * math.cos(math.radians(45)))


def test_anchoring_identical_rows_have_zero_not_nan_gradient() -> None:
    a = pts((1, 0), (0, 1)).requires_grad_()
    b = pts((1, 0), (0, 1)).requires_grad_()
    for tau in (0.0, 0.25):
        loss = GF.anchoring(a, b, tau=tau)
        (ga, gb) = torch.autograd.grad(loss, (a, b))
        assert loss.item() == 0.0 and torch.equal(ga, torch.zeros_like(ga)) and torch.equal(gb, torch.zeros_like(gb))


def test_anchoring_inside_band_is_exact_zero_with_zero_grad() -> None:
    a = pts((1, 0), (0, 1)).requires_grad_()
    b = pts(unit(20), unit(100)).requires_grad_()  # both pairs at 20 deg: distance 0.347 < 0.5
    loss = GF.anchoring(a, b, tau=0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(a.grad, torch.zeros_like(a)) and torch.equal(b.grad, torch.zeros_like(b))


def test_anchoring_shape_and_tau_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        GF.anchoring(torch.ones(3, 2), torch.ones(3, 4))
    with pytest.raises(ValueError, match="tau"):
        GF.anchoring(torch.ones(3, 2), torch.ones(3, 2), tau=-0.1)
    with pytest.raises(ValueError, match="anchoring form"):
        GF.anchoring(torch.ones(3, 2), torch.ones(3, 2), form="cosine")


# ---------------------------------------------------------------- gradcheck


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 3, generator=g, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: GF.dispersion(x, t=2.0), (z,))
    assert torch.autograd.gradcheck(lambda x: GF.dispersion(x, t=0.7, form="infonce_l2"), (z,))
    a = torch.randn(6, 4, generator=g, dtype=D64, requires_grad=True)
    b = torch.randn(6, 4, generator=g, dtype=D64, requires_grad=True)
    tau = 0.5
    sq = (torch.nn.functional.normalize(a, dim=1) - torch.nn.functional.normalize(b, dim=1)).pow(2).sum(1)
    assert (sq - tau).abs().min() > 1e-3 and (sq.sqrt() - tau).abs().min() > 1e-3  # away from the kinks
    for form in GF.ANCHOR_FORMS:
        assert torch.autograd.gradcheck(lambda x, y: GF.anchoring(x, y, tau=tau, form=form), (a, b))


# ---------------------------------------------------------------- invariances


def test_permutation_and_scaling_invariances() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(8, 6, generator=g, dtype=D64)
    w = torch.randn(8, 6, generator=g, dtype=D64)
    perm = torch.randperm(8, generator=g)
    scale = torch.rand(8, 1, generator=g, dtype=D64) * 5 + 0.1
    for form in GF.DISPERSION_FORMS:
        assert GF.dispersion(z[perm], form=form).item() == pytest.approx(GF.dispersion(z, form=form).item())
    assert GF.dispersion(z * scale).item() == pytest.approx(GF.dispersion(z).item(), rel=1e-12)
    assert abs(GF.dispersion(z * scale, form="infonce_l2").item() - GF.dispersion(z, form="infonce_l2").item()) > 1e-3
    anc = GF.anchoring(z, w, tau=0.3)
    assert GF.anchoring(z[perm], w[perm], tau=0.3).item() == pytest.approx(anc.item(), rel=1e-12)
    assert GF.anchoring(z * scale, w * scale.flip(0), tau=0.3).item() == pytest.approx(anc.item(), rel=1e-12)


# ---------------------------------------------------------------- degenerate batches


@pytest.mark.parametrize("form", GF.DISPERSION_FORMS)
def test_batch_of_one_and_duplicates(form: str) -> None:
    z = torch.randn(1, 4, dtype=D64, requires_grad=True)
    out = GF.dispersion(z, form=form)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))
    z2 = pts((1, 2), (1, 2), (0, 1), (0, 0)).requires_grad_()  # duplicate rows + a zero row
    out2 = GF.dispersion(z2, form=form)
    out2.backward()
    assert torch.isfinite(out2) and torch.isfinite(z2.grad).all()


def test_anchoring_batch_of_one_and_empty() -> None:
    a = pts((1, 0)).requires_grad_()
    out = GF.anchoring(a, pts((-1, 0)), tau=0.5)  # distance 2 -> (2 - 0.5)^2
    assert out.item() == pytest.approx(2.25)
    out.backward()
    assert torch.isfinite(a.grad).all()
    e = torch.zeros(0, 3, requires_grad=True)
    out = GF.anchoring(e, torch.zeros(0, 3))
    assert out.item() == 0.0 and out.requires_grad

"""geomreg.pareto: MGDA min-norm weights and MMPareto's combination rule, by hand."""

import math

import pytest
import torch

from geomreg.pareto import ParetoResult, min_norm_weights, pareto_combine
from pareto_reference import official_rule


def T(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_min_norm_conflicting_by_hand() -> None:
    g1, g2 = T(1, 0), T(-0.5, 1)
    # <g1,g2> = -0.5, ||g2||^2 = 1.25, ||g1-g2||^2 = 1.5^2 + 1 = 3.25 -> w1 = 1.75 / 3.25 = 7/13
    w1, w2 = min_norm_weights(g1, g2)
    assert w1.item() == pytest.approx(7 / 13) and w2.item() == pytest.approx(6 / 13)
    d = w1 * g1 + w2 * g2  # = (4/13, 6/13)
    assert torch.allclose(d, T(4 / 13, 6 / 13))
    assert (d @ (g1 - g2)).item() == pytest.approx(0.0, abs=1e-12)  # interior optimum: d ⟂ (g1 - g2)


def test_min_norm_edge_cases_follow_reference_solver() -> None:
    # <g1,g2> = 2 >= ||g1||^2 = 1 -> 0.999 (g1 itself is the min-norm point)
    w1, w2 = min_norm_weights(T(1, 0), T(2, 0))
    assert w1.item() == pytest.approx(0.999) and w2.item() == pytest.approx(0.001)
    # <g1,g2> = 2 >= ||g2||^2 = 2 (and < ||g1||^2 = 4) -> 0.001
    w1, _ = min_norm_weights(T(2, 0), T(1, 1))
    assert w1.item() == pytest.approx(0.001)
    # one zero vector: <g1,g2> = 0 >= ||g1||^2 = 0 -> 0.999
    w1, _ = min_norm_weights(T(0, 0), T(1, 0))
    assert w1.item() == pytest.approx(0.999)


def test_min_norm_degenerate_and_lists() -> None:
    for g in (T(1, 2), T(0, 0)):
        w1, w2 = min_norm_weights(g, g.clone())
        assert (w1.item(), w2.item()) == (0.5, 0.5)
    # lists of tensors are flattened and concatenated: same as the conflicting example
    w1, _ = min_norm_weights([T(1), torch.zeros(1, 1, dtype=torch.float64)], [T(-0.5), T(1).reshape(1, 1)])
    assert w1.item() == pytest.approx(7 / 13)


def test_combine_aligned() -> None:
    res = pareto_combine([T(1, 0)], [T(1, 1)], gamma=1.5)
    assert isinstance(res, ParetoResult)
    assert res.cosine.item() == pytest.approx(1 / math.sqrt(2))
    assert (res.weights[0].item(), res.weights[1].item()) == (0.5, 0.5)
    # g~ = 2(0.5 g1 + 0.5 g2) = (2,1) = g1 + g2 -> r = 1 -> 1.5 * (2, 1)
    assert torch.allclose(res.grads[0], T(3.0, 1.5))


def test_combine_conflict_per_tensor_rescaling() -> None:
    task = [T(1, 0), T(1)]
    other = [T(-0.5, 1), T(-3)]
    res = pareto_combine(task, other, gamma=1.5)
    # global: v1 = (1,0,1), v2 = (-0.5,1,-3); <v1,v2> = -3.5 < 0; ||v2||^2 = 10.25; ||v1-v2||^2 = 19.25
    # w1 = (10.25 + 3.5) / 19.25 = 5/7, w2 = 2/7
    assert res.cosine.item() < 0
    assert res.weights[0].item() == pytest.approx(5 / 7) and res.weights[1].item() == pytest.approx(2 / 7)
    # tensor 1: g~ = 2(5/7 (1,0) + 2/7 (-0.5,1)) = (8/7, 4/7), ||g~|| = 4 sqrt5 / 7; ||(0.5,1)|| = sqrt5 / 2
    #           r = 7/8 < 1 -> 1.5 * (8/7, 4/7) = (12/7, 6/7)
    assert torch.allclose(res.grads[0], T(12 / 7, 6 / 7))
    # tensor 2: g~ = 2(5/7 - 6/7) = -2/7; ||1 - 3|| = 2 -> r = 7 > 1 -> 1.5 * 7 * (-2/7) = -3
    assert torch.allclose(res.grads[1], T(-3.0))


def test_combine_zero_vectors_and_none() -> None:
    # task gradient all zero: cos := 0 -> solver gives w1 = 0.999, g~ = 0.002 g2, r = 500 -> 1.5 g2
    res = pareto_combine([T(0, 0)], [T(1, 0)])
    assert res.cosine.item() == 0.0 and res.weights[0].item() == pytest.approx(0.999)
    assert torch.allclose(res.grads[0], T(1.5, 0))
    # both zero: no NaN, zero output
    res = pareto_combine([T(0, 0)], [T(0, 0)])
    assert torch.equal(res.grads[0], T(0, 0))
    # None = zeros of the other's shape; both None -> None
    res = pareto_combine([None, T(1, 0), None], [T(1), T(1, 1), None])
    ref = pareto_combine([T(0), T(1, 0)], [T(1), T(1, 1)])
    assert res.grads[2] is None
    assert torch.allclose(res.grads[0], ref.grads[0]) and torch.allclose(res.grads[1], ref.grads[1])


def test_combine_errors_and_dtype() -> None:
    with pytest.raises(ValueError, match="length"):
        pareto_combine([T(1)], [])
    with pytest.raises(ValueError, match="shapes"):
        pareto_combine([T(1, 0)], [T(1)])
    res = pareto_combine([torch.tensor([1.0, 0.0])], [torch.tensor([-0.5, 1.0])])
    assert res.grads[0].dtype == torch.float32


@pytest.mark.parametrize("conflict", [False, True])
def test_combine_matches_the_plain_float64_rule_on_encoder_like_lists(conflict) -> None:
    """Float32 tensors of conv-like shapes and very different norms: the vectorised result equals the plain
    float64 rule to float precision, with and without a conflict."""
    gen = torch.Generator().manual_seed(3)
    shapes = [(64, 3, 7, 7), (64,), (64,), (128, 64, 3, 3), (128,), (10, 128)]
    scales = [10.0 ** (i % 3 - 1) for i in range(len(shapes))]
    task = [torch.randn(s, generator=gen) * c for s, c in zip(shapes, scales)]
    other = [(-3.0 if conflict else 0.5) * t + torch.randn(t.shape, generator=gen) * c for t, c in zip(task, scales)]
    res = pareto_combine(task, other, gamma=1.5)
    expected, w1, cos = official_rule(task, other, 1.5)
    assert (cos < 0) == conflict and (w1 != 0.5) == conflict
    assert res.cosine.item() == pytest.approx(cos, rel=1e-5)
    assert res.weights[0].item() == pytest.approx(w1, rel=1e-5)
    for got, want in zip(res.grads, expected):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5 * want.abs().max().item())

"""Representation-geometry diagnostics against hand-computed cases and invariants."""
import json
import math

import pytest
import torch

from geomreg.geometry import (
    cosine_histogram,
    cross_modal_deviation,
    delta_mu,
    effective_rank,
    geometry_summary,
    ks_statistic,
    paired_cosines,
    recall_at_k,
    cross_modal_cosine_margin,
    semantic_margin,
)


def plus_minus_axes(r: int, dim: int) -> torch.Tensor:
    """Rows ±e_1, …, ±e_r in R^dim: already centred, r equal singular values (√2)."""
    eye = torch.eye(dim)[:r]
    return torch.cat([eye, -eye])


# --- effective rank -------------------------------------------------------------------------

@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_effective_rank_of_equal_singular_values_is_the_rank(r):
    assert effective_rank(plus_minus_axes(r, dim=6)) == pytest.approx(r, abs=1e-9)


def test_effective_rank_by_hand():
    # rows (±3, 0), (0, ±1): centred, singular values 3√2 and √2 -> p = (3/4, 1/4)
    z = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    # exp(H) = (3/4)^(-3/4) (1/4)^(-1/4) = 4 / 3^(3/4)
    assert effective_rank(z) == pytest.approx(4 / 3 ** 0.75, rel=1e-12)


def test_effective_rank_centres_scales_and_rotates_away():
    z = torch.randn(50, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    base = effective_rank(z)
    assert 1 <= base <= 8
    assert effective_rank(7.5 * z) == pytest.approx(base, rel=1e-10)
    assert effective_rank(z + torch.full((1, 8), 100.0)) == pytest.approx(base, rel=1e-10)  # a common offset
    assert effective_rank(z @ q) == pytest.approx(base, rel=1e-8)


def test_effective_rank_without_spread_is_zero():
    assert effective_rank(torch.zeros(4, 3)) == 0.0
    assert effective_rank(torch.tensor([[0.1, 0.2, 0.3]]).repeat(7, 1)) == 0.0


# --- paired cosines, deviation, Δμ ----------------------------------------------------------

def test_cross_modal_deviation_by_hand():
    za = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    zb = torch.tensor([[0.0, 5.0], [0.0, 1.0], [-1.0, 0.0]])
    # normalized pairs: orthogonal (|d|² = 2), equal (0), opposite (4) -> mean 2 = 2 - 2 * mean cos (0)
    assert cross_modal_deviation(za, zb) == pytest.approx(2.0)
    matched, _ = paired_cosines(za, zb)
    assert cross_modal_deviation(za, zb) == pytest.approx(2 - 2 * matched.mean().item())


def test_paired_cosines_and_delta_mu_by_hand():
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    matched, mismatched = paired_cosines(za, zb)
    s = 1 / math.sqrt(2)
    assert matched.tolist() == pytest.approx([s, 1.0])
    assert sorted(mismatched.tolist()) == pytest.approx([0.0, s])  # cos(a0, b1) = 0, cos(a1, b0) = s
    assert delta_mu(matched, mismatched) == pytest.approx((s + 1) / 2 - s / 2)


# --- Kolmogorov–Smirnov ---------------------------------------------------------------------

def test_ks_by_hand_with_ties():
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 4.0])
    # at v = 1, 2, 3, 4: F_x = 1/3, 2/3, 1, 1; F_y = 0, 2/3, 2/3, 1 -> sup |F_x - F_y| = 1/3
    assert ks_statistic(x, y) == pytest.approx(1 / 3)
    assert ks_statistic(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0, 1.0])) == 0.0
    assert ks_statistic(torch.tensor([0.0, 0.0]), torch.tensor([1.0])) == 1.0
    assert ks_statistic(x, y) == ks_statistic(y, x)


def test_ks_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        # rounded to one decimal: many ties within and across the samples
        x = (torch.randn(40, generator=g) * 10).round() / 10
        y = (torch.randn(300, generator=g) * 10 + 3).round() / 10
        expected = stats.ks_2samp(x.numpy(), y.numpy(), method="asymp").statistic
        assert ks_statistic(x, y) == pytest.approx(expected, abs=1e-12)
        assert ks_statistic(y, x) == pytest.approx(expected, abs=1e-12)


# --- Recall@K -------------------------------------------------------------------------------

def test_recall_at_k_by_hand():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, -1.0]])
    # q0: own 1 is the best -> rank 0; q1: own 0.0995 beats g0 (0) and g2 (-0.707) -> rank 0;
    # q2: own -1 is the worst (g0 0.707, g1 0.774) -> rank 2
    assert recall_at_k(query, gallery, ks=(1, 2, 3, 10)) == pytest.approx({1: 2 / 3, 2: 2 / 3, 3: 1.0, 10: 1.0})


def test_recall_at_k_ties_are_pessimistic():
    collapsed = torch.ones(5, 3)
    assert recall_at_k(collapsed, collapsed, ks=(1, 4, 5)) == {1: 0.0, 4: 0.0, 5: 1.0}
    identity = torch.eye(4)
    assert recall_at_k(identity, identity, ks=(1,)) == {1: 1.0}


# --- semantic margin ------------------------------------------------------------------------

def test_semantic_margin_eq45_by_hand():
    # class 0: (0,0), (2,0) -> within distance 2; class 1: (0,3) alone; class 2: (0,-1), (0,-2) -> within 1
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, -1.0], [0.0, -2.0]])
    labels = torch.tensor([0, 0, 1, 2, 2])
    within = (2.0 + 1.0) / 2  # class 1 has no pair of distinct samples
    d01 = (3.0 + math.sqrt(13)) / 2
    d02 = (1.0 + 2.0 + math.sqrt(5) + math.sqrt(8)) / 4
    d12 = (4.0 + 5.0) / 2
    between = (d01 + d02 + d12) / 3  # ordered pairs y != y' give each unordered pair twice
    assert semantic_margin(z, labels) == pytest.approx(between - within)


def test_semantic_margin_undefined_without_pairs():
    z = torch.eye(3)
    assert math.isnan(semantic_margin(z, torch.tensor([0, 0, 0])))  # one class
    assert math.isnan(semantic_margin(z, torch.tensor([0, 1, 2])))  # no class with two samples


def test_cross_modal_cosine_margin_by_hand():
    za = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    s = 1 / math.sqrt(2)
    # off-diagonal same class: (0,1) cos = s, (1,0) cos = 0 -> mean s/2
    # different class: (0,2) 0, (1,2) 0, (2,0) 1, (2,1) s -> mean (1 + s)/4; diagonal pairs ignored
    assert cross_modal_cosine_margin(za, zb, labels) == pytest.approx(s / 2 - (1 + s) / 4)
    z = torch.eye(3)
    assert math.isnan(cross_modal_cosine_margin(z, z, torch.tensor([0, 0, 0])))


# --- histograms and the summary -------------------------------------------------------------

def test_cosine_histogram_edges():
    cos = torch.tensor([-1.0, -1.0000001, -0.5, 0.0, 0.49, 0.5, 1.0, 1.0000001])
    # 4 bins: [-1,-.5) [-.5,0) [0,.5) [.5,1]
    assert cosine_histogram(cos, bins=4) == [2, 1, 2, 3]


def paired_embeddings(n=60, dim=8, classes=3, seed=0):
    """Two modalities sharing a class signal plus independent noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, dim, generator=g)
    return {
        "audio": centres[labels] + 0.5 * torch.randn(n, dim, generator=g),
        "visual": centres[labels] + 0.5 * torch.randn(n, dim, generator=g),
    }, labels


def test_geometry_summary_agrees_with_the_functions_and_is_json():
    emb, labels = paired_embeddings()
    s = geometry_summary(emb, labels, ks=(1, 5), bins=10)
    assert s["n"] == 60 and s["bins"] == 10
    assert set(s["effective_rank"]) == {"audio", "visual", "mean"}
    assert s["effective_rank"]["mean"] == pytest.approx((s["effective_rank"]["audio"]
                                                         + s["effective_rank"]["visual"]) / 2)
    pair = s["pairs"]["audio-visual"]
    matched, mismatched = paired_cosines(emb["audio"], emb["visual"])
    assert pair["deviation"] == pytest.approx(cross_modal_deviation(emb["audio"], emb["visual"]))
    assert pair["delta_mu"] == pytest.approx(pair["matched_mean"] - pair["mismatched_mean"])
    assert pair["ks"] == pytest.approx(ks_statistic(matched, mismatched))
    assert pair["cosine_margin"] == pytest.approx(cross_modal_cosine_margin(emb["audio"], emb["visual"], labels))
    assert pair["cosine_margin"] > 0  # the shared class signal separates the classes
    margins = s["semantic_margin"]
    assert margins["audio"] == pytest.approx(semantic_margin(emb["audio"], labels))
    fused = torch.cat([emb["audio"], emb["visual"]], dim=1)
    assert margins["fused"] == pytest.approx(semantic_margin(fused, labels)) and margins["fused"] > 0
    assert pair["recall"]["audio->visual"] == pytest.approx(
        {str(k): v for k, v in recall_at_k(emb["audio"], emb["visual"], (1, 5)).items()})
    assert set(pair["recall"]) == {"audio->visual", "visual->audio"}
    assert sum(pair["hist"]["matched"]) == 60 and sum(pair["hist"]["mismatched"]) == 60 * 59
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # plain, strictly JSON-safe values


def test_geometry_summary_pairs_and_single_modality():
    emb, labels = paired_embeddings()
    emb["text"] = emb["audio"].flip(1)
    assert list(geometry_summary(emb, labels)["pairs"]) == ["audio-visual", "audio-text", "visual-text"]
    alone = geometry_summary({"audio": emb["audio"]}, labels)
    assert alone["pairs"] == {} and set(alone["effective_rank"]) == {"audio", "mean"}


def test_geometry_summary_subsamples_deterministically():
    emb, labels = paired_embeddings(n=100)
    a = geometry_summary(emb, labels, max_samples=30)
    assert a["n"] == 30 and a == geometry_summary(emb, labels, max_samples=30)
    assert a != geometry_summary(emb, labels, max_samples=30, seed=1)
    # the same rows are drawn in every modality: pairs stay paired
    assert sum(a["pairs"]["audio-visual"]["hist"]["matched"]) == 30


def test_geometry_summary_rejects_unpaired_rows():
    emb, labels = paired_embeddings()
    with pytest.raises(ValueError, match="paired rows"):
        geometry_summary({"audio": emb["audio"], "visual": emb["visual"][:-1]}, labels)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_off_diagonal_is_the_masked_entries_in_row_major_order(n):
    from geomreg.geometry import off_diagonal

    c = torch.arange(n * n, dtype=torch.float64).reshape(n, n)
    assert torch.equal(off_diagonal(c), c[~torch.eye(n, dtype=torch.bool)])

"""DAGR's Pareto-balanced weighting (Algorithm 1): the per-encoder rule and its place in the training step."""
import math

import pytest
import torch

from baselines import METHODS
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.train.trainer import Trainer
from geomreg import DAGR, balance_geometry
from geomreg.pareto import _alphas_and_weights, balance_geometries


def T(*values):
    return torch.tensor(values, dtype=torch.float32)


# --- the rule for one encoder, hand-computed ---------------------------------------------------------
@pytest.mark.parametrize("g_disp, g_inter, beta, alpha, expected", [
    ((1.0, 0.0), (-1.0, 0.0), 0.2, 0.5, (0.0, 0.0)),  # conflicting, equal norms: they cancel
    ((1.0, 0.0), (0.0, 1.0), 0.2, 0.5, (0.1, 0.1)),  # orthogonal, equal norms
    ((2.0, 0.0), (0.0, 1.0), 1.0, 0.8, (0.4, 0.8)),  # α = (4 - 0) / (4 + 1)
    ((1.0, 0.0), (2.0, 0.0), 0.2, 0.0, (0.2, 0.0)),  # aligned: the shorter one (α clipped at 0)
    ((3.0, 0.0), (1.0, 0.0), 0.5, 1.0, (0.5, 0.0)),  # aligned: the shorter one (α clipped at 1)
    ((1.0, 0.0), (0.0, 0.0), 0.2, 1.0, (0.0, 0.0)),  # one zero: the origin is in the hull
    ((0.0, 0.0), (0.0, 3.0), 0.2, 0.0, (0.0, 0.0)),
    ((0.0, 0.0), (0.0, 0.0), 0.2, 0.5, (0.0, 0.0)),  # both zero
])
def test_balance_geometry_hand_computed(g_disp, g_inter, beta, alpha, expected):
    combined, a = balance_geometry([T(*g_disp)], [T(*g_inter)], beta)
    assert a.item() == pytest.approx(alpha)
    torch.testing.assert_close(combined[0], T(*expected))


def test_balance_geometry_sums_dot_products_over_tensors():
    # Split (2, 0 | 0) and (0, 0 | 1) over two tensors: same α = 0.8 as the single-vector case.
    combined, a = balance_geometry([T(2.0, 0.0), T(0.0)], [T(0.0, 0.0), T(1.0)], 1.0)
    assert a.item() == pytest.approx(0.8)
    torch.testing.assert_close(combined[0], T(0.4, 0.0))
    torch.testing.assert_close(combined[1], T(0.8))


def test_balance_geometry_none_entries():
    combined, a = balance_geometry([T(2.0, 0.0), None, None], [None, T(1.0), None], 1.0)
    assert a.item() == pytest.approx(0.8)
    torch.testing.assert_close(combined[0], T(0.4, 0.0))
    torch.testing.assert_close(combined[1], T(0.8))
    assert combined[2] is None
    with pytest.raises(ValueError, match="differ in length"):
        balance_geometry([T(1.0)], [], 1.0)


def test_balance_geometry_in_place_gives_the_same_bits_and_the_pure_form_keeps_its_inputs():
    gen = torch.Generator().manual_seed(0)
    g_disp = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen), None, torch.randn(2, generator=gen)]
    g_inter = [torch.randn(5, 3, generator=gen), None, torch.randn(4, generator=gen), torch.randn(2, generator=gen)]
    copies = lambda grads: [None if g is None else g.clone() for g in grads]
    before = copies(g_disp), copies(g_inter)
    pure, alpha = balance_geometry(g_disp, g_inter, 0.3)
    for kept, original in zip((*g_disp, *g_inter), (*before[0], *before[1])):
        assert kept is None or torch.equal(kept, original)
    w_inter, w_disp = (0.3 * alpha).float(), (0.3 * (1 - alpha)).float()
    by_hand = [w_disp * g_disp[0] + w_inter * g_inter[0], w_disp * g_disp[1], w_inter * g_inter[2],
               w_disp * g_disp[3] + w_inter * g_inter[3]]
    d, i = copies(g_disp), copies(g_inter)
    in_place, alpha_in_place = balance_geometry(d, i, 0.3, in_place=True)
    assert torch.equal(alpha, alpha_in_place)
    for a, b, c in zip(pure, in_place, by_hand):
        assert torch.equal(a, c) and torch.equal(b, c)
    assert in_place[0] is d[0] and in_place[2] is i[2]  # written into the given tensors
    assert balance_geometry([None], [None], 0.3, in_place=True)[0] == [None]


def alpha_one_group(g_disp, g_inter):
    """α* as one encoder's own sums make it: per-tensor float32 ``vdot``s, stacked, cast to float64 once and
    summed per product (the sums of a strided column)."""
    pairs = [(d if d is not None else torch.zeros_like(i), i if i is not None else torch.zeros_like(d))
             for d, i in zip(g_disp, g_inter) if d is not None or i is not None]
    if not pairs:
        return torch.tensor(0.5, dtype=torch.float64)
    products = [p for d, i in pairs for p in (torch.vdot(d.reshape(-1), d.reshape(-1)),
                                             torch.vdot(i.reshape(-1), i.reshape(-1)),
                                             torch.vdot(d.reshape(-1), i.reshape(-1)))]
    dd, ii, di = (column.sum() for column in torch.stack(products).view(-1, 3).double().unbind(1))
    denom = dd + ii - 2.0 * di
    return torch.where(denom > 0, (dd - di) / denom.clamp_min(torch.finfo(torch.float64).tiny), 0.5).clamp(0.0, 1.0)


def test_balance_geometries_gives_each_group_the_bits_of_its_own_sums():
    # A float64 sum of float32 products of similar size is exact in any order; tensors scaled by 1e-4..1e4
    # make it order-sensitive, so a group summed in another order (or with its neighbours' products) would
    # show in the last bits of α.
    gen = torch.Generator().manual_seed(1)
    shapes = [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (5, 3), (1,)]

    def grads(n):
        scales = 10.0 ** (8 * torch.rand(n, generator=gen, dtype=torch.float64) - 4)
        return [None if k % 7 == 3 else torch.randn(shapes[k % len(shapes)], generator=gen) * float(scales[k])
                for k in range(n)]

    groups = [(grads(11), grads(11)), ([], []), (grads(4), [None] * 4), (grads(23), grads(23))]
    groups[3][1][5] = groups[3][0][5].clone()  # one tensor equal in both terms
    copies = lambda gs: [None if g is None else g.clone() for g in gs]
    together, alphas = balance_geometries([(copies(d), copies(i)) for d, i in groups], 0.2, in_place=True)
    assert alphas.shape == (4,) and alphas.dtype == torch.float64
    for (d, i), got, got_alpha in zip(groups, together, alphas):
        want_alpha = alpha_one_group(d, i)
        assert got_alpha.view(torch.int64) == want_alpha.view(torch.int64)
        w_inter, w_disp = (0.2 * want_alpha).float(), (0.2 * (1.0 - want_alpha)).float()
        want = [None if a is None and b is None else w_disp * a if b is None else w_inter * b if a is None
                else w_disp * a + w_inter * b for a, b in zip(d, i)]
        assert len(got) == len(want)
        assert all(w is None and g is None or torch.equal(w.view(torch.int32), g.view(torch.int32))
                   for w, g in zip(want, got))
    assert alphas[1] == 0.5 and together[1] == []  # an encoder without parameters
    assert alphas[2] == 1.0  # anchoring gradient zero: all weight on it, the origin
    assert all(not g.any() for g in together[2] if g is not None)
    one, one_alpha = balance_geometry(copies(groups[3][0]), copies(groups[3][1]), 0.2)
    assert one_alpha.view(torch.int64) == alphas[3].view(torch.int64) and all(
        w is None and g is None or torch.equal(w, g) for w, g in zip(one, together[3]))


def test_alpha_on_the_host_has_the_bits_of_the_tensor_path():
    # The CPU computes α* and its weights on Python floats; the tensor path (GPUs) must give the same bits,
    # for ordinary groups and for the degenerate ones: equal terms, a zero term, overflow, NaN, subnormals.
    gen = torch.Generator().manual_seed(2)
    shapes = [(8, 1, 3, 3), (8,), (8,), (16, 8, 3, 3), (16,), (16,), (32, 16, 3, 3), (32,), (32,)]

    def grads(scale):
        return [torch.randn(s, generator=gen) * scale for s in shapes]

    groups = [(grads(10.0 ** e), grads(10.0 ** (e + k % 3 - 1))) for k, e in enumerate(range(-30, 31, 3))]
    groups.append((grads(1.0), [g.clone() for g in groups[-1][0]]))  # equal terms: α* = 0.5
    groups.append(([g * 0 for g in grads(1.0)], grads(1.0)))  # no dispersion gradient
    groups.append((grads(1e30), grads(1e30)))  # products overflow float32
    groups.append((grads(1.0), grads(1.0)))
    groups[-1][1][4][0] = float("nan")
    groups.append((grads(1e-25), grads(1e-25)))  # products underflow to subnormals and zeros
    for beta in (0.2, 1e39):  # 1e39: β α past float32's range, an infinite weight on both paths
        (alpha, *host), (want_alpha, *device) = (_alphas_and_weights(groups, beta, on_host=on_host)
                                                 for on_host in (True, False))
        assert alpha.dtype == torch.float64 and torch.equal(alpha.view(torch.int64), want_alpha.view(torch.int64))
        for got, want in zip(host, device):  # one 0-d float32 weight per group on both paths
            got, want = torch.stack(list(got)), torch.stack(list(want))
            assert got.dtype == want.dtype == torch.float32
            assert torch.equal(got.view(torch.int32), want.view(torch.int32))
    assert {0.5, 0.0} <= set(alpha.tolist()) and alpha.isnan().any()  # equal; no dispersion; NaN
    assert math.inf in torch.stack(list(host[0])).tolist()


# --- the training step: g_task + g_geom -------------------------------------------------------------
DAGR_METHODS = sorted(n for n, cls in METHODS.items() if cls.supports_dagr and not n.startswith("test_"))


def one_step_grads(debug_raw, tmp_path, method, dagr):
    cfg = resolve_run({**debug_raw, "method": {"name": method}, "dagr": dagr})
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path / str(dagr)))
    trainer.method.on_epoch_start(0)
    batch = next(trainer.data.train.batches(16))
    trainer.compute_gradients(batch)
    return trainer, batch, {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def expected_geometry(trainer, batch, beta):
    """g_geom per parameter and α per encoder from the definitions: direct autograd of each term, α from
    flat dot products."""
    model = trainer.model
    model.train()
    out = model(batch.inputs)
    terms = trainer.regularizer(out.embeddings)
    expected, alphas = {}, {}
    for m in model.modalities:
        named = [(n, p) for n, p in model.named_parameters() if n.startswith(f"encoders.{m}.")]
        params = [p for _, p in named]
        g_d = torch.autograd.grad(terms[f"disperse/{m}"], params, retain_graph=True, allow_unused=True)
        g_i = torch.autograd.grad(terms["anchor"], params, retain_graph=True, allow_unused=True)
        flat = lambda gs: torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).double()
                                     for g, p in zip(gs, params)])
        d, i = flat(g_d), flat(g_i)
        alpha = alphas[m] = min(max(float((d - i) @ d / ((i - d) @ (i - d))), 0.0), 1.0)
        for (n, p), gd, gi in zip(named, g_d, g_i):
            gd = torch.zeros_like(p) if gd is None else gd
            gi = torch.zeros_like(p) if gi is None else gi
            expected[n] = beta * (alpha * gi + (1 - alpha) * gd)
    return expected, alphas


@pytest.mark.parametrize("method", DAGR_METHODS)
def test_pareto_adds_g_geom_and_leaves_the_method_gradient_unchanged(debug_raw, tmp_path, method):
    beta = 0.7
    _, _, host = one_step_grads(debug_raw, tmp_path, method, {"enabled": False})
    trainer, batch, with_dagr = one_step_grads(debug_raw, tmp_path, method,
                                               {"enabled": True, "beta": beta, "tau": 0.1})
    geom, _ = expected_geometry(trainer, batch, beta)
    assert set(with_dagr) == set(host)
    for name, grad in with_dagr.items():
        added = geom.get(name, torch.zeros_like(grad))  # heads get no g_geom
        torch.testing.assert_close(grad - added, host[name], rtol=1e-4, atol=1e-5)
    assert any(g.abs().max() > 0 for g in geom.values())


def test_single_term_arms_scale_one_gradient_by_beta(debug_raw, tmp_path):
    _, _, host = one_step_grads(debug_raw, tmp_path, "joint", {"enabled": False})
    trainer, batch, anchor = one_step_grads(debug_raw, tmp_path, "joint",
                                            {"enabled": True, "terms": "anchor", "beta": 0.5, "tau": 0.0})
    out = trainer.model(batch.inputs)
    term = trainer.regularizer(out.embeddings)["anchor"]
    params = [(n, p) for n, p in trainer.model.named_parameters() if n.startswith("encoders.")]
    grads = torch.autograd.grad(term, [p for _, p in params], allow_unused=True)
    for (n, _), g in zip(params, grads):
        if g is not None:
            torch.testing.assert_close(anchor[n] - host[n], 0.5 * g, rtol=1e-4, atol=1e-6)


def test_fixed_weighting_joins_the_loss(debug_raw, tmp_path):
    """Eq. 6: for joint training, the fixed form's gradient is that of task + λ_d L_intra + λ_a L_inter."""
    dagr = {"enabled": True, "weighting": "fixed", "lambda_disperse": 0.3, "lambda_anchor": 0.2, "tau": 0.0}
    trainer, batch, grads = one_step_grads(debug_raw, tmp_path, "joint", dagr)
    out = trainer.model(batch.inputs)
    total = sum(trainer.method.losses(out, batch).values())
    reg = DAGR(t=trainer.regularizer.t, tau=0.0, lambda_disperse=0.3, lambda_anchor=0.2)(out.embeddings)
    total = total + 0.3 * reg["disperse"] + 0.2 * reg["anchor"]
    names = list(grads)
    params = dict(trainer.model.named_parameters())
    for n, g in zip(names, torch.autograd.grad(total, [params[n] for n in names])):
        torch.testing.assert_close(grads[n], g, rtol=1e-4, atol=1e-6)


def test_alpha_and_the_terms_are_logged_per_encoder(debug_raw, tmp_path):
    trainer, batch, _ = one_step_grads(debug_raw, tmp_path, "joint", {"enabled": True})
    logs = trainer.compute_gradients(batch)  # the same batch and parameters: the same α
    _, alphas = expected_geometry(trainer, batch, beta=1.0)
    assert all(0.0 < a < 1.0 for a in alphas.values())  # the interior case, where α is computed, not clipped
    for m in trainer.model.modalities:
        assert float(logs[f"dagr/alpha/{m}"]) == pytest.approx(alphas[m], rel=1e-4, abs=1e-6)
    terms = trainer.regularizer(trainer.model(batch.inputs).embeddings)
    for key in ("anchor", *(f"disperse/{m}" for m in trainer.model.modalities)):
        assert float(logs[f"dagr/{key}"].detach()) == pytest.approx(float(terms[key].detach()), rel=1e-5)

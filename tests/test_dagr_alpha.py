"""How DAGR's Pareto step is computed: the exact rule's two plain pull-backs (bitwise equal to the batched
per-encoder vector-Jacobian product used before), the last-layer α (not the paper's rule) folded into a
plain method's backward or pulled back on its own, and the record of its agreement with the exact α*."""
import math

import pytest
import torch

from baselines import METHODS
from benchmarks.core.strict import ConfigError
from benchmarks.grid.config import ModelConfig, resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.models import build_model
from benchmarks.train.dagr_step import AlphaAgreement, correlation, plain_gradient
from benchmarks.train.trainer import Trainer
from geomreg import DAGR

from test_dagr_pareto import one_step_grads


def former_balance(g_disp, g_inter, beta):
    """The former per-tensor α* and combination (every tensor has both gradients here)."""
    rows = [torch.stack([torch.vdot(d.reshape(-1), d.reshape(-1)), torch.vdot(i.reshape(-1), i.reshape(-1)),
                         torch.vdot(d.reshape(-1), i.reshape(-1))]) for d, i in zip(g_disp, g_inter)]
    dd, ii, di = (t.sum() for t in torch.stack(rows).double().unbind(1))
    denom = dd + ii - 2.0 * di
    alpha = torch.where(denom > 0, (dd - di) / denom.clamp_min(torch.finfo(torch.float64).tiny), 0.5).clamp(0.0, 1.0)
    w_inter, w_disp = (beta * alpha).float(), (beta * (1.0 - alpha)).float()
    return [w_disp * d + w_inter * i for d, i in zip(g_disp, g_inter)], alpha


def batched_per_encoder(dagr, terms, embeddings, params):
    """The former implementation, as an oracle: per encoder, both cotangents in one batched VJP."""
    names = list(embeddings)
    zs = [embeddings[n] for n in names]

    def cotangents(term):
        return torch.autograd.grad(term, zs, retain_graph=True, allow_unused=True, materialize_grads=True)

    u_disp, u_inter = cotangents(sum(terms[f"disperse/{n}"] for n in names)), cotangents(terms["anchor"])
    grads, alphas = {}, {}
    for k, name in enumerate(names):
        own = [p for p in params[name] if p.requires_grad]
        pulled = torch.autograd.grad(zs[k], own, grad_outputs=torch.stack([u_disp[k], u_inter[k]]),
                                     retain_graph=True, allow_unused=True, is_grads_batched=True)
        per_term = [[None if g is None else g[j] for g in pulled] for j in range(2)]
        grads[name], alphas[name] = former_balance(per_term[0], per_term[1], dagr.beta)
    return grads, alphas


def model_and_embeddings(encoder, batch, audio_hw, visual_hw, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(encoder=encoder, width=32, stem_stride=2), {"audio": 1, "visual": 3}, 10)
    inputs = {"audio": torch.randn(batch, 1, *audio_hw), "visual": torch.randn(batch, 3, *visual_hw)}
    return model, model(inputs).embeddings


SUBSTRATES = {"small_cnn": ("small_cnn", 64, (40, 51), (28, 28)),  # AV-Digits' shapes, batch 64
              "resnet18": ("resnet18", 6, (48, 40), (48, 48))}  # ResNet-18 on small inputs (time)


# α inside (0, 1) on both substrates, and with the anchoring band wide enough to switch it off (α* = 0)
@pytest.mark.parametrize("substrate, tau", [("small_cnn", 0.25), ("resnet18", 0.25), ("small_cnn", 1.5)])
def test_exact_rule_is_bitwise_the_batched_per_encoder_pull_back(substrate, tau):
    model, emb = model_and_embeddings(*SUBSTRATES[substrate])
    dagr = DAGR(tau=tau)
    terms = dagr(emb)
    params = {m: list(model.encoder_parameters(m)) for m in model.modalities}
    geom = dagr.geometry_gradients(terms, emb, params)
    want_grads, want_alphas = batched_per_encoder(dagr, terms, emb, params)
    for m in model.modalities:
        assert torch.equal(geom.alphas[m], want_alphas[m])
        assert len(geom.grads[m]) == len(want_grads[m]) == len(params[m])
        for got, want in zip(geom.grads[m], want_grads[m]):
            assert torch.equal(got, want)
    assert geom.joined_loss is None and geom.exact_alphas == {}
    if tau < 1:
        assert all(0 < float(a) < 1 for a in geom.alphas.values())


def last_layer_reference(model, emb, dagr):
    """α from the flat last-layer gradients of each term and g_geom = J^T of the combined cotangent."""
    terms = dagr(emb)
    alphas, geom = {}, {}
    for m in model.modalities:
        last = list(model.last_layer(m).parameters())
        flat = lambda gs: torch.cat([g.reshape(-1).double() for g in gs])
        d = flat(torch.autograd.grad(terms[f"disperse/{m}"], last, retain_graph=True))
        i = flat(torch.autograd.grad(terms["anchor"], last, retain_graph=True))
        alphas[m] = min(max(float((d - i) @ d / ((i - d) @ (i - d))), 0.0), 1.0)
        encoder = list(model.encoder_parameters(m))
        g_d = torch.autograd.grad(terms[f"disperse/{m}"], encoder, retain_graph=True)
        g_i = torch.autograd.grad(terms["anchor"], encoder, retain_graph=True)
        geom[m] = [dagr.beta * (alphas[m] * gi + (1 - alphas[m]) * gd) for gd, gi in zip(g_d, g_i)]
    return alphas, geom


@pytest.mark.parametrize("encoder", ["small_cnn", "resnet18"])
def test_last_layer_alpha_by_hand_and_its_own_pull_back(encoder):
    model, emb = model_and_embeddings(*SUBSTRATES[encoder])
    dagr = DAGR(alpha="last_layer", tau=0.1, beta=0.5)
    want_alphas, want_grads = last_layer_reference(model, emb, dagr)
    params = {m: model.encoder_parameters(m) for m in model.modalities}
    last = {m: model.last_layer(m).parameters() for m in model.modalities}
    geom = dagr.geometry_gradients(dagr(emb), emb, params, alpha_params=last)
    for m in model.modalities:
        assert float(geom.alphas[m]) == pytest.approx(want_alphas[m], rel=1e-5, abs=1e-9)
        got, want = (torch.cat([g.reshape(-1) for g in gs]) for gs in (geom.grads[m], want_grads[m]))
        assert float((got - want).norm() / want.norm()) < 1e-4  # the same vector up to float32 rounding
    assert geom.joined_loss is None


def test_last_layer_alpha_differs_from_the_exact_one_and_is_recorded_beside_it():
    model, emb = model_and_embeddings(*SUBSTRATES["small_cnn"])
    params = {m: list(model.encoder_parameters(m)) for m in model.modalities}
    last = {m: list(model.last_layer(m).parameters()) for m in model.modalities}
    exact = DAGR(tau=0.1)
    exact_alphas = exact.geometry_gradients(exact(emb), emb, params).alphas
    fast = DAGR(tau=0.1, alpha="last_layer", record_exact_alpha=True)
    geom = fast.geometry_gradients(fast(emb), emb, params, alpha_params=last)
    for m in model.modalities:
        assert torch.equal(geom.exact_alphas[m], exact_alphas[m])
        assert float(geom.alphas[m]) != float(exact_alphas[m])


def test_folded_gradient_is_the_joined_loss_gradient():
    """The joined loss's gradient w.r.t. each embedding is the combined cotangent, bit for bit."""
    model, emb = model_and_embeddings(*SUBSTRATES["small_cnn"])
    dagr = DAGR(alpha="last_layer", tau=0.1)
    params = {m: list(model.encoder_parameters(m)) for m in model.modalities}
    last = {m: list(model.last_layer(m).parameters()) for m in model.modalities}
    terms = dagr(emb)
    folded = dagr.geometry_gradients(terms, emb, params, alpha_params=last, fold=True)
    assert folded.grads == {} and folded.tensors() == []
    folded.apply()  # nothing to add: the caller's backward carries g_geom
    assert all(p.grad is None for p in model.parameters())
    own = dagr.geometry_gradients(terms, emb, params, alpha_params=last)
    for m in model.modalities:
        assert torch.equal(folded.alphas[m], own.alphas[m])
    zs = list(emb.values())
    u = torch.autograd.grad(folded.joined_loss, zs, retain_graph=True)
    pulled = torch.autograd.grad(zs, [p for m in model.modalities for p in model.encoder_parameters(m)],
                                 grad_outputs=list(u))
    for got, want in zip(pulled, [g for m in model.modalities for g in own.grads[m]]):
        assert torch.equal(got, want)


def test_last_layer_alpha_needs_its_parameters_and_both_pareto_terms():
    model, emb = model_and_embeddings(*SUBSTRATES["small_cnn"])
    dagr = DAGR(alpha="last_layer")
    with pytest.raises(ValueError, match="alpha_params"):
        dagr.geometry_gradients(dagr(emb), emb, {m: model.encoder_parameters(m) for m in model.modalities})
    for kwargs in ({"weighting": "fixed"}, {"terms": "anchor"}):
        with pytest.raises(ValueError, match="alpha='last_layer'"):
            DAGR(alpha="last_layer", **kwargs)
    with pytest.raises(ValueError, match="alpha must be one of"):
        DAGR(alpha="embeddings")
    with pytest.raises(ValueError, match="record_exact_alpha"):
        DAGR(record_exact_alpha=True)
    with pytest.raises(TypeError, match="record_exact_alpha"):
        DAGR(alpha="last_layer", record_exact_alpha=1)
    assert "alpha='last_layer', record_exact_alpha=True" in repr(DAGR(alpha="last_layer", record_exact_alpha=True))


def test_config_checks_the_alpha_options(debug_raw):
    for dagr, match in (({"alpha": "last_layer", "weighting": "fixed"}, "dagr.alpha"),
                        ({"alpha": "last_layer", "terms": "disperse"}, "dagr.alpha"),
                        ({"record_exact_alpha": True}, "dagr.record_exact_alpha"),
                        ({"alpha": "exact_ish"}, "alpha")):
        with pytest.raises(ConfigError, match=match):
            resolve_run({**debug_raw, "dagr": {"enabled": True, **dagr}})


def test_the_alpha_keys_enter_a_run_id_only_away_from_the_paper_rule(debug_raw):
    exact = resolve_run({**debug_raw, "dagr": {"enabled": True}})
    fast = resolve_run({**debug_raw, "dagr": {"enabled": True, "alpha": "last_layer"}})
    recorded = resolve_run({**debug_raw, "dagr": {"enabled": True, "alpha": "last_layer",
                                                  "record_exact_alpha": True}})
    assert len({exact.run_id(), fast.run_id(), recorded.run_id()}) == 3
    assert (exact.arm, fast.arm, recorded.arm) == ("dagr", "dagr-last-layer", "dagr-last-layer")


# --- the training step ---------------------------------------------------------------------------
def test_plain_gradient_methods():
    plain = {name for name, cls in METHODS.items() if not name.startswith("test_")
             and plain_gradient(cls.__new__(cls))}
    assert plain == {"joint", "gblending", "pmr", "dnr", "unimodal"}


def expected_last_layer_geometry(trainer, batch):
    model = trainer.model
    out = model(batch.inputs)
    _, geom = last_layer_reference(model, out.embeddings, trainer.regularizer)
    named = dict(model.named_parameters())
    by_id = {id(p): n for n, p in named.items()}
    return {by_id[id(p)]: g for m in model.modalities for p, g in zip(model.encoder_parameters(m), geom[m])}


@pytest.mark.parametrize("method", ["joint", "pmr", "dgl", "ogm_ge", "mmpareto"])
def test_last_layer_alpha_adds_g_geom_to_the_method_gradient(debug_raw, tmp_path, method):
    """Folded (plain methods) or pulled back on its own and added after the method's processing
    (the others), the gradient is the method's own plus g_geom of the last-layer α."""
    _, _, host = one_step_grads(debug_raw, tmp_path, method, {"enabled": False})
    dagr = {"enabled": True, "alpha": "last_layer", "beta": 0.7, "tau": 0.1}
    trainer, batch, with_dagr = one_step_grads(debug_raw, tmp_path, method, dagr)
    trainer.model.train()
    geom = expected_last_layer_geometry(trainer, batch)
    assert set(with_dagr) == set(host)
    for name, grad in with_dagr.items():
        torch.testing.assert_close(grad - geom.get(name, torch.zeros_like(grad)), host[name], rtol=1e-4, atol=1e-5)
    assert any(g.abs().max() > 0 for g in geom.values())


def test_alpha_agreement_by_hand():
    record = AlphaAgreement()
    for used, exact in ((0.1, 0.2), (0.2, 0.4), (0.3, 0.6)):
        record.add({"a": torch.tensor(used), "v": torch.tensor(0.5)}, {"a": torch.tensor(exact),
                                                                       "v": torch.tensor(exact)})
    out = record.summary()
    assert out["dagr/alpha_agreement/a/mean_abs_diff"] == pytest.approx(0.2)
    assert out["dagr/alpha_agreement/a/correlation"] == pytest.approx(1.0)
    assert out["dagr/alpha_agreement/v/mean_abs_diff"] == pytest.approx((0.3 + 0.1 + 0.1) / 3)
    assert math.isnan(out["dagr/alpha_agreement/v/correlation"])  # a constant α has no correlation
    assert record.summary() == {}  # each epoch starts afresh
    assert correlation(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                       torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)) == pytest.approx(-0.5)


def test_recorded_run_logs_the_exact_alpha_and_its_agreement_per_epoch(debug_raw, tmp_path):
    dagr = {"enabled": True, "alpha": "last_layer", "record_exact_alpha": True, "tau": 0.1}
    cfg = resolve_run({**debug_raw, "dagr": dagr})
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
    batch = next(trainer.data.train.batches(16))
    exact_cfg = resolve_run({**debug_raw, "dagr": {"enabled": True, "tau": 0.1}})
    exact = Trainer(exact_cfg, run_dir_for(exact_cfg, tmp_path)).compute_gradients(batch)
    logs = trainer.compute_gradients(batch)
    for m in trainer.model.modalities:
        assert torch.equal(logs[f"dagr/alpha_exact/{m}"], exact[f"dagr/alpha/{m}"])  # same weights, same α*
        assert float(logs[f"dagr/alpha/{m}"]) != float(exact[f"dagr/alpha/{m}"])
    trainer.alpha_agreement.summary()
    Trainer(cfg, run_dir_for(cfg, tmp_path / "fit")).fit()
    rows = run_dir_for(cfg, tmp_path / "fit").read_metrics()
    assert len(rows) == 2
    for row in rows:
        for m in ("audio", "visual"):
            gap = row["train"][f"dagr/alpha_agreement/{m}/mean_abs_diff"]
            assert 0 < gap < 1
            assert -1 <= row["train"][f"dagr/alpha_agreement/{m}/correlation"] <= 1
            assert 0 <= row["train"][f"dagr/alpha_exact/{m}"] <= 1

"""The objective controls (geomreg.controls) on hand-computed cases, and how they join a run."""
import math

import pytest
import torch

from benchmarks.models.model import MultimodalModel, build_model
from benchmarks.grid.config import (CONTROL_ARMS, GridConfig, expand_grid, resolve_run, run_arm)
from benchmarks.core.records import RunDir
from benchmarks.core.strict import ConfigError
from benchmarks.train.trainer import Trainer
from geomreg.controls import (BarlowTwins, NaiveAlignment, VICReg, barlow_twins_terms, control_loss,
                              cross_correlation, vicreg_terms)
from geomreg.functional import anchoring

T = torch.tensor


# --- the losses ------------------------------------------------------------------------------

def test_naive_alignment_pulls_every_pair_even_inside_dagrs_band():
    # unit rows at angle θ: ||a - b||² = 2 - 2 cos θ; the second pair is identical
    theta = 0.1
    z_a = T([[1.0, 0.0], [0.0, 3.0]])
    z_b = T([[math.cos(theta), math.sin(theta)], [0.0, 1.0]])
    expected = (2 - 2 * math.cos(theta)) / 2
    out = NaiveAlignment(strength=0.19)({"audio": z_a, "visual": z_b})
    assert out["alignment"].item() == pytest.approx(expected, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.19 * expected, rel=1e-6)
    # DAGR's anchoring with its band τ = 0.25 (distance ≈ 0.1 < τ) ignores the same pair
    assert anchoring(z_a, z_b, tau=0.25).item() == 0.0


def test_vicreg_terms_by_hand():
    z_a = T([[1.0, 1.0], [-1.0, -1.0]])  # both dims variance 2; covariance 2 off the diagonal
    z_b = T([[2.0, 0.0], [0.0, 0.0]])  # dim 0 variance 2, dim 1 constant
    terms = vicreg_terms(z_a, z_b)
    # invariance: squared differences 1, 1, 1, 1 -> mean 1
    assert terms["invariance"].item() == pytest.approx(1.0)
    # variance: every std of z_a is sqrt(2 + 1e-4) > 1 -> 0; z_b: (0 + (1 - sqrt(1e-4))) / 2
    assert terms["variance"].item() == pytest.approx((1 - 0.01) / 2, rel=1e-6)
    # covariance: z_a's C = [[2, 2], [2, 2]] -> (2² + 2²) / d = 4; z_b's C is diagonal -> 0
    assert terms["covariance"].item() == pytest.approx(4.0, rel=1e-6)
    out = VICReg(strength=0.19)({"audio": z_a, "visual": z_b})
    raw = 25 * 1.0 + 25 * 0.495 + 1 * 4.0
    assert out["loss"].item() == pytest.approx(0.19 * raw / 51, rel=1e-6)


def test_barlow_twins_cross_correlation_and_loss_by_hand():
    z_a = T([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    z_b = T([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    c = cross_correlation(z_a, z_b)
    assert torch.allclose(c, T([[1.0, 1.0], [0.0, 0.0]]), atol=1e-6)
    # centring along the batch and the scale of a dimension do not change C
    assert torch.allclose(cross_correlation(3 * z_a + 5, z_b - 2), c, atol=1e-6)
    terms = barlow_twins_terms(z_a, z_b)
    # on: (1 - 1)² + (1 - 0)² = 1; off: 1² + 0² = 1; each per dimension (D = 2)
    assert terms["on_diagonal"].item() == pytest.approx(0.5)
    assert terms["off_diagonal"].item() == pytest.approx(0.5)
    out = BarlowTwins(strength=0.19)({"audio": z_a, "visual": z_b})
    assert out["loss"].item() == pytest.approx(0.19 * (0.5 + 5e-3 * 0.5) / (1 + 5e-3), rel=1e-6)
    # identical views of uncorrelated dimensions: C = I, nothing to pay
    assert BarlowTwins()({"a": z_a, "b": z_a})["loss"].item() == pytest.approx(0.0, abs=1e-7)


def test_a_constant_dimension_gives_a_finite_loss_and_gradient():
    z_a = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    z_b = torch.cat([torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(8, 1)], 1)
    z_a.requires_grad_(True)
    for control in (BarlowTwins(), VICReg(), NaiveAlignment()):
        loss = control({"a": z_a, "b": z_b})["loss"]
        (grad,) = torch.autograd.grad(loss, z_a)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_three_modalities_average_the_pair_losses():
    g = torch.Generator().manual_seed(0)
    zs = {m: torch.randn(6, 5, generator=g) for m in ("a", "b", "c")}
    for control in (NaiveAlignment(), VICReg(), BarlowTwins()):
        pairs = [control({x: zs[x], y: zs[y]})["loss"] for x, y in (("a", "b"), ("a", "c"), ("b", "c"))]
        assert control(zs)["loss"].item() == pytest.approx(torch.stack(pairs).mean().item(), rel=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="unknown_coefficient"):
        VICReg(unknown_coefficient=1.0)
    with pytest.raises(ValueError, match="redundancy"):
        BarlowTwins(redundancy=-1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        VICReg()({"a": torch.ones(1, 3), "b": torch.ones(1, 3)})
    with pytest.raises(ValueError, match="unknown control"):
        control_loss("simclr")
    assert control_loss("unit_sphere") is None


# --- unit sphere ----------------------------------------------------------------------------

def test_unit_sphere_normalizes_what_the_heads_see(debug_raw):
    cfg = resolve_run({**debug_raw, "control": {"kind": "unit_sphere"}})
    torch.manual_seed(0)
    model = build_model(cfg.model, {"audio": 1, "visual": 3}, 4, unit_sphere=True)
    model.eval()
    inputs = {"audio": torch.randn(5, 1, 12, 12), "visual": torch.randn(5, 2, 3, 12, 12)}
    out = model(inputs)
    raw = {m: model.encoders[m](x) for m, x in inputs.items()}
    for m, z in out.embeddings.items():
        assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-6)
        assert torch.allclose(z, raw[m] / raw[m].norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(out.logits, model.fusion(out.embeddings))
    assert isinstance(model, MultimodalModel) and model.unit_sphere


# --- joining a run --------------------------------------------------------------------------

def step_gradients(cfg, tmp_path):
    trainer = Trainer(cfg, RunDir(tmp_path / cfg.label))
    batch = next(iter(trainer.data.train.batches(16)))
    trainer.compute_gradients(batch)
    return trainer, batch, {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["naive_align", "vicreg", "barlow_twins"])
def test_a_control_loss_joins_the_objective_like_dagrs_fixed_form(kind, debug_raw, tmp_path):
    """Joint training: with the control, the gradient is the task gradient plus the gradient of
    S · L_control(embeddings) (which reaches only the encoders)."""
    plain = resolve_run(debug_raw)
    controlled = resolve_run({**debug_raw, "control": {"kind": kind, "strength": 0.5}})
    _, _, without = step_gradients(plain, tmp_path)
    trainer, batch, with_control = step_gradients(controlled, tmp_path)
    embeddings = trainer.model(batch.inputs).embeddings
    loss = control_loss(kind, 0.5)(embeddings)["loss"]
    names = [n for n, _ in trainer.model.named_parameters()]
    extra = dict(zip(names, torch.autograd.grad(loss, list(trainer.model.parameters()), allow_unused=True)))
    for name, grad in with_control.items():
        expected = without[name] + (extra[name] if extra[name] is not None else 0)
        assert torch.allclose(grad, expected, atol=1e-5, rtol=1e-4), name
        if not name.startswith("encoders."):
            assert extra[name] is None or torch.count_nonzero(extra[name]) == 0, name


def test_control_runs_log_their_terms(debug_raw, tmp_path):
    cfg = resolve_run({**debug_raw, "control": {"kind": "vicreg"}})
    trainer = Trainer(cfg, RunDir(tmp_path / "run"))
    logs = trainer.compute_gradients(next(iter(trainer.data.train.batches(16))))
    assert {"control/loss", "control/invariance", "control/variance", "control/covariance"} <= set(logs)


# --- configuration --------------------------------------------------------------------------

def test_control_config_is_strict_and_excludes_dagr(debug_raw):
    with pytest.raises(ConfigError, match="control.params.lambda"):
        resolve_run({**debug_raw, "control": {"kind": "vicreg", "params": {"lambda": 1.0}}})
    with pytest.raises(ConfigError, match="control.params"):
        resolve_run({**debug_raw, "control": {"kind": "unit_sphere", "params": {"redundancy": 1.0}}})
    with pytest.raises(ConfigError, match="replaces DAGR"):
        resolve_run({**debug_raw, "control": {"kind": "vicreg"}, "dagr": {"enabled": True}})
    with pytest.raises(ConfigError, match="unimodal"):
        resolve_run({**debug_raw, "method": {"name": "unimodal", "params": {"modality": "audio"}},
                     "control": {"kind": "naive_align"}})
    cfg = resolve_run({**debug_raw, "control": {"kind": "barlow_twins"}})
    assert cfg.control.params == {"redundancy": 5e-3}  # the paper's default, filled in


def test_run_id_reads_only_the_settings_a_control_uses(debug_raw):
    def run_id(**control):
        return resolve_run({**debug_raw, "control": control}).run_id()

    base = resolve_run(debug_raw).run_id()
    assert run_id(kind="none", strength=0.7) == base  # no control: the section leaves the hash
    assert run_id(kind="unit_sphere", strength=0.7) == run_id(kind="unit_sphere") != base
    assert run_id(kind="vicreg", strength=0.7) != run_id(kind="vicreg") != base
    assert run_id(kind="vicreg", params={"covariance": 2.0}) != run_id(kind="vicreg")


def test_grid_arms_map_to_controls_and_sweeps_reach_only_the_arms_that_read_them():
    grid = GridConfig(benchmark="debug", seeds=[0], methods={"dgl": {}}, references=[],
                      run={"data": {"name": "debug"}}, dagr_arms=["none", "dagr", *CONTROL_ARMS],
                      sweep={"control.strength": [0.1, 0.2]})
    runs = expand_grid(grid)
    arms = [r.arm for r in runs]
    # none and dagr once each (the control sweep does not touch them); the loss controls twice;
    # unit sphere once (its strength leaves the hash, so both points are the same run)
    assert sorted(arms) == sorted(["none", "dagr", "naive-align", "naive-align", "vicreg", "vicreg",
                                   "barlow-twins", "barlow-twins", "unit-sphere"])
    assert {r.label for r in runs} >= {"dgl+vicreg-s0", "dgl+unit-sphere-s0", "dgl-s0", "dgl+dagr-s0"}
    assert all(not r.dagr.enabled for r in runs if r.arm in CONTROL_ARMS)


def test_records_written_before_controls_keep_their_arm():
    assert run_arm({"dagr": {"enabled": True, "terms": "both", "weighting": "pareto"}}) == "dagr"
    assert run_arm({"dagr": {"enabled": False}, "control": {"kind": "barlow_twins"}}) == "barlow-twins"


def test_table7_numbers_name_our_arms():
    from benchmarks.report.paper import load_paper_table

    table7 = load_paper_table("table7_cremad")
    assert [r.arm for r in table7.rows] == ["naive-align", "vicreg", "barlow-twins", "unit-sphere", "dagr"]
    assert table7.rows[2].cell("Visual") == "61.32 ± 3.41" and table7.rows[-1].cell("Multi") == "78.16 ± 0.38"

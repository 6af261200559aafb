"""PMR: prototypes, coefficients and PCE by hand; the epoch hook; DAGR."""
import math

import pytest
import torch
import torch.nn.functional as F

import baselines.pmr  # noqa: F401  (registers the method)
from baselines.pmr import (class_sums, pmr_coefficients, prototype_batches, prototype_entropy, prototype_logits,
                           update_prototypes)
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.train.trainer import Trainer

STRONG_DAGR = {"enabled": True, "lambda_disperse": 1.0, "lambda_anchor": 1.0, "tau": 0.0}


def make_trainer(debug_raw, tmp_path, params=None, dagr=False, epochs=2, batch_size=16):
    raw = {**debug_raw, "optim": {**debug_raw["optim"], "epochs": epochs},
           "data": {**debug_raw["data"], "batch_size": batch_size},
           "method": {"name": "pmr", "params": params or {}},
           "dagr": STRONG_DAGR if dagr else {"enabled": False}}
    cfg = resolve_run(raw)
    return Trainer(cfg, run_dir_for(cfg, tmp_path))


def test_prototypes_are_class_means_and_empty_classes_keep_the_old_one():
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    sums, counts = class_sums(emb, torch.tensor([0, 0, 1]), 3)
    first = update_prototypes(sums, counts, None, 0.5)
    torch.testing.assert_close(first, torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))  # class 2 empty → 0
    prev = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    ema = update_prototypes(sums, counts, prev, 0.5)  # (1-μ)·mean + μ·old; empty class stays at old
    torch.testing.assert_close(ema, torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    assert torch.isfinite(ema).all()


def test_switch_coefficients():
    a = pmr_coefficients({"audio": torch.tensor(1.0), "visual": torch.tensor(1.5)}, 2.0, "switch")
    assert (a["audio"].item(), a["visual"].item()) == (2.0, 0.0)  # ρ = 2/3 < 1: audio is weaker
    b = pmr_coefficients({"audio": torch.tensor(1.5), "visual": torch.tensor(1.0)}, 2.0, "switch")
    assert (b["audio"].item(), b["visual"].item()) == (0.0, 2.0)
    c = pmr_coefficients({"audio": torch.tensor(1.0), "visual": torch.tensor(1.0)}, 2.0, "switch")
    assert (c["audio"].item(), c["visual"].item()) == (0.0, 0.0)


def test_continuous_coefficients():
    a = pmr_coefficients({"audio": torch.tensor(1.0), "visual": torch.tensor(1.5)}, 2.0, "continuous")
    assert a["audio"].item() == pytest.approx(2.0 * (1.5 - 1))  # α·clip(1/ρ_a - 1, 0, 1), ρ_a = 2/3
    assert a["visual"].item() == 0.0
    b = pmr_coefficients({"audio": torch.tensor(4.0), "visual": torch.tensor(1.0)}, 2.0, "continuous")
    assert b["visual"].item() == 2.0 and b["audio"].item() == 0.0  # 1/ρ_v - 1 = 3, clipped to 1


def test_pce_for_two_points_by_hand_and_finite_gradient_at_a_prototype():
    emb = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    protos = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    logits = prototype_logits(emb, protos)
    torch.testing.assert_close(logits, torch.tensor([[0.0, -5.0], [-5.0, 0.0]]))
    pce = F.cross_entropy(logits, torch.tensor([0, 0]))
    assert pce.item() == pytest.approx(2.5 + math.log(1 + math.exp(-5)), rel=1e-6)
    pce.backward()
    assert torch.isfinite(emb.grad).all()
    h = prototype_entropy(torch.zeros(3, 4))
    assert h.item() == pytest.approx(math.log(4))


def pass_means(trainer, gen, n_batches, batch_size, previous=None):
    """The prototype pass by hand: class means (masks) over the first ``n_batches`` shuffled batches; an
    empty class keeps ``previous`` (zeros without one)."""
    batches = trainer.data.train.batches(batch_size, shuffle=True, generator=gen)
    chosen = [next(batches) for _ in range(n_batches)]
    labels = torch.cat([b.labels for b in chosen])
    was_training = trainer.model.training
    trainer.model.eval()
    with torch.no_grad():
        emb = [trainer.model.encode(b.inputs) for b in chosen]
    trainer.model.train(was_training)
    out = {}
    for m in ("audio", "visual"):
        e = torch.cat([x[m] for x in emb])
        old = previous[m] if previous is not None else torch.zeros(4, e.shape[1])
        out[m] = torch.stack([e[labels == k].mean(0) if (labels == k).any() else old[k] for k in range(4)])
    return out


def test_prototype_batches_are_the_floor_of_a_tenth():
    assert [prototype_batches(n, 0.1) for n in (1, 9, 10, 15, 18, 19, 20, 105)] == [1, 1, 1, 1, 1, 1, 2, 10]


@pytest.mark.parametrize("batch_size, n_batches", [(16, 1), (8, 1)])
def test_epoch_start_builds_prototypes_from_the_first_tenth_of_shuffled_batches(debug_raw, tmp_path, batch_size,
                                                                                n_batches):
    """144 training samples: batch 16 → 9 batches, floor(0.9) → at least 1; batch 8 → 18 batches: the
    official len(loader)//10 = 1 where ceil(1.8) would take 2."""
    trainer = make_trainer(debug_raw, tmp_path, batch_size=batch_size)
    assert math.ceil(len(trainer.data.train) / batch_size) in (9, 18)
    gen = torch.Generator()
    gen.set_state(trainer.method.generator.get_state())
    run_order = trainer.generator.get_state()
    trainer.model.train()
    trainer.method.on_epoch_start(0)
    assert trainer.model.training
    expected = pass_means(trainer, gen, n_batches, batch_size)
    for m in ("audio", "visual"):
        torch.testing.assert_close(trainer.method.prototypes[m], expected[m])
    assert torch.equal(trainer.method.generator.get_state(), gen.get_state())  # exactly one shuffle per pass
    assert torch.equal(trainer.generator.get_state(), run_order)  # the run's data order is left alone


def test_momentum_blends_from_the_third_prototype_pass_on(debug_raw, tmp_path):
    """Official: prototypes before training (epoch 0) and after each epoch e, blended only for e > 0; here
    computed at the start of epoch e + 1, so epochs 0 and 1 take the plain means and epoch 2 blends."""
    mu = 0.25
    trainer = make_trainer(debug_raw, tmp_path, {"momentum": mu}, batch_size=8)
    gen = torch.Generator()
    gen.set_state(trainer.method.generator.get_state())
    trainer.method.on_epoch_start(0)
    torch.testing.assert_close(trainer.method.prototypes, pass_means(trainer, gen, 1, 8))
    trainer.method.on_epoch_start(1)
    first = pass_means(trainer, gen, 1, 8)
    torch.testing.assert_close(trainer.method.prototypes, first)  # not blended with epoch 0's
    trainer.method.on_epoch_start(2)
    means = pass_means(trainer, gen, 1, 8, previous=first)
    blended = {m: (1 - mu) * means[m] + mu * first[m] for m in means}
    torch.testing.assert_close(trainer.method.prototypes, blended)
    assert not torch.allclose(blended["audio"], means["audio"])  # the passes differ, so the blend shows


def test_empty_classes_in_the_prototype_batches_give_no_nan(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path, {"prototype_fraction": 0.001}, batch_size=2)  # 2 of 4 classes
    trainer.method.on_epoch_start(0)
    protos = trainer.method.prototypes
    assert all(torch.isfinite(c).all() for c in protos.values())
    assert any((c.abs().sum(1) == 0).any() for c in protos.values())
    trainer.method.on_epoch_start(1)
    batch = next(trainer.data.train.batches(16))
    losses = trainer.method.losses(trainer.model(batch.inputs), batch)
    assert all(torch.isfinite(v) for v in losses.values())


def test_losses_use_the_coefficients_inside_the_window_only(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path, epochs=4)  # window 0..floor(0.7·4) = 2
    trainer.method.on_epoch_start(0)
    batch = next(trainer.data.train.batches(16))
    out = trainer.model(batch.inputs)
    losses = trainer.method.losses(out, batch)
    protos = trainer.method.prototypes
    logits = {m: -torch.cdist(out.embeddings[m], protos[m]) for m in ("audio", "visual")}
    s = {m: F.softmax(logits[m], 1)[torch.arange(16), batch.labels].sum() for m in logits}
    weaker = "audio" if s["audio"] < s["visual"] else "visual"
    for m in ("audio", "visual"):
        pce = F.cross_entropy(logits[m], batch.labels)
        expected = 2.0 * pce if m == weaker else 0.0 * pce
        torch.testing.assert_close(losses[f"pce_{m}"], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses["ce_fused"], F.cross_entropy(out.logits, batch.labels))
    trainer.method.on_epoch_start(3)
    assert set(trainer.method.losses(out, batch)) == {"ce_fused"}


def test_per_term_early_epochs_only(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path, {"per_weight": 0.01, "per_epochs": 1})
    trainer.method.on_epoch_start(0)
    batch = next(trainer.data.train.batches(16))
    assert "per" in trainer.method.losses(trainer.model(batch.inputs), batch)
    trainer.method.on_epoch_start(1)
    assert "per" not in trainer.method.losses(trainer.model(batch.inputs), batch)


def test_state_dict_round_trip(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path)
    trainer.method.on_epoch_start(0)
    other = make_trainer(debug_raw, tmp_path)
    other.method.load_state_dict(trainer.method.state_dict())
    for m, c in trainer.method.prototypes.items():
        assert torch.equal(other.method.prototypes[m], c)
    assert torch.equal(other.method.generator.get_state(), trainer.method.generator.get_state())


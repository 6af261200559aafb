"""AGM: Shapley logits, scores, running average and coefficients by hand; gradient scaling equal to the
official backward hooks; a whole step against an official-structured reference; window, clipping, resume."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.agm import agm_coefficients, agm_scores, running_average, scale_gradient, shapley_logits
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.train.trainer import Trainer

LN3 = math.log(3.0)


def make_trainer(debug_raw, tmp_path, params=None, epochs=2):
    raw = {**debug_raw, "optim": {**debug_raw["optim"], "epochs": epochs},
           "method": {"name": "agm", "params": params or {}}}
    cfg = resolve_run(raw)
    return Trainer(cfg, run_dir_for(cfg, tmp_path))


def scalar(x):
    return torch.tensor(x, dtype=torch.float64)


# --- pure functions by hand ------------------------------------------------------------------------
def test_shapley_logits_by_hand_sum_to_the_full_output():
    full, only_a, only_v = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    m = shapley_logits(full, {"audio": only_a, "visual": only_v})
    # m_a = ½(f(a,v) − f(0,v) + f(a,0)) = ½([1,2] − [0,1] + [3,0]); m_v = ½([1,2] − [3,0] + [0,1]).
    assert m["audio"].tolist() == [[2.0, 0.5]] and m["visual"].tolist() == [[-1.0, 1.5]]
    assert (m["audio"] + m["visual"]).tolist() == full.tolist()


def test_scores_are_batch_cross_entropies_clamped_at_1e_8():
    labels = torch.tensor([0, 0])
    s = agm_scores({"audio": torch.tensor([[LN3, 0.0], [0.0, 0.0]]),
                    "visual": torch.tensor([[-100.0, 0.0], [0.0, 0.0]])}, labels)
    assert s["audio"].item() == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)
    assert s["visual"].item() == pytest.approx(-(math.log(1e-8) + math.log(0.5)) / 2)


def test_running_average_is_the_mean_over_all_iterations():
    t = scalar(0.0)
    for i, s in enumerate([1.0, 2.0, 6.0], start=1):
        t = running_average(t, scalar(s), i)
    assert t.item() == pytest.approx(3.0)


def test_coefficients_suppress_the_modality_better_than_its_average_and_boost_the_other():
    # s_a = 0.5, s_v = 1.0, T = 0: r_a = e^{0.5}, r*_a = 1 → c_a = exp(1.5(1 − e^{0.5})) < 1;
    # r_v = e^{−0.5} → c_v = exp(1.5(1 − e^{−0.5})) > 1.
    c = agm_coefficients({"audio": scalar(0.5), "visual": scalar(1.0)},
                         {"audio": scalar(0.0), "visual": scalar(0.0)}, alpha=1.5)
    assert c["audio"].item() == pytest.approx(math.exp(1.5 * (1 - math.exp(0.5))))
    assert c["visual"].item() == pytest.approx(math.exp(1.5 * (1 - math.exp(-0.5))))
    assert c["audio"] < 1 < c["visual"]
    # The other direction: audio worse now than its average relative to visual (T_a < T_v) → boosted.
    c = agm_coefficients({"audio": scalar(1.0), "visual": scalar(1.0)},
                         {"audio": scalar(0.2), "visual": scalar(0.7)}, alpha=1.5)
    assert c["audio"].item() == pytest.approx(math.exp(1.5 * (math.exp(0.5) - 1)))
    assert c["visual"].item() == pytest.approx(math.exp(1.5 * (math.exp(-0.5) - 1)))
    assert c["visual"] < 1 < c["audio"]


def test_the_cap_bounds_r_star_minus_r_at_10():
    # r*_a = exp(ln 20) = 20, r_a = 1 → gap 19, capped to 10 (None: the AVE script, no cap).
    scores = {"audio": scalar(0.0), "visual": scalar(0.0)}
    running = {"audio": scalar(0.0), "visual": scalar(math.log(20.0))}
    assert agm_coefficients(scores, running, 0.5)["audio"].item() == pytest.approx(math.exp(5.0))
    assert agm_coefficients(scores, running, 0.5, cap=None)["audio"].item() == pytest.approx(math.exp(9.5))


# --- gradient scaling ------------------------------------------------------------------------------
class OfficialScaledIdentity(nn.Module):
    """The official ``Modality_out`` with its ``register_full_backward_hook`` (the reference)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.register_full_backward_hook(lambda m, gin, gout: (gin[0].clone() * self.scale,))

    def forward(self, x):
        return x


def leaves():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(3, 4, generator=gen, requires_grad=True) for _ in range(3)]


def test_scale_gradient_keeps_the_value_exactly_and_routes_c_to_each_pass():
    c_a, c_v = 3.0, 0.25
    full, only_a, only_v = leaves()
    w = torch.arange(12.0).view(3, 4)
    m = shapley_logits(full, {"audio": only_a, "visual": only_v})
    fused = scale_gradient(m["audio"], scalar(c_a)) + scale_gradient(m["visual"], scalar(c_v))
    assert torch.equal(fused, m["audio"] + m["visual"])
    (w * fused).sum().backward()
    torch.testing.assert_close(full.grad, w * 0.5 * (c_a + c_v))
    torch.testing.assert_close(only_a.grad, w * 0.5 * (c_a - c_v))
    torch.testing.assert_close(only_v.grad, w * 0.5 * (c_v - c_a))


def test_scale_gradient_gives_the_gradients_of_the_official_backward_hooks():
    c_a, c_v = 1.7, 0.4
    ours, official = leaves(), leaves()
    labels = torch.tensor([0, 3, 1])
    m = shapley_logits(ours[0], {"audio": ours[1], "visual": ours[2]})
    F.cross_entropy(scale_gradient(m["audio"], scalar(c_a)) + scale_gradient(m["visual"], scalar(c_v)),
                    labels).backward()
    m = shapley_logits(official[0], {"audio": official[1], "visual": official[2]})
    hook_a, hook_v = OfficialScaledIdentity(c_a), OfficialScaledIdentity(c_v)
    F.cross_entropy(hook_a(m["audio"]) + hook_v(m["visual"]), labels).backward()
    for a, b in zip(ours, official):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)


# --- one step of the method against an official-structured reference ---------------------------------
def official_reference_grads(model, inputs, labels, c):
    """GradMod as the official code runs it: f(a,v) in train mode, then f(a,0), f(0,v) (whole zero
    batches) in eval mode with autograd on, hooks scaling the Shapley logits, CE of their sum."""
    total = model(inputs).logits
    model.eval()
    pad_visual = model({"audio": inputs["audio"], "visual": torch.zeros_like(inputs["visual"])}).logits
    pad_audio = model({"audio": torch.zeros_like(inputs["audio"]), "visual": inputs["visual"]}).logits
    model.train()
    m_a = OfficialScaledIdentity(c["audio"])(0.5 * (total - pad_audio + pad_visual))
    m_v = OfficialScaledIdentity(c["visual"])(0.5 * (total - pad_visual + pad_audio))
    F.cross_entropy(m_a + m_v, labels).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_one_step_matches_the_official_structure(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path)
    model, method = trainer.model, trainer.method
    reference_model = copy.deepcopy(model)
    batch = next(trainer.data.train.batches(16, shuffle=True, generator=torch.Generator().manual_seed(1)))
    model.train()
    method.on_epoch_start(0)
    out = model(batch.inputs)
    method.backward(method.losses(out, batch), None)
    c = {m: method._logs[f"agm/c_{m}"].item() for m in ("audio", "visual")}
    assert abs(c["audio"] - 1) > 1e-3 and abs(c["visual"] - 1) > 1e-3  # a real modulation
    expected = official_reference_grads(reference_model, batch.inputs, batch.labels, c)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)
    for (name, b), (_, ref) in zip(model.named_buffers(), reference_model.named_buffers()):
        torch.testing.assert_close(b, ref, msg=name)  # BN statistics: one train-mode update only


def test_evaluation_scores_the_official_eval_mode_shapley_logits(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path)
    model, method = trainer.model, trainer.method
    batch = next(trainer.data.train.batches(16))
    method.losses(model(batch.inputs), batch)  # a training step tells the method the input shapes
    model.eval()
    with torch.no_grad():
        ours = method.eval_unimodal_logits(model(batch.inputs))
        x = batch.inputs
        total = model(x).logits
        pad_visual = model({"audio": x["audio"], "visual": torch.zeros_like(x["visual"])}).logits
        pad_audio = model({"audio": torch.zeros_like(x["audio"]), "visual": x["visual"]}).logits
    torch.testing.assert_close(ours["audio"], 0.5 * (total - pad_audio + pad_visual), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["visual"], 0.5 * (total - pad_visual + pad_audio), rtol=1e-5, atol=1e-6)


def test_running_average_spans_epochs_and_coefficients_use_the_average_before_the_batch(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path)
    method = trainer.method
    seen = []
    for epoch in (0, 1):
        method.on_epoch_start(epoch)
        for batch in trainer.data.train.batches(16):
            before = {m: t.item() for m, t in method.running.items()}
            with torch.no_grad():
                method.losses(trainer.model(batch.inputs), batch)
            s = {m: method._logs[f"agm/score_{m}"].item() for m in ("audio", "visual")}
            r_a, r_star_a = math.exp(s["visual"] - s["audio"]), math.exp(before["visual"] - before["audio"])
            assert method._logs["agm/c_audio"].item() == pytest.approx(math.exp(1.5 * min(r_star_a - r_a, 10)))
            seen.append(s)
    assert method.iteration == len(seen) == 2 * 9
    for m in ("audio", "visual"):
        assert method.running[m].item() == pytest.approx(sum(s[m] for s in seen) / len(seen))


@pytest.mark.parametrize("keep_last", [False, True])
def test_after_the_window_coefficients_are_one_or_the_official_last_ones(debug_raw, tmp_path, keep_last):
    # 4 epochs, end fraction 0.25 → modulated epochs 0..1.
    trainer = make_trainer(debug_raw, tmp_path, {"modulation_end_fraction": 0.25, "keep_last_coefficients": keep_last},
                           epochs=4)
    method, batches = trainer.method, list(trainer.data.train.batches(16))
    with torch.no_grad():
        method.on_epoch_start(1)
        method.losses(trainer.model(batches[0].inputs), batches[0])
        last = {m: method._logs[f"agm/c_{m}"].item() for m in ("audio", "visual")}
        method.on_epoch_start(2)
        method.losses(trainer.model(batches[1].inputs), batches[1])
    applied = {m: method._logs[f"agm/c_{m}"].item() for m in ("audio", "visual")}
    assert applied == (last if keep_last else {"audio": 1.0, "visual": 1.0})
    assert method.iteration == 2  # the running average goes on outside the window


def set_grads(model, head_value, encoder_value):
    for p in model.parameters():
        p.grad = torch.full_like(p, encoder_value)
    model.fusion.fc.weight.grad.fill_(head_value)


def test_clipping_only_when_a_fusion_weight_gradient_leaves_plus_minus_1(debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path)
    model, method = trainer.model, trainer.method
    set_grads(model, head_value=-1.5, encoder_value=0.1)
    assert method.clip_if_head_gradient_large(1.0).item() == 1.0
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert total.item() == pytest.approx(1.0, rel=1e-4)
    set_grads(model, head_value=1.0, encoder_value=0.5)  # total norm far above 1, but no element above 1
    before = [p.grad.clone() for p in model.parameters()]
    assert method.clip_if_head_gradient_large(1.0).item() == 0.0
    assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before))


def test_state_round_trip_restores_the_running_scores(debug_raw, tmp_path):
    first = make_trainer(debug_raw, tmp_path / "a", {"keep_last_coefficients": True})
    batch = next(first.data.train.batches(16))
    with torch.no_grad():
        first.method.losses(first.model(batch.inputs), batch)
    second = make_trainer(debug_raw, tmp_path / "b", {"keep_last_coefficients": True})
    second.method.load_state_dict(first.method.state_dict())
    assert second.method.iteration == 1
    assert second.method.running == first.method.running
    assert second.method.last_coefficients == first.method.last_coefficients
    with pytest.raises(ValueError, match="method 'agm': expected state keys"):
        second.method.load_state_dict({})


def test_each_epoch_records_the_per_step_extremes_of_the_coefficients_and_their_gap(debug_raw, tmp_path):
    method = make_trainer(debug_raw, tmp_path).method
    method.on_epoch_start(0)
    for c_a, c_v in [(0.8, 1.1), (0.5, 1.5), (1.0, 1.0)]:
        method.track_extremes({"audio": torch.tensor(c_a), "visual": torch.tensor(c_v)})
    assert method.on_epoch_end(0) == pytest.approx({
        "agm/c_audio_min": 0.5, "agm/c_audio_max": 1.0, "agm/c_visual_min": 1.0, "agm/c_visual_max": 1.5,
        "agm/gap_min": 0.0, "agm/gap_max": 1.0})
    method.on_epoch_start(1)  # a new epoch starts afresh
    method.track_extremes({"audio": torch.tensor(2.0), "visual": torch.tensor(1.0)})
    assert method.on_epoch_end(1)["agm/c_audio_min"] == 2.0 and method.on_epoch_end(1)["agm/gap_max"] == 1.0

"""OGM-GE: coefficients by hand, the modulation window, which gradients are modulated, DAGR."""
import dataclasses
import math

import pytest
import torch

import baselines.ogm_ge  # noqa: F401  (registers the method)
from baselines.base import modulation_active
from baselines.ogm_ge import ogm_coefficients
from benchmarks.core.strict import ConfigError
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.train.trainer import Trainer

LN3 = math.log(3.0)
STRONG_DAGR = {"enabled": True, "lambda_disperse": 1.0, "lambda_anchor": 1.0, "tau": 0.0}


def make_trainer(debug_raw, tmp_path, params=None, dagr=False, epochs=2):
    raw = {**debug_raw, "optim": {**debug_raw["optim"], "epochs": epochs},
           "method": {"name": "ogm_ge", "params": params or {}},
           "dagr": STRONG_DAGR if dagr else {"enabled": False}}
    cfg = resolve_run(raw)
    return Trainer(cfg, run_dir_for(cfg, tmp_path))


def logits(p_true_class0):
    """Two samples of class 0 whose softmax prob of class 0 is 0.5 (logits 0,0) or 0.75 (ln 3, 0)."""
    row = [LN3, 0.0] if p_true_class0 == 0.75 else [0.0, 0.0]
    return torch.tensor([row, row])


LABELS = torch.tensor([0, 0])


def test_tanh_form_modulates_the_dominant_second_modality():
    # s_a = 0.5+0.5 = 1, s_v = 0.75+0.75 = 1.5 → ρ_v = 1.5 > 1 → k_v = 1 - tanh(0.8·1.5), k_a = 1.
    k = ogm_coefficients({"audio": logits(0.5), "visual": logits(0.75)}, LABELS, 0.8, "tanh")
    assert k["ratio"].item() == pytest.approx(1.5)
    assert k["visual"].item() == pytest.approx(1 - math.tanh(1.2))
    assert k["audio"].item() == 1.0


def test_tanh_form_modulates_the_dominant_first_modality():
    # s_a = 1.5, s_v = 1 → ρ_v = 2/3, ρ_a = 1.5 → k_a = 1 - tanh(0.8·1.5), k_v = 1.
    k = ogm_coefficients({"audio": logits(0.75), "visual": logits(0.5)}, LABELS, 0.8, "tanh")
    assert k["ratio"].item() == pytest.approx(2 / 3)
    assert k["audio"].item() == pytest.approx(1 - math.tanh(1.2))
    assert k["visual"].item() == 1.0


def test_equal_scores_take_the_official_else_branch():
    # ρ = 1 exactly: the official else-branch modulates audio with 1 - tanh(α).
    k = ogm_coefficients({"audio": logits(0.5), "visual": logits(0.5)}, LABELS, 0.8, "tanh")
    assert k["audio"].item() == pytest.approx(1 - math.tanh(0.8))
    assert k["visual"].item() == 1.0


def test_smooth_form_is_continuous_and_applies_to_both():
    k = ogm_coefficients({"audio": logits(0.5), "visual": logits(0.75)}, LABELS, 0.8, "smooth")
    assert k["visual"].item() == pytest.approx(1 - math.tanh(0.8 * 0.5))
    assert k["audio"].item() == 1.0
    k = ogm_coefficients({"audio": logits(0.5), "visual": logits(0.5)}, LABELS, 0.8, "smooth")
    assert k["audio"].item() == 1.0 and k["visual"].item() == 1.0


def test_window_is_inclusive_and_scaled_to_the_run():
    assert [modulation_active(e, 0, 0.5, 100) for e in (0, 50, 51)] == [True, True, False]
    assert [modulation_active(e, 2, 0.5, 10) for e in (1, 2, 5, 6)] == [False, True, True, False]


def backward_once(trainer, batch):
    trainer.optimizer.zero_grad(set_to_none=True)
    out = trainer.model(batch.inputs)
    losses = trainer.method.losses(out, batch)
    reg = trainer.regularizer(out.embeddings)["loss"] if trainer.regularizer is not None else None
    trainer.method.backward(losses, reg)
    return out


def with_true_class_probabilities(out, labels, p):
    """``out`` with unimodal logits of the given true-class softmax probability per modality (every other
    class equally likely), so that the coefficients are known exactly: s_m = B·p_m."""
    classes = out.logits.shape[1]
    logits = {}
    for m, p_m in p.items():  # logit ln(p (K-1) / (1-p)) at the label, 0 elsewhere
        rows = torch.zeros(len(labels), classes)
        rows[torch.arange(len(labels)), labels] = math.log(p_m * (classes - 1) / (1 - p_m))
        logits[m] = rows
    return dataclasses.replace(out, unimodal_logits=logits)


# The visual head twice as sure as the audio head: ρ_v = 0.8 / 0.4 = 2 > 1, k_v = 1 - tanh(0.8·2), k_a = 1.
P_TRUE = {"audio": 0.4, "visual": 0.8}
K = {"audio": 1.0, "visual": 1 - math.tanh(1.6)}


@pytest.mark.parametrize("epoch,modulated", [(0, True), (2, True), (3, False)])
def test_only_encoder_conv_weights_are_scaled_inside_the_window(epoch, modulated, debug_raw, tmp_path):
    trainer = make_trainer(debug_raw, tmp_path, {"noise": False}, epochs=4)  # window 0..floor(0.5·4) = 2
    trainer.method.on_epoch_start(epoch)
    batch = next(trainer.data.train.batches(16))
    out = with_true_class_probabilities(backward_once(trainer, batch), batch.labels, P_TRUE)
    before = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    logs = trainer.method.process_gradients(out, batch)
    conv_ids = {id(p) for m in ("audio", "visual") for p in trainer.model.encoders[m].parameters() if p.dim() == 4}
    assert conv_ids
    for n, p in trainer.model.named_parameters():
        if id(p) in conv_ids and modulated:
            m = "audio" if p in set(trainer.model.encoders["audio"].parameters()) else "visual"
            torch.testing.assert_close(p.grad, K[m] * before[n])
        else:
            assert torch.equal(p.grad, before[n]), n
    expected = K if modulated else {"audio": 1.0, "visual": 1.0}
    assert logs["ogm/k_audio"].item() == pytest.approx(expected["audio"], rel=1e-5)
    assert logs["ogm/k_visual"].item() == pytest.approx(expected["visual"], rel=1e-5)
    assert logs["ogm/ratio"].item() == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize("steps", [1, 2])  # the second step's noise continues the stream (a kept buffer)
def test_ge_noise_has_the_std_of_the_unmodulated_gradient_on_conv_weights_only(debug_raw, tmp_path, steps):
    """g ← k·g + z·(std(g) + 1e-8), z one N(0, 1) draw from the method's generator over the conv-weight
    gradients (first encoder, then the second, in parameter order); every other gradient untouched."""
    trainer = make_trainer(debug_raw, tmp_path)
    trainer.method.on_epoch_start(0)
    batch = next(trainer.data.train.batches(16))
    replay = replay_generators(trainer.cfg.seed, streams=8)
    conv_weights = sum(p.numel() for p in trainer.model.encoders.parameters() if p.dim() == 4)
    for _ in range(steps - 1):  # earlier steps: the replay skips their draws
        out = with_true_class_probabilities(backward_once(trainer, batch), batch.labels, P_TRUE)
        trainer.method.process_gradients(out, batch)
        replay_noise(replay, conv_weights)
    out = with_true_class_probabilities(backward_once(trainer, batch), batch.labels, P_TRUE)
    before = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    trainer.method.process_gradients(out, batch)  # k_v = 0.078: std(k·g) is far from std(g), the noise's
    convs = [(m, n) for m in ("audio", "visual") for n, p in trainer.model.encoders[m].named_parameters()
             if p.dim() == 4]
    keys = [f"encoders.{m}.{n}" for m, n in convs]
    z = replay_noise(replay, conv_weights)
    grads = dict(trainer.model.named_parameters())
    for (m, _), key, noise in zip(convs, keys, z.split([before[key].numel() for key in keys])):
        g = before[key]
        expected = K[m] * g + noise.view_as(g) * (g.std() + 1e-8)
        torch.testing.assert_close(grads[key].grad, expected, rtol=1e-5, atol=1e-8, msg=key)
        if g.numel() >= 1000:  # the added noise's spread is the unmodulated gradient's (sampling error ~2%)
            assert (grads[key].grad - K[m] * g).std().item() == pytest.approx(g.std().item(), rel=0.1), key
    for n, p in trainer.model.named_parameters():
        if n not in keys:
            assert torch.equal(p.grad, before[n]), n


def replay_generators(seed: int, streams: int) -> list[torch.Generator]:
    """The noise streams as documented: the run's seed for one stream, else ``streams`` seeds drawn below
    2**62 by ``torch.randint`` from a generator seeded with it."""
    if streams == 1:
        return [torch.Generator().manual_seed(seed)]
    seeds = torch.randint(2**62, (streams,), generator=torch.Generator().manual_seed(seed))
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def replay_noise(generators: list[torch.Generator], numel: int) -> torch.Tensor:
    """``numel`` normals: as equal chunks as ``tensor_split`` makes, chunk i from generator i."""
    chunks = torch.empty(numel).tensor_split(len(generators))
    return torch.cat([torch.randn(len(c), generator=g) for c, g in zip(chunks, generators)])


def modulated_gradients(debug_raw, tmp_path, params=None, threads=1) -> dict[str, torch.Tensor]:
    trainer = make_trainer(debug_raw, tmp_path, params)
    trainer.method.on_epoch_start(0)
    batch = next(trainer.data.train.batches(16))
    out = backward_once(trainer, batch)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer.method.process_gradients(out, batch)
    finally:
        torch.set_num_threads(before)
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_the_noise_does_not_depend_on_the_thread_count(debug_raw, tmp_path):
    one, two = (modulated_gradients(debug_raw, tmp_path / str(n), threads=n) for n in (1, 2))
    assert one.keys() == two.keys() and all(torch.equal(one[n], two[n]) for n in one)


def test_one_noise_stream_is_one_draw_from_the_runs_seed(debug_raw, tmp_path):
    """noise_streams 1: the whole draw from one generator seeded with the run's seed (the single-stream
    form); the default's 8 streams give other numbers."""
    trainer = make_trainer(debug_raw, tmp_path, {"noise_streams": 1})
    z = trainer.method.draw_noise(1000, torch.zeros(1))
    assert torch.equal(z, torch.randn(1000, generator=torch.Generator().manual_seed(trainer.cfg.seed)))
    several = make_trainer(debug_raw, tmp_path / "8").method.draw_noise(1000, torch.zeros(1))
    assert torch.equal(several, replay_noise(replay_generators(trainer.cfg.seed, 8), 1000))
    assert not torch.equal(several, z)


def test_a_checkpoint_of_other_noise_streams_is_refused(debug_raw, tmp_path):
    state = make_trainer(debug_raw, tmp_path, {"noise_streams": 2}).method.state_dict()
    with pytest.raises(ValueError, match="with 8 generator states"):
        make_trainer(debug_raw, tmp_path / "8").method.load_state_dict(state)
    with pytest.raises(ConfigError, match="noise_streams must be >= 1, got 0"):
        make_trainer(debug_raw, tmp_path / "0", {"noise_streams": 0})


def test_a_resumed_run_continues_the_noise_stream(debug_raw, tmp_path, train_interrupted):
    cfg = resolve_run({**debug_raw, "optim": {**debug_raw["optim"], "epochs": 3},
                       "method": {"name": "ogm_ge", "params": {"modulation_end_fraction": 1.0}}})
    straight = run_dir_for(cfg, tmp_path / "straight")
    Trainer(cfg, straight).fit()
    resumed = run_dir_for(cfg, tmp_path / "resumed")
    train_interrupted(cfg, resumed, at_epoch=2)()
    rows = [r.read_metrics() for r in (straight, resumed)]
    for row in rows[0] + rows[1]:
        row.pop("time_s")
    assert rows[0] == rows[1]


def test_dagr_changes_encoder_gradients_but_not_the_coefficients(debug_raw, tmp_path):
    grads, logs = {}, {}
    for dagr in (False, True):
        trainer = make_trainer(debug_raw, tmp_path, {"noise": False}, dagr=dagr)
        trainer.method.on_epoch_start(0)
        batch = next(trainer.data.train.batches(16))
        out = backward_once(trainer, batch)
        logs[dagr] = trainer.method.process_gradients(out, batch)
        grads[dagr] = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    for key in ("ogm/k_audio", "ogm/k_visual", "ogm/ratio"):
        assert torch.equal(logs[False][key], logs[True][key]), key
    for n in grads[False]:
        changed = not torch.allclose(grads[False][n], grads[True][n])
        assert changed == n.startswith("encoders."), n

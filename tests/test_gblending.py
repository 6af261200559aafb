"""G-Blending: the weight formula by hand, the estimation's isolation (no test data, model untouched), training."""
from dataclasses import replace

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines.gblending  # noqa: F401  (registers "gblending")
from baselines import METHODS, MethodSetup
from baselines.gblending import GBlending, GBlendingParams, blend_weights
from benchmarks.data import DatasetSplits
from benchmarks.data.core import TensorSplit
from benchmarks.models import MultimodalModel
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.core.strict import ConfigError
from benchmarks.train.trainer import Trainer

T0 = {"fused": 2.0, "audio": 2.0, "visual": 2.0}
V0 = {"fused": 2.0, "audio": 2.0, "visual": 2.0}
T1 = {"fused": 1.0, "audio": 1.5, "visual": 1.8}
V1 = {"fused": 1.5, "audio": 1.7, "visual": 1.9}
# ΔG = .5/.3/.1, ΔO = .5/.2/.1 → ΔG/ΔO² = 2 / 7.5 / 10, total 19.5


def test_blend_weights_by_hand():
    w = blend_weights(T0, T1, V0, V1)
    assert w == pytest.approx({"fused": 2 / 19.5, "audio": 7.5 / 19.5, "visual": 10 / 19.5})
    assert sum(w.values()) == pytest.approx(1.0)


def test_negative_delta_o_is_squared():
    # fused: O_end = 1.5 - 2.0 = -0.5, O_start = 0 → ΔO = -0.5, same ratio as +0.5
    w = blend_weights(T0, {**T1, "fused": 2.0}, V0, V1)
    assert w == pytest.approx({"fused": 2 / 19.5, "audio": 7.5 / 19.5, "visual": 10 / 19.5})


def test_near_zero_delta_o_is_floored():
    # audio: ΔO = (1.7 - 1.699999) - 0 = 1e-6 < 1e-4 → ΔO² floored at 1e-8 → raw 0.3 / 1e-8 = 3e7
    w = blend_weights(T0, {**T1, "audio": 1.699999}, V0, V1)
    total = 2 + 3e7 + 10
    assert w == pytest.approx({"fused": 2 / total, "audio": 3e7 / total, "visual": 10 / total}, rel=1e-9)
    w0 = blend_weights(T0, {**T1, "audio": 1.7}, V0, V1)  # ΔO exactly 0: finite too
    assert w0 == pytest.approx(w, rel=1e-6)


def test_no_generalisation_gain_gets_the_floor_weight():
    w = blend_weights(T0, T1, V0, {**V1, "visual": 2.1})  # ΔG_visual = -0.1
    assert w == pytest.approx({"fused": 0.99 * 2 / 9.5, "audio": 0.99 * 7.5 / 9.5, "visual": 0.01})
    w = blend_weights(T0, T1, V0, {**V1, "visual": 2.0}, weight_floor=0.05)  # ΔG = 0 exactly
    assert w["visual"] == pytest.approx(0.05) and sum(w.values()) == pytest.approx(1.0)
    bad = blend_weights(T0, T1, V0, {k: 2.5 for k in V1})
    assert bad == pytest.approx({k: 1 / 3 for k in V1})


def test_blend_weights_rejects_bad_input():
    with pytest.raises(ValueError):
        blend_weights(T0, T1, V0, {"fused": 1.0})
    with pytest.raises(ValueError):
        blend_weights(T0, T1, V0, {**V1, "audio": float("nan")})


def test_params_and_schedule():
    with pytest.raises(ConfigError):
        GBlendingParams(super_epoch_fraction=0.0)

    class S:  # only what __init__ reads
        epochs = 100
        lr = 0.002
        generator = torch.Generator().manual_seed(0)

    class M:
        modalities = ("audio", "visual")

    online = GBlending(GBlendingParams(), M(), S())  # a third of 100 epochs, rounded up
    assert online.super_epoch == 34 and online.n_estimation == 34
    assert [e for e in range(100) if online.is_estimation_epoch(e)] == [0, 34, 68]
    S.epochs = 30  # BalanceBenchmark's case: super_epoch 10 of 30
    assert GBlending(GBlendingParams(), M(), S()).super_epoch == 10
    S.epochs = 100
    offline = GBlending(GBlendingParams(mode="offline", estimation_epochs=3), M(), S())
    assert [e for e in range(35) if offline.is_estimation_epoch(e)] == [0] and offline.n_estimation == 3
    assert online.weights == pytest.approx({"fused": 1 / 3, "audio": 1 / 3, "visual": 1 / 3})
    assert online.estimation_lr == 0.002  # the run's lr unless set
    assert GBlending(GBlendingParams(estimation_lr=0.05), M(), S()).estimation_lr == 0.05
    with pytest.raises(ConfigError):
        GBlendingParams(estimation_lr=0.0)


@pytest.fixture
def trainer(debug_raw, tmp_path):
    def make(dagr=False, params=None):
        cfg = resolve_run({**debug_raw, "model": {**debug_raw["model"], "width": 8},
                           "method": {"name": "gblending", "params": params or {}},
                           "dagr": {"enabled": dagr}})
        return Trainer(cfg, run_dir_for(cfg, tmp_path))
    return make


class Untouchable(TensorSplit):
    def batches(self, *args, **kwargs):
        raise AssertionError("the test split was read")


def test_estimation_uses_train_and_val_only_and_leaves_the_model_alone(trainer):
    t = trainer()
    assert "gblending" in METHODS and t.model.unimodal_heads is not None
    test = t.data.test
    nan_test = TensorSplit({m: torch.full_like(x, float("nan")) for m, x in test.inputs.items()}, test.labels)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    for split in (nan_test, Untouchable(nan_test.inputs, nan_test.labels)):
        setup = MethodSetup(replace(t.data, test=split), 20, 16, torch.device("cpu"), torch.Generator().manual_seed(0),
                            lr=0.05)
        method = GBlending(GBlendingParams(estimation_epochs=1), t.model, setup)
        assert method.super_epoch == 7  # ceil(20 / 3)
        logs = method.on_epoch_start(0)
        w = [logs[f"gblend/w_{k}"] for k in ("fused", "audio", "visual")]
        assert all(isinstance(x, float) and 0 < x < 1 for x in w) and sum(w) == pytest.approx(1.0)
        assert logs["gblend/estimate_s"] > 0
        assert method.weights == pytest.approx(dict(zip(("fused", "audio", "visual"), w)))
        between = method.on_epoch_start(1)  # inside the super-epoch: no estimation, same weights
        assert "gblend/estimate_s" not in between and method.weights == pytest.approx(dict(zip(method.heads, w)))
    after = t.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in t.model.parameters())


def test_weighted_losses_and_state_roundtrip(trainer):
    t = trainer()
    t.method.weights = {"fused": 0.5, "audio": 0.3, "visual": 0.2}
    batch = next(t.data.train.batches(16))
    out = t.model(batch.inputs)
    losses = t.method.losses(out, batch)
    assert losses["ce_fused"].item() == pytest.approx(0.5 * F.cross_entropy(out.logits, batch.labels).item())
    assert losses["ce_visual"].item() == pytest.approx(
        0.2 * F.cross_entropy(out.unimodal_logits["visual"], batch.labels).item())
    state = t.method.state_dict()
    other = trainer().method
    other.load_state_dict(state)
    assert other.weights == t.method.weights
    with pytest.raises(ValueError):
        other.load_state_dict({})


class Feature(nn.Module):
    """A parameter-free 1-d "encoder": the input is the embedding."""

    out_dim = 1

    def forward(self, x):
        return x


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_probe_delta_g_and_delta_o_on_a_hand_built_case():
    """Identity encoders, zero-initialised linear heads, 2 classes, one full-batch SGD step (lr 1; momentum
    and weight decay do nothing on a first step from zero). From logits 0, grad W = mean_i (½ - onehot_i) x_i
    and grad b = 0 (balanced labels), so after the step the margin logit_0 - logit_1 is m = a for the audio
    head, m = v / 2 for the visual head and m = a + v / 2 for the fused head; CE(y=0) = log(1 + e^-m),
    CE(y=1) = log(1 + e^m). Train and validation differ, so the V losses show that V is the val split."""
    train = TensorSplit({"audio": torch.tensor([[1.0], [-1.0]]), "visual": torch.tensor([[1.0], [0.0]])},
                        torch.tensor([0, 1]))
    val = TensorSplit({"audio": torch.tensor([[2.0], [-1.0]]), "visual": torch.tensor([[0.0], [2.0]])},
                      torch.tensor([0, 1]))
    data = DatasetSplits(train, val, Untouchable(val.inputs, val.labels), 2, ("a", "b"), {"audio": 1, "visual": 1})
    model = MultimodalModel({"audio": Feature(), "visual": Feature()}, "concat", 2, separate_heads=True)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    setup = MethodSetup(data, 10, 2, torch.device("cpu"), torch.Generator().manual_seed(0), lr=1.0)
    method = GBlending(GBlendingParams(mode="offline", estimation_epochs=1), model, setup)  # lr: the run's
    log2, sp = math.log(2), softplus
    expected = {  # (train_start, train_end, val_start, val_end)
        "audio": (log2, sp(-1), log2, (sp(-2) + sp(-1)) / 2),
        "visual": (log2, (sp(-0.5) + log2) / 2, log2, (log2 + sp(1)) / 2),
        "fused": (log2, (sp(-1.5) + sp(-1)) / 2, log2, (sp(-2) + log2) / 2),
    }
    logs = method.on_epoch_start(0)
    for head, (t0, t1, v0, v1) in expected.items():
        assert logs[f"gblend/dG_{head}"] == pytest.approx(v0 - v1, abs=1e-6)
        assert logs[f"gblend/dO_{head}"] == pytest.approx((v1 - t1) - (v0 - t0), abs=1e-6)
    assert all(torch.all(p == 0) for p in model.parameters())  # the probes trained copies
    # the run's lr is the default; a set estimation_lr wins over it
    slow_method = GBlending(GBlendingParams(estimation_epochs=1, estimation_lr=1.0), model, replace(setup, lr=0.001))
    slow = slow_method._probe("audio", slow_method.start_losses())
    assert slow == pytest.approx(expected["audio"], abs=1e-6)


def test_start_losses_of_every_head_in_one_pass_equal_one_pass_per_head():
    """The estimation measures every head's start losses in one forward pass over a split; a probe's end
    losses run the head alone (its encoder only, for a modality). Both give the same numbers, bit for bit."""
    from baselines.gblending import mean_losses
    from benchmarks.models import build_model
    from benchmarks.grid.config import ModelConfig

    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="small_cnn", width=16, unimodal_heads="separate"),
                        {"audio": 1, "visual": 1}, 4)
    split = TensorSplit({"audio": torch.randn(37, 1, 12, 14), "visual": torch.randn(37, 1, 10, 10)},
                        torch.randint(0, 4, (37,)))
    heads = ("fused", "audio", "visual")
    together = mean_losses(model, split, heads, 8, torch.device("cpu"))
    alone = {k: mean_losses(model, split, (k,), 8, torch.device("cpu"))[k] for k in heads}
    assert together == alone
    assert model.training  # restored after the evaluation-mode passes

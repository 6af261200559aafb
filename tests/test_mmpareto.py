"""MMPareto: per-encoder Pareto gradient combination, heads get the summed gradient."""
import math

import pytest
import torch
from torch import nn

import baselines.mmpareto  # noqa: F401  (registers "mmpareto")
from baselines.mmpareto import MMPareto, MMParetoParams, mmpareto_backward
from benchmarks.grid.config import resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.train.trainer import Trainer
from pareto_reference import official_rule


class Toy(nn.Module):
    """Encoders are bare 2-vectors, one shared head scalar: losses are linear, gradients known by hand."""

    def __init__(self):
        super().__init__()
        self.modalities = ("audio", "visual")
        self.encoders = nn.ModuleDict({m: nn.Module() for m in self.modalities})
        for m in self.modalities:
            self.encoders[m].w = nn.Parameter(torch.zeros(2))
        self.head = nn.Parameter(torch.zeros(()))

    def encoder_parameters(self, m):
        return self.encoders[m].parameters()


def toy_losses(model, c_mm_a, c_a, c_mm_v, c_v):
    wa, wv, h = model.encoders["audio"].w, model.encoders["visual"].w, model.head
    t = lambda c: torch.tensor(c, dtype=torch.float32)  # noqa: E731
    return {"ce_fused": t(c_mm_a) @ wa + t(c_mm_v) @ wv + 2 * h,
            "ce_audio": t(c_a) @ wa + 3 * h,
            "ce_visual": t(c_v) @ wv - h}


def test_hand_computed_gradients_no_conflict_and_conflict():
    model = Toy()
    # audio: g_mm=[1,0], g_u=[1,1] → cos>0 → ½/½ → 1.5·(g_mm+g_u) = [3, 1.5]
    # visual: g_mm=[1,0], g_u=[-1,1] → cos=-1/√2, min-norm w1=(2+1)/(1+2+2)=0.6, g̃=2(0.6g_mm+0.4g_u)=[0.4,0.8],
    #         ||g_mm+g_u||=1 > ||g̃||=√0.8 → rescaled to norm 1, ×1.5 → 1.5·[1,2]/√5
    losses = toy_losses(model, [1, 0], [1, 1], [1, 0], [-1, 1])
    logs = mmpareto_backward(model, losses, None, gamma=1.5)
    assert torch.allclose(model.encoders["audio"].w.grad, torch.tensor([3.0, 1.5]))
    expected_v = 1.5 * torch.tensor([1.0, 2.0]) / math.sqrt(5)
    assert torch.allclose(model.encoders["visual"].w.grad, expected_v, atol=1e-6)
    assert model.head.grad.item() == pytest.approx(2 + 3 - 1)  # head: plain sum
    assert logs["mmpareto/w_mm_audio"].item() == pytest.approx(0.5)
    assert logs["mmpareto/w_mm_visual"].item() == pytest.approx(0.6)
    assert logs["mmpareto/cos_audio"].item() == pytest.approx(1 / math.sqrt(2))
    assert logs["mmpareto/cos_visual"].item() == pytest.approx(-1 / math.sqrt(2))


def test_regularizer_joins_unimodal_side():
    model = Toy()
    losses = toy_losses(model, [1, 0], [1, 1], [1, 0], [1, 1])
    reg = torch.tensor([-2.0, 0.0]) @ model.encoders["audio"].w  # pushes audio's g_u to [-1, 1]: a conflict
    mmpareto_backward(model, losses, reg, gamma=1.5)
    assert torch.allclose(model.encoders["audio"].w.grad, 1.5 * torch.tensor([1.0, 2.0]) / math.sqrt(5), atol=1e-6)
    assert torch.allclose(model.encoders["visual"].w.grad, torch.tensor([3.0, 1.5]))
    assert model.head.grad.item() == pytest.approx(4.0)


@pytest.fixture
def trainer(debug_raw, tmp_path):
    def make(dagr=False):
        cfg = resolve_run({**debug_raw, "model": {**debug_raw["model"], "width": 8},
                           "method": {"name": "mmpareto"}, "dagr": {"enabled": dagr, "tau": 0.0}})
        return Trainer(cfg, run_dir_for(cfg, tmp_path))
    return make


def test_real_model_matches_per_loss_gradients(trainer):
    t = trainer()
    assert isinstance(t.method, MMPareto) and t.method.params == MMParetoParams()
    assert t.model.unimodal_heads is not None
    batch = next(t.data.train.batches(16))
    model = t.model
    out = model(batch.inputs)
    losses = t.method.losses(out, batch)
    assert set(losses) == {"ce_fused", "ce_audio", "ce_visual"}
    heads = list(model.head_parameters())
    expected = {}
    for m in model.modalities:
        ps = list(model.encoder_parameters(m))
        g_mm = torch.autograd.grad(losses["ce_fused"], ps, retain_graph=True)
        g_u = torch.autograd.grad(losses[f"ce_{m}"], ps, retain_graph=True)
        expected.update({id(p): g.float() for p, g in zip(ps, official_rule(g_mm, g_u, 1.5)[0])})
    g_heads = torch.autograd.grad(sum(losses.values()), heads, retain_graph=True)
    expected.update({id(p): g for p, g in zip(heads, g_heads)})
    model.zero_grad(set_to_none=True)
    t.method.backward(losses, None)
    logs = t.method.process_gradients(out, batch)
    assert {"mmpareto/cos_audio", "mmpareto/cos_visual", "mmpareto/w_mm_audio"} <= set(logs)
    assert t.method.process_gradients(out, batch) == {}
    for p in model.parameters():
        assert torch.allclose(p.grad, expected[id(p)], atol=1e-6)


def test_dagr_changes_encoder_gradients_only(trainer):
    grads = {}
    for dagr in (False, True):
        t = trainer(dagr)
        batch = next(t.data.train.batches(16))
        out = t.model(batch.inputs)
        reg = t.regularizer(out.embeddings)["loss"] if dagr else None
        t.method.backward(t.method.losses(out, batch), reg)
        grads[dagr] = {n: p.grad.clone() for n, p in t.model.named_parameters()}
    enc = {id(p) for m in t.model.modalities for p in t.model.encoder_parameters(m)}
    for n, p in t.model.named_parameters():
        changed = not torch.allclose(grads[False][n], grads[True][n])
        assert changed == (id(p) in enc), n

"""DAGR's "Pareto" combination option: per encoder, MMPareto's min-norm rule on task vs DAGR gradients."""
import pytest
import torch

from benchmarks.config import resolve_run
from benchmarks.runner import run_dir_for
from benchmarks.strict import ConfigError
from benchmarks.trainer import Trainer
from geomreg import pareto_combine


def grads_after_backward(debug_raw, tmp_path, combine, method="joint"):
    cfg = resolve_run({**debug_raw, "method": {"name": method},
                       "dagr": {"enabled": True, "combine": combine, "lambda_disperse": 1.0,
                                "lambda_anchor": 1.0, "tau": 0.0}})
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
    batch = next(trainer.data.train.batches(16))
    out = trainer.model(batch.inputs)
    losses = trainer.method.losses(out, batch)
    reg = trainer.regularizer(out.embeddings)["loss"]
    trainer.method.backward(losses, reg)
    return trainer, batch


def test_pareto_combination_matches_the_rule_per_encoder(debug_raw, tmp_path):
    trainer, batch = grads_after_backward(debug_raw, tmp_path, "pareto")
    model = trainer.model
    out = model(batch.inputs)  # same batch and weights (train-mode BN): the same graph, rebuilt
    task = sum(trainer.method.losses(out, batch).values())
    reg = trainer.regularizer(out.embeddings)["loss"]
    for m in model.modalities:
        params = list(model.encoder_parameters(m))
        g_task = torch.autograd.grad(task, params, retain_graph=True)
        g_reg = torch.autograd.grad(reg, params, retain_graph=True)
        expected = pareto_combine(list(g_task), list(g_reg), gamma=1.0).grads
        for p, e in zip(params, expected):
            torch.testing.assert_close(p.grad, e)
    heads = list(model.head_parameters())
    for p, e in zip(heads, torch.autograd.grad(task, heads, retain_graph=True)):
        torch.testing.assert_close(p.grad, e)  # DAGR never reaches the heads


def test_pareto_differs_from_the_plain_sum(debug_raw, tmp_path):
    summed, *_ = grads_after_backward(debug_raw, tmp_path, "sum")
    pareto, *_ = grads_after_backward(debug_raw, tmp_path, "pareto")
    w_sum = summed.model.encoders["audio"].body[0][0].weight.grad
    w_par = pareto.model.encoders["audio"].body[0][0].weight.grad
    assert not torch.allclose(w_sum, w_par)


def test_pareto_is_refused_for_mmpareto(debug_raw):
    with pytest.raises(ConfigError, match="dagr.combine='pareto' is not defined"):
        resolve_run({**debug_raw, "method": {"name": "mmpareto"}, "dagr": {"enabled": True, "combine": "pareto"}})


@pytest.mark.parametrize("method", ["ogm_ge", "pmr", "dgl", "gblending"])
def test_pareto_runs_with_single_backward_methods(debug_raw, tmp_path, method):
    trainer, *_ = grads_after_backward(debug_raw, tmp_path, "pareto", method)
    for name, p in trainer.model.named_parameters():
        if name.startswith("encoders."):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name

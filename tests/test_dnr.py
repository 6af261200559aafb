"""D&R: purity on a toy clustering, α, the schedule and the blend by hand; what the re-learning leaves
alone (head, BN buffers, optimizer state); never the test split; exact resume."""
import math

import numpy as np
import pytest
import torch

from baselines.dnr import blend_toward, diagnosis_epochs, kmeans_purity, purity, relearn_strength
from benchmarks.grid.config import resolve_run
from benchmarks.core.records import RunDir
from benchmarks.grid.naming import run_dir_for
from benchmarks.run.runner import run_one
from benchmarks.train.trainer import Trainer


def make_cfg(debug_raw, epochs=4, seed=0):
    return resolve_run({**debug_raw, "seed": seed, "optim": {**debug_raw["optim"], "epochs": epochs},
                        "method": {"name": "dnr"}})


def test_purity_by_hand():
    # cluster 0 holds labels {0, 0}: majority 2; cluster 1 holds {0, 1, 1, 2}: majority 2 → 4/6.
    assert purity(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1, 1])) == pytest.approx(4 / 6)
    assert purity(np.array([3, 3, 1]), np.array([5, 5, 7])) == 1.0


def test_kmeans_purity_on_two_separated_blobs():
    features = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1],
                         [10.0, 10.0], [10.1, 10.0], [10.0, 10.1], [10.1, 10.1]])
    assert kmeans_purity(features, np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2, n_init=10) == 1.0
    # Blobs {0,0,0,1} and {1,1,1,0}: each cluster's majority covers 3 of 4 → 0.75.
    assert kmeans_purity(features, np.array([0, 0, 0, 1, 1, 1, 1, 0]), 2, n_init=1) == 0.75


def test_strength_is_tanh_of_lambda_times_the_gap():
    assert relearn_strength(0.9, 0.7, 3.0) == pytest.approx(math.tanh(0.6))
    assert relearn_strength(0.5, 0.8, 3.0) == pytest.approx(math.tanh(0.9))
    assert relearn_strength(0.6, 0.6, 3.0) == 0.0


@pytest.mark.parametrize("epochs, expected", [(90, [20, 40, 60]), (100, [22, 44, 66]), (15, [3, 6, 9]),
                                              (4, [1, 2]), (2, [])])
def test_diagnosis_epochs_scale_20_40_60_of_90(epochs, expected):
    assert diagnosis_epochs(epochs, 20 / 90, 3) == expected


def test_blend_by_hand():
    p, p0 = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])
    blend_toward([p], [p0], 0.25)
    assert p.tolist() == [1.5, 3.0]  # 0.25·3 + 0.75·1, 0.25·6 + 0.75·2


def test_relearning_blends_the_encoders_only_and_never_reads_test(debug_raw, tmp_path, monkeypatch):
    cfg = make_cfg(debug_raw)  # 4 epochs: diagnoses after epochs 1 and 2
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
    model, method = trainer.model, trainer.method
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train_epoch(0)
    assert method.on_epoch_start(1) == {}  # epoch 0 is no diagnosis epoch
    monkeypatch.setattr(trainer.data.test, "batches", lambda *a, **k: pytest.fail("D&R read the test split"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    momentum = {id(p): s["momentum_buffer"].clone() for p, s in trainer.optimizer.state.items()}

    logs = method.on_epoch_start(2)
    assert set(logs) == {f"dnr/{k}_{m}" for k in ("purity_train", "purity_val", "alpha") for m in ("audio", "visual")}
    for m in ("audio", "visual"):
        assert logs[f"dnr/alpha_{m}"] == pytest.approx(
            math.tanh(3 * abs(logs[f"dnr/purity_train_{m}"] - logs[f"dnr/purity_val_{m}"])))
    assert max(logs["dnr/alpha_audio"], logs["dnr/alpha_visual"]) > 0.01  # a real blend
    for n, p in model.named_parameters():
        if n.startswith("encoders."):
            a = logs[f"dnr/alpha_{n.split('.')[1]}"]
            torch.testing.assert_close(p.detach(), a * initial[n] + (1 - a) * before[n])
        else:
            assert torch.equal(p, before[n]), n  # the fusion head is left alone
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())  # BN statistics too
    assert all(torch.equal(s["momentum_buffer"], momentum[id(p)]) for p, s in trainer.optimizer.state.items())
    assert model.training


def test_initial_weights_are_part_of_the_method_state(debug_raw, tmp_path):
    first = Trainer(make_cfg(debug_raw), run_dir_for(make_cfg(debug_raw), tmp_path))
    other_cfg = make_cfg(debug_raw, seed=1)
    other = Trainer(other_cfg, run_dir_for(other_cfg, tmp_path))
    other.method.load_state_dict(first.method.state_dict())
    for m in ("audio", "visual"):
        assert all(torch.equal(a, b) for a, b in zip(other.method.initial[m], first.model.encoders[m].parameters()))
    with pytest.raises(ValueError, match="method 'dnr': expected state keys"):
        other.method.load_state_dict({})


def test_interrupted_run_resumes_across_a_diagnosis_to_the_same_result(debug_raw, tmp_path, train_interrupted):
    cfg = make_cfg(debug_raw)
    _, straight = run_one(cfg, tmp_path / "straight")
    run = run_dir_for(cfg, tmp_path / "resumed")
    train_interrupted(cfg, run, at_epoch=2)()
    rows = [{k: v for k, v in r.items() if k != "time_s"} for r in RunDir(run.path).read_metrics()]
    expected = [{k: v for k, v in r.items() if k != "time_s"} for r in straight.read_metrics()]
    assert rows == expected
    assert "dnr/alpha_audio" in rows[2]["method_start"] and "dnr/alpha_audio" in rows[3]["method_start"]

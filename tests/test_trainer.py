"""The training loop: determinism, failures, resume, and the method contract."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines import METHODS, Method, register
from benchmarks.grid.config import GridConfig, resolve_run
from benchmarks.core.records import RunDir
from benchmarks.grid.naming import run_dir_for
from benchmarks.run.repeatability import interruptible_children
from benchmarks.run.runner import run_grid, run_one
from benchmarks.train.trainer import Trainer

ROOT = Path(__file__).parents[1]


@register
class ExplodesAtEpoch1(Method):
    """Test-only method: a finite loss until epoch 1, step 2, then NaN."""

    name = "test_explodes"
    title = "Explodes (test)"

    def __init__(self, *args):
        super().__init__(*args)
        self.step = 0

    def on_epoch_start(self, epoch):
        self.step = 0
        return super().on_epoch_start(epoch)

    def losses(self, out, batch):
        loss = F.cross_entropy(out.logits, batch.labels)
        self.step += 1
        if self.epoch == 1 and self.step == 3:
            loss = loss * float("nan")
        return {"ce_fused": loss}


def metrics(run_dir: Path) -> list:
    """The per-epoch records less the wall times in seconds (``time_s``, a hook's such as ``gblend/estimate_s``)."""
    rows = RunDir(run_dir).read_metrics()
    for r in rows:
        r.pop("time_s")
        for hook in ("method_start", "method_end"):
            r[hook] = {k: v for k, v in r[hook].items() if not k.endswith("_s")}
    return rows


def test_same_seed_twice_gives_identical_metrics(debug_raw, tmp_path):
    cfg = resolve_run(debug_raw)
    _, a = run_one(cfg, tmp_path / "a")
    _, b = run_one(cfg, tmp_path / "b")
    assert metrics(a.path) == metrics(b.path)
    other = resolve_run({**debug_raw, "seed": 1})
    _, c = run_one(other, tmp_path / "c")
    assert metrics(c.path) != metrics(a.path)


def test_run_writes_config_metrics_final_and_done(debug_raw, tmp_path):
    cfg = resolve_run({**debug_raw, "dagr": {"enabled": True}})
    status, run = run_one(cfg, tmp_path)
    assert status == "done" and run.is_done() and run.best.exists() and not run.last.exists()
    final = json.loads(run.final.read_text())
    assert final["run_id"] == cfg.run_id() and final["seed"] == 0 and final["dagr"] is True
    assert {"commit", "dirty"} <= set(final["git"]) and final["environment"]["torch"] == torch.__version__
    assert final["selected"]["best_val"]["epoch"] in (0, 1) and final["wall_time_s"] > 0
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert {"ce_fused", "dagr/loss", "dagr/disperse", "dagr/anchor", "objective"} <= set(rows[0]["train"])
    assert {"acc", "acc_audio", "acc_visual", "f1"} <= set(rows[0]["test"])
    assert run_one(cfg, tmp_path)[0] == "skipped"


def test_nan_loss_fails_that_run_and_the_grid_goes_on(tmp_path):
    grid = GridConfig(benchmark="debug", seeds=[0], methods={"test_explodes": {}, "joint": {}},
                      dagr_arms=["none"], references=[],
                      run={"data": {"name": "debug", "batch_size": 16}, "model": {"width": 8},
                           "optim": {"epochs": 2, "lr": 0.05}})
    report = run_grid(grid, tmp_path, progress=False)
    assert len(report.failed) == 1 and len(report.done) == 1
    failed = json.loads((Path(report.failed[0]) / "failed.json").read_text())
    assert (failed["method"], failed["epoch"], failed["step"]) == ("test_explodes", 1, 2)
    assert "non-finite loss in method 'test_explodes' at epoch 1, step 2" in failed["error"]
    assert not (Path(report.failed[0]) / "last.pt").exists()


# (method, its params, optim settings, epochs, the epoch the run is interrupted at): the shipped grids'
# schedules, and the methods whose state is estimated at an epoch's start and carried over the break.
RESUMED = {
    "scheduler none, with DAGR": ("joint", {}, {"scheduler": "none"}, 4, 2),
    "cosine": ("joint", {}, {"scheduler": "cosine"}, 4, 2),
    "step": ("joint", {}, {"scheduler": "step", "step_size": 3, "gamma": 0.5}, 4, 2),  # the decay after the break
    "AGM's running scores": ("agm", {}, {}, 3, 2),
    "PMR's prototypes, blended from the third pass": ("pmr", {"momentum": 0.5, "modulation_end_fraction": 1.0},
                                                      {}, 4, 3),
    "G-Blending's weights of the estimation at epoch 2": ("gblending", {"super_epoch_fraction": 0.5}, {}, 4, 3),
}


@pytest.mark.parametrize("case", RESUMED)
def test_interrupted_run_resumes_to_the_same_result(case, debug_raw, tmp_path, train_interrupted):
    method, params, optim, epochs, at_epoch = RESUMED[case]
    cfg = resolve_run({**debug_raw, "optim": {**debug_raw["optim"], **optim, "epochs": epochs},
                       "method": {"name": method, "params": params}, "dagr": {"enabled": case.endswith("DAGR")}})
    _, straight = run_one(cfg, tmp_path / "straight")
    run = run_dir_for(cfg, tmp_path / "resumed")
    resume = train_interrupted(cfg, run, at_epoch=at_epoch)
    assert run.last.exists() and not run.is_done() and len(run.read_metrics()) == at_epoch
    resume()
    assert metrics(run.path) == metrics(straight.path)
    assert run.test_predictions.read_bytes() == straight.test_predictions.read_bytes()


def test_a_crash_between_the_metrics_and_the_checkpoint_redoes_that_epoch_once(debug_raw, tmp_path, monkeypatch):
    """metrics.jsonl already holds epoch 1 but last.pt is still epoch 0's: the resume drops the row and the
    predictions of the epoch it trains again."""
    cfg = resolve_run({**debug_raw, "optim": {**debug_raw["optim"], "epochs": 3}})
    _, straight = run_one(cfg, tmp_path / "straight")
    checkpoint = Trainer._checkpoint

    def crash_at_epoch_1(self, rows, epoch, elapsed):
        if epoch == 1:
            raise KeyboardInterrupt
        checkpoint(self, rows, epoch, elapsed)

    run = run_dir_for(cfg, tmp_path / "resumed")
    monkeypatch.setattr(Trainer, "_checkpoint", crash_at_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run).fit()
    assert [r["epoch"] for r in run.read_metrics()] == [0, 1]
    assert torch.load(run.last, weights_only=False)["epoch"] == 0
    monkeypatch.setattr(Trainer, "_checkpoint", checkpoint)
    Trainer(cfg, run).fit()
    assert metrics(run.path) == metrics(straight.path)
    assert run.test_predictions.read_bytes() == straight.test_predictions.read_bytes()


def test_run_keeps_the_test_predictions_of_every_epoch(debug_raw, tmp_path):
    import numpy as np

    _, run = run_one(resolve_run(debug_raw), tmp_path)
    with np.load(run.test_predictions) as data:
        assert sorted(data.files) == ["audio", "epochs", "fused", "labels", "visual"]
        np.testing.assert_array_equal(data["epochs"], [0, 1])
        for row in run.read_metrics():  # the stored classes reproduce the logged accuracies
            for head, key in (("fused", "acc"), ("audio", "acc_audio"), ("visual", "acc_visual")):
                correct = data[head][row["epoch"]] == data["labels"]
                assert correct.mean() == pytest.approx(row["test"][key]), (head, row["epoch"])


def test_killed_grid_resumes_without_redoing_finished_runs(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks", "grid", "benchmarks/configs/debug.yaml", "--runs", str(tmp_path),
           "--no-progress", "--set", "seeds=[0, 1]", "--set", "run.optim.epochs=2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob("debug/*/done")) and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    # A run is finished when its done marker exists (a kill between final.json and the marker leaves
    # a run that the next grid trains again, rightly): its records must not be written again.
    finished = {done.parent / "final.json": (done.parent / "final.json").stat().st_mtime_ns
                for done in tmp_path.glob("debug/*/done")}
    assert finished, "the grid did not finish a first run in time"
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"{len(finished)} already done" in out
    assert len(list(tmp_path.glob("debug/*/done"))) == 8
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())


def test_ctrl_c_stops_a_grid_with_exit_130_and_the_next_call_resumes_the_run(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks", "grid", "benchmarks/configs/debug.yaml", "--runs", str(tmp_path),
           "--no-progress", "--set", "seeds=[0]", "--set", "run.optim.epochs=6", "--set", "references=[]",
           "--set", "dagr_arms=[none]"]
    with interruptible_children():  # also when the tests run in a background job
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("debug/*/last.pt")) and time.time() < deadline:  # one epoch checkpointed
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    (run,) = (RunDir(p) for p in tmp_path.glob("debug/*"))
    assert run.last.exists() and not run.is_done()
    first_epoch = run.metrics.read_text().splitlines()[0]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "1 runs trained, 0 already done" in out and run.is_done() and len(run.read_metrics()) == 6
    assert run.metrics.read_text().splitlines()[0] == first_epoch  # resumed from last.pt, not trained again


TRAINABLE_METHODS = sorted(name for name in METHODS if not name.startswith("test_"))


@pytest.mark.parametrize("dagr", [False, True], ids=["plain", "dagr"])
@pytest.mark.parametrize("name", TRAINABLE_METHODS)
def test_every_method_gives_every_learning_parameter_a_finite_gradient(name, dagr, debug_raw, tmp_path):
    cls = METHODS[name]
    if dagr and not cls.supports_dagr:
        pytest.skip(f"{name} does not combine with DAGR")
    params = {"modality": "visual"} if name == "unimodal" else {}
    cfg = resolve_run({**debug_raw, "method": {"name": name, "params": params}, "dagr": {"enabled": dagr}})
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
    trainer.method.on_epoch_start(0)  # prototypes, blending weights, ...
    for _ in range(2):
        batch = next(trainer.data.train.batches(16, shuffle=True, generator=trainer.generator))
        logs = trainer.train_step(batch)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values()), f"{name}: {logs}"
    for pname, p in trainer.model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize("name", [m for m in TRAINABLE_METHODS if METHODS[m].supports_dagr])
def test_dagr_changes_encoder_gradients_only_and_keeps_the_method_intact(name, debug_raw, tmp_path):
    grads, losses = {}, {}
    for dagr in (False, True):
        cfg = resolve_run({**debug_raw, "method": {"name": name},
                           "dagr": {"enabled": dagr, "lambda_disperse": 1.0, "lambda_anchor": 1.0, "tau": 0.0}})
        trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
        trainer.method.on_epoch_start(0)  # prototypes, blending weights, ...
        batch = next(trainer.data.train.batches(16))
        trainer.optimizer.zero_grad()
        out = trainer.model(batch.inputs)
        losses[dagr] = trainer.method.losses(out, batch)
        reg = trainer.regularizer(out.embeddings)["loss"] if dagr else None
        trainer.method.backward(losses[dagr], reg)
        grads[dagr] = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    for key in losses[False]:  # the method's own terms do not see DAGR
        torch.testing.assert_close(losses[False][key], losses[True][key])
    for n in grads[False]:
        changed = not torch.allclose(grads[False][n], grads[True][n])
        assert changed == n.startswith("encoders."), n  # DAGR acts on the embeddings only


@pytest.mark.parametrize("name", sorted(n for n, cls in METHODS.items() if cls.needs_two_modalities))
def test_pair_methods_refuse_a_single_modality_model(name, debug_raw):
    from baselines import MethodSetup
    from benchmarks.data import load_data
    from benchmarks.models import build_model
    from benchmarks.grid.config import DataConfig, ModelConfig
    from benchmarks.core.strict import ConfigError

    data = load_data(DataConfig(name="debug"), modalities=("audio",))
    model = build_model(ModelConfig(width=8, unimodal_heads="split"), data.channels, data.num_classes)
    setup = MethodSetup(data, 2, 16, torch.device("cpu"), torch.Generator())
    with pytest.raises(ConfigError, match=f"method '{name}' needs two modalities"):
        METHODS[name](METHODS[name].Params(), model, setup)


def test_bn_check_re_estimates_the_statistics_as_one_pass_over_train(debug_raw, tmp_path):
    from benchmarks.run.bn_check import check, recalibrate_batch_norm

    cfg = resolve_run(debug_raw)
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
    trainer.train_one_epoch(0)
    norm = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    batch_means = []
    hook = norm.register_forward_hook(lambda m, inputs, _: batch_means.append(inputs[0].mean(dim=(0, 2, 3))))
    norm.running_mean.fill_(100.0)  # statistics out of step with the weights
    recalibrate_batch_norm(trainer)
    hook.remove()
    # the cumulative average of the pass's batch means (every debug batch has the same size)
    torch.testing.assert_close(norm.running_mean, torch.stack(batch_means).mean(0))
    assert norm.momentum == 0.1 and not trainer.model.training
    result = check(cfg, epoch=1)
    assert result.epoch == 1 and 0 <= result.val_acc <= 1 and 0 <= result.val_acc_recalibrated <= 1
    # re-training to an epoch is the run itself: the same validation accuracy as its record
    straight = run_one(cfg, tmp_path / "straight")[1]
    assert result.val_acc == straight.read_metrics()[1]["val"]["acc"]

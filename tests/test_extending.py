"""What docs/extending.md promises: a new regularizer arm or dataset is picked up by these tests
(a new method is picked up by the parametrized tests of test_trainer.py and test_dagr_pareto.py)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from benchmarks.data import DATASETS
from benchmarks.grid.config import ARM_TITLES, DAGR_ARMS, RunConfig, dagr_arm, resolve_run
from benchmarks.core.strict import to_dict


@pytest.mark.parametrize("arm", sorted(DAGR_ARMS))
def test_every_arm_has_a_title_and_is_recognised_in_its_run_config(arm):
    """Tables name a run's arm from its recorded config: each arm must map back to its own name."""
    assert arm in ARM_TITLES
    cfg = resolve_run({"data": {"name": "debug"}, "dagr": DAGR_ARMS[arm]})
    assert dagr_arm(to_dict(cfg.dagr)) == arm == cfg.arm


IN_PACKAGE = sorted(name for name, dataset in DATASETS.items() if not getattr(dataset, "reads_from_disk", False))


@pytest.mark.parametrize("name", IN_PACKAGE)
def test_every_shipped_dataset_gives_labelled_splits_of_its_declared_modalities(name):
    """The contract of a dataset that needs no files: ``load(Params())`` gives train and test splits
    whose inputs are the modalities of ``channels``, one label per sample, every class in train."""
    dataset = DATASETS[name]
    train, test, class_names = dataset.load(dataset.Params())
    for split in (train, test):
        assert set(split.inputs) == set(dataset.channels) == set(split.modalities)
        assert all(len(x) == len(split.labels) for x in split.inputs.values())
        assert all(torch.isfinite(x.float()).all() for x in split.inputs.values())
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) < len(class_names)
    assert set(train.labels.tolist()) == set(range(len(class_names)))
    assert RunConfig().data.name in DATASETS


def example_method_source() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    section = text.split("## A new method", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_example_method_of_the_docs_trains(debug_raw, tmp_path):
    from baselines import METHODS
    from benchmarks.grid.naming import run_dir_for
    from benchmarks.train.trainer import Trainer

    module = types.ModuleType("baselines.my_method")  # a real module: dataclasses look their own up
    sys.modules[module.__name__] = module
    exec(compile(example_method_source(), "docs/extending.md", "exec"), module.__dict__)
    try:
        cfg = resolve_run({**debug_raw, "method": {"name": "my_method", "params": {"beta": 0.25}}})
        trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
        batch = next(trainer.data.train.batches(16))
        logs = trainer.compute_gradients(batch)
        assert all(p.grad is not None for p in trainer.model.parameters())
        out = trainer.model(batch.inputs)  # the same weights and batch: the same outputs
        for m in ("audio", "visual"):
            expected = 0.25 * torch.nn.functional.cross_entropy(out.unimodal_logits[m], batch.labels)
            torch.testing.assert_close(logs[f"ce_{m}"], expected)
    finally:
        METHODS.pop("my_method", None)
        sys.modules.pop(module.__name__)

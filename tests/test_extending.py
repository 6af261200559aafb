"""What docs/extending.md promises: a new method is one file of the package (imported, trained and
documented without another edit), and a new regularizer arm or dataset is picked up by these tests (a
new method is picked up by the parametrized tests of test_trainer.py and test_dagr_pareto.py)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from benchmarks.data import DATASETS
from benchmarks.grid.config import ARM_TITLES, DAGR_ARMS, RunConfig, dagr_arm, resolve_run
from benchmarks.core.strict import to_dict

ROOT = Path(__file__).resolve().parents[1]


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
    text = (ROOT / "docs" / "extending.md").read_text()
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


def checkout_with_the_example(tmp_path: Path) -> dict[str, str]:
    """A copy of the package with the example saved as ``baselines/my_method.py``, as step 1 of the page
    says, first on the path of a fresh interpreter; returns that interpreter's environment."""
    package = tmp_path / "checkout" / "baselines"
    shutil.copytree(ROOT / "baselines", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "my_method.py").write_text(example_method_source())
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(package.parent), str(ROOT)])}


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_the_example_method_is_one_file_of_the_package_trained_and_documented_in_a_fresh_interpreter(tmp_path):
    """Imported as the package imports its modules (``from baselines import ...`` while the package is
    still loading), trained by the command line with and without DAGR, and given its section of
    docs/methods.md by `docs`, with no other file edited."""
    env = checkout_with_the_example(tmp_path)
    grid = tmp_path / "mine.yaml"
    grid.write_text("benchmark: debug\nseeds: [0]\nmethods: {joint: {}, my_method: {beta: 0.25}}\n"
                    "references: []\nrun: {data: {name: debug, batch_size: 16}, model: {width: 8},\n"
                    "      optim: {epochs: 1, lr: 0.05, scheduler: none}}\n")
    listed = cli(["list"], env, tmp_path).stdout
    assert "  my_method: added to the total loss before backward" in listed
    assert listed.index("  dgl:") < listed.index("  my_method:")  # after the paper's methods
    cli(["reproduce", str(grid), "--runs", "runs", "--results", "results", "--no-progress"], env, tmp_path)
    finals = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "debug").glob("my_method*/final.json")]
    assert sorted(f["dagr"] for f in finals) == [False, True]
    assert all(f["method_origin"] == {"module": "baselines.my_method"} for f in finals)
    assert "| My method " in (tmp_path / "results" / "mine" / "table.md").read_text()

    shutil.copytree(ROOT / "docs", tmp_path / "pages" / "docs")
    said = cli(["docs", "--root", str(tmp_path / "pages")], env, tmp_path).stdout
    assert "docs/methods.md: write what one step of my_method does, where it says *To be written*" in said
    page = (tmp_path / "pages" / "docs" / "methods.md").read_text()
    section = page.split("## My method (`my_method`)\n", 1)[1].split("\n## ", 1)[0]
    assert page.index("## Unimodal references") < page.index("## My method") < page.index("## The cost of AGM")
    assert re.search(r"\| `beta` \| `0.5` \| float \| The weight of the unimodal losses: say where", section)
    assert "*To be written*" in section and "added to the total loss before backward" in section
    assert "| My method (`my_method`) | added to the total loss before backward |" in page  # the DAGR rules
    assert "up to date" in cli(["docs", "--check", "--root", str(tmp_path / "pages")], env, tmp_path).stdout

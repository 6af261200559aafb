"""What docs/compare.md promises: a method in a file outside the repository trains in a grid against the
shipped methods through the command line (in worker processes and job arrays too), its runs record
where it came from, and no method moves the run's data order (the runs pair by seed)."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines import METHODS, plugins
from baselines.plugins import PluginSource, load_entry_points, load_plugins, method_origin, plugin_source
from benchmarks.core.strict import ConfigError
from benchmarks.grid.config import GridConfig, expand_grid, load_grid, resolve_run
from benchmarks.grid.naming import run_dir_for
from benchmarks.report.options import shipped_methods
from benchmarks.run.parallel import ClusterOptions
from benchmarks.run.runner import run_grid
from benchmarks.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "compare.md").read_text()
# The page's grid made short: one seed, one epoch, a narrow model on the debug dataset.
SHORT = ["--set", "seeds=[0]", "--set", "run.optim.epochs=1", "--set", "run.model.width=8",
         "--set", "run.data.name=debug", "--set", "run.data.params={}", "--set", "run.data.batch_size=16"]


def page_block(language: str) -> str:
    return PAGE.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def page_files(folder: Path) -> tuple[Path, Path]:
    """The page's method file and grid, saved under the names the page gives them."""
    method, grid = folder / "modality_dropout.py", folder / "compare_dropout.yaml"
    method.write_text(page_block("python"))
    grid.write_text(page_block("yaml"))
    return method, grid


@pytest.fixture
def plugin_scope():
    """Methods and plugins a test loads into this process are gone after it."""
    methods, loaded, modules = dict(METHODS), dict(plugins.LOADED), set(sys.modules)
    yield
    METHODS.clear()
    METHODS.update(methods)
    plugins.LOADED.clear()
    plugins.LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        if name.startswith(("geomreg_plugin_", "my_lab")):
            del sys.modules[name]


def test_the_pages_method_and_grid_train_with_its_command_against_the_shipped_methods(tmp_path):
    """The page's command, in a fresh interpreter: worker processes (--jobs 2) import the plugin too."""
    method, _ = page_files(tmp_path)
    command = next(line for line in page_block("bash").splitlines() if line.startswith("python -m benchmarks"))
    argv = shlex.split(command)[3:]
    assert "--plugin" in argv and "--jobs" in argv and "--against" in argv
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "benchmarks", *argv, "--no-progress", *SHORT], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "build" / "results" / "compare_dropout"
    table = re.sub(" +", " ", (out / "table.md").read_text())
    assert "## Against DGL (validation-selected)" in table
    for row in ("| Modality dropout | no regularizer |", "| Modality dropout | DAGR (Pareto-balanced) |",
                "| Joint training | no regularizer |"):
        assert row in table.split("## Against DGL")[1], row
    assert "## Against DGL" in re.sub(" +", " ", done.stdout)  # the command prints the table it writes
    finals = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "avdigits").glob("*/final.json")]
    assert sorted(f["method"] for f in finals) == sorted(["joint", "dgl", "modality_dropout"] * 2)
    origins = [f["method_origin"] for f in finals if f["method"] == "modality_dropout"]
    digest = hashlib.sha256(method.read_bytes()).hexdigest()
    assert all(o["plugin"] == f"--plugin {method.resolve()}" and o["file"] == str(method.resolve())
               and o["sha256"] == digest for o in origins)
    assert {f["method_origin"]["module"] for f in finals if f["method"] == "dgl"} == {"baselines.dgl"}


def test_the_pages_grid_shares_the_default_grids_runs_of_the_shipped_methods(tmp_path, plugin_scope):
    method, grid = page_files(tmp_path)
    load_plugins([plugin_source(str(method))])
    ours = {cfg.run_id(): cfg for cfg in expand_grid(load_grid(grid))}
    default = {cfg.run_id() for cfg in expand_grid(load_grid(ROOT / "benchmarks" / "configs" / "avdigits.yaml"))}
    new = {cfg.method.name for run_id, cfg in ours.items() if run_id not in default}
    assert new == {"modality_dropout"} and len(ours) == 3 * 2 * 3  # only the method's own runs train
    with pytest.raises(ConfigError, match=r"^method 'modality_dropout' \(Modality dropout\): "
                                          r"methods\.modality_dropout\.p must be in \[0, 1\], got 2\.0$"):
        load_grid(grid, ["methods.modality_dropout.p=2"])


def keeps_the_data_order(method: str, params: dict, debug_raw, tmp_path: Path, epochs: int = 2) -> bool:
    """Whether, after ``epochs`` epochs with ``method``, the run's generator has drawn exactly one shuffle
    of the training split per epoch (the data order of every method at this seed) and nothing else."""
    raw = copy.deepcopy(debug_raw)
    raw["optim"]["epochs"] = epochs
    raw["model"]["width"], raw["eval"] = 8, {"geometry": []}
    cfg = resolve_run({**raw, "method": {"name": method, "params": params}})
    trainer = Trainer(cfg, run_dir_for(cfg, tmp_path))
    shuffles = torch.Generator().manual_seed(cfg.seed)
    for _ in range(epochs):
        next(trainer.data.train.batches(cfg.data.batch_size, shuffle=True, generator=shuffles))
    trainer.fit()
    return torch.equal(trainer.generator.get_state(), shuffles.get_state())


@pytest.mark.parametrize("name", shipped_methods(METHODS))
def test_every_method_leaves_the_runs_data_order_alone(name, debug_raw, tmp_path):
    """A method's own randomness comes from its own generator, so its runs see the batches of every
    other method at the same seed."""
    assert keeps_the_data_order(name, {"modality": "audio"} if name == "unimodal" else {}, debug_raw, tmp_path)


def test_the_pages_method_leaves_the_data_order_alone_and_resumes_its_draws(debug_raw, tmp_path, plugin_scope,
                                                                            train_interrupted):
    method, _ = page_files(tmp_path)
    load_plugins([plugin_source(str(method))])
    assert keeps_the_data_order("modality_dropout", {"p": 0.5}, debug_raw, tmp_path / "a", epochs=3)
    # interrupted at epoch 2 and resumed from last.pt: the same records as in one go
    debug_raw["optim"]["epochs"] = 3
    debug_raw["model"]["width"], debug_raw["eval"] = 8, {"geometry": []}
    cfg = resolve_run({**debug_raw, "method": {"name": "modality_dropout", "params": {"p": 0.5}}})
    resume = train_interrupted(cfg, run_dir_for(cfg, tmp_path / "c"), at_epoch=2)
    resume()
    at_once, resumed = (without_times(run_dir_for(cfg, tmp_path / d).read_metrics()) for d in ("a", "c"))
    assert len(resumed) == 3 and resumed == at_once


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows]


def test_a_cluster_job_array_imports_the_plugin_before_it_trains(tmp_path, plugin_scope):
    method, _ = page_files(tmp_path)
    load_plugins([plugin_source(str(method))])
    grid = GridConfig(benchmark="debug", seeds=[0], methods={"modality_dropout": {}}, dagr_arms=["none"],
                      references=[], run={"data": {"name": "debug", "batch_size": 16}, "model": {"width": 8},
                                          "optim": {"epochs": 1, "scheduler": "none"}})
    report = run_grid(grid, tmp_path, progress=False, executor="submitit-local", cluster=ClusterOptions(time_min=5))
    assert len(report.done) == 1 and not (report.failed or report.missing), report.summary()


# --- loading plugins ----------------------------------------------------------------------------------
def test_a_plugin_that_fails_is_one_error_naming_it(tmp_path, plugin_scope):
    with pytest.raises(ConfigError, match=r"^--plugin nowhere\.py: no such file$"):
        plugin_source("nowhere.py")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ConfigError, match=r"empty\.py: registers no method"):
        load_plugins([plugin_source(str(empty))])
    twice = tmp_path / "twice.py"
    twice.write_text("from baselines import Method, register\n\n\n@register\nclass Again(Method):\n"
                     "    name, title = 'joint', 'Joint again'\n")
    with pytest.raises(ConfigError, match=r"twice\.py: ValueError: method name 'joint' is registered twice "
                                          r"\(baselines\.joint and geomreg_plugin_twice_\w+\)"):
        load_plugins([plugin_source(str(twice))])
    assert METHODS["joint"].__module__ == "baselines.joint"
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    with pytest.raises(ConfigError, match=r"broken\.py: SyntaxError"):
        load_plugins([plugin_source(str(broken))])


def test_an_installed_packages_entry_point_is_loaded_and_recorded(tmp_path, monkeypatch, plugin_scope):
    """A package declaring the group geomreg.methods: its module is imported by every command."""
    site = tmp_path / "site"
    (site / "my_lab-0.1.dist-info").mkdir(parents=True)
    (site / "my_lab-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-lab\nVersion: 0.1\n")
    (site / "my_lab-0.1.dist-info" / "entry_points.txt").write_text(
        "[geomreg.methods]\nmodality_dropout = my_lab_dropout\n")
    (site / "my_lab_dropout.py").write_text(page_block("python"))
    monkeypatch.syspath_prepend(str(site))
    load_entry_points()
    assert "modality_dropout" in METHODS
    origin = method_origin("modality_dropout")
    assert origin["module"] == "my_lab_dropout"
    assert origin["plugin"] == "entry point modality_dropout = my_lab_dropout (group geomreg.methods)"
    assert origin["file"] == str((site / "my_lab_dropout.py").resolve())
    assert PluginSource("entry point", "my_lab_dropout", "modality_dropout") in plugins.loaded_plugins()
    load_entry_points()  # once per process: a second load registers nothing twice


def test_the_command_line_loads_a_module_named_by_plugin(tmp_path, monkeypatch, plugin_scope, capsys):
    from benchmarks.__main__ import main

    (tmp_path / "my_lab_methods.py").write_text(page_block("python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "--plugin", "my_lab_methods"]) == 0
    assert "  modality_dropout: added to the total loss before backward; DAGR sees" in capsys.readouterr().out

"""The paper's table configs end to end on fixture trees in the real layouts (no real data here):
data-check → grid with one epoch of the real config → table beside the published numbers."""
import json

import pytest

from benchmarks.__main__ import main as cli
from benchmarks.data.fixtures import write_cremad_fixture, write_ks_fixture
from benchmarks.grid.config import expand_grid, load_grid

# One epoch, one seed, 64-px frames: the real recipe otherwise (ResNet-18s, the real audio features).
SMALL = ["run.optim.epochs=1", "seeds=[0]", "run.data.eval_batch_size=64", "run.data.params.frame_size=64"]


@pytest.mark.slow
@pytest.mark.parametrize("config, write, dataset", [
    ("table1_cremad", write_cremad_fixture, "cremad"),
    ("table1_kinetics_sounds", write_ks_fixture, "kinetics_sounds"),
])
def test_one_epoch_of_the_table1_config_on_a_fixture(tmp_path, capsys, config, write, dataset):
    root = tmp_path / "data"
    splits = write(root, layout="raw", clips_per_class=3)
    assert cli(["data-check", dataset, "--root", str(root), "--set", f"split_dir={splits}"]) == 0
    path = f"benchmarks/configs/{config}.yaml"
    overrides = [*SMALL, f"run.data.params.root={root}", f"run.data.params.split_dir={splits}",
                 "methods={dgl: {alpha: 4.0}}", "references=[]"]
    args = [path, "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results"), "--no-progress"]
    assert cli(["reproduce", *args, *sum((["--set", o] for o in overrides), [])]) == 0

    runs = expand_grid(load_grid(path, overrides))
    assert [r.label for r in runs] == ["dgl-s0", "dgl+dagr-s0"]
    assert runs[0].model.encoder == "resnet18" and runs[0].optim.lr == 0.002
    run_dir = next((tmp_path / "runs" / dataset).glob("dgl+dagr-s0-*"))
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert {"acc", "acc_audio", "acc_visual", "geometry"} <= set(row["test"])
    assert "dagr/disperse" in row["train"] and "dagr/anchor" in row["train"]
    table = (tmp_path / "results" / config / "table.md").read_text()
    assert "## Beside the published numbers" in table and "D&R (Wei et al., 2024)" in table
    assert "paper only" not in table
    assert "MISSING" not in table


def test_data_check_fails_on_a_missing_clip(tmp_path, capsys):
    root = tmp_path / "data"
    splits = write_cremad_fixture(root, layout="ogm_ge", clips_per_class=2)
    missing = next((root / "AudioWAV").glob("*.wav"))
    missing.unlink()
    assert cli(["data-check", "cremad", "--root", str(root), "--set", f"split_dir={splits}"]) == 1
    assert missing.stem in capsys.readouterr().out

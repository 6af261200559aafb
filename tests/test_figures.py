"""Figures and the sensitivity summary from hand-built run records (no training)."""
import json

import pytest
import yaml

from benchmarks.__main__ import main as cli
from benchmarks.report import figures
from benchmarks.report.figures import (
    MissingData,
    accuracy_overview,
    sensitivity_figure,
    sensitivity_summary,
    similarity_figure,
    training_curves,
)
from benchmarks.grid.config import DAGR_ARMS, dump_yaml, expand_grid, load_grid
from benchmarks.grid.naming import run_dir_for

DAGR_DEFAULTS = {"enabled": False, "t": 2.0, "tau": 0.5, "lambda_disperse": 0.1, "lambda_anchor": 0.1,
                 "weighting": "pareto", "terms": "both"}


def geometry(level: float) -> dict:
    """A geometry record whose every quantity grows with ``level`` (one modality pair, 40 bins)."""
    matched, mismatched = [0] * 40, [0] * 40
    matched[30], matched[31] = 6, 4
    mismatched[28], mismatched[30] = 60, 30
    recall = {str(k): min(1.0, level * k / 10) for k in (1, 2, 5, 10)}
    return {"n": 10, "bins": 40, "effective_rank": {"audio": 4 + level, "visual": 4 + 2 * level, "mean": 4 + 1.5 * level},
            "semantic_margin": {"audio": level, "visual": level / 2, "fused": 2 * level},
            "pairs": {"audio-visual": {
                "deviation": 0.5 + level, "matched_mean": 0.7, "mismatched_mean": 0.7 - level / 10,
                "delta_mu": level / 10, "ks": level / 5, "cosine_margin": level / 100,
                "recall": {"audio->visual": recall, "visual->audio": recall},
                "hist": {"matched": matched, "mismatched": mismatched}}}}


def record(method="joint", arm="none", seed=0, val=(0.5, 0.7, 0.6), test=(0.4, 0.5, 0.6), modality=None,
           with_geometry=True, **dagr):
    """A finished run's record: epoch e has geometry(level = e + seed/10, + 1 with the regularizer)."""
    params = {"modality": modality} if modality else {}
    config = {"seed": seed, "method": {"name": method, "params": params},
              "dagr": {**DAGR_DEFAULTS, **DAGR_ARMS[arm], **dagr}}
    rows = []
    for epoch, (v, t) in enumerate(zip(val, test)):
        level = epoch + seed / 10 + (arm != "none")
        split = {"val": {"acc": v}, "test": {"acc": t, **({f"acc_{modality}": t} if modality else {})}}
        if with_geometry:
            for s in split.values():
                s["geometry"] = geometry(level)
        rows.append({"epoch": epoch, "lr": 0.1, "train": {"loss": 1.0}, **split})
    return {"config": config, "metrics": rows, "final": {}}


def arms_records(arms=("none", "dagr"), seeds=(0, 1, 2)):
    return [record(arm=a, seed=s) for a in arms for s in seeds]


def written(paths):
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    return paths


def test_training_curves(tmp_path):
    written(training_curves(arms_records(("none", "disperse", "dagr", "dagr-fixed")), tmp_path / "curves"))


def test_curve_matrix_aligns_seeds_on_common_epochs():
    short = record(seed=1, val=(0.5, 0.7), test=(0.4, 0.5))
    epochs, values = figures.curve_matrix([record(seed=0), short], "test", lambda g: g["effective_rank"]["mean"])
    assert epochs == [0, 1]
    assert values.ravel().tolist() == pytest.approx([4.0, 5.5, 4.15, 5.65])  # 4 + 1.5 * (epoch + seed / 10)


def test_figures_need_geometry_and_one_method(tmp_path):
    records = [record(arm=a, with_geometry=False) for a in ("none", "dagr")]
    with pytest.raises(MissingData, match="eval.geometry"):
        training_curves(records, tmp_path / "c")
    with pytest.raises(MissingData, match="pass method="):
        training_curves(arms_records() + [record(method="ogm_ge")], tmp_path / "c")
    with pytest.raises(MissingData, match="several records per seed"):
        training_curves(arms_records() + [record(arm="dagr", tau=0.3)], tmp_path / "c")


def test_similarity_figure_and_its_statistics(tmp_path):
    records = arms_records()
    written(similarity_figure(records, tmp_path / "sim"))
    dagr = [r for r in records if figures.arm_of(r) == "dagr"]
    # selected epoch is 1 (val 0.7) -> level 2 + seed/10 -> Δμ = 0.2 + seed/100: mean 0.21, std 0.01
    assert figures.seed_stats(dagr, "test", "delta_mu") == pytest.approx((0.21, 0.01))
    matched, mismatched, bins = figures.pooled_histograms(dagr, "test")
    assert bins == 40 and matched[30] == 18 and mismatched.sum() == 270
    with pytest.raises(MissingData, match=r"needs arm\(s\) \['dagr'\]"):
        similarity_figure(arms_records(("none",)), tmp_path / "sim")


def test_accuracy_overview_with_references_is_deterministic(tmp_path):
    refs = [record(method="unimodal", modality=m, seed=s) for m in ("audio", "visual") for s in (0, 1)]
    records = arms_records() + [record(method="pmr", arm=a) for a in ("none", "dagr")] + refs
    first = [p.read_bytes() for p in written(accuracy_overview(records, tmp_path / "overview"))]
    second = [p.read_bytes() for p in written(accuracy_overview(records, tmp_path / "overview"))]
    assert first == second  # no timestamps: same records, same bytes
    assert figures.selected_accuracy(refs[0]) == pytest.approx(50.0)  # test acc at the best val epoch


def test_overview_delta_panel_pairs_by_seed():
    from matplotlib.figure import Figure

    # DGL-free toy: joint without DAGR is 50% at the selected epoch 1 for every seed; with DAGR 51, 53, 52
    records = arms_records(("none",)) + [record(arm="dagr", seed=s, test=(0.4, t, 0.6))
                                         for s, t in ((0, 0.51), (1, 0.53), (2, 0.52))]
    records += [record(method="pmr", arm=a) for a in ("none", "dagr")]  # one seed: a point, no bar
    plotted = figures.delta_panel(Figure().subplots(), records, ["Joint training", "PMR"], ["dagr"])
    (joint_method, joint_arm, joint, joint_verdict), (pmr_method, _, pmr, pmr_verdict) = plotted
    assert (joint_method, joint_arm, pmr_method) == ("Joint training", "dagr", "PMR")
    # differences 1, 3, 2: mean 2, sd 1, interval 2 ± 4.302653 / sqrt(3)
    assert joint.mean == pytest.approx(2.0) and joint.ci_high == pytest.approx(2 + 2.484138, abs=1e-5)
    assert joint_verdict == "within noise"
    assert pmr.n == 1 and pmr.mean == pytest.approx(0.0) and pmr_verdict == "no test"


def sweep_records():
    """tau × t sweep, 3 seeds; (0.5, 1.0) is best on validation: 80/82/84 -> mean 82, std 2."""
    val_at = {(0.3, 1.0): 0.70, (0.3, 2.0): 0.75, (0.5, 1.0): 0.82, (0.5, 2.0): 0.78}
    records = []
    for (tau, t), v in val_at.items():
        for seed in (0, 1, 2):
            acc = v + 0.02 * (seed - 1)
            records.append(record(arm="dagr", seed=seed, tau=tau, t=t, val=(0.1, acc), test=(0.9, acc - 0.1)))
    # without the regularizer (not swept) and a reference: both ignored even with a higher accuracy
    return records + [record(arm="none", val=(0.99,), test=(0.99,)),
                      record(method="unimodal", modality="audio", val=(0.99,), test=(0.99,))]


def test_sensitivity_summary_by_hand():
    summary = sensitivity_summary(sweep_records())
    assert list(summary[["dagr.tau", "dagr.t"]].itertuples(index=False, name=None)) == [
        (0.3, 1.0), (0.3, 2.0), (0.5, 1.0), (0.5, 2.0)]  # sweep order kept
    chosen = summary[summary["chosen"]]
    assert len(chosen) == 1
    best = chosen.iloc[0]
    assert (best["dagr.tau"], best["dagr.t"], best["seeds"]) == (0.5, 1.0, 3)
    assert best["val_acc_mean"] == pytest.approx(82.0) and best["val_acc_std"] == pytest.approx(2.0)
    assert best["test_acc_mean"] == pytest.approx(72.0)  # test at the validation-selected epoch 1, not 90
    assert set(summary["arm"]) == {"dagr"}


def test_sensitivity_ties_go_to_the_first_point():
    records = [record(arm="dagr", tau=tau, val=(0.8,), test=(0.5,)) for tau in (0.7, 0.3)]
    summary = sensitivity_summary(records, keys=("dagr.tau",))
    assert summary["chosen"].tolist() == [True, False]


def test_sensitivity_figure(tmp_path):
    written(sensitivity_figure(sensitivity_summary(sweep_records()), tmp_path / "sens"))
    one_key = sensitivity_summary(sweep_records()[:6], keys=("dagr.tau",))
    written(sensitivity_figure(one_key, tmp_path / "sens1", keys=("dagr.tau",)))


def write_runs(grid, runs, arms):
    """Record files for the grid's runs of the given arms (references included), as the trainer writes them."""
    for cfg in expand_grid(grid):
        if cfg.arm not in arms:
            continue
        run = run_dir_for(cfg, runs)
        run.path.mkdir(parents=True)
        run.config.write_text(dump_yaml(cfg))
        rec = record(method=cfg.method.name, arm=cfg.arm, seed=cfg.seed, modality=cfg.method.params.get("modality"))
        run.write_metrics(rec["metrics"])
        run.final.write_text(json.dumps({}))
        run.done.touch()


def test_main_draws_what_the_records_support(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"benchmark": "debug", "seeds": [0, 1], "methods": {"joint": {}},
                                      "dagr_arms": ["none", "disperse", "dagr"],
                                      "run": {"data": {"name": "debug"}}}))
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = [str(config), "--runs", str(runs), "--results", str(results)]
    grid = load_grid(config)
    write_runs(grid, runs, arms={"none"})
    assert cli(["figures", *argv]) == 0
    out = capsys.readouterr().out
    assert "6 finished, 0 failed, 4 missing runs" in out
    for name in ("curves_joint", "similarity_joint", "overview"):
        assert f"skipped {name}: " in out and "no finished runs" in out
    assert not results.exists()

    write_runs(grid, runs, arms={"disperse", "dagr"})
    assert cli(["figures", *argv]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out
    stems = ("curves_joint", "similarity_joint", "overview")
    assert sorted(p.name for p in (results / "tiny" / "figures").iterdir()) == sorted(
        f"{s}.{ext}" for s in stems for ext in ("pdf", "png"))


def test_main_on_a_sweep_grid(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"benchmark": "debug", "seeds": [0], "methods": {"joint": {}},
                                      "references": [], "sweep": {"dagr.tau": [0.3, 0.5]},
                                      "run": {"data": {"name": "debug"}}}))
    write_runs(load_grid(config), tmp_path / "runs", arms={"none", "dagr"})
    assert cli(["figures", str(config), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped curves, similarity, overview: the grid sweeps ['dagr.tau']" in out
    assert (tmp_path / "sweep" / "figures" / "sensitivity.png").exists()

"""Strict configs: unknown keys and wrong types are errors that name the key."""
import copy
from pathlib import Path

import pytest
import yaml

from benchmarks.grid.config import DAGR_ARMS, GridConfig, expand_grid, load_grid, resolve_run
from benchmarks.core.strict import ConfigError

CONFIGS = sorted((Path(__file__).parents[1] / "benchmarks" / "configs").glob("*.yaml"))


def test_unknown_nested_key_is_named(debug_raw):
    debug_raw["optim"]["lrr"] = 0.1
    with pytest.raises(ConfigError, match=r"'optim\.lrr'"):
        resolve_run(debug_raw)


def test_wrong_type_is_named(debug_raw):
    debug_raw["optim"]["lr"] = "fast"
    with pytest.raises(ConfigError, match=r"optim\.lr: expected a number"):
        resolve_run(debug_raw)


def test_bool_is_not_an_int(debug_raw):
    debug_raw["optim"]["epochs"] = True
    with pytest.raises(ConfigError, match=r"optim\.epochs"):
        resolve_run(debug_raw)


def test_choice_lists_allowed_values(debug_raw):
    debug_raw["model"]["fusion"] = "film"
    with pytest.raises(ConfigError, match=r"model\.fusion: 'film' is not one of \['concat', 'sum'\]"):
        resolve_run(debug_raw)


def test_dataset_and_method_params_are_strict(debug_raw):
    bad = copy.deepcopy(debug_raw)
    bad["data"]["params"] = {"n_trian": 10}
    with pytest.raises(ConfigError, match=r"'data\.params\.n_trian'"):
        resolve_run(bad)
    bad = copy.deepcopy(debug_raw)
    bad["method"] = {"name": "unimodal", "params": {"modality": 3}}
    with pytest.raises(ConfigError, match=r"method\.params\.modality"):
        resolve_run(bad)


def test_unknown_method_lists_available(debug_raw):
    debug_raw["method"]["name"] = "ogm"
    with pytest.raises(ConfigError, match=r"unknown method 'ogm'; available: .*joint"):
        resolve_run(debug_raw)


def test_resolution_fills_every_default(debug_raw):
    cfg = resolve_run(debug_raw)
    assert cfg.data.params["num_classes"] == 4  # the dataset's Params defaults are written out
    assert cfg.model.unimodal_heads == "split"  # "auto" resolved by the method
    assert cfg.run_id() == resolve_run(copy.deepcopy(debug_raw)).run_id()
    debug_raw["optim"]["lr"] = 0.01
    assert resolve_run(debug_raw).run_id() != cfg.run_id()


def test_run_id_ignores_settings_the_run_does_not_read(debug_raw):
    def run_id(**changes):
        raw = copy.deepcopy(debug_raw)
        for dotted, value in changes.items():
            node = raw
            *parents, leaf = dotted.split("__")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return resolve_run(raw).run_id()

    base = run_id()
    # regularizer off: none of its other settings counts (whatever keys the block has)
    assert run_id(dagr__tau=0.9) == run_id(dagr__t=3.0) == base
    assert run_id(dagr__enabled=True, dagr__tau=0.9) != run_id(dagr__enabled=True) != base
    # the scheduler is "none" here: StepLR's settings are unused; under "step" they count
    assert run_id(optim__step_size=5, optim__gamma=0.5) == base
    assert run_id(optim__scheduler="step", optim__step_size=5) != run_id(optim__scheduler="step")
    # SGD's momentum counts for SGD only
    assert run_id(optim__momentum=0.5) != base
    assert run_id(optim__name="adamw", optim__momentum=0.5) == run_id(optim__name="adamw")
    # the small CNN's shape counts for the small CNN only
    assert run_id(model__width=8) != base
    assert run_id(model__encoder="resnet18", model__width=8) == run_id(model__encoder="resnet18")


def test_unimodal_reference_rejects_dagr(debug_raw):
    debug_raw["method"] = {"name": "unimodal", "params": {"modality": "audio"}}
    debug_raw["dagr"] = {"enabled": True}
    with pytest.raises(ConfigError, match="cannot be combined with DAGR"):
        resolve_run(debug_raw)


def test_grid_expands_methods_arms_seeds_and_references():
    grid = GridConfig(benchmark="debug", seeds=[0, 1, 2], methods={"joint": {}},
                      run={"data": {"name": "debug"}})
    runs = expand_grid(grid)
    labels = [r.label for r in runs]
    assert len(runs) == 1 * 2 * 3 + 2 * 3
    assert labels[:6] == ["joint-s0", "joint-s1", "joint-s2", "joint+dagr-s0", "joint+dagr-s1", "joint+dagr-s2"]
    assert len({r.run_id() for r in runs}) == len(runs)
    assert {r.method.params.get("modality") for r in runs if r.method.name == "unimodal"} == {"audio", "visual"}


def test_grid_may_not_set_seed_in_run():
    with pytest.raises(ConfigError, match="run.seed is set by the grid"):
        GridConfig(benchmark="x", seeds=[0], methods={}, run={"seed": 3})


def test_overrides_are_parsed_as_yaml(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"benchmark": "debug", "seeds": [0], "methods": {"joint": {}},
                                    "run": {"data": {"name": "debug"}}}))
    grid = load_grid(path, ["run.optim.epochs=3", "seeds=[4, 5]"])
    assert grid.seeds == [4, 5]
    assert {r.optim.epochs for r in expand_grid(grid)} == {3}
    with pytest.raises(ConfigError, match="key=value"):
        load_grid(path, ["run.optim.epochs"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_resolves(path):
    assert expand_grid(load_grid(path))


def test_sweeps_do_not_leak_into_the_arm_table_or_later_grids():
    before = {k: dict(v) for k, v in DAGR_ARMS.items()}
    sweep = GridConfig(benchmark="debug", seeds=[0], methods={"joint": {}}, references=[],
                       sweep={"dagr.tau": [0.3, 0.7]}, run={"data": {"name": "debug"}})
    assert sorted(r.dagr.tau for r in expand_grid(sweep) if r.dagr.enabled) == [0.3, 0.7]
    assert DAGR_ARMS == before
    plain = GridConfig(benchmark="debug", seeds=[0], methods={"joint": {}}, references=[],
                       run={"data": {"name": "debug"}, "dagr": {"tau": 0.9}})
    assert {r.dagr.tau for r in expand_grid(plain)} == {0.9}


def test_method_run_sets_one_methods_runs_in_every_arm_and_nothing_else():
    grid = GridConfig(benchmark="debug", seeds=[0], methods={"joint": {}, "ogm_ge": {}},
                      run={"data": {"name": "debug"}, "optim": {"lr": 0.05, "epochs": 2}},
                      method_run={"joint": {"optim": {"lr": 0.01}}})
    lrs = {(cfg.method.name, cfg.dagr.enabled): cfg.optim.lr for cfg in expand_grid(grid)}
    assert lrs == {("joint", False): 0.01, ("joint", True): 0.01, ("ogm_ge", False): 0.05, ("ogm_ge", True): 0.05,
                   ("unimodal", False): 0.05}
    assert all(cfg.optim.epochs == 2 for cfg in expand_grid(grid))  # merged over run, key by key
    with pytest.raises(ConfigError, match="unknown method 'jointt'"):
        GridConfig(benchmark="debug", seeds=[0], methods={"joint": {}}, method_run={"jointt": {}})
    with pytest.raises(ConfigError, match="method_run.joint.seed is set by the grid"):
        GridConfig(benchmark="debug", seeds=[0], methods={"joint": {}}, method_run={"joint": {"seed": 3}})


def default_grid(*overrides: str):
    return load_grid(Path(__file__).parents[1] / "benchmarks" / "configs" / "avdigits.yaml", list(overrides))


@pytest.mark.parametrize("override, message", [
    # the key as typed, with the closest valid one
    ("run.optim.lrr=0.1", "unknown config key 'run.optim.lrr'; allowed keys here: ['epochs', 'gamma', "
                          "'grad_clip_norm', 'lr', 'momentum', 'name', 'scheduler', 'step_size', 'weight_decay']; "
                          "did you mean 'run.optim.lr'?"),
    # the method it belongs to, the key as typed
    ("methods.dgl.alpah=1", "method 'dgl' (DGL): unknown config key 'methods.dgl.alpah'; allowed keys here: "
                            "['alpha', 'grad_clip_norm', 'unimodal_bias']; did you mean 'methods.dgl.alpha'?"),
    # the method and the bad value
    ("methods.dgl.alpha=high", "method 'dgl' (DGL): methods.dgl.alpha: expected a number, got 'high'"),
    # one check per setting, with its value
    ("run.optim.epochs=-3", "run.optim.epochs must be >= 1, got -3"),
    ("run.optim.lr=0", "run.optim.lr must be > 0, got 0.0"),
    ("run.data.eval_batch_size=0", "run.data.eval_batch_size must be >= 1, got 0"),
    ("run.dagr.tau=-1", "run.dagr.tau must be >= 0, got -1.0"),
    ("methods={dgll: {}}", "methods.dgll: unknown method 'dgll'; available: ['agm', 'dgl', … ]; did you mean 'dgl'?"),
    ("run.data.name=avdigit", "run.data.name: unknown dataset 'avdigit'; available: ['avdigits', 'cremad', 'debug', "
                              "'kinetics_sounds']; did you mean 'avdigits'?"),
    ("run.data.params.audio_nois=1", "unknown config key 'run.data.params.audio_nois'"),
    ("run.model.fusion=concatt", "run.model.fusion: 'concatt' is not one of ['concat', 'sum']; did you mean 'concat'?"),
    ("dagr_arms=[none, dagrr]", "dagr_arms: unknown arm 'dagrr'; choose from"),
    ("arm_comparisons=[[dagr, dagr-fixd]]", "arm_comparisons[0]: 'dagr-fixd' is not one of this grid's dagr_arms "
                                            "['none', 'dagr']"),
    ("arm_comparisons=[[dagr, dagr]]", "arm_comparisons[0]: give two different arms [treated, baseline], got"),
    ("arm_comparisons=[[dagr]]", "arm_comparisons[0]: give two different arms"),
    ("sweep={dagr.tauu: [0.1]}", "unknown config key 'sweep.dagr.tauu'"),
    ("sweep={optim.epochs: [0]}", "sweep.optim.epochs must be >= 1, got 0"),
    ("methodss={}", "unknown config key 'methodss'; allowed keys here"),
])
def test_a_grid_error_names_the_key_as_written_its_method_its_value_and_the_closest_name(override, message):
    """``message`` is the start of the error; `` … `` skips text (methods that tests register)."""
    with pytest.raises(ConfigError) as err:
        default_grid(override)
    text, at = str(err.value), 0
    for i, part in enumerate(message.split(" … ")):
        found = text.find(part, at)
        assert found == 0 if i == 0 else found > at, text
        at = found + len(part)


def test_a_dataclass_check_names_its_key_however_deep_it_is_read(debug_raw):
    from benchmarks.grid.config import OptimConfig

    with pytest.raises(ConfigError, match=r"^epochs must be >= 1, got -3$"):
        OptimConfig(epochs=-3)
    debug_raw["optim"]["epochs"] = -3
    with pytest.raises(ConfigError, match=r"^optim\.epochs must be >= 1, got -3$"):
        resolve_run(debug_raw)


def test_a_run_error_names_the_method_of_its_params(debug_raw):
    debug_raw["method"] = {"name": "dgl", "params": {"alpha": "high"}}
    with pytest.raises(ConfigError,
                       match=r"^method 'dgl' \(DGL\): method\.params\.alpha: expected a number, got 'high'$"):
        resolve_run(debug_raw)
    debug_raw["method"] = {"name": "dgll"}
    with pytest.raises(ConfigError, match=r"did you mean 'dgl'\?$"):
        resolve_run(debug_raw)

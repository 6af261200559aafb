"""Run and grid configuration: YAML → frozen dataclasses, fully resolved before anything runs.

A *run* config describes one training run completely (its hash names the run directory).
A *grid* config names a benchmark, seeds and methods, and expands into run configs:
methods × regularizer arms (without and with DAGR, its ablations, the objective controls) × seeds,
plus unimodal reference runs.
Dataset- and method-specific options live in ``params`` mappings that are checked against the
``Params`` dataclass of the registered dataset or method, so they are as strict as the rest.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from baselines import get_method
from geomreg.controls import control_params

from ..core.strict import ConfigError, deep_merge, did_you_mean, from_dict, require, set_dotted, to_dict
from ..data import get_dataset


@dataclass(frozen=True)
class DataConfig:
    name: str = "avdigits"  # a registered dataset (`python -m benchmarks list`)
    params: dict[str, Any] = field(default_factory=dict)  # checked against the dataset's Params
    val_fraction: float = 0.1  # stratified validation split carved from train
    split_seed: int = 0  # the validation split is the same for every training seed
    batch_size: int = 64  # training batch
    eval_batch_size: int = 512  # evaluation only: it changes no number
    # Loader worker processes for datasets read from disk: -1 = auto (several on a GPU machine,
    # none on CPU). An execution setting: it does not enter the run's identity (see run_id).
    num_workers: int = -1

    def __post_init__(self) -> None:
        require(0.0 < self.val_fraction < 1.0, "val_fraction", self.val_fraction, "in (0, 1)")
        require(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, ">= 1")


@dataclass(frozen=True)
class ModelConfig:
    encoder: Literal["small_cnn", "resnet18"] = "small_cnn"  # one per modality, from scratch
    width: int = 64  # small_cnn embedding width (resnet18 is always 512)
    stem_stride: int = 1  # small_cnn first-convolution stride (resnet18 has its own stride-2 stem)
    # concat: one Linear on [φ_a; φ_v]; sum: one Linear per modality, summed
    fusion: Literal["concat", "sum"] = "concat"
    # "split": unimodal logits from the fused head's weight blocks (OGM-GE); "separate": own heads.
    # "auto" lets the method choose (resolved before the run is hashed).
    unimodal_heads: Literal["auto", "split", "separate"] = "auto"


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4
    epochs: int = 20
    scheduler: Literal["none", "step", "cosine"] = "step"  # cosine: to 0 over the run's epochs
    # The step scheduler multiplies the lr by gamma every step_size epochs.
    step_size: int = 70
    gamma: float = 0.1
    grad_clip_norm: float | None = None  # total-norm clipping of every gradient (methods may clip on their own)

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", self.lr, "> 0")
        require(self.epochs >= 1, "epochs", self.epochs, ">= 1")


@dataclass(frozen=True)
class DAGRConfig:
    """Settings of the regularizer; ``geomreg.DAGR`` and ``docs/dagr.md`` give the meaning of each."""

    enabled: bool = False  # the grid's arms turn it on (dagr_arms)
    # "pareto": the paper's default (Algorithm 1), beta (alpha* g_inter + (1 - alpha*) g_disp) per encoder,
    # added after the method's own gradient; "fixed": Eq. 6, lambda-weighted losses join the objective.
    weighting: Literal["pareto", "fixed"] = "pareto"
    terms: Literal["both", "disperse", "anchor"] = "both"  # one term alone: the ablation's rows 2 and 3
    beta: float = 0.2  # the paper's best Pareto point on CREMA-D and Kinetics-Sounds (Fig. 8)
    tau: float = 0.25  # the paper's best anchoring radius (Fig. 8), distance scale [0, 2]
    t: float = 2.0  # not published: chosen on AV-Digits' validation split by `make temperature` (docs/dagr.md)
    # "distance": Eq. 5; "squared_distance": the earlier reconstruction, (‖z̃^m − z̃^n‖² − τ)₊ with τ on
    # [0, 4].
    anchor_form: Literal["distance", "squared_distance"] = "distance"
    # Fixed-form weights of the two terms: the paper's best direct-form point on CREMA-D (Fig. 7).
    lambda_disperse: float = 0.14
    lambda_anchor: float = 0.05
    # "uniformity": Eq. 4 (Wang & Isola's uniformity); "infonce_l2": Wang & He's dispersive loss.
    dispersion_form: Literal["uniformity", "infonce_l2"] = "uniformity"
    # "exact": Algorithm 1's alpha* from the whole encoders' gradients (the paper's rule); "last_layer": NOT the
    # paper's rule, alpha from each encoder's last conv + BN only, g_geom joining a plain method's backward or
    # taking one pass of its own (docs/dagr.md).
    alpha: Literal["exact", "last_layer"] = "exact"
    # With alpha "last_layer": also compute the exact alpha* each step (the exact rule's cost) and record both
    # and their agreement per epoch (metrics: dagr/alpha_exact/*, dagr/alpha_agreement/*).
    record_exact_alpha: bool = False

    def __post_init__(self) -> None:
        for key in ("beta", "tau", "lambda_disperse", "lambda_anchor"):
            require(getattr(self, key) >= 0, key, getattr(self, key), ">= 0")
        require(self.t > 0, "t", self.t, "> 0")
        if self.alpha != "exact" and (self.weighting, self.terms) != ("pareto", "both"):
            raise ConfigError(f"dagr.alpha={self.alpha!r} approximates the Pareto weighting's alpha of both terms; "
                              f"got dagr.weighting={self.weighting!r}, dagr.terms={self.terms!r}")
        if self.record_exact_alpha and self.alpha == "exact":
            raise ConfigError("dagr.record_exact_alpha compares an approximate alpha with the exact one; "
                              "set dagr.alpha to last_layer")


@dataclass(frozen=True)
class ControlConfig:
    """An objective control in place of DAGR (the paper's Table 7): ``geomreg.controls`` and
    ``docs/controls.md`` give the meaning of each kind."""

    kind: Literal["none", "naive_align", "vicreg", "barlow_twins", "unit_sphere"] = "none"
    # Total strength S: a control loss joins the objective as S · Σ c_k T_k / Σ c_k (its authors'
    # coefficients c_k); 0.19 = lambda_disperse + lambda_anchor of DAGR's fixed form.
    strength: float = 0.19
    params: dict[str, Any] = field(default_factory=dict)  # the control's coefficients, checked against its Params

    def __post_init__(self) -> None:
        require(self.strength >= 0, "strength", self.strength, ">= 0")


@dataclass(frozen=True)
class MethodConfig:
    name: str = "joint"
    params: dict[str, Any] = field(default_factory=dict)  # checked against the method's Params


@dataclass(frozen=True)
class EvalConfig:
    # Which epoch's model is kept as best.pt and reported in final.json. Tables recompute every
    # rule from the per-epoch records; best_test exists only to compare with published numbers.
    selection: Literal["best_val", "last", "best_test"] = "best_val"
    # Splits whose embeddings get the representation-geometry summary each epoch (geomreg.geometry:
    # effective rank, cross-modal deviation, matched/mismatched cosines, Recall@K, semantic margin);
    # [] turns it off.
    geometry: list[Literal["val", "test"]] = field(default_factory=lambda: ["val", "test"])


# The regularizer arms a grid can train each method with: name -> overrides of the run's `dagr`.
DAGR_ARMS: dict[str, dict[str, Any]] = {
    "none": {"enabled": False},
    "dagr": {"enabled": True},  # the paper's DAGR: both terms, Pareto-balanced
    "dagr-fixed": {"enabled": True, "weighting": "fixed"},  # Eq. 6, fixed lambdas
    # NOT the paper's rule: alpha from the encoders' last layers; the exact alpha* is recorded beside it (so the
    # arm costs what the exact rule costs: `make bench` times the variant without the record).
    "dagr-last-layer": {"enabled": True, "alpha": "last_layer", "record_exact_alpha": True},
    "disperse": {"enabled": True, "terms": "disperse"},  # dispersion only (Table 4, row 2)
    "anchor": {"enabled": True, "terms": "anchor"},  # anchoring only (Table 4, row 3)
}


# The objective controls a grid can train in place of DAGR (Table 7): name -> the run's `control`.
CONTROL_ARMS: dict[str, dict[str, Any]] = {
    "naive-align": {"kind": "naive_align"},  # always-on alignment: anchoring with tau = 0, no dispersion
    "vicreg": {"kind": "vicreg"},
    "barlow-twins": {"kind": "barlow_twins"},
    "unit-sphere": {"kind": "unit_sphere"},  # L2-normalized embeddings, no loss
}
ARMS: tuple[str, ...] = (*DAGR_ARMS, *CONTROL_ARMS)

ARM_TITLES = {
    "none": "no regularizer",
    "dagr": "DAGR (Pareto-balanced)",
    "dagr-fixed": "DAGR, fixed weights",
    "dagr-last-layer": "DAGR, last-layer α (not the paper's rule)",
    "disperse": "dispersion only",
    "anchor": "anchoring only",
    "naive-align": "naive alignment (always on)",
    "vicreg": "VICReg-style",
    "barlow-twins": "Barlow Twins-style",
    "unit-sphere": "unit sphere only",
}


def dagr_arm(dagr: dict[str, Any]) -> str:
    """The arm name of a (resolved) ``dagr`` mapping, as recorded in a run's config."""
    if not dagr["enabled"]:
        return "none"
    if dagr.get("terms", "both") != "both":
        return dagr["terms"]
    if dagr.get("alpha", "exact") != "exact":
        return "dagr-last-layer"
    return "dagr-fixed" if dagr.get("weighting") == "fixed" else "dagr"


def run_arm(config: dict[str, Any]) -> str:
    """The arm of a (resolved) run config mapping: its control, else its DAGR arm. Records written
    before controls existed have no ``control`` section."""
    kind = (config.get("control") or {}).get("kind", "none")
    if kind != "none":
        return next(arm for arm, control in CONTROL_ARMS.items() if control["kind"] == kind)
    return dagr_arm(config["dagr"])


def arm_reads(arm: str, dotted_key: str) -> bool:
    """Whether a grid's sweep key applies to an arm: ``dagr.*`` only where DAGR is on, ``control.*``
    only on the control arms (elsewhere they would not change what is trained)."""
    if dotted_key.startswith("dagr."):
        return DAGR_ARMS.get(arm, {}).get("enabled", False)
    if dotted_key.startswith("control."):
        return arm in CONTROL_ARMS
    return True


# Keys of a run config that say how and where it executes, not what it computes.
EXECUTION_KEYS = ("device", "data.num_workers", "data.params.root", "data.params.cache_dir")
# Keys added after runs were recorded without them, with the value those runs had: at that value a key is
# left out of the run's identity, so the runs keep their ids.
LATER_KEYS = {"dagr.alpha": "exact", "dagr.record_exact_alpha": False}


def unused_keys(cfg: dict[str, Any]) -> list[str]:
    """Dotted keys a run does not read, given its other settings (``cfg``: a resolved run config as a
    mapping, or a run record's): the regularizer's settings when it is off, the control section without a
    control (its strength and params without a loss), SGD's momentum under AdamW, the step schedule's
    settings under another schedule, the small CNN's shape under ResNet-18."""
    keys = []
    dagr, control = cfg.get("dagr", {}), cfg.get("control", {}).get("kind", "none")
    if not dagr.get("enabled", False):
        keys += [f"dagr.{key}" for key in dagr if key != "enabled"]
    if control == "none":
        keys.append("control")  # the whole section: runs without a control keep their ids
    elif control == "unit_sphere":
        keys += ["control.strength", "control.params"]
    if cfg["optim"].get("name", "sgd") != "sgd":
        keys.append("optim.momentum")
    if cfg["optim"].get("scheduler") != "step":
        keys += ["optim.step_size", "optim.gamma"]
    if cfg["model"].get("encoder") != "small_cnn":
        keys += ["model.width", "model.stem_stride"]
    return keys


@dataclass(frozen=True)
class RunConfig:
    benchmark: str = "avdigits"  # set by the grid
    seed: int = 0  # set by the grid: initialisation, data order, augmentation and frame sampling
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    method: MethodConfig = MethodConfig()
    dagr: DAGRConfig = DAGRConfig()
    control: ControlConfig = ControlConfig()
    eval: EvalConfig = EvalConfig()
    device: str = "auto"  # "auto": CUDA when present; chosen once by the runner
    deterministic: bool = True  # deterministic cuDNN kernels (no autotuning)
    # Mixed precision of forward passes: "auto" = bf16 autocast on a CUDA device that supports it,
    # fp32 elsewhere; the precision a run used is recorded in its final.json.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True  # NHWC memory format on CUDA (faster convolutions); ignored on CPU

    @property
    def arm(self) -> str:
        return run_arm(to_dict(self))

    @property
    def label(self) -> str:
        """Human-readable name: method, regularizer arm and seed (the directory adds the config hash)."""
        return f"{self.method.name}{'' if self.arm == 'none' else '+' + self.arm}-s{self.seed}"

    def run_id(self) -> str:
        """Hash of the resolved config: equal configs share a directory, others never do.

        Execution settings (where the data lies, loader workers, the device) are left out, so a
        grid moved to another machine or data folder finds and resumes its runs; so are the settings
        this run never reads (:func:`unused_keys`), so changing one leaves the runs without it in place,
        and the later keys at the value earlier runs had (``LATER_KEYS``)."""
        blob = to_dict(self)
        later = [key for key, value in LATER_KEYS.items() if functools.reduce(dict.get, key.split("."), blob) == value]
        for dotted in (*EXECUTION_KEYS, *unused_keys(blob), *later):
            *parents, leaf = dotted.split(".")
            node = blob
            for key in parents:
                node = node.get(key, {})
            node.pop(leaf, None)
        return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class GridConfig:
    benchmark: str  # the runs' folder under --runs
    seeds: list[int]
    methods: dict[str, dict[str, Any]]  # method name -> its params
    run: dict[str, Any] = field(default_factory=dict)  # shared RunConfig fields
    # Run settings of one method's runs (every arm), merged over ``run``: e.g. each method's learning rate
    # as chosen on validation (benchmarks/configs/avdigits_lr.yaml). Keys are registered method names.
    method_run: dict[str, dict[str, Any]] = field(default_factory=dict)
    dagr_arms: list[str] = field(default_factory=lambda: ["none", "dagr"])  # names in ARMS
    references: list[str] = field(default_factory=lambda: ["audio", "visual"])  # unimodal reference runs
    # Dotted run keys -> values: every run of the grid is trained at each combination (a sweep).
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    title: str = ""  # heading of the generated table
    paper: str = ""  # key of the published numbers shown beside ours (benchmarks/report/paper_numbers.yaml)
    # The stem of a grid that trains these runs with more seeds (e.g. avdigits_powered): this grid's table
    # then checks each of its verdicts against that grid's committed results/<stem>/table.csv.
    powered: str = ""
    # Pairs [treated, baseline] of dagr_arms compared directly, paired by seed (e.g. the last-layer alpha
    # against the exact rule): each pair gets a table of its own, one Holm family, beside the Δ against no
    # regularizer.
    arm_comparisons: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in ("benchmark", "seed", "method"):
            if key in self.run:
                raise ConfigError(f"run.{key} is set by the grid; remove it from 'run'")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        for arm in self.dagr_arms:
            if arm not in ARMS:
                raise ConfigError(f"dagr_arms: unknown arm {arm!r}; choose from {sorted(ARMS)}"
                                  + did_you_mean(arm, ARMS))
        for key, values in self.sweep.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"sweep.{key}: give a non-empty list of values")
        for i, pair in enumerate(self.arm_comparisons):
            check_arm_pair(pair, self.dagr_arms, f"arm_comparisons[{i}]")
        check_grid_settings(self)


def check_arm_pair(pair: list[str], arms: list[str], path: str) -> None:
    """A [treated, baseline] pair of two different arms that the grid trains."""
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ConfigError(f"{path}: give two different arms [treated, baseline], got {pair!r}")
    for arm in pair:
        if arm not in arms:
            raise ConfigError(f"{path}: {arm!r} is not one of this grid's dagr_arms {arms}"
                              + did_you_mean(arm, arms))


def check_grid_settings(grid: GridConfig) -> None:
    """Every setting of a grid checked where the grid writes it (``run.optim.lrr``, ``methods.dgl.alpah``,
    ``sweep.dagr.tau``), before any run is expanded: a run's own checks could only name the key inside
    one run (``optim.lrr``, ``method.params.alpah``)."""
    run = from_dict(RunConfig, grid.run, "run")
    try:
        dataset = get_dataset(run.data.name)
    except ConfigError as err:
        raise ConfigError(f"run.data.name: {err}") from None
    from_dict(dataset.Params, run.data.params, "run.data.params")
    for name, params in grid.methods.items():
        try:
            method = get_method(name)
        except ConfigError as err:
            raise ConfigError(f"methods.{name}: {err}") from None
        checked_method_params(method, params, f"methods.{name}")
    for key, values in grid.sweep.items():
        for value in values:
            swept = deep_merge(grid.run, {})
            set_dotted(swept, key, value)
            from_dict(RunConfig, swept, "sweep")
    for name, settings in grid.method_run.items():
        try:
            get_method(name)
        except ConfigError as err:
            raise ConfigError(f"method_run.{name}: {err}") from None
        if not isinstance(settings, dict):
            raise ConfigError(f"method_run.{name}: expected a mapping of run settings, got {settings!r}")
        for key in ("benchmark", "seed", "method"):
            if key in settings:
                raise ConfigError(f"method_run.{name}.{key} is set by the grid; remove it")
        from_dict(RunConfig, deep_merge(grid.run, settings), f"method_run.{name}")


def checked_method_params(method: type, params: dict[str, Any], path: str) -> Any:
    """A method's ``Params`` from its mapping; an error names the method as well as the key and value."""
    try:
        return from_dict(method.Params, params, path)
    except ConfigError as err:
        raise ConfigError(f"method {method.name!r} ({method.title}): {err}") from None


def resolve_run(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw run mapping and fill every default, including dataset/method params."""
    cfg = from_dict(RunConfig, raw)
    dataset = get_dataset(cfg.data.name)
    method = get_method(cfg.method.name)
    data_params = to_dict(from_dict(dataset.Params, cfg.data.params, "data.params"))
    method_params = to_dict(checked_method_params(method, cfg.method.params, "method.params"))
    heads = method.resolve_unimodal_heads(cfg.model.unimodal_heads)
    control = cfg.control.kind
    params = to_dict(from_dict(control_params(control), cfg.control.params, "control.params"))
    if cfg.dagr.enabled and not method.supports_dagr:
        raise ConfigError(f"method {cfg.method.name!r} cannot be combined with DAGR")
    if control != "none" and not method.supports_dagr:
        raise ConfigError(f"method {cfg.method.name!r} cannot be combined with the control {control!r}")
    if control != "none" and cfg.dagr.enabled:
        raise ConfigError(f"control.kind={control!r} replaces DAGR (Table 7 compares them): set dagr.enabled "
                          "to false or control.kind to none")
    return replace(
        cfg,
        data=replace(cfg.data, params=data_params),
        method=replace(cfg.method, params=method_params),
        model=replace(cfg.model, unimodal_heads=heads),
        control=replace(cfg.control, params=params),
    )


def expand_grid(grid: GridConfig) -> list[RunConfig]:
    """Methods × arms × sweep points × seeds, then the unimodal references (per modality and seed).

    Sweep points apply to every method cell; ``dagr.*`` and ``control.*`` sweep keys are left out for
    arms that do not read them (:func:`arm_reads`) and identical runs are kept once."""
    cells: list[tuple[str, dict[str, Any], str]] = [
        (name, params, arm) for name, params in grid.methods.items() for arm in grid.dagr_arms
    ]
    cells += [("unimodal", {"modality": m}, "none") for m in grid.references]
    runs: dict[str, RunConfig] = {}
    for name, params, arm in cells:
        for point in sweep_points(grid.sweep) if name != "unimodal" else [{}]:
            for seed in grid.seeds:
                raw = deep_merge(deep_merge(grid.run, grid.method_run.get(name, {})), {
                    "benchmark": grid.benchmark,
                    "seed": seed,
                    "method": {"name": name, "params": params},
                    "dagr": DAGR_ARMS.get(arm, DAGR_ARMS["none"]),
                    "control": CONTROL_ARMS.get(arm, {"kind": "none"}),
                })
                for key, value in point.items():
                    if arm_reads(arm, key):
                        set_dotted(raw, key, value)
                cfg = resolve_run(raw)
                runs.setdefault(cfg.run_id(), cfg)
    return list(runs.values())


def sweep_points(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the swept values, in the order written (one empty point without a sweep)."""
    return [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]


def load_grid(path: str | Path, overrides: list[str] = ()) -> GridConfig:
    """Read a grid YAML; ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML).

    A grid may start from another with ``base: other.yaml`` (relative to its own folder): its ``run``
    settings are merged key by key over the base's and its other keys replace the base's, so variants
    of a grid (ablation, sweep) share its run settings and, where they train the same runs, its run
    directories."""
    raw = read_grid_mapping(Path(path))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        set_dotted(raw, key.strip(), yaml.safe_load(value))
    return from_dict(GridConfig, raw, "")


def read_grid_mapping(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    base = raw.pop("base", None)
    if base is None:
        return raw
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to {base_path}")
    merged = read_grid_mapping(base_path, (*seen, base_path))
    merged.pop("powered", None)  # the base's powered grid trains the base's runs, not a variant's
    run = deep_merge(merged.get("run", {}), raw.pop("run", {}))
    return {**merged, **raw, "run": run}


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

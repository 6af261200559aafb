"""Run and grid configuration: YAML → frozen dataclasses, fully resolved before anything runs.

A *run* config describes one training run completely (its hash names the run directory).
A *grid* config names a benchmark, seeds and methods, and expands into run configs:
methods × {without, with DAGR} × seeds, plus unimodal reference runs.
Dataset- and method-specific options live in ``params`` mappings that are checked against the
``Params`` dataclass of the registered dataset or method, so they are as strict as the rest.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from .strict import ConfigError, deep_merge, from_dict, set_dotted, to_dict


@dataclass(frozen=True)
class DataConfig:
    name: str = "avdigits"
    params: dict[str, Any] = field(default_factory=dict)  # checked against the dataset's Params
    val_fraction: float = 0.1  # stratified validation split carved from train
    split_seed: int = 0  # the validation split is the same for every training seed
    batch_size: int = 64
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    encoder: Literal["small_cnn", "resnet18"] = "small_cnn"
    width: int = 64  # small_cnn embedding width (resnet18 is always 512)
    stem_stride: int = 1  # small_cnn first-convolution stride (resnet18 has its own stride-2 stem)
    fusion: Literal["concat", "sum"] = "concat"
    # "split": unimodal logits from the fused head's weight blocks (OGM-GE); "separate": own heads.
    # "auto" lets the method choose (resolved before the run is hashed).
    unimodal_heads: Literal["auto", "split", "separate"] = "auto"


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    epochs: int = 20
    scheduler: Literal["none", "step", "cosine"] = "step"
    step_size: int = 70  # epochs, for the step scheduler
    gamma: float = 0.1
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs < 1:
            raise ConfigError("optim.lr must be > 0 and optim.epochs >= 1")


@dataclass(frozen=True)
class DAGRConfig:
    """Settings of the regularizer; see ``geomreg.DAGR`` for the meaning of each."""

    enabled: bool = False
    t: float = 2.0
    tau: float = 0.5
    lambda_disperse: float = 0.1
    lambda_anchor: float = 0.1
    dispersion_form: Literal["uniformity", "infonce_l2"] = "uniformity"
    squared_hinge: bool = False
    # "sum": DAGR's loss joins the method's objective (the rule of each method, see its dagr_rule);
    # "pareto": per encoder, the task and DAGR gradients are combined by MMPareto's min-norm rule
    # (the paper's "Pareto+Hinge" variant, reconstructed), scaled by pareto_gamma (MMPareto uses 1.5;
    # 1.0 keeps the step size of the plain sum so that only the direction changes).
    combine: Literal["sum", "pareto"] = "sum"
    pareto_gamma: float = 1.0


@dataclass(frozen=True)
class MethodConfig:
    name: str = "joint"
    params: dict[str, Any] = field(default_factory=dict)  # checked against the method's Params


@dataclass(frozen=True)
class EvalConfig:
    # Which epoch's model is kept as best.pt and reported in final.json. Tables recompute every
    # rule from the per-epoch records; best_test exists only to compare with published numbers.
    selection: Literal["best_val", "last", "best_test"] = "best_val"


@dataclass(frozen=True)
class RunConfig:
    benchmark: str = "avdigits"
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    method: MethodConfig = MethodConfig()
    dagr: DAGRConfig = DAGRConfig()
    eval: EvalConfig = EvalConfig()
    device: str = "auto"
    deterministic: bool = True

    @property
    def label(self) -> str:
        """Human-readable name: method, DAGR arm and seed."""
        return f"{self.method.name}{'+dagr' if self.dagr.enabled else ''}-s{self.seed}"

    def run_id(self) -> str:
        """Hash of the resolved config: equal configs share a directory, others never do."""
        blob = json.dumps(to_dict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


@dataclass(frozen=True)
class GridConfig:
    benchmark: str
    seeds: list[int]
    methods: dict[str, dict[str, Any]]  # method name -> its params
    run: dict[str, Any] = field(default_factory=dict)  # shared RunConfig fields
    dagr_arms: list[bool] = field(default_factory=lambda: [False, True])
    references: list[str] = field(default_factory=lambda: ["audio", "visual"])
    title: str = ""  # heading of the generated table

    def __post_init__(self) -> None:
        for key in ("benchmark", "seed", "method"):
            if key in self.run:
                raise ConfigError(f"run.{key} is set by the grid; remove it from 'run'")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")


def resolve_run(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw run mapping and fill every default, including dataset/method params."""
    from baselines import get_method
    from benchmarks.data import get_dataset

    cfg = from_dict(RunConfig, raw)
    dataset = get_dataset(cfg.data.name)
    method = get_method(cfg.method.name)
    data_params = to_dict(from_dict(dataset.Params, cfg.data.params, "data.params"))
    method_params = to_dict(from_dict(method.Params, cfg.method.params, "method.params"))
    heads = method.resolve_unimodal_heads(cfg.model.unimodal_heads)
    if cfg.dagr.enabled and not method.supports_dagr:
        raise ConfigError(f"method {cfg.method.name!r} cannot be combined with DAGR")
    if cfg.dagr.enabled and cfg.dagr.combine == "pareto" and not method.supports_dagr_pareto:
        raise ConfigError(f"method {cfg.method.name!r} builds its encoder gradients itself; "
                          f"dagr.combine='pareto' is not defined for it (use 'sum')")
    return replace(
        cfg,
        data=replace(cfg.data, params=data_params),
        method=replace(cfg.method, params=method_params),
        model=replace(cfg.model, unimodal_heads=heads),
    )


def expand_grid(grid: GridConfig) -> list[RunConfig]:
    """Methods × DAGR arms × seeds, then the unimodal references (one per modality and seed)."""
    cells: list[tuple[str, dict[str, Any], bool]] = [
        (name, params, arm) for name, params in grid.methods.items() for arm in grid.dagr_arms
    ]
    cells += [("unimodal", {"modality": m}, False) for m in grid.references]
    runs = []
    for name, params, arm in cells:
        for seed in grid.seeds:
            raw = deep_merge(grid.run, {
                "benchmark": grid.benchmark,
                "seed": seed,
                "method": {"name": name, "params": params},
                "dagr": {"enabled": arm},
            })
            runs.append(resolve_run(raw))
    return runs


def load_grid(path: str | Path, overrides: list[str] = ()) -> GridConfig:
    """Read a grid YAML; ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        set_dotted(raw, key.strip(), yaml.safe_load(value))
    return from_dict(GridConfig, raw, "")


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

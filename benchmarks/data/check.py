"""``data_check``: can this copy of a dataset reproduce the tables?

It prepares the cache if needed (decoding every clip once, or again after the files changed), then
reports the clips per split and per class, the tensor shapes the model receives, and the listed
clips left out, the unreadable ones (a corrupt file, with the decoder's reason) before the missing
ones (usually a wrong folder), and those that decoded with a warning (the first few of each here,
all in the cache's ``problems.txt``). A copy with clips left out is sufficient only within an explicit
allowance (:class:`AllowMissing`): Kinetics-Sounds copies are rarely complete.
"""
from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.strict import ConfigError, from_dict
from . import get_dataset
from .avsplit import LoaderOptions, cached_split
from .cache import DiskParams, ensure_cache

SHOWN = 10  # problems printed by name; the rest are counted (all of them are in problems.txt)


@dataclass(frozen=True)
class AllowMissing:
    """How many listed clips a copy may lack (missing or unreadable): ``count`` clips, or a
    ``fraction`` of the listed clips when given as a decimal ("0.05")."""

    count: int = 0
    fraction: float | None = None

    @classmethod
    def parse(cls, text: str) -> "AllowMissing":
        try:
            value = float(text) if "." in text else int(text)
        except ValueError:
            raise ConfigError(f"allow-missing: expected a clip count (e.g. 120) or a fraction of the listed "
                              f"clips (e.g. 0.05), got {text!r}") from None
        if value < 0 or isinstance(value, float) and value > 1:
            raise ConfigError(f"allow-missing: a count must be >= 0 and a fraction in [0, 1], got {text!r}")
        return cls(fraction=value) if isinstance(value, float) else cls(count=value)

    def limit(self, listed: int) -> int:
        return self.count if self.fraction is None else math.floor(self.fraction * listed)

    def __str__(self) -> str:
        return str(self.count if self.fraction is None else self.fraction)


@dataclass(frozen=True)
class Report:
    dataset: str
    cache: Path
    layout: str
    audio_precomputed: bool  # audio features read from the layout's files, not computed by the config
    listed: dict[str, int]  # split -> clips in the split list
    class_counts: dict[str, dict[str, int]]  # split -> class name -> clips available
    shapes: dict[str, tuple[int, ...]]  # modality -> shape of one item
    unreadable: dict[str, str]  # clip -> why its files could not be decoded (left out)
    missing: dict[str, str]  # clip -> which of its files were not found (left out)
    warnings: dict[str, list[str]]  # clip -> what looked wrong while decoding it (the clip is used)
    fingerprint: dict[str, Any]  # what a run on this copy records (benchmarks.data.cache.data_fingerprint)
    log: Path  # every problem and warning, one per line

    @property
    def problems(self) -> dict[str, str]:
        """Every listed clip left out, with the reason."""
        return {**self.unreadable, **self.missing}

    @property
    def absent_classes(self) -> dict[str, list[str]]:
        return {split: [c for c, n in counts.items() if n == 0] for split, counts in self.class_counts.items()}

    @property
    def ok(self) -> bool:
        """Every listed clip is readable and every class occurs in every split."""
        return self.sufficient(AllowMissing())

    def sufficient(self, allow: AllowMissing) -> bool:
        """Every class occurs in every split and no more clips are left out than ``allow`` permits."""
        within = len(self.problems) <= allow.limit(sum(self.listed.values()))
        return within and not any(self.absent_classes.values())

    def __str__(self) -> str:
        return self.render(AllowMissing())

    def render(self, allow: AllowMissing) -> str:
        lines = [f"{self.dataset}: cache {self.cache} (layout {self.layout}); data fingerprint "
                 f"{self.fingerprint['digest']}"]
        if self.audio_precomputed:
            lines.append("  audio: precomputed features read as they are, not computed by the configured pipeline")
        for split, counts in self.class_counts.items():
            lines.append(f"  {split}: {sum(counts.values())} of {self.listed[split]} listed clips; per class: "
                         + ", ".join(f"{c} {n}" for c, n in counts.items()))
        lines.append("  item shapes: " + ", ".join(f"{m} {tuple(s)}" for m, s in self.shapes.items()))
        lines += [f"  class {name!r} absent from {split}"
                  for split, names in self.absent_classes.items() for name in names]
        lines += problem_lines(self.unreadable, self.missing, self.warnings, self.log)
        return "\n".join(lines + [self.verdict(allow)])

    def verdict(self, allow: AllowMissing) -> str:
        left_out, listed = len(self.problems), sum(self.listed.values())
        if self.sufficient(allow):
            return "ok" if not left_out else (f"ok with a PARTIAL copy: {left_out} of {listed} listed clips left "
                                              f"out, within --allow-missing {allow}")
        reasons = [f"{left_out} of {listed} listed clips left out ({len(self.unreadable)} unreadable, "
                   f"{len(self.missing)} missing)"] if left_out else []
        reasons += ["classes absent"] if any(self.absent_classes.values()) else []
        hint = ("; to train on the clips that are there, allow the gap explicitly: --allow-missing "
                f"{left_out} (ALLOW_MISSING={left_out} for make), or a fraction such as 0.05"
                if left_out and not any(self.absent_classes.values()) else "")
        return f"NOT OK: {' and '.join(reasons)}; the tables need every clip{hint}"


def data_check(dataset_name: str, params: DiskParams | Mapping[str, Any]) -> Report:
    dataset = get_dataset(dataset_name)
    p = params if isinstance(params, dataset.Params) else from_dict(dataset.Params, params, "data.params")
    with warnings.catch_warnings():  # the report lists the left-out clips itself
        warnings.simplefilter("ignore")
        cache = ensure_cache(dataset, p)
    class_counts, shapes = {}, {}
    for split in cache.index["listed"]:
        rows = cache.rows_of(split)
        counts = Counter(cache.labels[rows].tolist())
        class_counts[split] = {name: counts[i] for i, name in enumerate(cache.class_names)}
        if len(rows) and not shapes:
            batch = next(cached_split(cache, split, p, LoaderOptions()).for_evaluation().batches(1))
            shapes = {m: tuple(x.shape[1:]) for m, x in batch.inputs.items()}
    return Report(dataset_name, cache.path, cache.index["layout"], cache.index["audio_precomputed"],
                  cache.index["listed"], class_counts, shapes, cache.unreadable, cache.missing, cache.warnings,
                  cache.fingerprint, cache.problems_log)


def problem_lines(unreadable: Mapping[str, str], missing: Mapping[str, str], warned: Mapping[str, list[str]],
                  log: Path) -> list[str]:
    """The clips left out and those used with a warning, each kind counted and its first few named.
    Unreadable clips come first: one corrupt file among many absent ones is the one to download again."""
    return (listing("listed clips unreadable (left out; the decoder's reason follows each)", unreadable, log)
            + listing("listed clips missing (left out)", missing, log)
            + listing("clips used with a warning", {c: "; ".join(notes) for c, notes in warned.items()}, log))


def listing(what: str, reasons: Mapping[str, str], log: Path) -> list[str]:
    if not reasons:
        return []
    more = f"; the first {SHOWN} here, all in {log}" if len(reasons) > SHOWN else ""
    return [f"  {len(reasons)} {what}{more}:"] + [f"    {clip}: {why}" for clip, why in list(reasons.items())[:SHOWN]]


def disk_data(data_cfgs: Iterable) -> list:
    """The distinct data configs (``DataConfig``) among ``data_cfgs`` that read a dataset from disk."""
    distinct = {}
    for data in data_cfgs:
        if getattr(get_dataset(data.name), "reads_from_disk", False):
            distinct.setdefault(json.dumps([data.name, data.params], sort_keys=True), data)
    return list(distinct.values())

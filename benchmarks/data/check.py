"""``data_check``: can this copy of a dataset reproduce the tables?

It prepares the cache if needed (decoding every clip once), then reports the clips per split and
per class, the tensor shapes the model receives, and every listed clip that is missing or unreadable.
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..strict import from_dict
from . import get_dataset
from .avsplit import LoaderOptions, cached_split
from .cache import DiskParams, ensure_cache


@dataclass(frozen=True)
class Report:
    dataset: str
    cache: Path
    layout: str
    audio_precomputed: bool  # audio features read from the layout's files, not computed by the config
    listed: dict[str, int]  # split -> clips in the split list
    class_counts: dict[str, dict[str, int]]  # split -> class name -> clips available
    shapes: dict[str, tuple[int, ...]]  # modality -> shape of one item
    problems: dict[str, str]  # clip -> why it is missing or unreadable

    @property
    def absent_classes(self) -> dict[str, list[str]]:
        return {split: [c for c, n in counts.items() if n == 0] for split, counts in self.class_counts.items()}

    @property
    def ok(self) -> bool:
        """Every listed clip is readable and every class occurs in every split."""
        return not self.problems and not any(self.absent_classes.values())

    def __str__(self) -> str:
        lines = [f"{self.dataset}: cache {self.cache} (layout {self.layout})"]
        if self.audio_precomputed:
            lines.append("  audio: precomputed features read as they are, not computed by the configured pipeline")
        for split, counts in self.class_counts.items():
            lines.append(f"  {split}: {sum(counts.values())} of {self.listed[split]} listed clips; per class: "
                         + ", ".join(f"{c} {n}" for c, n in counts.items()))
        lines.append("  item shapes: " + ", ".join(f"{m} {tuple(s)}" for m, s in self.shapes.items()))
        lines += [f"  class {name!r} absent from {split}"
                  for split, names in self.absent_classes.items() for name in names]
        lines += [f"  {clip}: {reason}" for clip, reason in self.problems.items()]
        if self.ok:
            return "\n".join(lines + ["ok"])
        reasons = [f"{len(self.problems)} listed clips missing or unreadable"] if self.problems else []
        reasons += ["classes absent"] if any(self.absent_classes.values()) else []
        return "\n".join(lines + [f"NOT OK: {' and '.join(reasons)}; the tables need every clip"])


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
                  cache.index["listed"], class_counts, shapes, cache.skipped)

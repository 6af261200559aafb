"""Where a command writes a grid's tables and figures: committed results are written by their own grid only.

``results/<grid>/`` and ``README.md`` of this checkout hold the committed grids, each trained as its
YAML says. A run of a grid with ``--set`` overrides that change what it trains or shows (other seeds,
epochs, methods: a *variant*) writes instead to ``build/results/<grid>+<what changed>/`` and leaves
the README alone, unless ``--overwrite-committed`` asks for the committed targets all the same.
Overrides of where a run executes (the data folder, the device, loader workers) change no result and
do not make a variant. Targets outside the committed ones (``--results DIR`` elsewhere) are written as
named.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..grid.config import EXECUTION_KEYS, load_grid

REPOSITORY = Path(__file__).resolve().parents[2]
COMMITTED_RESULTS = REPOSITORY / "results"
COMMITTED_README = REPOSITORY / "README.md"
VARIANTS = REPOSITORY / "build" / "results"  # where a variant of a committed grid writes instead
EXECUTION_OVERRIDES = tuple(f"run.{key}" for key in EXECUTION_KEYS)


@dataclass(frozen=True)
class Targets:
    folder: Path  # the grid's tables (figures/ and robustness/ go below it)
    readme: Path | None  # the page whose table markers get the table, if any
    variant: str = ""  # what the overrides changed, "" for the grid as written
    notes: list[str] = field(default_factory=list)  # the committed targets left alone, said to the user


def result_targets(config: str | Path, overrides: list[str], results: Path, readme: Path | None,
                   overwrite_committed: bool = False) -> Targets:
    """The targets of one command: ``results/<grid>`` and ``readme``, or a variant's own folder and no
    README where those are the committed ones."""
    stem = Path(config).stem
    changes = variant_overrides(config, overrides)
    variant = variant_name(changes)
    folder = Path(results) / stem
    if not variant or overwrite_committed:
        return Targets(folder, readme, variant)
    notes = []
    if is_within(folder, COMMITTED_RESULTS):
        notes.append(f"{folder}/")
        folder = VARIANTS / f"{stem}+{variant}"
    if readme is not None and is_within(readme, COMMITTED_README):
        notes.append(str(readme))
        readme = None
    if notes:
        hold = "hold the grid as committed and are" if len(notes) > 1 else "holds the grid as committed and is"
        notes = [f"a variant of {config} ({' '.join(changes)}): its tables go to {shown(folder)}/; "
                 f"{' and '.join(notes)} {hold} left alone (--overwrite-committed writes them all the same)"]
    return Targets(folder, readme, variant, notes)


def variant_overrides(config: str | Path, overrides: list[str]) -> list[str]:
    """The overrides that change what the grid trains or shows; none when the grid stays as written
    (only execution settings, or values equal to the YAML's)."""
    changing = [item for item in overrides if item.partition("=")[0].strip() not in EXECUTION_OVERRIDES]
    if not changing:
        return []
    as_written = load_grid(config, [item for item in overrides if item not in changing])
    return changing if load_grid(config, overrides) != as_written else []


def variant_name(overrides: list[str]) -> str:
    """What changed, as a folder name: ``seeds=0,1+run.optim.epochs=8`` (long ones end in a digest)."""
    parts = []
    for item in overrides:
        key, _, value = item.partition("=")
        value = re.sub(r"[\s\[\]{}'\"]+", "", value)  # YAML's brackets and quotes say nothing here
        value = re.sub(r"[^\w.,+=-]", "-", re.sub(r":(?=,|$)", "", value))  # {joint: {}} -> joint
        parts.append(f"{key.strip()}={value}")
    name = "+".join(parts)
    return name if len(name) <= 80 else f"{name[:60]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if Path.cwd() in path.parents else str(path)


def is_within(path: Path, committed: Path) -> bool:
    path, committed = Path(path).resolve(), committed.resolve()
    return path == committed or committed in path.parents

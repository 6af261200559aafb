"""Model-selection rules over per-epoch records.

``best_val`` (the default and the honest protocol) picks the epoch with the highest validation
accuracy of the fused prediction; ``last`` the final epoch; ``best_test`` the epoch with the highest
*test* accuracy, which is what the field's original code reports (the "paper protocol"), kept only
for comparison with published numbers. Ties go to the earliest epoch.
"""
from __future__ import annotations

from typing import Any

SELECTION_RULES = ("best_val", "last", "best_test")


def select_epoch(rows: list[dict[str, Any]], rule: str, metric: str = "acc") -> dict[str, Any]:
    """The chosen epoch's index and its val and test metrics."""
    if not rows:
        raise ValueError("no epochs recorded")
    if rule == "last":
        row = rows[-1]
    elif rule in ("best_val", "best_test"):
        split = "val" if rule == "best_val" else "test"
        row = max(rows, key=lambda r: (r[split][metric], -r["epoch"]))
    else:
        raise ValueError(f"unknown selection rule {rule!r}; choose from {SELECTION_RULES}")
    return {"epoch": row["epoch"], "val": row["val"], "test": row["test"]}

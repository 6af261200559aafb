"""Metrics and selection rules against hand-computed cases."""
import pytest
import torch

from benchmarks.evaluation import macro_f1
from benchmarks.selection import select_epoch


def test_macro_f1_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 2/4; class 1: tp2 fp1 fn0 -> 4/5; class 2: tp0 fn1 -> 0
    assert macro_f1(pred, target, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a class absent from both targets and predictions does not count
    assert macro_f1(pred, target, 4) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def rows(val, test):
    return [{"epoch": i, "val": {"acc": v}, "test": {"acc": t}} for i, (v, t) in enumerate(zip(val, test))]


def test_selection_rules():
    r = rows(val=[0.5, 0.7, 0.7, 0.6], test=[0.4, 0.5, 0.9, 0.95])
    assert select_epoch(r, "best_val")["epoch"] == 1  # tie at 0.7 -> earliest
    assert select_epoch(r, "best_test")["epoch"] == 3
    assert select_epoch(r, "last")["epoch"] == 3
    assert select_epoch(r, "best_val")["test"]["acc"] == 0.5
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_epoch(r, "oracle")

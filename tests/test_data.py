"""Data splits and batching."""
import pytest
import torch

from benchmarks.data import load_data
from benchmarks.data.core import TensorSplit, stratified_split
from benchmarks.grid.config import DataConfig


def test_stratified_split_is_seeded_disjoint_and_proportional():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    keep, held = stratified_split(labels, 0.1, seed=3)
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert len(keep) + len(held) == 100
    assert torch.bincount(labels[held]).tolist() == [5, 3, 2]
    again, _ = stratified_split(labels, 0.1, seed=3)
    other, _ = stratified_split(labels, 0.1, seed=4)
    assert torch.equal(keep, again) and not torch.equal(keep, other)


def test_batches_cover_every_sample_once():
    split = TensorSplit({"a": torch.arange(10.0)}, torch.arange(10))
    seen = torch.cat([b.labels for b in split.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(b) for b in split.batches(3, drop_last=True)] == [3, 3, 3]


def test_load_data_carves_validation_from_train_only():
    data = load_data(DataConfig(name="debug", val_fraction=0.25))
    assert len(data.train) == 120 and len(data.val) == 40 and len(data.test) == 80
    assert data.channels == {"audio": 1, "visual": 3}
    uni = load_data(DataConfig(name="debug"), modalities=("visual",))
    assert uni.train.modalities == ("visual",)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        TensorSplit({"a": torch.zeros(3)}, torch.zeros(4))

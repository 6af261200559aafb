"""Metrics and selection rules against hand-computed cases."""
import pytest
import torch

from benchmarks.train.evaluation import macro_f1
from benchmarks.core.selection import select_epoch


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


def small_model_and_split(n=25, classes=3):
    """An untrained two-modality model and a random split (images 8×8, 4-d embeddings)."""
    from benchmarks.data import TensorSplit
    from benchmarks.models import build_model
    from benchmarks.grid.config import ModelConfig

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4), {"audio": 1, "visual": 3}, classes)
    g = torch.Generator().manual_seed(1)
    split = TensorSplit({"audio": torch.randn(n, 1, 8, 8, generator=g),
                         "visual": torch.randn(n, 3, 8, 8, generator=g)}, torch.arange(n) % classes)
    return model, split


def test_evaluate_geometry_summarizes_the_whole_split():
    from benchmarks.train.evaluation import evaluate
    from geomreg.geometry import geometry_summary

    model, split = small_model_and_split()
    plain = evaluate(model, split, batch_size=16, device=torch.device("cpu"), num_classes=3)
    assert "geometry" not in plain
    with_geometry = evaluate(model, split, batch_size=16, device=torch.device("cpu"), num_classes=3,
                             geometry=True)
    geometry = with_geometry.pop("geometry")
    assert with_geometry == plain  # the other metrics are unchanged
    model.eval()
    with torch.no_grad():  # one pass over all 25 rows equals the 2 concatenated batches
        expected = geometry_summary(model.encode(split.inputs), split.labels)
    assert geometry["n"] == 25
    flat, flat_expected = flatten(geometry), flatten(expected)
    assert flat.keys() == flat_expected.keys()
    for key, value in flat.items():
        assert value == pytest.approx(flat_expected[key], rel=1e-5, abs=1e-6), key


def flatten(tree, prefix=""):
    """Nested dicts -> {"a.b.c": leaf}."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}.{key}").items()}


def test_evaluate_hands_out_the_per_sample_classes_behind_its_metrics():
    import numpy as np

    from benchmarks.train.evaluation import evaluate

    model, split = small_model_and_split()
    seen = []
    metrics = evaluate(model, split, batch_size=16, device=torch.device("cpu"), num_classes=3,
                       on_predictions=seen.append)
    (pred,) = seen
    assert set(pred) == {"labels", "fused", "audio", "visual"}
    assert all(a.dtype == np.uint8 and a.shape == (25,) for a in pred.values())
    model.eval()
    with torch.no_grad():  # one unbatched pass gives the same classes
        out = model(split.inputs)
    np.testing.assert_array_equal(pred["fused"], out.logits.argmax(1).numpy())
    np.testing.assert_array_equal(pred["audio"], out.unimodal_logits["audio"].argmax(1).numpy())
    np.testing.assert_array_equal(pred["labels"], (np.arange(25) % 3))
    assert metrics["acc"] == pytest.approx((pred["fused"] == pred["labels"]).mean())
    assert metrics["acc_visual"] == pytest.approx((pred["visual"] == pred["labels"]).mean())


def epoch_predictions(epoch, n=6):
    import numpy as np

    labels = np.arange(n, dtype=np.uint8) % 3
    return {"labels": labels, "fused": (labels + epoch) % 3, "audio": np.full(n, epoch % 3, np.uint8),
            "visual": labels.copy()}


def test_prediction_log_round_trips_and_its_file_depends_on_the_contents_only(tmp_path):
    import time

    import numpy as np

    from benchmarks.train.evaluation import PredictionLog

    log = PredictionLog()
    for epoch in range(3):
        log.add(epoch, epoch_predictions(epoch))
    log.write(tmp_path / "a.npz")
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    log.write(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as data:
        assert sorted(data.files) == ["audio", "epochs", "fused", "labels", "visual"]
        np.testing.assert_array_equal(data["epochs"], [0, 1, 2])
        np.testing.assert_array_equal(data["fused"][2], [2, 0, 1, 2, 0, 1])
        np.testing.assert_array_equal(data["audio"][:, 0], [0, 1, 2])
    first_two = PredictionLog.read(tmp_path / "a.npz", through_epoch=1)
    assert first_two.epochs == [0, 1] and first_two.arrays()["fused"].shape == (2, 6)
    with pytest.raises(ValueError, match=r"expected 0\.\.3"):
        PredictionLog.read(tmp_path / "a.npz", through_epoch=3)


def test_prediction_log_refuses_inconsistent_epochs():
    from benchmarks.train.evaluation import PredictionLog

    log = PredictionLog()
    log.add(0, epoch_predictions(0))
    with pytest.raises(ValueError, match="does not extend"):
        log.add(0, epoch_predictions(0))
    with pytest.raises(ValueError, match="samples differ"):
        log.add(1, epoch_predictions(1, n=5))

"""Attention to scale in the image app: masks from boxes, the three merges, IoU, training."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.image_classification import fashion, pipeline
from apps.image_classification import segmentation as seg
from tests.apps.image_classification.fashion_fixtures import write_fashion_idx

_TINY = dict(widths=(4, 8, 8), hidden_units=4)
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    source = write_fashion_idx(root / "idx")
    config = fashion.fashion_config("cluttered", canvas_size=32, tag="fixture")
    return pipeline.load_splits("cluttered_fashion_mnist", str(root / "cache"), config=config,
                                builder_kwargs={"source_dir": source})


def test_masks_are_the_garments_pixels_at_its_place(splits):
    images, _, boxes = next(iter(splits.test.batch(30)))
    masks = seg.object_masks(tf.cast(images, tf.float32) / 255.0, boxes, 0.1).numpy()
    for image, mask, box in zip(images.numpy(), masks, boxes.numpy(), strict=True):
        top, left, bottom, right = np.round(box * 32).astype(int)
        expected = np.zeros((32, 32), bool)
        expected[top:bottom, left:right] = image[top:bottom, left:right, 0] > 25.5
        np.testing.assert_array_equal(mask[..., 0], expected)
        assert mask.sum() > 0 and not mask[..., 0][image[..., 0] == 0].any()
        # The clutter outside the box is never part of the mask.
        outside = image[..., 0].copy()
        outside[top:bottom, left:right] = 0
        assert not mask[..., 0][outside > 0].any()
    # uint8 images give the same masks.
    np.testing.assert_array_equal(seg.object_masks(images, boxes, 0.1).numpy(), masks)


def test_mask_iou_matches_numpy():
    rng = np.random.default_rng(0)
    truth = (rng.random((6, 10, 10, 1)) > 0.6).astype("float32")
    logits = rng.normal(size=(6, 10, 10, 1)).astype("float32")
    truth[5], logits[5] = 0.0, -1.0  # nothing predicted, nothing there: IoU 1
    truth[4] = 0.0  # nothing there, something predicted: IoU 0
    pred = logits > 0
    t = truth > 0.5
    inter = (pred & t).reshape(6, -1).sum(1)
    union = (pred | t).reshape(6, -1).sum(1)
    expected = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    assert expected[5] == 1.0 and expected[4] == 0.0
    metric = seg.MaskIoU()
    metric.update_state(truth[:4], logits[:4])
    metric.update_state(truth[4:], logits[4:])
    np.testing.assert_allclose(float(metric.result()), expected.mean(), rtol=1e-6)
    metric.reset_state()
    metric.update_state(truth, truth * 2 - 1)  # the truth itself
    assert float(metric.result()) == pytest.approx(1.0)


@pytest.mark.parametrize("merge", seg.MERGES)
def test_each_merge_gives_masks_and_scale_weights(merge):
    config = seg.SegmentationConfig(merge=merge, **_TINY)
    built = seg.build_model(config, 32)
    images = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
    outputs = built.model(images)
    assert sorted(outputs) == ["mask", "scale_0", "scale_1", "scale_2"]
    assert all(tuple(v.shape) == (2, 32, 32, 1) for v in outputs.values())
    weights = keras.ops.convert_to_numpy(built.weights(images))
    assert weights.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    scale_logits = np.stack([keras.ops.convert_to_numpy(outputs[f"scale_{i}"])
                             for i in range(3)], axis=-1)[..., 0, :]
    merged = keras.ops.convert_to_numpy(outputs["mask"])[..., 0]
    if merge == "average":  # (bilinear resizing is linear: the mean commutes with it)
        np.testing.assert_allclose(merged, scale_logits.mean(-1), atol=1e-5)
        np.testing.assert_allclose(weights, 1 / 3, atol=1e-6)
    elif merge == "max":
        assert set(np.unique(weights)) == {0.0, 1.0}
        # Upsampling the max (a convex combination of maxima) is >= the max of the upsampled.
        assert np.all(merged >= scale_logits.max(-1) - 1e-5)
        probe = keras.Model(built.model.input, [built.model.get_layer("scale_logits").output,
                                                built.model.get_layer("max").output])
        grid_logits, grid_max = (keras.ops.convert_to_numpy(t) for t in probe(images))
        np.testing.assert_allclose(grid_max[..., 0], grid_logits.max(-1), atol=1e-6)
        np.testing.assert_array_equal(weights.argmax(-1), grid_logits.argmax(-1))
    else:
        assert built.model.get_layer("scale_attention").hidden_units == 4
        assert np.ptp(weights[..., 0]) > 0  # a weight per position
    no_extra = seg.build_model(seg.SegmentationConfig(merge=merge, extra_supervision=False,
                                                      **_TINY), 32)
    assert list(no_extra.model.output) == ["mask"]


@pytest.mark.parametrize("merge", seg.MERGES)
def test_training_steps_lower_the_loss(splits, merge):
    config = seg.SegmentationConfig(merge=merge, learning_rate=1e-2, **_TINY)
    keras.utils.set_random_seed(3)
    built = seg.build_model(config, 32)
    seg.compile_model(built)
    images, targets = next(iter(seg.make_dataset(splits.train, 32, config)))
    first = built.model.evaluate(images, targets, verbose=0, return_dict=True)["loss"]
    built.model.fit(images, targets, epochs=15, batch_size=32, verbose=0)
    last = built.model.evaluate(images, targets, verbose=0, return_dict=True)["loss"]
    assert last < 0.8 * first, (first, last)


def test_train_and_score_reports_iou_weights_and_time(splits):
    result = seg.train_and_score(seg.SegmentationConfig(**_TINY), splits, epochs=1,
                                 batch_size=32, seed=1)
    assert 0.0 <= result["test_iou"] <= 1.0 and 0.0 <= result["validation_iou"] <= 1.0
    assert len(result["scale_weights"]) == 3
    assert sum(result["scale_weights"]) == pytest.approx(1.0, abs=1e-4)
    assert result["parameters"] > 0 and result["train_seconds"] > 0
    assert "val_mask_iou" in result["history"]


def test_boxes_are_needed_and_bad_configs_are_named(splits, tmp_path):
    with pytest.raises(ValueError, match="merge must be one of"):
        seg.SegmentationConfig(merge="sum")
    with pytest.raises(ValueError, match="1.0 first"):
        seg.SegmentationConfig(scales=(0.5, 1.0))
    with pytest.raises(ValueError, match="scales"):
        seg.SegmentationConfig(scales=(1.0,))
    with pytest.raises(ValueError, match="mask_threshold"):
        seg.SegmentationConfig(mask_threshold=1.5)
    no_boxes = pipeline.Splits(splits.train.map(lambda i, label, b: (i, label)),
                               splits.validation, splits.test, (32, 32, 1), [], 1, "cifar10",
                               has_boxes=False)
    with pytest.raises(ValueError, match="'cifar10' has no object boxes"):
        seg.train_and_score(seg.SegmentationConfig(**_TINY), no_boxes, epochs=1)


def test_benchmark_pairs_by_seed_with_a_student_t_interval():
    from benchmarks import scale_attention as bench

    runs = [{"merge": m, "seed": s, "test_iou": iou, "scale_weights": [0.5, 0.5],
             "parameters": 10, "train_seconds": 1.0}
            for m, s, iou in [("average", 1, 0.50), ("average", 2, 0.60), ("average", 3, 0.40),
                              ("attention", 1, 0.51), ("attention", 2, 0.62),
                              ("attention", 3, 0.43), ("max", 1, 0.45)]]
    p = bench.paired(runs, "attention")
    assert p["differences"] == pytest.approx([0.01, 0.02, 0.03])
    half = 4.303 * 0.01 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (p["mean"], p["low"], p["high"]) == pytest.approx((0.02, 0.02 - half, 0.02 + half),
                                                             abs=1e-5)
    assert (p["won"], p["lost"]) == (3, 0)
    one = bench.paired(runs, "max")
    assert one["low"] is None and one["mean"] == pytest.approx(-0.05) and one["lost"] == 1
    rows = {r["merge"]: r for r in bench.summarize(runs)}
    assert rows["average"]["vs_average"] is None
    assert rows["attention"]["test_iou"] == pytest.approx(0.52)


@pytest.mark.slow
def test_benchmark_quick_run_on_fixture_garments(tmp_path):
    import subprocess
    import sys

    source = write_fashion_idx(tmp_path / "idx")

    def bench(*extra):
        return subprocess.run(
            [sys.executable, "-m", "benchmarks.scale_attention", "--quick",
             "--merges=attention,average", f"--data_dir={tmp_path / 'data'}",
             f"--config=source_dir={source}", "--config=canvas_size=32", "--batch_size=16",
             "--segmentation=widths=4,8,8", "--segmentation=hidden_units=4",
             f"--results_dir={tmp_path / 'results'}", *extra],
            capture_output=True, text=True, timeout=600, cwd=_ROOT)

    proc = bench("--seeds=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "results" / "scale_attention.md").read_text()
    assert "| attention |" in table and "| average |" in table
    assert "cluttered_fashion_mnist" in table and "scales 1.0, 0.75, 0.5" in table
    # One more seed: seed 1's two runs are kept as recorded, only seed 2 trains.
    first = json.loads((tmp_path / "results" / "scale_attention.json").read_text())["runs"]
    again = bench("--seeds=1,2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("Kept the recorded run") == 2
    runs = json.loads((tmp_path / "results" / "scale_attention.json").read_text())["runs"]
    assert [(r["merge"], r["seed"]) for r in runs] == [
        ("attention", 1), ("average", 1), ("attention", 2), ("average", 2)]
    assert runs[:2] == first

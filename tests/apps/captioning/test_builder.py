"""The emoji_scenes builder (tiny config, real font), scene layout, captions, pairs, names."""

import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from apps.captioning import acquire, builder, scenes
from apps.common import data as common_data
from tests.apps.captioning.fixtures import font_or_skip, tiny_scenes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    font_or_skip()
    root = str(tmp_path_factory.mktemp("scenes"))
    return common_data.prepare(builder.EmojiScenes, root, config=tiny_scenes())


def _examples(prepared, split):
    return list(tfds.as_numpy(prepared.as_dataset(split=split)))


def _pairs(objects):
    labels = [int(x) for x in objects]
    return {tuple(sorted((a, b))) for i, a in enumerate(labels) for b in labels[i + 1 :]}


def test_splits_hold_object_pairs_of_their_own(built):
    config = tiny_scenes()
    pairs = {k: set(v) for k, v in builder.split_pairs(8, config).items()}
    names = built.info.features["objects"]["label"].names
    assert names == [builder.short_name(c) for c in builder.OBJECTS[:8]]
    counts = {"train": 12, "validation": 3, "test": 6}
    for split, count in counts.items():
        examples = _examples(built, split)
        assert len(examples) == count
        for example in examples:
            scene_pairs = _pairs(example["objects"]["label"])
            assert 2 <= len(example["objects"]["label"]) <= 3
            if split == "train":
                assert scene_pairs <= pairs["train"]
            else:  # At least one pair never seen in training, none of the other held-out split.
                assert scene_pairs & pairs[split]
                assert scene_pairs <= pairs["train"] | pairs[split]
    meta = built.info.metadata
    assert meta["pairs_per_split"] == {k: len(v) for k, v in pairs.items()}
    assert len(meta["test_pairs"]) == len(pairs["test"])


def test_metadata_records_the_font(built):
    meta = built.info.metadata
    with open(meta["font_path"], "rb") as f:
        assert meta["font_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert meta["font_package"] == acquire.FONT_PACKAGE
    assert meta["font_package_version"]
    assert [o["caption_name"] for o in meta["objects"]][:2] == ["dog", "cat"]
    assert meta["objects"][0]["unicode_name"] == "DOG FACE"


def test_captions_boxes_and_layout_agree(built):
    names = built.info.features["objects"]["label"].names
    for example in _examples(built, "train") + _examples(built, "test"):
        image = example["image"]
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        boxes = example["objects"]["bbox"]
        layout = scenes.LAYOUTS[example["layout"]]
        words = [names[i] for i in example["objects"]["label"]]
        captions = [c.decode() for c in example["captions"]]
        assert captions == builder.captions_for(words, layout)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert np.all((boxes >= 0) & (boxes <= 1))
        # Objects are in order along the layout, their boxes separated along it and their
        # centres closer across it than half their distance along it.
        along, across = (1, 0) if layout == "row" else (0, 1)
        for a, b in zip(boxes[:-1], boxes[1:], strict=True):
            assert a[along + 2] <= b[along]
            distance = (b[along] + b[along + 2] - a[along] - a[along + 2]) / 2
            offset = abs((b[across] + b[across + 2] - a[across] - a[across + 2]) / 2)
            assert offset <= distance / 2 + 1.5 / 96


def test_compose_scene_puts_each_tile_inside_its_box():
    tiles = []
    for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0)):
        tile = np.zeros((20, 30, 4), np.uint8)
        tile[2:18, 3:27] = (*colour, 255)  # transparent margin around an opaque block
        tiles.append(tile)
    config = tiny_scenes()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        image, layout, boxes = scenes.compose_scene(tiles, [0, 1, 2], rng, config)
        again = scenes.compose_scene(tiles, [0, 1, 2], np.random.default_rng(seed), config)
        np.testing.assert_array_equal(image, again[0])
        assert layout in scenes.LAYOUTS
        for channel, box in zip((0, 2, 1), boxes, strict=True):
            top, left, bottom, right = np.round(box * 96).astype(int)
            inner = image[top + 1 : bottom - 1, left + 1 : right - 1].astype(int)
            # The block's colour dominates inside its box (edges are antialiased).
            assert np.all(inner[..., channel] >= 200)
            others = [c for c in range(3) if c != channel]
            assert np.all(inner[..., others] <= 60)


def test_split_pairs_partition_every_pair_and_keep_every_object_in_training():
    config = builder.EmojiScenesConfig(name="x")
    pairs = builder.split_pairs(40, config)
    every = [p for v in pairs.values() for p in v]
    assert len(every) == len(set(every)) == 40 * 39 // 2
    assert {o for p in pairs["train"] for o in p} == set(range(40))
    assert len(pairs["test"]) == 156 and len(pairs["validation"]) == 39
    assert pairs == builder.split_pairs(40, config)  # seeded


def test_names_articles_and_phrasings():
    assert builder.short_name("🐶") == "dog"
    assert builder.short_name("🍎") == "red apple"
    assert builder.short_name("☔") == "umbrella"
    assert [builder.noun_phrase(n) for n in ("dog", "umbrella", "grapes")] == [
        "the dog", "the umbrella", "the grapes"]
    assert builder.captions_for(["dog", "red apple"], "row") == [
        "the dog to the left of the red apple", "the red apple to the right of the dog",
        "the dog on the left and the red apple on the right"]
    assert builder.captions_for(["dog", "cat"], "column") == [
        "the dog above the cat", "the cat below the dog",
        "the dog at the top and the cat at the bottom"]
    assert builder.captions_for(["dog", "cat", "octopus"], "column") == [
        "the dog, the cat and the octopus from top to bottom",
        "the octopus, the cat and the dog from bottom to top"]
    with pytest.raises(ValueError, match="layout"):
        builder.captions_for(["dog", "cat"], "diagonal")
    assert len({builder.short_name(c) for c in builder.OBJECTS}) == len(builder.OBJECTS)


"""Fashion-MNIST, plain and cluttered, on tiny idx fixtures made here (no network, no apt)."""

import gzip
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from apps.common import acquire as common_acquire
from apps.common import data as common_data
from apps.image_classification import acquire, fashion, pipeline, train
from apps.image_classification.model import ModelConfig
from tests.apps.image_classification.fashion_fixtures import (
    fake_garments,
    idx_bytes,
    write_fashion_idx,
)

# 12 training garments per class (one held out for validation), 3 test garments per class.
_TRAIN, _TEST = fake_garments(12, 0), fake_garments(3, 1)


def _build(tmp_path, config, subdir="d", source=None):
    source = source or write_fashion_idx(tmp_path / "idx")
    return common_data.prepare(fashion.FashionMnistCanvases, str(tmp_path / subdir),
                               config=config, source_dir=source)


def _examples(built, split):
    return list(tfds.as_numpy(built.as_dataset(split=split)))


def _source(index):
    """The fixture garment and label of a `source_index` (train rows, then 120 + test rows)."""
    images, labels = _TRAIN if index < 120 else _TEST
    return images[index % 120], int(labels[index % 120])


def test_plain_splits_are_the_official_test_file_and_a_seeded_validation_hold_out(tmp_path):
    built = _build(tmp_path, "plain")
    sources = {}
    for split in ("train", "validation", "test"):
        examples = _examples(built, split)
        sources[split] = sorted(int(e["source_index"]) for e in examples)
        for e in examples:  # 28x28, the garment as it is, its label, its ink box.
            image, label = _source(int(e["source_index"]))
            np.testing.assert_array_equal(e["image"][..., 0], image)
            assert e["label"] == label and e["canvas_index"] == 0
            rows, cols = np.flatnonzero(image.max(1)), np.flatnonzero(image.max(0))
            expected = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]) / 28
            np.testing.assert_allclose(e["bbox"], expected, atol=1e-6)
    assert sources["test"] == list(range(120, 150))  # exactly the official test file
    assert len(sources["validation"]) == 10 and len(sources["train"]) == 110
    assert sorted(sources["train"] + sources["validation"]) == list(range(120))
    meta = built.info.metadata
    assert meta["class_names"] == fashion.CLASS_NAMES
    assert built.info.features["label"].names == fashion.CLASS_NAMES
    assert meta["source_counts"] == {"train": 120, "test": 30}
    assert meta["garments_per_class"] == {"train": [11] * 10, "validation": [1] * 10,
                                          "test": [3] * 10}
    assert meta["config"]["canvas_size"] == 28 and meta["config"]["max_clutter"] == 0


def test_cluttered_canvases_hold_the_garment_in_its_box_and_clutter_of_others(tmp_path):
    built = _build(tmp_path, "cluttered")
    assert built.info.features["image"].shape == (60, 60, 1)
    cluttered = 0
    for split in ("train", "test"):
        for e in _examples(built, split):
            canvas = e["image"][..., 0]
            image, label = _source(int(e["source_index"]))
            assert e["label"] == label
            top, left, bottom, right = np.round(e["bbox"] * 60).astype(int)
            ink = image[image.max(axis=1) > 0][:, image.max(axis=0) > 0]
            # Clutter is kept off the box, so the box shows the garment's ink exactly.
            np.testing.assert_array_equal(canvas[top:bottom, left:right], ink)
            outside = canvas.copy()
            outside[top:bottom, left:right] = 0
            cluttered += int(outside.max() > 0)
            # The canvas has no ink the garment and its 4-8 8x8 fragments could not give.
            assert (outside > 0).sum() <= 8 * 64
    assert cluttered >= 0.9 * (110 + 30)
    tops = {int(round(e["bbox"][0] * 60)) for e in _examples(built, "test")}
    assert len(tops) > 10  # the garment is translated


def test_clutter_is_cut_from_other_garments_of_the_pool():
    # Garment 0 is all 200, garment 1 all 7: every clutter pixel of garment 0's canvases is 7.
    images = np.stack([np.full((28, 28), 200, np.uint8), np.full((28, 28), 7, np.uint8)])
    boxes = np.array([[0, 0, 28, 28]] * 2)
    config = fashion.fashion_config("cluttered", min_clutter=6, max_clutter=6)
    for k in range(5):
        canvas, (top, left, bottom, right) = fashion.canvas_lib.draw_canvas(
            images, boxes, np.array([0, 1]), 0, "test", k, config)
        assert (bottom - top, right - left) == (28, 28)
        assert np.all(canvas[top:bottom, left:right] == 200)
        canvas[top:bottom, left:right] = 0
        assert set(np.unique(canvas)) == {0, 7} and (canvas == 7).sum() >= 64


def test_generation_is_deterministic_and_the_seed_changes_it(tmp_path):
    source = write_fashion_idx(tmp_path / "idx")
    again = fashion.fashion_config("cluttered", seed=2017)  # the default seed: no change
    other = fashion.fashion_config("cluttered", seed=7)
    assert again.name == "cluttered" and other.name == "cluttered_seed_7"

    def by_key(built, split):
        return {(int(e["source_index"]), int(e["canvas_index"])): e["image"]
                for e in _examples(built, split)}

    a = _build(tmp_path, "cluttered", "a", source)
    b = _build(tmp_path, again, "b", source)
    c = _build(tmp_path, other, "c", source)
    for split in ("train", "validation", "test"):
        first, second = by_key(a, split), by_key(b, split)
        assert first.keys() == second.keys()
        assert all(np.array_equal(first[k], second[k]) for k in first)
    # Another seed holds out other garments and draws other canvases.
    assert by_key(a, "validation").keys() != by_key(c, "validation").keys()
    test_a, test_c = by_key(a, "test"), by_key(c, "test")
    assert sum(not np.array_equal(test_a[k], test_c[k]) for k in test_a) > 20


def test_gzip_and_plain_idx_files_read_alike(tmp_path):
    zipped = fashion.read_fashion(write_fashion_idx(tmp_path / "gz"))
    plain = fashion.read_fashion(write_fashion_idx(tmp_path / "raw", gzipped=False))
    for split in ("train", "test"):
        for a, b in zip(zipped[split], plain[split], strict=True):
            np.testing.assert_array_equal(a, b)
    assert zipped["train"][0].shape == (120, 28, 28) and zipped["test"][1].shape == (30,)
    wide = idx_bytes(np.arange(6, dtype=">i4").reshape(2, 3), code=0x0C)
    (tmp_path / "wide").write_bytes(wide)
    np.testing.assert_array_equal(fashion.read_idx(str(tmp_path / "wide")),
                                  np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-100], r"declares shape \(120, 28, 28\).*truncated"),
    (lambda data: data + b"\0\0", "trailing bytes"),
    (lambda data: b"\x12\x34" + data[2:], "expected magic bytes 00 00, got 12 34"),
    (lambda data: data[:2] + b"\x07" + data[3:], "unknown idx type code 0x07"),
    (lambda data: data[:6], "header needs 16"),
    (lambda data: data[:3] + b"\0", "at least one dimension"),
])
def test_a_corrupt_idx_file_is_named_with_what_was_expected(tmp_path, damage, message):
    directory = write_fashion_idx(tmp_path / "idx", gzipped=False)
    path = os.path.join(directory, "train-images-idx3-ubyte")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(damage(data))
    with pytest.raises(ValueError, match=message) as err:
        fashion.read_fashion(directory)
    assert path in str(err.value)


def test_bad_gzip_wrong_counts_labels_and_missing_files_are_named(tmp_path):
    directory = write_fashion_idx(tmp_path / "idx")
    labels = os.path.join(directory, "t10k-labels-idx1-ubyte.gz")
    with open(labels, "rb") as f:
        zipped = f.read()
    with open(labels, "wb") as f:
        f.write(zipped[: len(zipped) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip") as err:
        fashion.read_fashion(directory)
    assert labels in str(err.value)
    with open(labels, "wb") as f:
        f.write(gzip.compress(idx_bytes(np.zeros(29, np.uint8))))
    with pytest.raises(ValueError, match="expected 30 labels"):
        fashion.read_fashion(directory)
    with open(labels, "wb") as f:
        f.write(gzip.compress(idx_bytes(np.full(30, 10, np.uint8))))
    with pytest.raises(ValueError, match=r"labels must be 0..9, got 10..10"):
        fashion.read_fashion(directory)
    os.remove(labels)
    with pytest.raises(ValueError, match="has no t10k-labels-idx1-ubyte.gz"):
        fashion.read_fashion(directory)


def test_configs_are_named_after_their_changes():
    assert fashion.fashion_config("plain").name == "plain"
    bigger = fashion.fashion_config("cluttered", canvas_size=100, max_clutter=16)
    assert bigger.name == "cluttered_canvas_size_100_max_clutter_16"
    assert (bigger.canvas_size, bigger.min_clutter, bigger.train_canvases) == (100, 4, 1)
    assert fashion.fashion_config("plain", tag="idx_0123").name == "plain_idx_0123"
    with pytest.raises(ValueError, match="Unknown Fashion-MNIST config 'noisy'"):
        fashion.fashion_config("noisy")
    with pytest.raises(ValueError, match="test_fraction"):  # the test split is official
        fashion.fashion_config("cluttered", test_fraction=0.2)
    with pytest.raises(ValueError, match="canvas_size"):
        fashion.fashion_config("plain", canvas_size=20)


def test_train_config_resolves_the_fashion_datasets(tmp_path):
    plain = train.TrainConfig(dataset="fashion_mnist")
    assert plain.dataset_config().name == "plain" and plain.dataset_config().canvas_size == 28
    cluttered = train.TrainConfig(dataset="cluttered_fashion_mnist", canvas_size=100)
    assert cluttered.dataset_config().name == "cluttered_canvas_size_100"
    source = write_fashion_idx(tmp_path / "idx")
    own = train.TrainConfig(dataset="fashion_mnist", source_dir=source).dataset_config()
    assert own.name.startswith("plain_idx_")
    # The model must fit the dataset's own canvas (28: ViT patches of 7 divide it, 8 not).
    train.TrainConfig(dataset="fashion_mnist", model=ModelConfig(variant="vit", patch_size=7))
    with pytest.raises(ValueError, match="patch_size=8"):
        train.TrainConfig(dataset="fashion_mnist", model=ModelConfig(variant="vit", patch_size=8))
    with pytest.raises(ValueError, match="source_dir"):
        train.TrainConfig(source_dir=source)  # cluttered_digits does not read idx files
    with pytest.raises(ValueError, match="source_csv"):
        train.TrainConfig(dataset="fashion_mnist", source_csv=str(tmp_path / "d.csv"))
    with pytest.raises(ValueError, match="not a directory"):
        train.TrainConfig(dataset="fashion_mnist", source_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="canvas_size"):
        train.TrainConfig(dataset="cifar10", canvas_size=60)


def test_load_splits_gives_boxes_and_class_names(tmp_path):
    source = write_fashion_idx(tmp_path / "idx")
    splits = pipeline.load_splits("cluttered_fashion_mnist", str(tmp_path / "cache"),
                                  builder_kwargs={"source_dir": source})
    assert splits.image_shape == (60, 60, 1) and splits.has_boxes
    assert splits.class_names == fashion.CLASS_NAMES and splits.train_examples == 110
    images, labels, boxes = next(iter(pipeline.make_dataset(splits.test, 8, boxes=True)))
    assert images.shape == (8, 60, 60, 1) and boxes.shape == (8, 4)


def test_without_apt_get_the_error_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(common_acquire.AcquireError) as err:
        acquire.fashion_mnist_dir(str(tmp_path))
    message = str(err.value)
    assert "apt-get download dataset-fashion-mnist" in message and "dpkg-deb -x" in message
    assert str(tmp_path / "fashion-mnist") in message and "source_dir" in message


def test_a_failed_download_names_the_command_and_the_way_around(tmp_path, monkeypatch):
    def offline(command, what, **kwargs):
        raise common_acquire.AcquireError(f"{what}: `{' '.join(command)}` failed (exit 100): "
                                          "E: Unable to locate package")

    monkeypatch.setattr(common_acquire, "run", offline)
    with pytest.raises(common_acquire.AcquireError) as err:
        acquire.fashion_mnist_dir(str(tmp_path))
    message = str(err.value)
    assert "apt-get download dataset-fashion-mnist" in message
    assert "zalandoresearch/fashion-mnist" in message and "apt-get update" in message
    assert not os.path.exists(tmp_path / "fashion-mnist")  # nothing that looks finished


@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                    reason="needs apt-get and dpkg-deb (Debian/Ubuntu)")
def test_debians_package_gives_60000_and_10000_garments_and_is_cached(tmp_path, monkeypatch):
    # The real acquisition path: `apt-get download` of the pinned package (31 MB), digests
    # checked; a second call uses the cached files without apt.
    directory, origin = acquire.fashion_mnist_dir(str(tmp_path))
    assert origin.startswith("Debian package dataset-fashion-mnist")
    assert sorted(os.listdir(directory)) == sorted(acquire.FASHION_SHA256)
    assert not os.path.exists(tmp_path / "dataset-fashion-mnist-deb")  # only the files kept
    monkeypatch.setattr(common_acquire, "run", None)  # no command may run now
    assert acquire.fashion_mnist_dir(str(tmp_path)) == (
        directory, f"Debian package dataset-fashion-mnist (cached in {directory})")
    data = fashion.read_fashion(directory)
    assert data["train"][0].shape == (60000, 28, 28) and data["test"][0].shape == (10000, 28, 28)
    assert np.bincount(data["train"][1]).tolist() == [6000] * 10
    assert np.bincount(data["test"][1]).tolist() == [1000] * 10
    config = fashion.fashion_config("plain")
    sources = fashion.canvas_lib.split_sources(data["train"][1], config)
    assert [len(sources[s]) for s in ("train", "validation", "test")] == [54000, 6000, 0]

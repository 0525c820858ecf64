"""From the prepared splits to batches: scaled images, labels, boxes; public tfds datasets."""

import numpy as np
import tensorflow_datasets as tfds

from apps.image_classification import builder, pipeline
from tests.apps.image_classification.fixtures import write_fixture_csv


def test_load_splits_and_make_dataset_give_scaled_batches_and_boxes(tmp_path):
    csv = write_fixture_csv(tmp_path)
    config = builder.ClutteredDigitsConfig(name="tiny", train_canvases=3, eval_canvases=2,
                                           min_clutter=3, max_clutter=5)
    splits = pipeline.load_splits(pipeline.EMBEDDED, str(tmp_path / "cache"), config=config,
                                  builder_kwargs={"source_csv": csv})
    assert splits.image_shape == (60, 60, 1)
    assert splits.class_names == [str(d) for d in range(10)]
    assert splits.train_examples == 210 and splits.has_boxes
    images, labels = next(iter(pipeline.make_dataset(splits.train, 16, training=True, seed=1)))
    assert images.shape == (16, 60, 60, 1) and images.dtype.name == "float32"
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
    assert labels.shape == (16,)
    images, labels, boxes = next(iter(pipeline.make_dataset(splits.test, 16, boxes=True)))
    assert boxes.shape == (16, 4)
    assert np.all(boxes.numpy()[:, 2] > boxes.numpy()[:, 0])
    quick = pipeline.load_splits(pipeline.EMBEDDED, str(tmp_path / "cache"), config=config,
                                 builder_kwargs={"source_csv": csv}, take=32)
    assert quick.train_examples == 32


def test_public_dataset_goes_through_tfds(tmp_path):
    # tfds' mock stands in for the download (no network here); the code path is the real one.
    with tfds.testing.mock_data(num_examples=24):
        splits = pipeline.load_splits("cifar10", str(tmp_path))
        images, labels = next(iter(pipeline.make_dataset(splits.train, 8, training=True)))
    assert splits.image_shape == (32, 32, 3)
    assert not splits.has_boxes  # no boxes: accuracy only, no localization
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8,)
    assert len(splits.class_names) == 10

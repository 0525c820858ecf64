"""The dataset cache builds once, verifies itself, and rebuilds a corrupt cache with a message."""

import os

import numpy as np
import tensorflow_datasets as tfds

from apps.common import data

BUILDS = []


class TinyNumbers(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"x": tfds.features.Scalar(np.int64)})
        )

    def _split_generators(self, dl_manager):
        BUILDS.append(1)
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(20):
            yield i, {"x": i}


def _values(builder):
    return sorted(int(e["x"]) for e in tfds.as_numpy(builder.as_dataset(split="train")))


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_ATTENTION_DATA", str(tmp_path / "env"))
    assert data.data_dir(None) == str(tmp_path / "env")
    assert data.data_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")
    assert os.path.isdir(tmp_path / "flag")


def test_builds_once_then_rebuilds_corrupt_cache(tmp_path, capsys):
    BUILDS.clear()
    builder = data.prepare(TinyNumbers, str(tmp_path))
    assert _values(builder) == list(range(20))
    data.prepare(TinyNumbers, str(tmp_path))
    assert len(BUILDS) == 1, "a verified cache must not be rebuilt"

    shard = next(
        os.path.join(builder.data_dir, f)
        for f in os.listdir(builder.data_dir)
        if "tfrecord" in f
    )
    with open(shard, "r+b") as f:
        f.seek(10)
        f.write(b"\x00garbage\x00")
    rebuilt = data.prepare(TinyNumbers, str(tmp_path))
    assert len(BUILDS) == 2
    assert "corrupt" in capsys.readouterr().out
    assert _values(rebuilt) == list(range(20))


def test_unreadable_info_is_rebuilt(tmp_path):
    BUILDS.clear()
    builder = data.prepare(TinyNumbers, str(tmp_path))
    with open(os.path.join(builder.data_dir, "dataset_info.json"), "w") as f:
        f.write("{not json")
    rebuilt = data.prepare(TinyNumbers, str(tmp_path))
    assert len(BUILDS) == 2
    assert _values(rebuilt) == list(range(20))

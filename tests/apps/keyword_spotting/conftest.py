"""Shared fixtures: a handful of clips synthesized here, and one tiny trained + exported run."""

from __future__ import annotations

import numpy as np
import pytest

from apps.keyword_spotting import acquire

# Two clips per class for training (four _unknown_), one for validation and test: 90 clips;
# a quarter of the training words spoken by the Piper voice, as in the default corpus.
TINY = dict(clips_per_class=(2, 1, 1), train_unknown_factor=2.0, babble_pool=3,
            piper_share=0.25)


def clips(batch=4, seed=0):
    """`(batch, 16000)` float32 test clips: a random tone each, in a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * rng.uniform(200, 2000, (batch, 1)) * t)
    return (0.3 * tone + 0.01 * rng.standard_normal((batch, 16000))).astype("float32")


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV file of `samples` (floats in [-1, 1])."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.asarray(samples) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def tiny_config():
    from apps.keyword_spotting import builder

    return builder.SpeechCommandsConfig(name="tiny", description="test corpus", **TINY)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """(data_dir, config) of a tiny synthetic corpus built once per session."""
    try:
        acquire.ensure_engines()
    except acquire.EnginesMissing as err:
        pytest.skip(f"no speech engine can be installed here: {err}")
    from apps.keyword_spotting import pipeline

    root = str(tmp_path_factory.mktemp("kws_data"))
    config = tiny_config()
    pipeline.prepare_corpus(root, config)
    return root, config


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory):
    """The RunResult of one epoch of a tiny attention_rnn on the tiny corpus, with plots and
    export."""
    from apps.keyword_spotting import train
    from apps.keyword_spotting.model import ModelConfig

    root, config = tiny_corpus
    out = tmp_path_factory.mktemp("kws_run")
    run_config = train.TrainConfig(
        data_dir=root, corpus=config, model_dir=str(out / "run"),
        export_dir=str(out / "export"), epochs=1, batch_size=16,
        model=ModelConfig(rnn_units=8, conv_filters=2), sample_clips=2,
    )
    return train.run(run_config)

"""The synthetic_speech_commands builder on a handful of clips synthesized here."""

from __future__ import annotations

import numpy as np

from apps.keyword_spotting import pipeline, synth


def _examples(builder, split):
    return list(builder.as_dataset(split=split).as_numpy_iterator())


def test_builder_writes_balanced_splits_of_unseen_voices(tiny_corpus):
    root, config = tiny_corpus
    builder = pipeline.prepare_corpus(root, config)  # Cached: verified, not rebuilt.
    assert builder.info.features["label"].names == list(synth.CLASSES)
    speakers = {}
    for split, per_class in zip(synth.SPLITS, config.clips_per_class, strict=True):
        examples = _examples(builder, split)
        labels = [synth.CLASSES[int(e["label"])] for e in examples]
        unknown = 2 * per_class if split == "train" else per_class  # train_unknown_factor
        assert labels.count(synth.UNKNOWN) == unknown
        assert all(labels.count(c) == per_class for c in synth.CLASSES if c != synth.UNKNOWN)
        assert len(examples) == per_class * (len(synth.CLASSES) - 1) + unknown
        speakers[split] = {e["speaker"] for e in examples if e["speaker"]}
        for e in examples:
            audio = e["audio"]
            assert audio.dtype == np.int16 and audio.shape == (16000,)
            name = synth.CLASSES[e["label"]]
            if name == synth.SILENCE:
                assert e["word_start"] == -1 and e["speaker"] == b""
                continue
            assert name == synth.UNKNOWN or e["word"].decode() == name
            start, end = int(e["word_start"]), int(e["word_end"])
            assert 0 <= start < end <= 16000
            x = audio.astype(np.float64)
            rest = np.delete(x, np.s_[start:end])
            inside = np.sqrt(np.mean(x[start:end] ** 2))
            outside = np.sqrt(np.mean(rest**2)) if rest.size else 0.0
            assert inside > outside  # Speech stands above the noise (SNR >= 5 dB).
            assert e["snr_db"] >= config.snr_db[0] - 1e-3
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["validation"]
    assert b"piper/joe" in speakers["train"]


def test_builder_records_engines_and_voices(tiny_corpus):
    root, config = tiny_corpus
    metadata = pipeline.prepare_corpus(root, config).info.metadata
    assert "eSpeak NG" in metadata["engines"]["espeak-ng"]
    assert "flite" in metadata["engines"]["flite"]
    assert metadata["flite_voices"]["test"] == ["rms"]
    assert metadata["mbrola_voices"]["test"] == ["us3"]
    assert "mbrola-us3=" in metadata["engines"]["debian_packages"]
    assert metadata["engines"]["piper-tts"] == "1.8.0"
    assert metadata["piper_voices"] == {"train": ["joe"], "validation": [], "test": []}
    assert metadata["piper_share"] == 0.25
    assert set(metadata["espeak_variants"]["test"]).isdisjoint(metadata["espeak_variants"]["train"])
    assert metadata["clips_per_class"] == {"train": 2, "validation": 1, "test": 1}

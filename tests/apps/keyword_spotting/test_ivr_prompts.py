"""The telephone-prompt evaluation set, on fixture WAV files made here (no apt, no network)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from apps.keyword_spotting import ivr_prompts
from apps.keyword_spotting.synth import CLASSES, UNKNOWN
from tests.apps.keyword_spotting.conftest import wav_bytes


def _wav(seconds: float, freq: float, rate: int = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return wav_bytes(0.4 * np.sin(2 * np.pi * freq * t), rate)


def _fixture(directory, skip=None) -> str:
    for i, path in enumerate(ivr_prompts.PROMPTS):
        if path == skip:
            continue
        os.makedirs(directory / os.path.dirname(path), exist_ok=True)
        (directory / path).write_bytes(_wav(0.8, 200 + 10 * i))
    return str(directory)


def test_the_table_holds_ten_digits_and_other_words_of_every_group():
    words = [word for word, _ in ivr_prompts.PROMPTS.values()]
    groups = [group for _, group in ivr_prompts.PROMPTS.values()]
    assert words[:10] == list(ivr_prompts.DIGITS)
    assert groups.count("digit") == 10 and set(groups) == set(ivr_prompts.GROUPS)
    # No other word of the table is a class: they must all be `_unknown_`.
    assert not {w for w, g in ivr_prompts.PROMPTS.values() if g != "digit"} & set(CLASSES)
    assert len(ivr_prompts.PROMPTS) == 80


def test_prompts_keep_the_files_bytes_and_label_digits_and_unknown(tmp_path):
    directory = _fixture(tmp_path)
    items = ivr_prompts.prompts(directory)
    assert len(items) == 80
    seven = next(p for p in items if p.word == "seven")
    assert seven.label == CLASSES.index("seven") and seven.group == "digit"
    assert seven.wav == (tmp_path / "digits/7.wav").read_bytes()
    seventy = next(p for p in items if p.word == "seventy")
    assert seventy.label == CLASSES.index(UNKNOWN) and seventy.path == "digits/70.wav"


def test_fetch_uses_a_complete_cache_and_never_calls_apt(tmp_path, monkeypatch):
    target = tmp_path / "downloads" / "asterisk-prompts"
    _fixture(target)
    monkeypatch.setattr(ivr_prompts.common_acquire, "apt_download",
                        lambda *a, **k: pytest.fail("apt-get download called"))
    assert ivr_prompts.fetch(str(tmp_path)) == str(target)


def test_fetch_names_the_missing_prompts_of_a_package(tmp_path, monkeypatch):
    staged = tmp_path / "pkg" / ivr_prompts.ROOT
    _fixture(staged, skip="digits/7.wav")

    def fake_extract(deb, directory):
        import shutil

        shutil.copytree(tmp_path / "pkg", directory, dirs_exist_ok=True)
        return directory

    monkeypatch.setattr(ivr_prompts.common_acquire, "apt_download",
                        lambda *a, **k: str(tmp_path / "x.deb"))
    monkeypatch.setattr(ivr_prompts.common_acquire, "dpkg_extract", fake_extract)
    with pytest.raises(ivr_prompts.common_acquire.AcquireError, match="digits/7.wav"):
        ivr_prompts.fetch(str(tmp_path / "cache"))
    _fixture(staged)  # Complete now: unpacked into the cache, only the table's files.
    target = ivr_prompts.fetch(str(tmp_path / "cache"))
    assert ivr_prompts.prompts(target)[7].wav == (staged / "digits/7.wav").read_bytes()
    assert not [n for n in os.listdir(os.path.dirname(target)) if n.startswith(".unpack")]


def test_score_counts_per_group_from_the_signatures_labels(tmp_path):
    import tensorflow as tf

    items = ivr_prompts.prompts(_fixture(tmp_path))
    calls = []

    def serve_wav(audio_wav):
        calls.append(int(audio_wav.shape[0]))
        # Calls the first clip of every batch "seven", the others `_unknown_`.
        labels = [b"seven" if i == 0 else UNKNOWN.encode() for i in range(audio_wav.shape[0])]
        probabilities = [[0.0] * len(CLASSES) for _ in labels]
        for row, label in zip(probabilities, labels, strict=True):
            row[CLASSES.index(label.decode())] = 0.75
            row[CLASSES.index("seven") if label != b"seven" else 0] = 0.25
        return {"label": tf.constant(labels), "probabilities": tf.constant(probabilities)}

    result = ivr_prompts.score(serve_wav, items, batch_size=32)
    assert calls == [32, 32, 16]
    # The first clip of each batch is called "seven": digits/0 ("zero") wrong, and the
    # batches' first clips 32 and 64 are other words, so wrong too.
    assert result["digit"] == {"correct": 0, "clips": 10, "p_true": 0.25 / 10}  # "seven".
    for group in ivr_prompts.GROUPS[1:]:  # `_unknown_` at 0.75, but 0 for a batch's first.
        expected = [0.0 if i % 32 == 0 else 0.75 for i, p in enumerate(items) if p.group == group]
        assert result[group]["p_true"] == pytest.approx(np.mean(expected))
    others = sum(result[g]["correct"] for g in ivr_prompts.GROUPS[1:])
    assert others == 70 - 2
    assert result["predictions"][0] == "zero->seven" and result["predictions"][1] == (
        f"one->{UNKNOWN}")

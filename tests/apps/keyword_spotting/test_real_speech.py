"""Real-speech evaluation clips (cut from a fixture archive made here) and channel evaluation."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from apps.keyword_spotting import real_speech
from apps.keyword_spotting.synth import CLASSES, CLIP_SAMPLES, UNKNOWN
from tests.apps.keyword_spotting.conftest import wav_bytes


def _recording(path: str, seconds: float = 3.6) -> np.ndarray:
    """A fake recording: a different tone per file, so clips can be traced back."""
    t = np.arange(int(16000 * seconds)) / 16000
    freq = 200 + 50 * sorted(real_speech.WORDS).index(path)
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _archive(tmp_path, rate=16000, drop=None) -> str:
    path = tmp_path / real_speech.ARCHIVE
    prefix = real_speech.ARCHIVE.removesuffix(".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for name in real_speech.WORDS:
            if name == drop:
                continue
            if name.endswith(".wav"):
                data = wav_bytes(_recording(name), rate)
            else:
                data = (_recording(name) * 32767).astype("<i2").tobytes()
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_cut_centers_the_word_with_its_margin():
    audio = np.arange(40000, dtype=np.float32)
    clip, start, end = real_speech.cut(audio, 10000, 14000, margin=800)
    assert clip.shape == (CLIP_SAMPLES,)
    assert end - start == 4000
    assert clip[start] == 10000 and clip[end - 1] == 13999
    kept = np.nonzero(clip)[0]
    assert kept[0] == start - 800 and kept[-1] == end + 799  # Margin, then zeros.
    assert abs((start + end) / 2 - CLIP_SAMPLES / 2) <= 1


def test_cut_at_the_recordings_edges_and_overlong_words():
    audio = np.ones(30000, np.float32)
    clip, start, end = real_speech.cut(audio, 0, 3000)  # No margin before the start.
    assert end - start == 3000 and clip[start - 1] == 0 and clip[start] == 1
    clip, start, end = real_speech.cut(audio, 2000, 28000)  # Longer than a clip.
    assert np.all(clip == 1) and start == 0 and end == CLIP_SAMPLES


def test_clips_from_the_archive_label_words_and_skip_of(tmp_path):
    items = real_speech.clips(_archive(tmp_path))
    words = [w for _, _, ws in real_speech.WORDS.values() for w, _, _ in ws if w != "of"]
    assert [c.word for c in items] == words
    unknown = CLASSES.index(UNKNOWN)
    assert sum(c.label != unknown for c in items) == 13
    assert {CLASSES[c.label] for c in items if c.label != unknown} == {
        "two", "three", "four", "five", "seven", "eight", "nine", "zero", "go"}
    assert all(c.label == unknown for c in items if c.word in ("ten", "clubs", "forward"))
    first = items[0]  # "ten" of cards/001.wav: frames 0..33 -> samples 0..5440.
    assert first.word_end - first.word_start == 34 * real_speech.FRAME
    expected = _recording(first.source)[:34 * real_speech.FRAME]
    got = first.waveform[first.word_start:first.word_end]
    np.testing.assert_allclose(got, expected, atol=1e-4)  # The recording's own samples.
    data = real_speech.arrays(items)
    assert data["waveform"].shape == (len(items), CLIP_SAMPLES)
    assert sum(len(b["label"]) for b in real_speech.batches(items, 5)) == len(items)


def test_a_resampled_wav_and_a_broken_archive(tmp_path):
    items = real_speech.clips(_archive(tmp_path, rate=8000))  # WAVs at 8 kHz: resampled.
    assert all(c.waveform.shape == (CLIP_SAMPLES,) for c in items)
    missing = tmp_path / "missing"
    missing.mkdir()
    with pytest.raises(ValueError, match="goforward.raw"):
        real_speech.clips(_archive(missing, drop="test/data/goforward.raw"))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="delete it to download it again"):
        real_speech.clips(str(bad))


def test_through_channel_is_the_same_channel_for_the_same_clip():
    from apps.keyword_spotting import evaluation

    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((4, CLIP_SAMPLES))).astype(np.float32)
    assert evaluation.through_channel(x, None) is x
    a = np.asarray(evaluation.through_channel(x, {"telephone": 1.0}))
    b = np.asarray(evaluation.through_channel(x[2:], {"telephone": 1.0}, first_index=2))
    np.testing.assert_allclose(a[2:], b, atol=1e-6)  # Seeded by the clip's index.
    spectrum = np.abs(np.fft.rfft(a[0])) ** 2
    assert spectrum[4500:].sum() < 1e-4 * spectrum.sum()  # Nothing above 4 kHz.


def test_run_specs_of_the_benchmark():
    from benchmarks.keyword_spotting_real import RunSpec

    assert RunSpec.parse("default:0.5") == RunSpec("default", 0.5, "attention_rnn")
    assert RunSpec.parse("no_mbrola:0:cnn").name == "no_mbrola:0:cnn"
    with pytest.raises(ValueError, match="corpus:channel_augment"):
        RunSpec.parse("default")
    with pytest.raises(ValueError, match="not a number"):
        RunSpec.parse("default:high")
    spec = RunSpec.parse("wide_unknown:0.5:attention_rnn:model.cepstral_keep=20")
    assert spec.overrides == ("model.cepstral_keep=20",)
    assert spec.name == "wide_unknown:0.5:attention_rnn:model.cepstral_keep=20"
    with pytest.raises(ValueError, match="KEY=VALUE"):
        RunSpec.parse("default:0.5:attention_rnn:cepstral")


def test_scoring_a_run_directory_names_what_is_missing(tmp_path, monkeypatch):
    from apps.keyword_spotting import ivr_prompts
    from benchmarks import keyword_spotting_real as bench

    for module, name in ((real_speech, "fetch"), (real_speech, "clips"),
                         (ivr_prompts, "fetch"), (ivr_prompts, "prompts")):
        monkeypatch.setattr(module, name, lambda *a, **k: [])
    monkeypatch.setattr("apps.keyword_spotting.pipeline.load_splits", lambda *a, **k: None)
    with pytest.raises(ValueError, match="SPEC@RUN_DIR"):
        bench.score_runs(["default:0.5"], None)
    with pytest.raises(ValueError, match="metrics.json does not exist"):
        bench.score_runs([f"default:0.5@{tmp_path}"], None)


def test_benchmark_table_counts_clips_and_shows_the_reference_and_ivr_columns():
    from apps.keyword_spotting import ivr_prompts
    from benchmarks.keyword_spotting_real import markdown

    row = {"corpus": "default", "channel_augment": 0.5, "variant": "attention_rnn",
           "synthetic_clean": 0.9, "synthetic_telephone": 0.8, "synthetic_room": 0.7,
           "real_clean_keywords": 5 / 13, "real_clean_unknown": 3 / 11,
           "real_telephone_keywords": 7 / 13, "train_seconds": 600.0, "epochs": 12, "seed": 42,
           "real_clips": {"keywords": 13, "unknown": 11}}
    scores = {"predictions": [], "digit": {"correct": 9, "clips": 10},
              **{g: {"correct": 10, "clips": 20} for g in ivr_prompts.GROUPS[1:]}}
    record = {"machine": {"cpu_model": "X"}, "command": "cmd",
              "rows": [row, {**row, "reference_clean": 0.95, "reference_telephone": 0.6},
                       {**row, "ivr_prompts": scores, "overrides": ["model.time_stretch=0.5"]}]}
    table = markdown(record).splitlines()
    assert table[-3].endswith("| 70.0% | – | 5/13 | 3/11 | 7/13 | – | – | 600 |")
    assert "| 95.0% (60.0%) | 5/13 |" in table[-2]
    assert "| attention_rnn model.time_stretch=0.5 | 42 | 90.0% |" in table[-1]
    assert table[-1].endswith("| 7/13 | 9/10 | 30/60 | 600 |")
    assert "Over seeds" not in markdown(record)  # One seed: nothing to summarize.

    # A second seed of the time_stretch spec: the summary gives each seed's IVR counts.
    other_seed = {**record["rows"][2], "seed": 1, "synthetic_clean": 0.8, "train_seconds": 400.0,
                  "ivr_prompts": {**scores, "digit": {"correct": 7, "clips": 10, "p_true": 0.61}}}
    text = markdown({**record, "rows": record["rows"] + [other_seed]})
    assert "seeds 1, 42;" in text
    assert "| 7/13 | 7/10 (p 0.61) | 30/60 | 400 |" in text  # The mean p of the right digit.
    assert text.splitlines()[-1] == (
        "| default | 0.5 | attention_rnn model.time_stretch=0.5 | 1, 42 | 85.0% [80.0%, 90.0%] "
        "| 7, 9 | 16/20 | 0.61, – | 30, 30 | 500 |")


def test_rows_of_a_speed_ensemble_export_are_told_apart_from_plain_ones():
    from benchmarks.keyword_spotting_real import _spec_label

    row = {"variant": "attention_rnn", "overrides": []}
    assert _spec_label(row) == "attention_rnn"  # A row from before the ensemble.
    assert _spec_label({**row, "test_speeds": [1.0]}) == "attention_rnn"
    assert _spec_label({**row, "test_speeds": [0.9, 1.0, 1.1]}) == (
        "attention_rnn test speeds 0.9/1/1.1")
    joined = {**row, "embedding_ensemble": True}
    assert _spec_label({**joined, "embedding_exponent": None}) == (
        "attention_rnn + speech_embedding")  # A row from before the exponent.
    assert _spec_label({**joined, "embedding_exponent": 1.0}) == (
        "attention_rnn + speech_embedding")
    assert _spec_label({**joined, "embedding_exponent": 0.5}) == (
        "attention_rnn + speech_embedding^0.5")


def test_rows_name_their_corpus_version_and_seeds_of_two_versions_are_not_averaged():
    import types

    from apps.keyword_spotting import ivr_prompts
    from benchmarks.keyword_spotting_real import corpus_version, markdown

    assert corpus_version(types.SimpleNamespace(builder=types.SimpleNamespace(
        version="1.2.1"))) == "1.2.1"
    assert corpus_version(object()) is None
    scores = {"predictions": [], "digit": {"correct": 10, "clips": 10},
              **{g: {"correct": 10, "clips": 20} for g in ivr_prompts.GROUPS[1:]}}
    row = {"corpus": "neural_voice_wide_warp", "channel_augment": 0.5,
           "variant": "attention_rnn", "synthetic_clean": 0.92, "synthetic_telephone": 0.8,
           "synthetic_room": 0.7, "real_clean_keywords": 1.0, "real_clean_unknown": 0.5,
           "real_telephone_keywords": 1.0, "train_seconds": 560.0, "epochs": 12, "seed": 42,
           "real_clips": {"keywords": 13, "unknown": 11}, "ivr_prompts": scores}
    old_seed_1 = {**row, "seed": 1, "synthetic_clean": 0.93}
    new = [{**r, "corpus_version": "1.2.1", "synthetic_clean": r["synthetic_clean"] + 0.015}
           for r in (row, old_seed_1)]
    text = markdown({"machine": {"cpu_model": "X"}, "command": "cmd",
                     "rows": [row, old_seed_1, *new]})
    assert "| neural_voice_wide_warp | 0.5 | attention_rnn | 42 | 92.0% |" in text
    assert "| neural_voice_wide_warp 1.2.1 | 0.5 | attention_rnn | 42 | 93.5% |" in text
    summary = text.split("Over seeds")[1]
    assert "| neural_voice_wide_warp | 0.5 | attention_rnn | 1, 42 | 92.5% [92.0%, 93.0%]" \
        in summary
    assert "| neural_voice_wide_warp 1.2.1 | 0.5 | attention_rnn | 1, 42 | 94.0% [93.5%, " \
        "94.5%]" in summary

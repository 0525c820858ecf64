"""Synthesis plan and audio helpers of the synthetic corpus (numpy only; no engine needed)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from apps.keyword_spotting import synth


@dataclasses.dataclass
class _Config:
    clips_per_class: tuple = (6, 2, 3)
    train_unknown_factor: float = 1.5
    snr_db: tuple = (5.0, 30.0)
    level_dbfs: tuple = (-30.0, -1.0)
    flite_share: float = 0.3
    mbrola_share: float = 0.4
    piper_share: float = 0.0
    babble_pool: int = 4
    workers: int = 2
    seed: int = 7


def _tone(freq, rate, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def _peak_hz(x, rate):
    spectrum = np.abs(np.fft.rfft(x))
    return np.argmax(spectrum) * rate / x.size


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_resample_keeps_length_and_pitch(rate):
    y = synth.resample(_tone(1000.0, rate), rate)
    assert y.dtype == np.float32 and y.size == 16000
    assert abs(_peak_hz(y, 16000) - 1000.0) < 2.0
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - np.sqrt(0.5)) < 0.02


def test_resample_removes_what_16khz_cannot_hold():
    y = synth.resample(_tone(10000.0, 44100), 44100)  # Above the new Nyquist (8 kHz).
    assert np.sqrt(np.mean(y**2)) < 0.01


def test_trim_cuts_leading_and_trailing_silence():
    word = _tone(500.0, 16000, 0.3)
    audio = np.concatenate([np.zeros(8000), word, np.zeros(4000)]).astype(np.float32)
    out = synth.trim(audio)
    assert word.size <= out.size <= word.size + 2 * 320 + 160
    assert np.allclose(out[320 : 320 + 100], word[:100], atol=1e-6)


def test_noises_have_unit_rms_and_their_spectral_tilt():
    rng = np.random.default_rng(0)
    pool = [_tone(300.0, 16000, 0.4), _tone(700.0, 16000, 0.3)]
    low_share = {}
    for kind in synth.NOISES:
        noise = synth.make_noise(kind, rng, pool)
        assert noise.shape == (16000,) and noise.dtype == np.float32
        assert abs(np.sqrt(np.mean(noise**2)) - 1.0) < 1e-3
        power = np.abs(np.fft.rfft(noise)) ** 2
        low_share[kind] = power[: power.size // 16].sum() / power.sum()  # Below 500 Hz.
    assert low_share["white"] < low_share["pink"] < low_share["brown"]
    with pytest.raises(ValueError, match="noise kind"):
        synth.make_noise("rain", rng)


def test_plan_is_deterministic_balanced_and_holds_out_speakers():
    config = _Config()
    plans = {split: synth.plan(split, config)[0] for split in synth.SPLITS}
    assert plans["train"] == synth.plan("train", config)[0]
    assert plans["train"] != synth.plan("train", dataclasses.replace(config, seed=8))[0]
    speakers = {}
    for split, items in plans.items():
        per_class = config.clips_per_class[synth.SPLITS.index(split)]
        labels = [item["label"] for item in items]
        unknown = 9 if split == "train" else per_class
        assert labels.count(synth.UNKNOWN) == unknown
        assert all(labels.count(c) == per_class for c in synth.CLASSES if c != synth.UNKNOWN)
        speakers[split] = {(i["engine"], i["speaker"]) for i in items if i["engine"]}
        for item in items:
            if item["label"] in synth.COMMANDS + synth.DIGITS:
                assert item["word"] == item["label"]
            elif item["label"] == synth.UNKNOWN:
                assert item["word"] in synth.UNKNOWN_WORDS
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["validation"] & speakers["test"]
    assert ("flite", "rms") in speakers["test"]
    assert ("mbrola", "us3") in speakers["test"]
    assert {("mbrola", v) for v in synth.MBROLA_VOICES["train"]} <= speakers["train"]
    train_accents = {i["accent"] for i in plans["train"]}
    assert not set(synth.TEST_ONLY_ACCENTS) & train_accents


def test_silence_clips_are_noise_or_digital_zero():
    item = {"label": synth.SILENCE, "engine": "", "speaker": "", "accent": "", "word": "",
            "noise": "pink", "snr_db": 10.0, "level_dbfs": -40.0, "offset": 0.5, "seed": 3,
            "key": "x"}
    noisy = synth.render(item, [], "/nonexistent")
    assert noisy["audio"].dtype == np.int16 and noisy["audio"].shape == (16000,)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean((noisy["audio"] / 32768.0) ** 2)))
    assert abs(rms_dbfs - -40.0) < 0.5
    assert noisy["word_start"] == -1 and noisy["speaker"] == ""
    zero = synth.render({**item, "noise": "zero"}, [], "/nonexistent")
    assert not np.any(zero["audio"])


def test_the_wide_unknown_vocabulary_widens_training_only_and_spares_the_real_test_words():
    from apps.keyword_spotting import ivr_prompts, real_speech

    wide = _Config(clips_per_class=(40, 20, 20))
    wide.unknown_vocabulary = "wide"
    narrow = _Config(clips_per_class=(40, 20, 20))
    for split in ("validation", "test"):  # The same clips: scores stay comparable.
        assert synth.plan(split, wide) == synth.plan(split, narrow)
    words = {i["word"] for i in synth.plan("train", wide)[0] if i["label"] == synth.UNKNOWN}
    assert words <= set(synth.UNKNOWN_WORDS + synth.WIDE_UNKNOWN_WORDS)
    assert words - set(synth.UNKNOWN_WORDS)  # 60 clips over 374 words: some new ones.
    assert len(set(synth.WIDE_UNKNOWN_WORDS)) == len(synth.WIDE_UNKNOWN_WORDS)
    held_out = (set(synth.CLASSES) | set(synth.BABBLE_WORDS) | set(synth.UNKNOWN_WORDS)
                | {word for word, _ in ivr_prompts.PROMPTS.values()}
                | {w for _, _, words in real_speech.WORDS.values() for w, _, _ in words}
                | {"won", "to", "too", "for", "fore", "ate", "know", "write", "tree"})
    assert not set(synth.WIDE_UNKNOWN_WORDS) & held_out
    wide.unknown_vocabulary = "huge"
    with pytest.raises(ValueError, match="unknown_vocabulary"):
        synth.plan("train", wide)


def test_the_neural_voice_speaks_in_training_only_and_leaves_the_held_out_clips_alone():
    neural = _Config(clips_per_class=(40, 20, 20))
    neural.piper_share = 0.3
    plain = _Config(clips_per_class=(40, 20, 20))
    for split in ("validation", "test"):  # The same clips: scores stay comparable.
        assert synth.plan(split, neural) == synth.plan(split, plain)
    items = synth.plan("train", neural)[0]
    piper = [i for i in items if i["engine"] == "piper"]
    words = [i for i in items if i["engine"]]
    assert 0.2 < len(piper) / len(words) < 0.4
    assert {i["speaker"] for i in piper} == set(synth.PIPER_VOICES["train"])
    for item in piper:
        assert synth.PIPER_WARP[0] <= item["warp"] <= synth.PIPER_WARP[1]
        assert synth.PIPER_LENGTH_SCALE[0] <= item["length_scale"] <= synth.PIPER_LENGTH_SCALE[1]
    assert not [i for i in synth.plan("train", plain)[0] if i["engine"] == "piper"]
    neural.piper_warp = (1.2, 1.3)  # A config's own warp range.
    warps = [i["warp"] for i in synth.plan("train", neural)[0] if i["engine"] == "piper"]
    assert warps and all(1.2 <= w <= 1.3 for w in warps)
    assert set(synth.PIPER_VOICE_MODULES) == {v for vs in synth.PIPER_VOICES.values() for v in vs}


@pytest.mark.slow
def test_the_neural_voice_says_the_word_and_its_warp_and_rate_change_the_clip():
    # Without prosody noise the voice is deterministic (with it, Piper's graph draws its own
    # noise: takes differ, which is why only the training split holds Piper clips).
    item = {"engine": "piper", "speaker": "joe", "accent": "", "word": "seven",
            "length_scale": 1.0, "noise_scale": 0.0, "noise_w": 0.0, "warp": 1.0, "key": "k"}
    base = synth.synthesize(item, "/nonexistent")
    np.testing.assert_array_equal(base, synth.synthesize(item, "/nonexistent"))
    slow = synth.synthesize({**item, "length_scale": 1.5}, "/nonexistent")
    high = synth.synthesize({**item, "warp": 1.14}, "/nonexistent")
    assert base.dtype == np.float32 and 0.25 * synth.SAMPLE_RATE < base.size < synth.SAMPLE_RATE
    assert np.max(np.abs(base)) > 0.1
    assert slow.size > 1.2 * base.size  # Trimming keeps 20 ms margins of silence either side.
    assert 0.8 * base.size < high.size < 0.95 * base.size  # Played 1.14x faster.
    with pytest.raises(ValueError, match="Piper voice"):
        synth.synthesize({**item, "speaker": "nobody"}, "/nonexistent")


# ----------------------------------------------------------------- MBROLA's missing diphones
_US3_OFF = "O2\t93\t 0 102 80 76 100 76\nf\t142\n_\t301\n_\t1\n"
_WARNINGS = ("mbrola: Warning: _-O2 unknown, replaced with _-_\n"
             "mbrola: Warning: O2-f unknown, replaced with _-_\n")


def test_mbrola_warnings_name_the_missing_diphones():
    assert synth.unknown_diphones(_WARNINGS) == ["_-O2", "O2-f"]
    assert synth.unknown_diphones("") == []
    assert synth.unknown_diphones("some other message\n") == []


def test_phoneme_substitution_keeps_durations_and_pitch():
    out = synth.substitute_phonemes(_US3_OFF + "; a comment\n", {"O2": "O", "l=": "l"})
    assert out.splitlines() == ["O\t93\t 0 102 80 76 100 76", "f\t142", "_\t301", "_\t1",
                                "; a comment"]
    assert synth.substitute_phonemes("l=\t78\tx\n", {"O2": "O", "l=": "l"}) == "l\t78\tx\n"
    assert synth.substitute_phonemes(_US3_OFF, {}) == _US3_OFF


class _FakeEngines:
    """espeak-ng and mbrola as the us3 voice behaves: `-w` meets the missing O2 diphone;
    `--pho` gives the phonemes; mbrola reads them on stdin."""

    def __init__(self, still_missing=""):
        self.calls, self.still_missing = [], still_missing

    def __call__(self, cmd, path=None, stdin=None):
        import subprocess as sp
        import wave

        self.calls.append((cmd[0], stdin))
        if "--pho" in cmd:
            return sp.CompletedProcess(cmd, 0, stdout=_US3_OFF, stderr="")
        seconds = 0.1 if cmd[0] == "espeak-ng" else 0.3  # the vowel said: a longer clip
        with wave.open(path, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            tone = 0.5 * np.sin(np.arange(int(16000 * seconds)) * 0.3)
            f.writeframes((tone * 32767).astype(np.int16).tobytes())
        stderr = _WARNINGS if cmd[0] == "espeak-ng" else self.still_missing
        return sp.CompletedProcess(cmd, 0, stdout="", stderr=stderr)


def test_a_clip_with_missing_diphones_is_synthesized_again_from_substituted_phonemes(
        monkeypatch, tmp_path):
    engines = _FakeEngines()
    monkeypatch.setattr(synth, "_run", engines)
    item = {"engine": "mbrola", "speaker": "us3", "accent": "", "speed": 150, "pitch": 40,
            "word": "off", "key": "k"}
    audio = synth.synthesize(item, str(tmp_path))
    assert [c for c, _ in engines.calls] == ["espeak-ng", "espeak-ng", "mbrola"]
    assert engines.calls[2][1].startswith("O\t93\t")  # mbrola got O, not O2
    assert audio.size > 0.25 * 16000 and not list(tmp_path.iterdir())  # files cleaned up
    # A voice that still lacks a diphone is an error that names it, not a silent clip.
    monkeypatch.setattr(synth, "_run", _FakeEngines(still_missing="Warning: O-f unknown, x\n"))
    with pytest.raises(RuntimeError, match=r"us3 has no diphones \['O-f'\] for 'off'"):
        synth.synthesize(item, str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_espeak_voices_never_take_the_mbrola_path(monkeypatch, tmp_path):
    engines = _FakeEngines()
    monkeypatch.setattr(synth, "_run", engines)
    synth.synthesize({"engine": "espeak-ng", "speaker": "m3", "accent": "en-us", "speed": 150,
                      "pitch": 40, "word": "off", "key": "k"}, str(tmp_path))
    assert [c for c, _ in engines.calls] == ["espeak-ng"]


@pytest.mark.skipif(not os.path.isfile(os.path.join(synth.MBROLA_DIR, "us3", "us3")),
                    reason="the MBROLA us3 voice is installed by the corpus builder (non-free)")
def test_the_real_us3_voice_says_the_vowel_of_on_and_off(tmp_path):
    for word in ("on", "off", "visual"):
        item = {"engine": "mbrola", "speaker": "us3", "accent": "", "speed": 150,
                "pitch": 40, "word": word, "key": word}
        us3 = synth.synthesize(item, str(tmp_path))
        us2 = synth.synthesize({**item, "speaker": "us2"}, str(tmp_path))
        assert us3.size > 0.7 * us2.size, word  # 1.2.0: a 0.09 s "n" against 0.32 s

"""The SavedModel: both signatures after reload in a process without this project; bad WAVs."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import wave

import numpy as np
import pytest
import tensorflow as tf

from apps.keyword_spotting import audio
from tests.apps.serving_checks import replay_warmup, run_isolated

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow


def _wav(samples, rate=16000, channels=1, width=2):
    """WAV bytes of float samples `(n,)` or `(n, channels)` in [-1, 1]."""
    samples = np.asarray(samples, np.float64).reshape(-1, channels)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        if width == 2:
            f.writeframes(np.round(samples * 32767).astype("<i2").tobytes())
        else:
            f.writeframes(np.round(samples * 127 + 128).astype(np.uint8).tobytes())
    return buffer.getvalue()


def _tones(rate, seconds, freqs=(440.0, 1250.0, 3100.0)):
    t = np.arange(int(round(rate * seconds))) / rate
    return sum(np.sin(2 * np.pi * f * t) for f in freqs) / (2 * len(freqs))


def test_resample_in_graph_matches_the_tone_and_length():
    x = tf.constant(_tones(44100, 0.5, (1000.0,)), tf.float32)
    y = audio.resample(x, tf.constant(44100)).numpy()
    assert y.shape == (8000,)
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) * 16000 / y.size - 1000.0) < 3.0
    same = audio.resample(x, tf.constant(16000))
    np.testing.assert_array_equal(same, x)
    batch = audio.resample(tf.stack([x, 0.5 * x]), tf.constant(44100)).numpy()
    np.testing.assert_allclose(batch, np.stack([y, 0.5 * y]), atol=1e-5)


def test_fit_to_clip_pads_short_and_keeps_the_loudest_second():
    short = audio.fit_to_clip(tf.ones([2, 4000])).numpy()
    assert short.shape == (2, 16000)
    assert short[:, :6000].sum() == 0 and short[:, 6000:10000].min() == 1
    long = np.zeros((1, 48000), np.float32)
    long[0, 30000:34000] = 1.0  # A burst in the middle of 3 s.
    out = audio.fit_to_clip(tf.constant(long)).numpy()
    assert out.shape == (1, 16000) and out.sum() == 4000.0


def test_speed_perturbation_shifts_pitch_and_keeps_one_second():
    tones = tf.constant(np.stack([_tones(16000, 1.0, (1000.0,))] * 2), tf.float32)
    peaks = []
    for seed in range(6):
        out = audio.perturb_speed(tones, 0.8, 1.2, seed=[seed, 0]).numpy()
        assert out.shape == (2, 16000)
        np.testing.assert_allclose(out[0], out[1])  # One speed per batch.
        peaks.append(np.argmax(np.abs(np.fft.rfft(out[0]))) * 16000 / out.shape[1])
    assert 790 <= min(peaks) < max(peaks) <= 1210 and max(peaks) - min(peaks) > 20


def _float_wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    """IEEE float32 mono WAV bytes (format code 3)."""
    data = np.asarray(samples, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
            + struct.pack("<I", len(data)) + data)


def _with_rate(wav: bytes, rate: int) -> bytes:
    """A canonical WAV whose header declares another sample rate."""
    return wav[:24] + struct.pack("<I", rate) + wav[28:]


def _with_format(wav: bytes, code: int) -> bytes:
    """A canonical WAV whose header declares another format code."""
    return wav[:20] + struct.pack("<H", code) + wav[22:]


_SERVE = r"""
import io, wave

model = tf.saved_model.load(ARGS["path"])
serve, wave_sig = model.signatures["serving_default"], model.signatures["waveform"]
RESULT = {
    "signatures": sorted(model.signatures.keys()),
    "wav_inputs": sorted(serve.structured_input_signature[1].keys()),
    "waveform_inputs": sorted(wave_sig.structured_input_signature[1].keys()),
    "outputs": sorted(serve.structured_outputs.keys()),
    "class_names": [c.decode() for c in model.class_names.numpy()],
    "test_speeds": [round(float(v), 4) for v in model.test_speeds.numpy()],
}
def read(path):
    with open(path, "rb") as f:
        return f.read()
def call_wav(paths):
    out = serve(audio_wav=tf.constant([read(p) for p in paths], tf.string))
    return {k: v.numpy() for k, v in out.items()}
def summary(out):
    return {"label": [x.decode() for x in out["label"]],
            "probabilities": out["probabilities"].tolist(),
            "attention_weights": out["attention_weights"].tolist()}
RESULT["wav"] = summary(call_wav(ARGS["good"]))
wave_out = wave_sig(waveform=tf.constant(np.load(ARGS["waveforms"])))
RESULT["waveform"] = summary({k: v.numpy() for k, v in wave_out.items()})
empty = serve(audio_wav=tf.constant([], tf.string))
RESULT["empty_shapes"] = [list(empty[k].shape) for k in ("probabilities", "attention_weights")]
RESULT["errors"] = {}
for name, item in ARGS["bad"].items():
    try:
        call_wav([item])
        RESULT["errors"][name] = None
    except tf.errors.InvalidArgumentError as err:
        RESULT["errors"][name] = err.message
try:
    serve(audio_wav=tf.constant([b"x"] * 257))
    RESULT["errors"]["too_many"] = None
except tf.errors.InvalidArgumentError as err:
    RESULT["errors"]["too_many"] = err.message
RESULT["after_errors"] = summary(call_wav(ARGS["good"][:1]))["label"]
"""


@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory):
    path = tiny_run.export_path
    files = tmp_path_factory.mktemp("kws_inputs")

    def write(name, content):
        (files / name).write_bytes(content)
        return str(files / name)

    clip = _tones(16000, 1.0)
    good = {
        "mono_16k": _wav(clip),
        "stereo_48k_band_limited": _wav(np.stack([_tones(48000, 1.0)] * 2, axis=1), 48000, 2),
        "short_8k": _wav(_tones(8000, 0.4), 8000),
        "long_22k": _wav(_tones(22050, 2.5), 22050),
        "silence": _wav(np.zeros(16000)),
        "no_samples": _wav(np.zeros(0)),
        "truncated_stream": _wav(clip)[:20000],
        "eight_bit": _wav(clip[:1600], width=1),
        "float_1e38": _float_wav(np.full(16000, 1e38)),
    }
    junk_riff = b"RIFF" + (100).to_bytes(4, "little") + b"WAVE" + b"LIST" + b"\0" * 20
    bad = {
        "empty": b"",
        "not_wav": b"<html>not a wav file</html>" * 3,
        "truncated_odd_header": junk_riff,
        "rate_int32_max": _with_rate(_wav(clip), 2**31 - 1),
        "rate_2e9": _with_rate(_wav(clip), 2_000_000_000),
        "adpcm": _with_format(_wav(clip), 2),
    }
    np.save(files / "waveforms.npy", np.stack([clip, np.zeros(16000)]).astype(np.float32))
    result = run_isolated(
        _SERVE, path=path, good=[write(k, v) for k, v in good.items()],
        bad={k: write(k, v) for k, v in bad.items()}, waveforms=str(files / "waveforms.npy"),
    )
    return result, list(good), tiny_run.metrics["class_names"]


def test_signatures_and_names_after_reload(served):
    result, _, class_names = served
    assert result["signatures"] == ["serving_default", "stream", "waveform"]
    assert result["wav_inputs"] == ["audio_wav"]
    assert result["waveform_inputs"] == ["waveform"]
    assert result["outputs"] == ["attention_weights", "label", "probabilities"]
    assert result["class_names"] == class_names
    assert result["test_speeds"] == [1.0]  # No speed ensemble unless asked.


def test_wav_bytes_of_any_rate_and_channels_give_defined_results(served):
    result, good, class_names = served
    wav = result["wav"]
    probabilities = np.array(wav["probabilities"])
    weights = np.array(wav["attention_weights"])
    assert probabilities.shape == (len(good), len(class_names))
    assert weights.shape == (len(good), 51)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-4)
    assert all(label in class_names for label in wav["label"])
    assert result["empty_shapes"] == [[0, len(class_names)], [0, 51]]
    # The same sound at 48 kHz stereo, as 16 kHz mono WAV, and as floats: same answer.
    by_name = dict(zip(good, probabilities, strict=True))
    waveform = np.array(result["waveform"]["probabilities"])
    np.testing.assert_allclose(by_name["mono_16k"], waveform[0], atol=2e-3)
    np.testing.assert_allclose(by_name["stereo_48k_band_limited"], waveform[0], atol=2e-3)
    # Silence through both signatures is the same, defined result.
    np.testing.assert_allclose(by_name["silence"], waveform[1], atol=1e-5)
    np.testing.assert_allclose(by_name["no_samples"], waveform[1], atol=1e-5)


def test_bad_wav_bytes_give_clear_errors_and_the_server_survives(served):
    result, good, _ = served
    errors = result["errors"]
    assert "audio_wav[0] is not a WAV file" in errors["empty"]
    assert "audio_wav[0] is not a WAV file" in errors["not_wav"]
    assert "audio_wav[0] has sample rate 2147483647 Hz" in errors["rate_int32_max"]
    assert "audio_wav[0] has sample rate 2000000000 Hz" in errors["rate_2e9"]
    assert "audio_wav[0] has format code 0x0002 (MS ADPCM)" in errors["adpcm"]
    assert "audio_wav holds 257 items; this model answers at most 256" in errors["too_many"]
    assert "audio_wav[0] is truncated" in errors["truncated_odd_header"]
    assert result["after_errors"] == result["wav"]["label"][:1]


def test_warmup_requests_replay_without_the_project(tiny_run):
    answered = dict(replay_warmup(tiny_run.export_path))
    assert list(answered) == ["serving_default", "waveform", "stream"]
    assert answered["waveform"] == ["attention_weights", "label", "probabilities"]
    assert answered["stream"] == ["attention_weights", "labels", "probabilities",
                                  "window_in_recording", "window_start_seconds"]


_STREAM = r"""
model = tf.saved_model.load(ARGS["path"])
with open(ARGS["wav"], "rb") as f:
    wav = f.read()
out = model.signatures["stream"](audio_wav=tf.constant([wav]))
word = np.load(ARGS["word"])
alone = model.signatures["waveform"](waveform=tf.constant(word[None]))
RESULT = {k: v.numpy().tolist() for k, v in out.items() if k != "labels"}
RESULT["labels"] = [[x.decode() for x in row] for row in out["labels"].numpy()]
RESULT["alone"] = alone["probabilities"].numpy().tolist()
RESULT["alone_attention"] = alone["attention_weights"].numpy().tolist()
"""


def test_stream_finds_the_window_where_a_word_was_placed(tiny_run, tmp_path):
    """An 8 s recording with a sound at 5.0 s: the window starting there is answered exactly
    as that second alone, and windows after the end are flagged."""
    rng = np.random.default_rng(0)
    word = (0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
            * np.hanning(16000)).astype(np.float32)
    recording = (0.001 * rng.standard_normal(8 * 16000)).astype(np.float32)
    recording[5 * 16000 : 6 * 16000] += word
    (tmp_path / "long.wav").write_bytes(_float_wav(recording))
    np.save(tmp_path / "word.npy", recording[5 * 16000 : 6 * 16000])
    out = run_isolated(_STREAM, path=tiny_run.export_path, wav=str(tmp_path / "long.wav"),
                       word=str(tmp_path / "word.npy"))
    starts = np.array(out["window_start_seconds"][0])
    np.testing.assert_allclose(starts, np.arange(19) * 0.5)
    assert out["window_in_recording"][0] == [True] * 16 + [False] * 3
    probabilities = np.array(out["probabilities"][0])
    assert probabilities.shape[0] == 19 and len(out["labels"][0]) == 19
    np.testing.assert_allclose(probabilities[10], out["alone"][0], atol=1e-5)
    np.testing.assert_allclose(out["attention_weights"][0][10], out["alone_attention"][0],
                               atol=1e-5)


def test_saved_model_cli_lists_both_signatures(tiny_run):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", tiny_run.export_path, "--all"],
                           capture_output=True, text=True, timeout=300, check=False,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert shown.returncode == 0, shown.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['waveform']",
                 "inputs['audio_wav']", "inputs['waveform']", "outputs['label']",
                 "outputs['probabilities']", "outputs['attention_weights']"):
        assert text in shown.stdout, text


_TELEPHONE = r"""
model = tf.saved_model.load(ARGS["path"])
with open(ARGS["wav"], "rb") as f:
    wav = f.read()
by_wav = model.signatures["serving_default"](audio_wav=tf.constant([wav]))
line = np.load(ARGS["line"])
by_waveform = model.signatures["waveform"](waveform=tf.constant(line[None]))
RESULT = {"wav": by_wav["probabilities"].numpy().tolist(),
          "wav_label": by_wav["label"].numpy()[0].decode(),
          "waveform": by_waveform["probabilities"].numpy().tolist(),
          "waveform_label": by_waveform["label"].numpy()[0].decode()}
"""


def test_a_telephone_call_of_a_synthetic_word_decodes_in_the_export(tiny_run, tiny_corpus,
                                                                    tmp_path):
    """A corpus word through the telephone line, written by sox as an 8 kHz mu-law WAV (what
    a phone system stores), is answered as the same clip at 16 kHz."""
    import shutil

    from apps.keyword_spotting import channel, pipeline

    if shutil.which("sox") is None:
        pytest.skip("sox is installed with the speech engines; not here")
    root, config = tiny_corpus
    splits = pipeline.load_splits("synthetic_speech_commands", root, config)
    batch = next(iter(splits.examples("test", 8)))
    spoken = np.nonzero(batch["word_start"].numpy() >= 0)[0][0]
    line = np.asarray(channel.telephone(batch["waveform"][spoken], [3, 4], law="mu"),
                      np.float32)
    (tmp_path / "line16k.wav").write_bytes(_wav(line))
    subprocess.run(["sox", str(tmp_path / "line16k.wav"), "-r", "8000", "-e", "mu-law",
                    "-b", "8", str(tmp_path / "call.wav")], check=True, capture_output=True)
    assert (tmp_path / "call.wav").read_bytes()[20:22] == struct.pack("<H", 7)  # mu-law.
    np.save(tmp_path / "line.npy", line)
    out = run_isolated(_TELEPHONE, path=tiny_run.export_path, wav=str(tmp_path / "call.wav"),
                       line=str(tmp_path / "line.npy"))
    np.testing.assert_allclose(out["wav"], out["waveform"], atol=0.02)
    # The same answer, up to a near tie: the tiny model's classes can be within the codec's
    # error of each other (CI once saw "left" against "yes" here).
    names = tiny_run.metrics["class_names"]
    wav, waveform = np.asarray(out["wav"])[0], np.asarray(out["waveform"])[0]
    assert names[int(wav.argmax())] == out["wav_label"]
    assert names[int(waveform.argmax())] == out["waveform_label"]
    assert waveform[names.index(out["wav_label"])] >= waveform.max() - 0.02, (
        f"{out['wav_label']} vs {out['waveform_label']}: {wav.round(3)} / {waveform.round(3)}")


def test_speed_perturbation_resamples_to_a_length_of_whole_steps():
    # The clip is resampled to a multiple of 32 samples near 16000 / speed (fast FFT sizes),
    # then fitted back to one second: the output is exactly one of those candidates.
    tone = tf.constant(_tones(16000, 1.0, (1000.0,))[None], tf.float32)
    lengths = range(32 * round(16000 / 1.2 / 32), 32 * round(16000 / 0.8 / 32) + 1, 32)
    candidates = {m: audio.fit_to_clip(audio.resample_to_length(tone, m)).numpy()
                  for m in lengths}
    found = set()
    for seed in range(4):
        out = audio.perturb_speed(tone, 0.8, 1.2, seed=[seed, 0]).numpy()
        matches = [m for m, c in candidates.items() if np.allclose(out, c, atol=1e-6)]
        assert len(matches) == 1
        found.add(matches[0])
    assert len(found) > 1  # the speed is drawn anew


def test_resample_to_length_keeps_a_tone_and_drops_what_is_above_the_new_nyquist():
    low, high = (tf.constant(_tones(16000, 1.0, (hz,)), tf.float32) for hz in (1000.0, 5000.0))
    kept = audio.resample_to_length(low, 8000).numpy()  # 16 kHz -> 8 kHz: Nyquist 4 kHz
    assert kept.shape == (8000,)
    assert np.fft.rfftfreq(8000, 1 / 8000)[np.argmax(np.abs(np.fft.rfft(kept)))] == 1000.0
    dropped = audio.resample_to_length(high, 8000).numpy()  # 5 kHz cannot alias to 3 kHz
    assert np.max(np.abs(dropped)) < 1e-3 * np.max(np.abs(high.numpy()))

"""The in-graph WAV decoder: every supported format, layouts, truncation and clear errors."""

from __future__ import annotations

import importlib
import io
import struct
import warnings
import wave

import numpy as np
import pytest
import tensorflow as tf

from apps.keyword_spotting.wav import decode_wav

RATE = 16000  # The output rate: a 16 kHz file comes back sample for sample.
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
RNG = np.random.default_rng(0)


def chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    """A RIFF chunk, padded to an even length."""
    size = len(body) if size is None else size
    return chunk_id + struct.pack("<I", size) + body + b"\0" * (len(body) % 2)


def fmt(code=1, channels=1, rate=RATE, bits=16, block_align=None, sub_code=None,
        guid_tail=GUID_TAIL) -> bytes:
    """A `fmt ` chunk; `sub_code` makes it WAVE_FORMAT_EXTENSIBLE with that sub-format."""
    if block_align is None:
        block_align = channels * ((bits + 7) // 8)
    body = struct.pack("<HHIIHH", 0xFFFE if sub_code is not None else code, channels, rate,
                       rate * block_align % 2**32, block_align, bits)
    if sub_code is not None:
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub_code) + guid_tail
    return chunk(b"fmt ", body)


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def wav_file(frames: np.ndarray, **fmt_args) -> bytes:
    """`frames` are the sample bytes' values (e.g. int16 `[frames, channels]`)."""
    return riff(fmt(**fmt_args), chunk(b"data", frames.tobytes()))


def wave_module(samples: np.ndarray, rate=RATE, width=2) -> bytes:
    """WAV bytes written by Python's `wave` (canonical 44-byte header)."""
    samples = samples.reshape(len(samples), -1)
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())
    return out.getvalue()


def int24_bytes(values: np.ndarray) -> bytes:
    return (values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]).tobytes()


@tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)])
def decode(wav, index):
    return decode_wav(wav, index)


def run(wav: bytes, index: int = 3) -> np.ndarray:
    return decode(tf.constant(wav), tf.constant(index)).numpy()


# Shared samples.
I16 = RNG.integers(-32768, 32768, (800, 2)).astype("<i2")
U8 = RNG.integers(0, 256, 700).astype(np.uint8)
I24 = RNG.integers(-(2**23), 2**23, (600, 3))
I32 = RNG.integers(-(2**31), 2**31, 500).astype("<i4")
F32 = RNG.uniform(-1, 1, (400, 2)).astype("<f4")
F64 = RNG.uniform(-1, 1, 300).astype("<f8")
I16_QUAD = RNG.integers(-32768, 32768, (500, 4)).astype("<i2")
LIST = chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 6) + b"sox 1\0")


def mono(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).mean(axis=1)


# name: (wav bytes, expected float samples at 16 kHz, tolerance)
DECODED = {
    "pcm8_unsigned": (wav_file(U8, bits=8), (U8.astype(float) - 128) / 128, 1e-7),
    "pcm16_stereo_wave_module": (wave_module(I16), mono(I16 / 32768.0), 1e-6),
    "pcm16_mono_wave_module": (wave_module(I16[:, 0]), I16[:, 0] / 32768.0, 1e-7),
    "pcm24_three_channels": (
        riff(fmt(channels=3, bits=24), chunk(b"data", int24_bytes(I24))),
        mono(I24 / 2.0**23), 1e-6),
    "pcm32": (wav_file(I32, bits=32), I32 / 2.0**31, 1e-7),
    "pcm12_in_16bit_container": (
        wav_file(I16[:, 0] & ~15, bits=12, block_align=2), (I16[:, 0] & ~15) / 32768.0, 1e-7),
    "float32_stereo_with_fact": (
        riff(fmt(code=3, channels=2, bits=32), chunk(b"fact", struct.pack("<I", 400)),
             chunk(b"data", F32.tobytes())), mono(F32), 1e-6),
    "float64": (wav_file(F64, code=3, bits=64), F64, 1e-6),
    "extensible_pcm16_4_channels": (
        wav_file(I16_QUAD, channels=4, bits=16, sub_code=1), mono(I16_QUAD / 32768.0), 1e-6),
    "extensible_pcm24": (
        riff(fmt(channels=3, bits=24, sub_code=1), chunk(b"data", int24_bytes(I24))),
        mono(I24 / 2.0**23), 1e-6),
    "extensible_float32": (
        wav_file(F32, channels=2, bits=32, sub_code=3), mono(F32), 1e-6),
    "list_chunk_before_data": (
        riff(fmt(channels=2), LIST, chunk(b"data", I16.tobytes())), mono(I16 / 32768.0), 1e-6),
    "list_chunk_before_fmt": (
        riff(LIST, fmt(channels=2), chunk(b"data", I16.tobytes())), mono(I16 / 32768.0), 1e-6),
    "odd_sized_chunk_is_padded": (
        riff(fmt(), chunk(b"note", b"abc"), chunk(b"data", I16[:, 0].tobytes())),
        I16[:, 0] / 32768.0, 1e-7),
    "empty_data_chunk": (wav_file(np.zeros(0, "<i2")), np.zeros(0), 0),
    # A stream cut short inside a non-canonical header layout: whole frames only.
    "truncated_after_list_chunk": (
        riff(fmt(channels=2), LIST, chunk(b"data", I16.tobytes()))[: -(4 * 300 - 3)],
        mono(I16[:500] / 32768.0), 1e-6),
    "truncated_24bit_mid_frame": (
        riff(fmt(channels=3, bits=24), chunk(b"data", int24_bytes(I24)))[:-5],
        mono(I24[:-1] / 2.0**23), 1e-6),
    "streaming_sizes_0xffffffff": (
        riff(fmt(), chunk(b"data", I16[:, 0].tobytes(), size=0xFFFFFFFF), size=0xFFFFFFFF),
        I16[:, 0] / 32768.0, 1e-7),
    "float_out_of_range_is_clipped": (
        wav_file(np.array([1e38, -1e38, 3.0, -2.0, 0.5], "<f4"), code=3, bits=32),
        np.array([1, -1, 1, -1, 0.5]), 0),
    "float64_out_of_float32_range_is_clipped": (
        wav_file(np.array([1e300, -1e300, 0.25], "<f8"), code=3, bits=64),
        np.array([1, -1, 0.25]), 0),
    "non_finite_floats_are_zero": (
        wav_file(np.array([np.nan, np.inf, -np.inf, 0.5, -np.nan], "<f4"), code=3, bits=32),
        np.array([0, 0, 0, 0.5, 0]), 0),
}


@pytest.mark.parametrize("name", list(DECODED))
def test_decodes_format(name):
    wav, expected, atol = DECODED[name]
    out = run(wav)
    assert out.dtype == np.float32 and out.shape == expected.shape
    assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1)
    np.testing.assert_allclose(out, expected, atol=atol, rtol=0)


# G.711 reference points (ITU-T G.711 tables, as 16-bit linear values).
MU_LAW = {0x00: -32124, 0x0F: -16764, 0x7E: -8, 0x7F: 0, 0x80: 32124, 0xFE: 8, 0xFF: 0}
A_LAW = {0x55: -8, 0xD5: 8, 0x2A: -32256, 0xAA: 32256, 0x54: -24, 0xD4: 24, 0x35: -8448}


@pytest.mark.parametrize("code, reference", [(6, A_LAW), (7, MU_LAW)], ids=["alaw", "mulaw"])
def test_g711_expansion(code, reference):
    all_codes = np.arange(256, dtype=np.uint8)
    out = run(wav_file(all_codes, code=code, bits=8)) * 32768
    for byte, value in reference.items():
        assert out[byte] == value, hex(byte)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            audioop = importlib.import_module("audioop")  # Gone in Python 3.13.
        except ImportError:
            return
    expand = audioop.alaw2lin if code == 6 else audioop.ulaw2lin
    np.testing.assert_array_equal(out, np.frombuffer(expand(all_codes.tobytes(), 2), "<i2"))
    # Stereo A-law / mu-law averages channels like any other format.
    stereo = run(wav_file(all_codes.reshape(128, 2), code=code, bits=8, channels=2)) * 32768
    np.testing.assert_allclose(stereo, out.reshape(128, 2).mean(axis=1), atol=1e-3)


def test_other_rates_are_resampled_to_16k():
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    out = run(wave_module(tone, rate=8000))
    assert out.shape == (16000,)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    np.testing.assert_allclose(out, expected, atol=2e-3)
    # 48 kHz, 3 channels, float: 1 s in -> 1 s out.
    floats = RNG.uniform(-0.5, 0.5, (48000, 3)).astype("<f4")
    out = run(wav_file(floats, code=3, bits=32, channels=3, rate=48000))
    assert out.shape == (16000,) and np.all(np.isfinite(out))
    # Huge float samples at another rate still resample to finite, bounded values.
    huge = np.where(RNG.random(4000) < 0.5, 1e38, -1e38).astype("<f4")
    out = run(wav_file(huge, code=3, bits=32, rate=8000))
    assert out.shape == (8000,) and np.all(np.isfinite(out)) and np.abs(out).max() < 4


def test_reads_at_most_max_seconds():
    cut = tf.function(lambda wav: decode_wav(wav, 0, max_seconds=1))
    samples = RNG.integers(-1000, 1000, 2 * 8000 + 500).astype("<i2")
    out = cut(tf.constant(wave_module(samples, rate=8000))).numpy()
    assert out.shape == (16000,)  # 1 s at 8 kHz, resampled to 16 kHz.


TOO_MANY_CHUNKS = riff(fmt(), *[chunk(b"junk", b"")] * 200, chunk(b"data", b"\0\0"))
# name: (wav bytes, the message after "audio_wav[3] ", as a regular expression)
ERRORS = {
    "empty_bytes": (b"", r"is not a WAV file \(0 bytes without a RIFF/WAVE header\)"),
    "not_wav": (b"<html>not a wav file</html>" * 3, r"is not a WAV file \(81 bytes"),
    "riff_without_wave": (b"RIFF\x04\0\0\0AVI ", r"is not a WAV file"),
    "rate_0": (wav_file(I16, channels=2, rate=0),
               r"has sample rate 0 Hz; supported rates are 1000 to 384000 Hz"),
    "rate_999": (wav_file(I16, channels=2, rate=999), r"has sample rate 999 Hz"),
    "rate_384001": (wav_file(I16, channels=2, rate=384001), r"has sample rate 384001 Hz"),
    "rate_int32_max": (wav_file(I16, channels=2, rate=2147483647),
                       r"has sample rate 2147483647 Hz"),
    "rate_2e9": (wav_file(I16, channels=2, rate=2_000_000_000), r"has sample rate 2000000000 Hz"),
    "rate_uint32_max": (wav_file(I16, channels=2, rate=0xFFFFFFFF),
                        r"has sample rate 4294967295 Hz"),
    "ms_adpcm": (wav_file(U8, code=2, bits=4, block_align=256),
                 r"has format code 0x0002 \(MS ADPCM\); supported format codes: 0x0001 \(PCM"),
    "mp3_in_wav": (wav_file(U8, code=0x55, bits=0, block_align=1),
                   r"has format code 0x0055 \(MP3\)"),
    "unknown_code": (wav_file(U8, code=0x1234, bits=8), r"has format code 0x1234 \(unknown\)"),
    "extensible_mp3": (
        wav_file(U8, bits=8, sub_code=0x55),
        r"has format code 0xFFFE \(WAVE_FORMAT_EXTENSIBLE\) with sub-format 0x0055 \(MP3\)"),
    "extensible_foreign_guid": (wav_file(I16, channels=2, sub_code=1, guid_tail=b"\1" * 14),
                                r"has format code 0xFFFE .* GUID that is not a standard WAVE one"),
    "pcm_40_bits": (wav_file(U8[:500], bits=40), r"has 40 bits per sample in format code 0x0001"),
    "float_16_bits": (wav_file(I16, code=3, bits=16, channels=2),
                      r"has 16 bits per sample in format code 0x0003 \(IEEE float\)"),
    "alaw_16_bits": (wav_file(I16, code=6, bits=16, channels=2), r"has 16 bits per sample"),
    "zero_channels": (wav_file(I16, channels=0, block_align=0), r"has 0 channels"),
    "block_align_mismatch": (wav_file(I16, channels=2, block_align=2),
                             r"has block align 2 bytes but 2 channels of 2 bytes need 4"),
    "fmt_too_short": (riff(chunk(b"fmt ", b"\1\0\1\0"), chunk(b"data", b"\0\0")),
                      r"has a fmt chunk of 4 bytes; expected at least 16"),
    "extensible_fmt_too_short": (
        riff(chunk(b"fmt ", struct.pack("<HHIIHHH", 0xFFFE, 1, RATE, 2 * RATE, 2, 16, 0)),
             chunk(b"data", b"\0\0")),
        r"has a fmt chunk of 18 bytes; expected at least 16 \(40 for WAVE_FORMAT_EXTENSIBLE"),
    "no_fmt_chunk": (riff(chunk(b"data", b"\0\0")), r"has no fmt chunk before its data chunk"),
    "no_chunks": (riff(), r"has no data chunk"),
    "chunk_size_past_the_end": (
        riff(fmt(), chunk(b"LIST", b"", size=0xFFFFFFFF), chunk(b"data", b"\0\0")),
        r"has no data chunk"),
    "truncated_before_data": (
        b"RIFF" + struct.pack("<I", 100) + b"WAVE" + b"LIST" + b"\0" * 20,
        r"is truncated: its header announces 108 bytes but 36 arrived"),
    "too_many_chunks": (TOO_MANY_CHUNKS, r"has more than 128 chunks before its data chunk"),
}


def test_bad_input_errors_name_the_input():
    # One test for the whole table: the per-test Keras clean-up would cost more than the checks.
    failures = {}
    for name, (wav, message) in ERRORS.items():
        try:
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=r"audio_wav\[3\] " + message):
                run(wav)
        except (AssertionError, pytest.fail.Exception) as err:
            failures[name] = str(err)[-600:]
    assert not failures


def test_eager_call_names_the_input_too():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"audio_wav\[7\] has sample rate"):
        decode_wav(tf.constant(wav_file(I16, channels=2, rate=2147483647)), 7)
    out = decode_wav(tf.constant(wave_module(I16[:, 0])), 0).numpy()
    np.testing.assert_allclose(out, I16[:, 0] / 32768.0, atol=1e-7)


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def decode_batch(wavs):
    def one(args):
        wav, index = args
        audio = decode_wav(wav, index)
        return tf.pad(audio, [[0, 1000 - tf.shape(audio)[0]]])[:1000]

    indices = tf.range(tf.shape(wavs)[0])
    return tf.map_fn(one, (wavs, indices), fn_output_signature=tf.TensorSpec([1000], tf.float32))


def test_inside_map_fn_over_mixed_formats():
    names = ["pcm8_unsigned", "pcm24_three_channels", "float32_stereo_with_fact",
             "extensible_pcm16_4_channels", "truncated_after_list_chunk"]
    out = decode_batch(tf.constant([DECODED[n][0] for n in names])).numpy()
    assert out.shape == (len(names), 1000)
    for row, name in zip(out, names, strict=True):
        expected = DECODED[name][1][:1000]
        np.testing.assert_allclose(row[: len(expected)], expected, atol=1e-6)
    batch = [DECODED[n][0] for n in names[:2]] + [ERRORS["ms_adpcm"][0]]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"audio_wav\[2\] has format code"):
        decode_batch(tf.constant(batch))

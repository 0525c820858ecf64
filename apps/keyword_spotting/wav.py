"""WAV file bytes -> mono float32 audio at 16 kHz, in stock TensorFlow ops only.

`decode_wav` runs inside a SavedModel served by TF Serving, so it uses no
`tf.py_function` and no custom ops; it works eagerly, in `tf.function` and in
`tf.map_fn` (one file per call, `index` naming the file in error messages).

Accepted input: a RIFF/WAVE file (little-endian "RIFF", not "RIFX" or "RF64").
The chunk list after the 12-byte header is walked chunk by chunk (at most
`MAX_CHUNKS` chunks; odd-sized chunks are followed by one pad byte, as RIFF
says), so chunks other than `fmt ` and `data` (LIST, fact, bext, JUNK, ...)
are skipped wherever they are. The last `fmt ` chunk before the `data` chunk
describes the samples:

- format code 1, PCM: 8-bit unsigned ((x - 128) / 128), 16-, 24- and 32-bit
  signed little-endian (x / 2^15, 2^23, 2^31). Other widths from 1 to 32 bits
  are read from their ceil(bits / 8)-byte container (WAVE samples are
  left-justified, so a 12-bit sample reads as 16-bit, a 20-bit one as 24-bit);
- format code 3, IEEE float: 32- and 64-bit;
- format code 6, A-law and 7, mu-law (G.711): 8-bit, expanded to 16-bit
  linear values (by a 256-entry table) / 2^15;
- format code 0xFFFE, WAVE_FORMAT_EXTENSIBLE (what sox and others write for
  more than 2 channels or more than 16 bits), with the standard sub-format GUID
  whose first two bytes are one of the codes above; the container width
  (wBitsPerSample) is read, the valid-bits field and the channel mask are
  ignored.

Any channel count from 1 is accepted; the channels are averaged to mono. The
sample rate must be within `MIN_RATE`..`MAX_RATE` (1000..384000 Hz); the audio
is resampled from it to 16 kHz (`audio.resample`, band-limited). Only the first
`max_seconds` (30) seconds are decoded: longer data is cut before anything is
converted or resampled, so a huge file does not allocate much.

Samples that are not finite (NaN, +-Inf floats) count as 0, and every decoded
sample is clipped to [-1, 1]: float files may hold any value (1e38, say),
which would otherwise overflow the features into NaN probabilities.

A truncated file (a stream cut short: the `data` chunk, or the RIFF size,
announces more bytes than arrived) decodes the whole frames that arrived,
whatever the header layout. A `data` chunk of 0 bytes decodes to no samples.

Failures raise `tf.errors.InvalidArgumentError`; the first that applies, in this
order, is reported, and each names the input as `audio_wav[i]`:

- `audio_wav[i] is not a WAV file (N bytes without a RIFF/WAVE header): ...`
  (also for empty bytes);
- `audio_wav[i] has more than 128 chunks before its data chunk.`
- `audio_wav[i] is truncated: its header announces N bytes but M arrived,
  and no data chunk is among them; send the whole WAV file.`
- `audio_wav[i] has no data chunk.`
- `audio_wav[i] has no fmt chunk before its data chunk.`
- `audio_wav[i] has a fmt chunk of N bytes; expected at least 16 (40 for
  WAVE_FORMAT_EXTENSIBLE).`
- `audio_wav[i] has format code 0x0002 (MS ADPCM); supported format codes:
  ...` (for an extensible file: `has format code 0xFFFE (WAVE_FORMAT_EXTENSIBLE)
  with sub-format 0x0055 (MP3); ...`, or `with a sub-format GUID that is not a
  standard WAVE one; ...`);
- `audio_wav[i] has N bits per sample in format code 0x0003 (IEEE float);
  supported: ...`
- `audio_wav[i] has 0 channels; expected at least 1.`
- `audio_wav[i] has block align N bytes but C channels of B bytes need C*B.`
- `audio_wav[i] has sample rate N Hz; supported rates are 1000 to 384000 Hz.`
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.keyword_spotting.audio import resample

MAX_SECONDS = 30
MIN_RATE = 1_000
MAX_RATE = 384_000
MAX_CHUNKS = 128

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
# The 14 bytes after the format code in the sub-format GUID of WAVE_FORMAT_EXTENSIBLE
# (KSDATAFORMAT_SUBTYPE_xxx = {0000xxxx-0000-0010-8000-00AA00389B71}).
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_KNOWN_FORMATS = {
    0x0001: "PCM", 0x0002: "MS ADPCM", 0x0003: "IEEE float", 0x0006: "A-law",
    0x0007: "mu-law", 0x0011: "IMA ADPCM", 0x0022: "TrueSpeech", 0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM", 0x0050: "MPEG", 0x0055: "MP3", 0x0092: "AC-3 SPDIF",
    0x00FF: "AAC", 0x0161: "WMA", 0x0162: "WMA Pro", 0x1610: "HE-AAC", 0x2000: "AC-3",
    0x2001: "DTS", 0xF1AC: "FLAC", 0xFFFE: "WAVE_FORMAT_EXTENSIBLE",
}
_SUPPORTED = (
    "supported format codes: 0x0001 (PCM, 1 to 32 bits), 0x0003 (IEEE float, 32 or 64 "
    "bits), 0x0006 (A-law, 8 bits), 0x0007 (mu-law, 8 bits), and 0xFFFE "
    "(WAVE_FORMAT_EXTENSIBLE) with one of these as sub-format."
)
# Sample decoders, by index for tf.switch_case, and the bytes of one sample of each.
_U8, _S16, _S24, _S32, _F32, _F64, _A_LAW, _MU_LAW = range(8)
_SAMPLE_BYTES = [1, 2, 3, 4, 4, 8, 1, 1]


def _alaw_to_linear(code: int) -> int:
    """G.711 A-law byte -> 16-bit linear value."""
    code ^= 0x55
    segment = (code & 0x70) >> 4
    value = ((code & 0x0F) << 4) + 8
    if segment:
        value = (value + 0x100) << (segment - 1)
    return value if code & 0x80 else -value


def _mulaw_to_linear(code: int) -> int:
    """G.711 mu-law byte -> 16-bit linear value."""
    code = ~code & 0xFF
    value = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - value if code & 0x80 else value - 0x84


_ALAW_TABLE = np.array([_alaw_to_linear(i) for i in range(256)], np.float32) / 32768.0
_MULAW_TABLE = np.array([_mulaw_to_linear(i) for i in range(256)], np.float32) / 32768.0


def _i64(value: int) -> tf.Tensor:
    return tf.constant(value, tf.int64)


def _bytes_at(wav: tf.Tensor, length: tf.Tensor, pos: tf.Tensor, n: int) -> tf.Tensor:
    """`n` bytes of `wav` from `pos` as int64 `[n]`, zeros past the end (never fails)."""
    pos = tf.clip_by_value(pos, _i64(0), length)
    raw = tf.io.decode_raw(tf.strings.substr(wav, pos, n), tf.uint8, fixed_length=n)
    return tf.cast(tf.reshape(raw, [n]), tf.int64)


def _le(raw: tf.Tensor, start: int, n: int) -> tf.Tensor:
    """Little-endian unsigned integer of `raw[start:start + n]` (int64 bytes)."""
    shifts = tf.constant([8 * i for i in range(n)], tf.int64)
    return tf.reduce_sum(tf.bitwise.left_shift(raw[start:start + n], shifts))


def _text(*parts) -> tf.Tensor:
    """Joins strings and integer tensors into one string tensor."""
    return tf.strings.join([
        tf.strings.as_string(p) if isinstance(p, tf.Tensor) and p.dtype != tf.string else p
        for p in parts
    ])


def _describe(code: tf.Tensor) -> tf.Tensor:
    """A format code as `0x0055 (MP3)`, or `0x1234 (unknown)`."""
    digits = tf.constant(list("0123456789ABCDEF"))
    nibbles = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(code, tf.constant([12, 8, 4, 0], tf.int64)), 15)
    codes = tf.constant(list(_KNOWN_FORMATS), tf.int64)
    names = tf.constant(list(_KNOWN_FORMATS.values()))
    match = tf.equal(codes, code)
    name = tf.where(tf.reduce_any(match), tf.gather(names, tf.argmax(tf.cast(match, tf.int32))),
                    "unknown")
    return tf.strings.join(["0x", tf.strings.reduce_join(tf.gather(digits, nibbles)),
                            " (", name, ")"])


def _find_chunks(wav: tf.Tensor, length: tf.Tensor):
    """Walks the RIFF chunk list up to the `data` chunk.

    Returns `(fmt_pos, fmt_size, data_pos, data_size, stopped_early)`: the byte offsets
    of the last `fmt ` chunk's body before `data` and of the `data` body (-1 when not
    found), their announced sizes, and whether the walk gave up after MAX_CHUNKS chunks.
    """

    def more(pos, fmt_pos, fmt_size, data_pos, data_size):
        return tf.logical_and(data_pos < 0, pos + 8 <= length)

    def step(pos, fmt_pos, fmt_size, data_pos, data_size):
        header = _bytes_at(wav, length, pos, 8)
        chunk_id = tf.strings.substr(wav, pos, 4)
        size = _le(header, 4, 4)  # uint32 in int64: pos only grows and never overflows.
        is_fmt = tf.equal(chunk_id, "fmt ")
        is_data = tf.equal(chunk_id, "data")
        return (
            pos + 8 + size + tf.bitwise.bitwise_and(size, 1),
            tf.where(is_fmt, pos + 8, fmt_pos), tf.where(is_fmt, size, fmt_size),
            tf.where(is_data, pos + 8, data_pos), tf.where(is_data, size, data_size),
        )

    start = (_i64(12), _i64(-1), _i64(0), _i64(-1), _i64(0))
    pos, fmt_pos, fmt_size, data_pos, data_size = tf.while_loop(
        more, step, start, maximum_iterations=MAX_CHUNKS)
    stopped_early = more(pos, fmt_pos, fmt_size, data_pos, data_size)
    return fmt_pos, fmt_size, data_pos, data_size, stopped_early


def _decode_samples(data: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    """Sample bytes -> float32 `[samples]`, non-finite values as 0, clipped to [-1, 1]."""

    def finite_clipped(x):
        x = tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))
        return tf.cast(tf.clip_by_value(x, -1.0, 1.0), tf.float32)

    def u8():
        return (tf.cast(tf.io.decode_raw(data, tf.uint8), tf.float32) - 128.0) / 128.0

    def s16():
        return tf.cast(tf.io.decode_raw(data, tf.int16), tf.float32) / 2.0**15

    def s24():
        raw = tf.reshape(tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32), [-1, 3])
        value = raw[:, 0] + raw[:, 1] * 256 + raw[:, 2] * 65536
        value = tf.where(value >= 2**23, value - 2**24, value)
        return tf.cast(value, tf.float32) / 2.0**23

    def s32():
        return tf.cast(tf.cast(tf.io.decode_raw(data, tf.int32), tf.float64) / 2.0**31,
                       tf.float32)

    def f32():
        return finite_clipped(tf.io.decode_raw(data, tf.float32))

    def f64():
        return finite_clipped(tf.io.decode_raw(data, tf.float64))

    def table(values):
        codes = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
        return lambda: tf.gather(tf.constant(values), codes)

    branches = [u8, s16, s24, s32, f32, f64, table(_ALAW_TABLE), table(_MULAW_TABLE)]
    samples = tf.switch_case(tf.cast(kind, tf.int32), branches)
    return finite_clipped(tf.ensure_shape(samples, [None]))


def decode_wav(wav: tf.Tensor, index: tf.Tensor, max_seconds: int = MAX_SECONDS) -> tf.Tensor:
    """One WAV file's bytes (scalar string) -> float32 `[samples]`, mono at 16 kHz.

    At most `max_seconds` of audio are read. `index` (an integer scalar) names the
    file in error messages as `audio_wav[index]`. See the module docstring for the
    accepted formats and the errors.
    """
    wav = tf.convert_to_tensor(wav, tf.string)
    length = tf.cast(tf.strings.length(wav), tf.int64)
    head = _bytes_at(wav, length, _i64(0), 12)
    is_wav = tf.logical_and(
        length >= 12,
        tf.logical_and(tf.equal(tf.strings.substr(wav, 0, 4), "RIFF"),
                       tf.equal(tf.strings.substr(wav, tf.minimum(length, 8), 4), "WAVE")))
    announced = _le(head, 4, 4) + 8

    fmt_pos, fmt_size, data_pos, data_size, stopped_early = _find_chunks(wav, length)
    found_data = data_pos >= 0
    fmt = _bytes_at(wav, length, fmt_pos, 40)
    code = _le(fmt, 0, 2)
    channels = _le(fmt, 2, 2)
    rate = _le(fmt, 4, 4)
    block_align = _le(fmt, 12, 2)
    bits = _le(fmt, 14, 2)
    extensible = tf.equal(code, _EXTENSIBLE)
    standard_guid = tf.reduce_all(tf.equal(fmt[26:40], tf.constant(list(_GUID_TAIL), tf.int64)))
    sub_code = _le(fmt, 24, 2)
    real_code = tf.where(extensible, sub_code, code)
    fmt_long_enough = fmt_size >= tf.where(extensible, _i64(40), _i64(16))

    is_pcm = tf.equal(real_code, _PCM)
    is_float = tf.equal(real_code, _FLOAT)
    is_alaw = tf.equal(real_code, _ALAW)
    is_mulaw = tf.equal(real_code, _MULAW)
    known_code = tf.logical_and(tf.logical_or(standard_guid, tf.logical_not(extensible)),
                                tf.reduce_any(tf.stack([is_pcm, is_float, is_alaw, is_mulaw])))
    pcm_bytes = (bits + 7) // 8
    float_kind = tf.where(tf.equal(bits, 64), _i64(_F64), _i64(_F32))
    law_kind = tf.where(is_alaw, _i64(_A_LAW), _i64(_MU_LAW))
    kind = tf.where(is_pcm, tf.clip_by_value(pcm_bytes - 1, _U8, _S32),
                    tf.where(is_float, float_kind, law_kind))
    float_bits = tf.logical_or(tf.equal(bits, 32), tf.equal(bits, 64))
    good_bits = tf.where(is_pcm, tf.logical_and(bits >= 1, bits <= 32),
                         tf.where(is_float, float_bits, tf.equal(bits, 8)))
    sample_bytes = tf.gather(tf.constant(_SAMPLE_BYTES, tf.int64), kind)
    max_frames = _i64(max_seconds) * rate  # int64: no overflow.

    prefix = tf.strings.join(["audio_wav[", tf.strings.as_string(index), "] "])
    code_text = tf.where(
        extensible,
        tf.where(standard_guid,
                 tf.strings.join(["0xFFFE (WAVE_FORMAT_EXTENSIBLE) with sub-format ",
                                  _describe(sub_code)]),
                 "0xFFFE (WAVE_FORMAT_EXTENSIBLE) with a sub-format GUID that is not a "
                 "standard WAVE one"),
        _describe(code))
    checks = [
        (is_wav, _text(
            "is not a WAV file (", length, " bytes without a RIFF/WAVE header): send the bytes "
            "of a WAV file, or float samples at 16 kHz to the `waveform` signature.")),
        (tf.logical_not(stopped_early), _text(
            f"has more than {MAX_CHUNKS} chunks before its data chunk.")),
        (tf.logical_or(found_data, announced <= length), _text(
            "is truncated: its header announces ", announced, " bytes but ", length,
            " arrived, and no data chunk is among them; send the whole WAV file.")),
        (found_data, _text("has no data chunk.")),
        (fmt_pos >= 0, _text("has no fmt chunk before its data chunk.")),
        (fmt_long_enough, _text(
            "has a fmt chunk of ", fmt_size, " bytes; expected at least 16 (40 for "
            "WAVE_FORMAT_EXTENSIBLE).")),
        (known_code, _text("has format code ", code_text, "; ", _SUPPORTED)),
        (good_bits, _text(
            "has ", bits, " bits per sample in format code ", _describe(real_code),
            "; supported: PCM 1 to 32 bits, IEEE float 32 or 64 bits, A-law and mu-law 8 "
            "bits.")),
        (channels > 0, _text("has 0 channels; expected at least 1.")),
        (tf.equal(block_align, channels * sample_bytes), _text(
            "has block align ", block_align, " bytes but ", channels, " channels of ",
            sample_bytes, " bytes need ", channels * sample_bytes, ".")),
        (tf.logical_and(rate >= MIN_RATE, rate <= MAX_RATE), _text(
            "has sample rate ", rate, f" Hz; supported rates are {MIN_RATE} to {MAX_RATE} Hz.")),
    ]
    oks = tf.stack([ok for ok, _ in checks])
    first_failure = tf.argmin(tf.cast(oks, tf.int32))
    message = tf.strings.join([prefix, tf.gather(tf.stack([m for _, m in checks]),
                                                 first_failure)])
    check = tf.debugging.Assert(tf.reduce_all(oks), [message])

    with tf.control_dependencies([check]):
        block = tf.maximum(block_align, 1)
        arrived = tf.maximum(length - data_pos, 0)
        frames = tf.minimum(tf.minimum(data_size, arrived) // block, max_frames)
        data = tf.strings.substr(wav, tf.maximum(data_pos, 0), frames * block)
        samples = _decode_samples(data, kind)
    mono = tf.reduce_mean(tf.reshape(samples, [-1, tf.maximum(channels, 1)]), axis=1)
    return resample(mono, rate)

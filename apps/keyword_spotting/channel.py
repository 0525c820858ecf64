"""Real-world channel augmentation of waveforms, in TensorFlow ops (issue 18, item 2).

The synthetic corpus is clean speech from speech engines plus additive noise;
real recordings reach the model through a room, a microphone, a preamp and,
often, a telephone line. Each function here simulates one of those on a 1-D
float32 waveform in [-1, 1] (the training clips: 16,000 samples at 16 kHz):

- `reverberate`: a room (a synthetic impulse response: direct path, first-order
  image-source reflections and an exponentially decaying diffuse tail);
- `microphone_eq`: a microphone's and device's colouring (a smooth random EQ);
- `level_and_clip`: a recording level and an overdriven preamp (gain, hard clipping);
- `telephone`: a narrowband telephone line (300-3400 Hz, 8 kHz, G.711 companding);
- `augment_channel`: a random subset of these in the order of the physical chain
  (room, microphone, preamp, line), each with its own probability;
- `augment_batch`: `augment_channel` over a batch, one seed per clip (the pipeline's map).

Every function keeps the length, returns float32 values in [-1, 1], and is
pure: the randomness is a counter-based hash of `seed` (a shape `[2]` integer
tensor; `split_seeds` derives independent ones), so a clip and its seed always
give the same result, alone or in any batch, in eager mode and inside `tf.data`
maps alike. Labels are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import tensorflow as tf

SAMPLE_RATE = 16000
RIR_SAMPLES = 16000  # Impulse responses are 1 s long: RT60 0.8 s is ~75 dB down by then.
SPEED_OF_SOUND = 343.0  # m/s.
TELEPHONE_RATE = 8000  # G.711's sampling rate.
MU = 255.0  # G.711 mu-law.
A = 87.6  # G.711 A-law.
AUGMENTATIONS = ("reverb", "microphone", "level", "telephone")  # The chain's order.

_LN_1000 = math.log(1000.0)  # A 60 dB amplitude decay.
_EPS = 1e-9


def _seed(seed) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise ValueError(f"`seed` must be an integer tensor of shape [2]. Received: {seed!r}")
    return tf.ensure_shape(tf.cast(seed, tf.int64), [2])


# --- Per-clip random draws ----------------------------------------------------------------
# A counter-based generator, vectorized over the batch: every random number is a hash of
# the clip's own seed and the number's index, so a clip gets the same draws in any batch
# (and alone), with no per-clip loop (the `tf.map_fn` of stateless random ops per clip it
# replaced cost about 13% of the augmentation's time: `benchmarks.keyword_spotting_step
# --kws_step_augment`).


def _u32(value) -> tf.Tensor:
    return tf.constant(value, tf.uint32)


def _mix(x: tf.Tensor) -> tf.Tensor:
    """A 32-bit integer hash (Wellons' "lowbias32"; uint32 arithmetic wraps): every output
    bit depends on every input bit."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))
    x *= _u32(0x7FEB352D)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(15)))
    x *= _u32(0x846CA68B)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))


def _keys(seeds) -> tf.Tensor:
    """`(batch, 2)` integer seeds -> `(batch,)` uint32 keys, hashed from all 128 bits."""
    words = tf.bitcast(tf.cast(seeds, tf.int64), tf.uint32)  # (batch, 2, 2)
    key = tf.zeros_like(words[:, 0, 0]) + _u32(0x2545F491)
    for i in range(2):
        for j in range(2):
            key = _mix(tf.bitwise.bitwise_xor(key, words[:, i, j]))
    return key


def _bits(seeds, n) -> tf.Tensor:
    """`(batch, n)` uint32 random words: word `j` of a row is a hash of its key and `j`."""
    keys = _keys(seeds)[:, tf.newaxis]
    counters = tf.cast(tf.range(n), tf.uint32) * _u32(0x9E3779B9)
    return _mix(tf.bitwise.bitwise_xor(_mix(keys + counters), keys))


def split_seeds(seeds, num: int) -> tf.Tensor:
    """`num` independent seeds from each row of `seeds` `(batch, 2)`: `(batch, num, 2)`
    int64 (a clip's are a function of its own seed only)."""
    return tf.reshape(tf.cast(_bits(seeds, 2 * num), tf.int64), [-1, num, 2])


def _uniform(seeds, n, low, high) -> tf.Tensor:
    """`(batch, n)` float32 uniform in [low, high] (24 bits; [0, 1) for 0 and 1), one row
    per seed."""
    u = tf.cast(tf.bitwise.right_shift(_bits(seeds, n), _u32(8)), tf.float32) * 2.0**-24
    return low + u * (tf.constant(high, tf.float32) - low)


def _normal(seeds, n) -> tf.Tensor:
    """`(batch, n)` float32 standard normal, one row per seed: Box-Muller on the two 16-bit
    halves of each word (tails to 4.7 sigma: enough for a room's diffuse noise)."""
    words = _bits(seeds, n)
    high = tf.cast(tf.bitwise.right_shift(words, _u32(16)), tf.float32)
    low = tf.cast(tf.bitwise.bitwise_and(words, _u32(0xFFFF)), tf.float32)
    radius = tf.sqrt(-2.0 * tf.math.log((high + 1.0) * 2.0**-16))  # (0, 1]: finite.
    return radius * tf.cos((2.0 * math.pi * 2.0**-16) * low)


def _unstack_seeds(seeds, num: int) -> list[tf.Tensor]:
    """`split_seeds` as a list of `num` `(batch, 2)` seeds."""
    return tf.unstack(split_seeds(seeds, num), num=num, axis=1)


def _one(batch_fn, waveform, seed, *args, **kwargs) -> tf.Tensor:
    """`batch_fn` on one clip `(n,)` and its seed: the batch of one's only row."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    return batch_fn(waveform[tf.newaxis], _seed(seed)[tf.newaxis], *args, **kwargs)[0]


def _peak(x: tf.Tensor) -> tf.Tensor:
    """Each row's largest magnitude `(..., 1)`."""
    return tf.reduce_max(tf.abs(x), axis=-1, keepdims=True)


def _limit(x: tf.Tensor) -> tf.Tensor:
    """Scales each row of `x` down into [-1, 1] when its peak is over 1 (else unchanged)."""
    return x / tf.maximum(_peak(x), 1.0)


def _frequencies(n, rate: float = SAMPLE_RATE) -> tf.Tensor:
    """Hz of the `n // 2 + 1` bins of an `n`-point rfft."""
    n = tf.cast(n, tf.float32)
    return tf.range(tf.math.floordiv(n, 2.0) + 1.0) * rate / n


def _rfft(x, n):
    """The `n`-point rfft of `x`'s last axis, zero-padded to `n` here: `tf.signal.rfft`
    does not pad an empty batch (a batch where no clip drew an augmentation)."""
    pad = tf.maximum(n - tf.shape(x)[-1], 0)
    paddings = tf.concat([tf.zeros([tf.rank(x) - 1, 2], tf.int32), [[0, pad]]], 0)
    return tf.signal.rfft(tf.pad(x, paddings), tf.reshape(n, [1]))


def _irfft(x, n):
    return tf.signal.irfft(x, tf.reshape(n, [1]))


# --- Room reverberation ------------------------------------------------------------------


def room_impulse_response(seed, rt60=(0.15, 0.8), length: int = RIR_SAMPLES,
                          rate: int = SAMPLE_RATE) -> tf.Tensor:
    """A random room's impulse response `(length,)`, peak-normalised (its largest tap is 1).

    A shoebox room (3-10 m x 3-8 m x 2.4-3.5 m) with a source and a microphone at
    random places (0.5 m from the walls); its reverberation time RT60 is drawn in
    `rt60` (seconds). The response is the direct path (at sample 0, amplitude 1),
    the six first-order reflections of the image-source method (Allen & Berkley
    1979: delays from the image distances, amplitudes `beta * d0 / d` with the wall
    reflection coefficient `beta = sqrt(1 - alpha)` and the absorption `alpha` from
    Sabine's formula `RT60 = 0.161 V / (S alpha)`), and a diffuse tail of Gaussian
    noise decaying by 60 dB in RT60, from the first reflection on. The tail's energy
    follows the room's direct-to-reverberant ratio at the source distance `d0`,
    `(r_c / d0)^2` with the critical distance `r_c = 0.057 sqrt(V / RT60)`, kept within
    [-3, 15] dB. This is the simulated-RIR recipe of Ko et al., "A study on data
    augmentation of reverberant speech for robust speech recognition", ICASSP 2017,
    with a statistical (Polack) tail in place of high-order images.

    Args:
        seed: shape `[2]` integers.
        rt60: `(low, high)` seconds.
        length: taps.
        rate: Hz.
    """
    return _rooms(_seed(seed)[tf.newaxis], rt60, length, rate)[0]


def _rooms(seeds, rt60, length: int, rate: int) -> tf.Tensor:
    """`room_impulse_response` of each seed of `seeds` `(batch, 2)`: `(batch, length)`."""
    # Each room's random parameters: RT60, size, source and microphone places, tail noise.
    s_rt, s_room, s_src, s_mic, s_tail = _unstack_seeds(seeds, 5)
    rt = _uniform(s_rt, 1, rt60[0], rt60[1])[:, 0]
    room = _uniform(s_room, 3, [3.0, 3.0, 2.4], [10.0, 8.0, 3.5])
    source = 0.5 + _uniform(s_src, 3, 0.0, 1.0) * (room - 1.0)
    mic = 0.5 + _uniform(s_mic, 3, 0.0, 1.0) * (room - 1.0)
    noise = _normal(s_tail, length)
    volume = tf.reduce_prod(room, axis=-1)
    surface = 2.0 * (room[:, 0] * room[:, 1] + room[:, 0] * room[:, 2]
                     + room[:, 1] * room[:, 2])
    alpha = tf.clip_by_value(0.161 * volume / (surface * rt), 0.02, 1.0)
    beta = tf.sqrt(1.0 - alpha)

    # First-order images: the source mirrored in each of the six walls.
    eye, src = tf.eye(3), source[:, tf.newaxis]
    images = tf.concat([src - 2.0 * src * eye,                                 # walls at 0
                        src + 2.0 * (room - source)[:, tf.newaxis] * eye], 1)  # the far side
    direct = tf.norm(source - mic, axis=-1)
    distances = tf.norm(images - mic[:, tf.newaxis], axis=-1)
    delays = tf.cast(tf.round((distances - direct[:, tf.newaxis]) / SPEED_OF_SOUND * rate),
                     tf.int32)
    delays = tf.clip_by_value(delays, 1, length - 1)
    batch = tf.shape(seeds)[0]
    rows = tf.tile(tf.range(batch)[:, tf.newaxis], [1, 7])
    columns = tf.concat([tf.zeros([batch, 1], tf.int32), delays], 1)
    amplitudes = tf.concat([tf.ones([batch, 1]), beta[:, tf.newaxis] * direct[:, tf.newaxis]
                            / distances], 1)
    taps = tf.scatter_nd(tf.stack([rows, columns], -1), amplitudes, [batch, length])

    # The diffuse tail: exp(-ln(1000) t / RT60) amplitude, from the first reflection on.
    t = tf.range(length, dtype=tf.float32) / rate
    envelope = tf.exp(-_LN_1000 * t / rt[:, tf.newaxis]) * tf.cast(
        tf.range(length) >= tf.reduce_min(delays, axis=-1, keepdims=True), tf.float32)
    tail = noise * envelope
    critical = 0.057 * tf.sqrt(volume / rt)
    drr_db = tf.clip_by_value(20.0 * tf.math.log(critical / direct) / math.log(10.0), -3.0, 15.0)
    tail_energy = tf.pow(10.0, -drr_db / 10.0)[:, tf.newaxis]
    tail *= tf.sqrt(tail_energy / (tf.reduce_sum(tf.square(tail), -1, keepdims=True) + _EPS))
    rir = taps + tail
    return rir / _peak(rir)


def reverberate(waveform, seed, rt60=(0.15, 0.8), wet=(0.5, 1.0)) -> tf.Tensor:
    """The clip played in a random room: convolved with `room_impulse_response`.

    The convolution is linear (FFT of length `n + RIR_SAMPLES`) and truncated to the
    clip's `n` samples (the tail past the clip's end is cut, as a 1 s recording would);
    the direct path is at delay 0, so the word does not move. The result is
    `m * wet + (1 - m) * dry` with `m` drawn in `wet`, scaled back to the clip's peak.
    Reference: Ko et al., ICASSP 2017 (see `room_impulse_response`).

    Args:
        waveform: `(n,)` float32 in [-1, 1].
        seed: shape `[2]` integers.
        rt60: `(low, high)` reverberation time in seconds.
        wet: `(low, high)` share of the reverberant signal in the mix.
    """
    return _one(_reverberate, waveform, seed, rt60, wet)


def _reverberate(waveforms, seeds, rt60=(0.15, 0.8), wet=(0.5, 1.0)) -> tf.Tensor:
    s_rir, s_mix = _unstack_seeds(seeds, 2)  # The room, the share of the reverberant signal.
    mix = _uniform(s_mix, 1, wet[0], wet[1])
    rir = _rooms(s_rir, rt60, RIR_SAMPLES, SAMPLE_RATE)
    n = tf.shape(waveforms)[-1]
    wet_signal = _irfft(_rfft(waveforms, n + RIR_SAMPLES) * _rfft(rir, n + RIR_SAMPLES),
                        n + RIR_SAMPLES)[:, :n]
    out = mix * wet_signal + (1.0 - mix) * waveforms
    out *= _peak(waveforms) / tf.maximum(_peak(out), _EPS)
    return tf.clip_by_value(out, -1.0, 1.0)


# --- Microphone colouring ----------------------------------------------------------------


def apply_band_gains(waveform, gains_db, min_hz: float = 100.0, max_hz: float = 7000.0,
                     rate: int = SAMPLE_RATE) -> tf.Tensor:
    """`waveform` `(..., n)` through a zero-phase EQ: `gains_db` `(..., bands)` at log-spaced
    centres from `min_hz` to `max_hz`, interpolated (raised cosine, over log frequency)
    between them and held flat outside; applied as a real gain on the rfft. Peaks over 1
    are scaled down."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    gains_db = tf.convert_to_tensor(gains_db, tf.float32)
    bands = tf.shape(gains_db)[-1]
    n = tf.shape(waveform)[-1]
    freqs = tf.clip_by_value(_frequencies(n, rate), min_hz, max_hz)
    position = (tf.math.log(freqs / min_hz) / math.log(max_hz / min_hz)
                * tf.cast(tf.maximum(bands - 1, 1), tf.float32))
    index = tf.clip_by_value(tf.cast(tf.floor(position), tf.int32), 0, tf.maximum(bands - 2, 0))
    frac = tf.clip_by_value(position - tf.cast(index, tf.float32), 0.0, 1.0)
    frac = 0.5 - 0.5 * tf.cos(math.pi * frac)
    upper = tf.minimum(index + 1, bands - 1)
    curve_db = (tf.gather(gains_db, index, axis=-1) * (1.0 - frac)
                + tf.gather(gains_db, upper, axis=-1) * frac)
    gain = tf.cast(tf.pow(10.0, curve_db / 20.0), tf.complex64)
    return _limit(_irfft(_rfft(waveform, n) * gain, n))


def microphone_eq(waveform, seed, max_gain_db: float = 8.0, bands: int = 6) -> tf.Tensor:
    """A random microphone (and device) colouring: `bands` gains drawn in
    `[-max_gain_db, max_gain_db]` dB at log-spaced frequencies (100 Hz-7 kHz), smoothly
    interpolated over frequency (`apply_band_gains`). `max_gain_db=0` is the identity.

    Reference: microphone frequency responses as IEC 60268-4 (microphones) specifies
    them, typically within +-10 dB over the speech band; the random band-gain EQ of
    audio augmentation toolkits (e.g. audiomentations' `SevenBandParametricEQ`).

    Args:
        waveform: `(n,)` float32 in [-1, 1].
        seed: shape `[2]` integers.
        max_gain_db: largest boost or cut of a band.
        bands: interpolation points (at least 2).
    """
    return _one(_microphone_eq, waveform, seed, max_gain_db, bands)


def _microphone_eq(waveforms, seeds, max_gain_db: float = 8.0, bands: int = 6) -> tf.Tensor:
    gains = _uniform(seeds, bands, -max_gain_db, max_gain_db)
    return apply_band_gains(waveforms, gains)


# --- Level and clipping ------------------------------------------------------------------


def level_and_clip(waveform, seed, gain_db=(-18.0, 6.0), clip_probability: float = 0.5,
                   clip_level=(0.2, 0.8)) -> tf.Tensor:
    """A recording level and an overdriven preamp.

    The clip is scaled by a gain drawn in `gain_db`; with probability
    `clip_probability` it is hard-clipped at a threshold drawn in `clip_level` (a
    fraction of its peak: 0.2 is heavy distortion) and scaled back to its pre-clip peak
    (at most full scale), as an automatic gain control after the overload would; last,
    what exceeds full scale [-1, 1] is clipped (the converter's saturation).
    Reference: clipping as one of the distortions of general speech restoration,
    Liu et al., "VoiceFixer: toward general speech restoration with neural vocoder",
    arXiv:2109.13731 (2021).

    Args:
        waveform: `(n,)` float32 in [-1, 1].
        seed: shape `[2]` integers.
        gain_db: `(low, high)` gain.
        clip_probability: share of the clips that are clipped.
        clip_level: `(low, high)` clipping threshold, relative to the (gained) peak.
    """
    return _one(_level_and_clip, waveform, seed, gain_db, clip_probability, clip_level)


def _level_and_clip(waveforms, seeds, gain_db=(-18.0, 6.0), clip_probability: float = 0.5,
                    clip_level=(0.2, 0.8)) -> tf.Tensor:
    s_gain, s_gate, s_level = _unstack_seeds(seeds, 3)
    gain = _uniform(s_gain, 1, gain_db[0], gain_db[1])
    gate = _uniform(s_gate, 1, 0.0, 1.0)
    level = _uniform(s_level, 1, clip_level[0], clip_level[1])
    x = waveforms * tf.pow(10.0, gain / 20.0)
    peak = _peak(x)
    threshold = tf.maximum(level * peak, _EPS)
    clipped = tf.clip_by_value(x, -threshold, threshold) * (tf.minimum(peak, 1.0) / threshold)
    x = tf.where(gate < clip_probability, clipped, x)
    return tf.clip_by_value(x, -1.0, 1.0)


# --- Telephone channel -------------------------------------------------------------------


def g711(waveform, law: str = "mu") -> tf.Tensor:
    """8-bit G.711 companding and back (ITU-T G.711): `law` `mu` (mu = 255, North America
    and Japan) or `a` (A = 87.6, Europe).

    The continuous companding laws stand in for G.711's 8-segment piecewise-linear
    tables (they differ by a fraction of a step). mu-law quantises the companded value
    mid-tread in 255 levels (zero included, like mu-law's +0/-0 codes), A-law mid-rise
    in 256 levels (no zero code, as in A-law). Input outside [-1, 1] saturates.
    """
    x = tf.clip_by_value(tf.convert_to_tensor(waveform, tf.float32), -1.0, 1.0)
    sign, magnitude = tf.sign(x), tf.abs(x)
    if law == "mu":
        companded = sign * tf.math.log1p(MU * magnitude) / math.log1p(MU)
        q = tf.round(companded * 127.0) / 127.0
        return tf.sign(q) * (tf.pow(1.0 + MU, tf.abs(q)) - 1.0) / MU
    if law == "a":
        norm = 1.0 + math.log(A)
        companded = tf.where(magnitude < 1.0 / A, A * magnitude / norm,
                             (1.0 + tf.math.log(tf.maximum(A * magnitude, 1.0))) / norm)
        code = tf.clip_by_value(tf.floor(sign * companded * 128.0), -128.0, 127.0)
        q = (code + 0.5) / 128.0
        y = tf.abs(q)
        magnitude = tf.where(y < 1.0 / norm, y * norm / A, tf.exp(y * norm - 1.0) / A)
        return tf.sign(q) * tf.minimum(magnitude, 1.0)
    raise ValueError(f"`law` must be 'mu' or 'a'. Received: law={law!r}")


def _band_mask(freqs, low, high, width: float = 100.0) -> tf.Tensor:
    """Raised-cosine band pass: 1 in [low + w/2, high - w/2] Hz, 0 outside
    [low - w/2, high + w/2], one half (-6 dB) at `low` and `high`."""
    rise = tf.clip_by_value((freqs - (low - width / 2)) / width, 0.0, 1.0)
    fall = tf.clip_by_value(((high + width / 2) - freqs) / width, 0.0, 1.0)
    return (0.5 - 0.5 * tf.cos(math.pi * rise)) * (0.5 - 0.5 * tf.cos(math.pi * fall))


def telephone(waveform, seed, low_hz=(250.0, 350.0), high_hz=(3300.0, 3500.0),
              law: str | None = None) -> tf.Tensor:
    """A narrowband telephone line (16 kHz in, 16 kHz out).

    1. Band-limits to the telephone band (ITU-T G.712: 300-3400 Hz; the edges, the
       -6 dB points of a raised-cosine mask 100 Hz wide on the rfft, are drawn in
       `low_hz` and `high_hz`);
    2. resamples to 8 kHz in the same FFT (the bins up to 4 kHz, inverse FFT of half
       the length: exact, band-limited resampling, as `audio.resample`);
    3. companding with 8-bit G.711 at 8 kHz (`g711`; `law` None: mu-law or A-law at
       random), whose quantisation noise thereby lies in the 0-4 kHz band as on a line;
    4. back to 16 kHz by FFT zero-padding (nothing above 4 kHz, as a wideband
       receiver of a narrowband call hears).
    Odd lengths are resampled to `n // 2` samples and back to `n`.

    Args:
        waveform: `(n,)` float32 in [-1, 1], 16 kHz.
        seed: shape `[2]` integers.
        low_hz, high_hz: `(low, high)` of the band's lower and upper edge.
        law: `mu`, `a` or None (drawn).
    """
    return _one(_telephone, waveform, seed, low_hz, high_hz, law)


def _telephone(waveforms, seeds, low_hz=(250.0, 350.0), high_hz=(3300.0, 3500.0),
               law: str | None = None) -> tf.Tensor:
    s_low, s_high, s_law = _unstack_seeds(seeds, 3)
    low = _uniform(s_low, 1, low_hz[0], low_hz[1])
    high = _uniform(s_high, 1, high_hz[0], high_hz[1])
    mu = _uniform(s_law, 1, 0.0, 1.0)
    n = tf.shape(waveforms)[-1]
    half = n // 2
    mask = _band_mask(_frequencies(n), low, high)
    narrow = (_rfft(waveforms, n) * tf.cast(mask, tf.complex64))[:, : half // 2 + 1]
    scale = tf.cast(half, tf.float32) / tf.cast(n, tf.float32)
    line = _irfft(narrow, half) * scale
    if law is None:  # Each clip's law drawn: mu-law or A-law.
        line = tf.where(mu < 0.5, g711(line, "mu"), g711(line, "a"))
    else:
        line = g711(line, law)
    spectrum = _rfft(line, half)
    spectrum = tf.pad(spectrum, [[0, 0], [0, n // 2 + 1 - tf.shape(spectrum)[-1]]])
    out = _irfft(spectrum, n) / scale
    return tf.clip_by_value(out, -1.0, 1.0)


# --- Composition -------------------------------------------------------------------------


def _probabilities(probability) -> dict:
    if isinstance(probability, Mapping):
        unknown = set(probability) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"Unknown augmentations {sorted(unknown)}; "
                             f"they are {list(AUGMENTATIONS)}.")
        chances = {name: float(probability.get(name, 0.0)) for name in AUGMENTATIONS}
    else:
        chances = dict.fromkeys(AUGMENTATIONS, float(probability))
    for name, p in chances.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"The probability of {name!r} must be in [0, 1]. Received: {p!r}")
    return chances


_FUNCTIONS = {"reverb": _reverberate, "microphone": _microphone_eq,
              "level": _level_and_clip, "telephone": _telephone}


def augment_channel(waveform, seed, probability=0.5) -> tf.Tensor:
    """The clip through a random channel: each of `AUGMENTATIONS` (room reverberation,
    microphone EQ, level and clipping, telephone line), in that physical order, applied
    with its own probability and default settings.

    Args:
        waveform: `(n,)` float32 in [-1, 1].
        seed: shape `[2]` integers; one seed per clip makes a run reproducible.
        probability: the chance of each augmentation (a float), or a mapping from
            names in `AUGMENTATIONS` to chances (missing: 0).
    """
    return _one(augment_batch, waveform, seed, probability)


def augment_batch(waveforms, seeds, probability=0.5) -> tf.Tensor:
    """`augment_channel` of every clip of `waveforms` `(batch, n)` with its seed of
    `seeds` `(batch, 2)`; the shape is kept.

    Each augmentation runs once on the clips that drew it (their random parameters drawn
    clip by clip from their seeds, the signal processing batched), and those clips are put
    back in their places: a clip's result is the one `augment_channel` gives it alone.
    """
    chances = _probabilities(probability)
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    seeds = tf.cast(seeds, tf.int64)
    names = [name for name in AUGMENTATIONS if chances[name] > 0.0]
    if not names:
        return waveforms
    split = split_seeds(seeds, 2 * len(AUGMENTATIONS))
    x = waveforms
    rows = tf.range(tf.shape(x)[0])
    for name in names:
        i, p = AUGMENTATIONS.index(name), chances[name]
        apply, inner = _FUNCTIONS[name], split[:, 2 * i + 1]
        if p >= 1.0:
            x = apply(x, inner)
            continue
        draws = _uniform(split[:, 2 * i], 1, 0.0, 1.0)[:, 0]
        chosen = tf.cast(draws < p, tf.int32)  # 1: this clip goes through it.
        (kept_rows, changed_rows), (kept, changed), (_, changed_seeds) = (
            tf.dynamic_partition(t, chosen, 2) for t in (rows, x, inner))
        x = tf.dynamic_stitch([kept_rows, changed_rows], [kept, apply(changed, changed_seeds)])
    return tf.ensure_shape(x, waveforms.shape)

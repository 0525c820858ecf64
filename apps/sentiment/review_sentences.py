"""Real review sentences from three other sites: an evaluation set, never trained on.

Kotzias et al. (2015, "From group to individual labels using deep features",
KDD) labelled 1,000 sentences from each of three review sites, 500 positive and
500 negative each: Amazon (mobile phones and accessories), IMDB (films) and
Yelp (restaurants). UCI publishes them as "Sentiment Labelled Sentences"
(CC BY 4.0). npm's `sentiment@5.0.2` (the AFINN package, MIT) ships them as its
validation fixtures, `package/test/fixtures/{amazon,imdb,yelp}.json`, so they
can be had offline from a registry: `load` finds or fetches that tarball
(`acquire.REVIEW_SENTENCES`, checked by SHA-256) and reads the three files.
Nothing is redistributed or committed.

None of these sentences is in the VADER corpus the app trains on (the
benchmark counts the overlap), and no model or setting of this project is
chosen on them: `benchmarks/sentiment_real_reviews.py` only scores exports
that were chosen on other data.
"""

from __future__ import annotations

import json
import os
import tarfile
import zlib

import numpy as np

from apps.sentiment import acquire, pipeline

SITES = ("amazon", "imdb", "yelp")
MEMBER = "package/test/fixtures/{site}.json"


def parse(path: str) -> dict[str, pipeline.Split]:
    """`{site: Split}` from the `sentiment@5.0.2` npm tarball at `path`.

    Each fixture is a JSON list of `{"text": ..., "class": 0 | 1}`; the one
    record with an empty text and no class that each file ends with is dropped.
    Raises ValueError naming the file and the record for anything else.
    """
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for site in SITES:
                member = MEMBER.format(site=site)
                try:
                    raw = tar.extractfile(member)
                except KeyError:
                    raw = None
                if raw is None:
                    raise ValueError(f"{path} has no {member}; is it the npm tarball of "
                                     f"{acquire.REVIEW_SENTENCES.spec}?")
                try:
                    records = json.loads(raw.read().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise ValueError(f"{path}:{member} is not UTF-8 JSON ({err}).") from err
                out[site] = _records(records, f"{path}:{member}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise ValueError(f"{path} is a truncated or corrupt archive ({err}); delete it and "
                         "fetch it again.") from err
    return out


def _records(records, where: str) -> pipeline.Split:
    if not isinstance(records, list):
        raise ValueError(f"{where}: expected a JSON list of {{text, class}} records, got "
                         f"{type(records).__name__}.")
    texts, labels = [], []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{where}: record {i} is not {{\"text\": str, \"class\": 0 or 1}}: "
                             f"{record!r:.80}")
        text, label = record["text"].strip(), record.get("class")
        if not text and label is None:
            continue  # Each file ends with an empty record.
        if label not in (0, 1) or isinstance(label, bool):
            raise ValueError(f"{where}: record {i} has class {label!r}; expected 0 or 1.")
        if not text:
            raise ValueError(f"{where}: record {i} has an empty text.")
        texts.append(text.encode("utf-8"))
        labels.append(label)
    if not texts:
        raise ValueError(f"{where} holds no labelled sentence.")
    return pipeline.Split(np.array(texts, dtype=object), np.array(labels, dtype=np.int32))


def load(data_dir: str, archive: str | None = None) -> dict[str, pipeline.Split]:
    """`{site: Split}`, the tarball found or fetched once (`acquire.locate`: `archive`,
    `$REVIEW_SENTENCES_ARCHIVE`, `<data_dir>/downloads/manual/`, the download cache
    `<data_dir>/downloads/review_sentences/`, else `npm pack`)."""
    downloads = os.path.join(data_dir, "downloads")
    path, _ = acquire.locate(acquire.REVIEW_SENTENCES, archive,
                             os.path.join(downloads, "manual"),
                             os.path.join(downloads, "review_sentences"))
    return parse(path)

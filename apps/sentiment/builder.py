"""The `vader_sentiment` tfds builder: human-rated sentences as binary sentiment, by domain.

`vader_sentiment` holds the human-rated sentences of Hutto & Gilbert (2014):
four domains (configs `movies` (default), `tweets`, `amazon`, `nyt`), each
sentence rated -4..+4 by about 20 people. The builder

1. gets the vaderSentiment 3.3.2 source archive (`apps.sentiment.acquire`:
   an explicit `archive=`, `$VADER_SENTIMENT_ARCHIVE`, the manual dir, its
   download cache, else one `pip download`);
2. parses `id<TAB>mean<TAB>text` lines (UTF-8, CRLF) of the domain's
   `*_GroundTruth.txt`;
3. keeps sentences with |mean| >= 0.5 and labels them negative / positive;
4. splits them by a hash of (domain, sentence id): 80% train, 10% validation,
   10% test, the same on every machine.

Loadable like any tfds dataset once this module is imported:
`tfds.load("vader_sentiment/movies", data_dir=...)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from apps.common import acquire as common_acquire
from apps.sentiment import acquire

LABELS = ("negative", "positive")
DOMAINS = ("movies", "tweets", "amazon", "nyt")
EMBEDDED = "vader_sentiment"

# Split by hash bucket (0..99) of the sentence: [0, 80) train, [80, 90) validation, rest test.
_SPLIT_BOUNDS = (("train", 80), ("validation", 90), ("test", 100))

_DESCRIPTION = ("Sentences rated -4..+4 by about 20 people each (Hutto & Gilbert 2014), "
                "kept when |mean rating| >= 0.5 and labelled by its sign.")
_CITATION = ("@inproceedings{hutto2014vader, title={VADER: A Parsimonious Rule-based "
             "Model for Sentiment Analysis of Social Media Text}, author={Hutto, C.J. "
             "and Gilbert, Eric}, booktitle={ICWSM}, year={2014}}")


@dataclasses.dataclass
class VaderConfig(tfds.core.BuilderConfig):
    """One domain of the VADER ground truth."""

    filename: str = ""
    threshold: float = 0.5


class VaderSentiment(tfds.core.GeneratorBasedBuilder):
    """Human-rated sentences (Hutto & Gilbert 2014) as binary sentiment, by domain.

    Args:
        archive: optional path to `vaderSentiment-3.3.2.tar.gz` (or to the inner
            `hutto_ICWSM_2014.tar.gz`); skips every other way of finding it.
        **kwargs: `data_dir`, `config`, `version` as for any tfds builder.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Four domains of vaderSentiment 3.3.2's hutto_ICWSM_2014 ground truth; "
        "|mean| >= 0.5; 80/10/10 splits by a hash of (domain, sentence id).",
    }
    BUILDER_CONFIGS = [
        VaderConfig(name="movies", filename="movieReviewSnippets_GroundTruth.txt",
                    description="Rotten Tomatoes review snippets (Pang & Lee's sentences)."),
        VaderConfig(name="tweets", filename="tweets_GroundTruth.txt", description="Tweets."),
        VaderConfig(name="amazon", filename="amazonReviewSnippets_GroundTruth.txt",
                    description="Amazon product review snippets."),
        VaderConfig(name="nyt", filename="nytEditorialSnippets_GroundTruth.txt",
                    description="New York Times opinion-page snippets."),
    ]
    DEFAULT_CONFIG_NAME = "movies"
    MANUAL_DOWNLOAD_INSTRUCTIONS = acquire.MANUAL_DOWNLOAD_INSTRUCTIONS

    def __init__(self, *, archive: str | None = None, **kwargs):
        self._archive = archive
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(LABELS)),
            "mean_rating": tfds.features.Scalar(dtype=np.float32),
        })
        return self.dataset_info_from_configs(
            description=_DESCRIPTION, features=features, supervised_keys=("text", "label"),
            homepage="https://github.com/cjhutto/vaderSentiment", citation=_CITATION,
            metadata=tfds.core.MetadataDict(), license="MIT",
        )

    def _split_generators(self, dl_manager):
        archive, how = self._find_archive(dl_manager)
        rows = read_ground_truth(archive, self.builder_config.filename)
        kept = [r for r in rows if abs(r[1]) >= self.builder_config.threshold]
        splits = {name: [] for name, _ in _SPLIT_BOUNDS}
        for row in kept:
            splits[split_of(self.builder_config.name, row[0])].append(row)
        self.info.metadata.update(
            {
                "source": f"{acquire.PACKAGE} sdist, "
                          f"{acquire.INNER_ARCHIVE}/{self.builder_config.filename}",
                "archive_sha256": common_acquire.sha256(archive),
                "archive_found_by": how,
                "sentences": len(rows),
                "kept": len(kept),
                "positive": sum(r[1] > 0 for r in kept),
                "threshold": self.builder_config.threshold,
                "split_sizes": {k: len(v) for k, v in splits.items()},
            }
        )
        return {name: self._generate_examples(items) for name, items in splits.items()}

    def _generate_examples(self, rows):
        for sentence_id, mean, text in rows:
            yield sentence_id, {
                "id": sentence_id,
                "text": text,
                "label": int(mean > 0),
                "mean_rating": np.float32(mean),
            }

    def _find_archive(self, dl_manager) -> tuple[str, str]:
        """(path, how it was found); see `apps.sentiment.acquire.find_archive`."""
        return acquire.find_archive(self._archive, *archive_dirs(dl_manager, EMBEDDED))


def archive_dirs(dl_manager, name: str) -> tuple[str | None, str]:
    """(the tfds manual dir or None, `<downloads>/<name>`, the archive's download cache)."""
    try:
        manual = os.fspath(dl_manager.manual_dir)
    except (AssertionError, ValueError):  # No manual dir, or an empty one.
        manual = None
    return manual, os.path.join(os.fspath(dl_manager.download_dir), name)


def split_of(domain: str, sentence_id: str) -> str:
    """The split of a sentence: a stable hash of (domain, id) into 100 buckets."""
    digest = hashlib.sha256(f"{domain}/{sentence_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name, bound in _SPLIT_BOUNDS:
        if bucket < bound:
            return name
    raise AssertionError(bucket)


def _inner_tarball(archive: str) -> tarfile.TarFile:
    """Opens hutto_ICWSM_2014.tar.gz, given it or the sdist that contains it."""
    outer = tarfile.open(archive, "r:*")
    names = outer.getnames()
    if any(n.endswith("GroundTruth.txt") for n in names):
        return outer
    inner = [n for n in names if n.endswith(acquire.INNER_ARCHIVE)]
    if not inner:
        outer.close()
        raise ValueError(
            f"{archive} holds neither {acquire.INNER_ARCHIVE} nor *_GroundTruth.txt files; is "
            f"it the source archive of {acquire.PACKAGE} (not the wheel)?"
        )
    data = outer.extractfile(inner[0]).read()
    outer.close()
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def read_ground_truth(archive: str, filename: str) -> list[tuple[str, float, str]]:
    """`(id, mean_rating, text)` rows of one `*_GroundTruth.txt` in the archive."""
    with _inner_tarball(archive) as tar:
        members = [m for m in tar.getmembers() if os.path.basename(m.name) == filename]
        if not members:
            raise ValueError(f"{archive} has no {filename}.")
        raw = tar.extractfile(members[0]).read()
    rows = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise ValueError(f"{filename}:{number}: expected id<TAB>mean<TAB>text, got {line!r}")
        sentence_id, mean, text = parts
        rows.append((sentence_id.strip(), float(mean), text.strip()))
    return rows

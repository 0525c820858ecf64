"""Fixture catalogues for the translation tests: a tiny .mo writer and .deb packages."""

from __future__ import annotations

import gzip
import os
import random
import struct
import subprocess

HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n"

WORDS = {
    "open": "ouvrir", "close": "fermer", "the": "le", "file": "fichier", "window": "fenêtre",
    "new": "nouveau", "save": "enregistrer", "folder": "dossier", "show": "afficher",
    "hide": "masquer", "all": "tout", "menu": "menu", "large": "grand", "small": "petit",
    "red": "rouge", "blue": "bleu", "text": "texte", "image": "image", "copy": "copier",
    "delete": "supprimer",
}


def write_mo(path: str, messages: dict, header: str = HEADER, encoding: str = "utf-8") -> str:
    """Writes a GNU .mo file: `messages` maps msgid (str, may hold \\x00 / \\x04) to msgstr.

    `header` is the catalogue's header (its msgstr for msgid ""); the strings are
    encoded with `encoding`, which the header should name.
    """
    entries = sorted({"": header, **messages}.items(), key=lambda kv: kv[0].encode(encoding))
    ids = [k.encode(encoding) for k, _ in entries]
    strs = [v.encode(encoding) for _, v in entries]
    n = len(entries)
    originals = 7 * 4
    translations = originals + 8 * n
    data = translations + 8 * n
    blob, id_table, str_table = b"", [], []
    for table, items in ((id_table, ids), (str_table, strs)):
        for item in items:
            table.append((len(item), data + len(blob)))
            blob += item + b"\x00"
    with open(path, "wb") as f:
        f.write(struct.pack("<7I", 0x950412DE, 0, n, originals, translations, 0, data))
        for length, offset in id_table + str_table:
            f.write(struct.pack("<2I", length, offset))
        f.write(blob)
    return path


def sentence_pairs(count: int, seed: int = 0, min_words=2, max_words=6) -> dict:
    """`count` distinct word-by-word 'translations' drawn from WORDS."""
    rng = random.Random(seed)
    keys = sorted(WORDS)
    out = {}
    while len(out) < count:
        words = [rng.choice(keys) for _ in range(rng.randint(min_words, max_words))]
        source = " ".join(words).capitalize()
        out[source] = " ".join(WORDS[w] for w in words).capitalize()
    return out


def build_deb(directory: str, name: str, version: str, catalogues: dict) -> str:
    """A .deb (made with `dpkg-deb --build`) holding `{language: {domain: messages}}`."""
    root = os.path.join(directory, f"{name}-root")
    os.makedirs(os.path.join(root, "DEBIAN"), exist_ok=True)
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as f:
        f.write(f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                "Maintainer: Tests <tests@example.org>\nDescription: test catalogues\n")
    for language, domains in catalogues.items():
        folder = os.path.join(root, "usr", "share", "locale", language, "LC_MESSAGES")
        os.makedirs(folder, exist_ok=True)
        for domain, messages in domains.items():
            write_mo(os.path.join(folder, f"{domain}.mo"), messages)
    deb = os.path.join(directory, f"{name}_{version}_all.deb")
    subprocess.run(["dpkg-deb", "-Znone", "--build", root, deb], check=True,
                   capture_output=True)
    return deb


def manpage_deb(directory, name, version, pages):
    """A `.deb` holding gzip'd man pages `{"man2/demo.2": roff}`.

    The pages are put in the tree `build_deb` packs (`<directory>/<name>-root`).
    """
    root = os.path.join(directory, f"{name}-root")
    for key, text in pages.items():
        path = os.path.join(root, "usr", "share", "man", *key.split("/")) + ".gz"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with gzip.open(path, "wb") as f:
            f.write(text.encode("utf-8"))
    return build_deb(directory, name, version, {})


def generated_pages(count):
    """`count` English pages and their word-by-word 'French' pages (3 paragraphs each)."""
    english, french = {}, {}
    for i in range(count):
        pairs = list(sentence_pairs(3, seed=100 + i, min_words=4, max_words=8).items())
        en = [f"Page {i} paragraph {j}: {s}." for j, (s, _) in enumerate(pairs)]
        fr = [f"Page {i} paragraphe {j} : {t}." for j, (_, t) in enumerate(pairs)]
        head = f'.TH P{i} 1 2023 "x"\n.SH NAME\np{i} \\- page\n.SH DESCRIPTION\n'
        english[f"man1/p{i}.1"] = head + "\n.PP\n".join(en) + "\n"
        french[f"man1/p{i}.1"] = head.replace("NAME", "NOM") + "\n.PP\n".join(fr) + "\n"
    return english, french

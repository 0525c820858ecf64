"""Long parallel sentences from Debian: translated man pages and package descriptions.

The parsing and alignment behind the `long_translations` tfds builder
(`apps.translation.long_builder`), free of TensorFlow. Two sources:

- **Man pages** (`origin="manpages"`): the English pages of `manpages` and
  `manpages-dev` against the same pages in `manpages-fr(-dev)` /
  `manpages-de(-dev)`. The translations are made with po4a, which keeps the
  English page's macros (`.SH`, `.PP`, `.TP`, `.IP`, `.RS`, `.nf`, ...) and
  translates the text between them, so paragraph *i* of one page is paragraph
  *i* of the other when both pages have the same macro sequence. A page is
  aligned section by section: a section is used only when its macro sequence
  (its "signature") is the same on both sides; a page whose sections do not
  even line up by number is dropped. Text po4a left untranslated (the English
  copied through) is dropped, and so is every pair whose length ratio is off.
  Roff markup is stripped (fonts, escapes, inline font macros); code (`.nf`,
  `.EX`), tables (`.TS`) and equations (`.EQ`) are skipped.
- **Package descriptions** (`origin="ddtp"`): Debian's `Translation-fr` /
  `Translation-de` indices matched to `Translation-en` by `Description-md5`
  (the DDTP translates exactly the English text with that digest). The short
  description and each paragraph (and each bullet of a list) pair by
  position when both sides have the same layout. Paragraphs whose English
  occurs in the descriptions of more than `BOILERPLATE_SOURCES` source
  packages ("This package contains the development files.") are dropped.

Each aligned unit is then split into sentences when both sides split into the
same number of sentences and every sentence pair passes the length-ratio
check; otherwise the unit is kept whole. Pairs are deduplicated by the folded
English (case and spacing) across both sources; of several translations the
most frequent wins, then the first by (origin, source id).
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import re
import unicodedata

ORIGINS = ("manpages", "ddtp")
MIN_WORDS, MAX_WORDS = 3, 150
# Drop an English paragraph found in more source packages' descriptions than this.
BOILERPLATE_SOURCES = 3
# English length buckets (words) recorded in the metadata, as `(name, upper bound)`.
LENGTH_BUCKETS = (("<=10", 10), ("10-20", 20), ("20-30", 30), ("30-40", 40), ("40-60", 60),
                  (">60", None))
# Accepted `len(target) / len(source)` (characters), by language; short pairs get slack.
LENGTH_RATIO = {"fr": (0.8, 1.7), "de": (0.8, 1.7)}
SLACK_CHARS = 12

_SPACES = re.compile(r"\s+")


class FormatError(ValueError):
    """An input file is not what it should be (names the file and what was expected)."""


@dataclasses.dataclass(frozen=True)
class Pair:
    """One aligned segment: English `source`, translated `target`, where it came from."""

    source: str
    target: str
    origin: str  # "manpages" or "ddtp"
    source_id: str  # "man2/dup.2" or the source package's name ("0ad")


def fold(text: str) -> str:
    """The deduplication key of a text: case and spacing folded."""
    return _SPACES.sub(" ", text).strip().casefold()


def words(text: str) -> int:
    return len(text.split())


def length_bucket(n_words: int) -> str:
    """The name of the English length bucket of `n_words` (see `LENGTH_BUCKETS`)."""
    for name, upper in LENGTH_BUCKETS:
        if upper is None or n_words <= upper:
            return name
    raise AssertionError(n_words)


def ratio_ok(source: str, target: str, language: str) -> bool:
    """Whether the target's length in characters is plausible for a translation of the source."""
    low, high = LENGTH_RATIO[language]
    n_source, n_target = len(source), len(target)
    if n_source == 0 or n_target == 0:
        return False
    return low * n_source - SLACK_CHARS <= n_target <= high * n_source + SLACK_CHARS


def untranslated(source: str, target: str) -> bool:
    """True when the target is (nearly) the English text itself (po4a copies untranslated text).

    Compares the word sequences: a translation shares identifiers and numbers
    with its source, but not 80% of its words in order.
    """
    a, b = fold(source).split(), fold(target).split()
    if a == b:
        return True
    if len(a) < 4:
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.8


# ============================================================================ roff
# Named characters `\(xx` / `\[name]` and strings `\*(xx` / `\*[name]` that man pages use.
_GLYPHS = {
    "em": "—", "en": "–", "hy": "-", "bu": "•", "aq": "'", "dq": '"', "lq": "“", "rq": "”",
    "oq": "‘", "cq": "’", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "co": "©", "rg": "®",
    "tm": "™", "de": "°", "mu": "×", "di": "÷", "+-": "±", "<=": "≤", ">=": "≥", "!=": "≠",
    "->": "→", "<-": "←", "ua": "↑", "da": "↓", "ti": "~", "ha": "^", "rs": "\\", "sl": "/",
    "ba": "|", "or": "|", "at": "@", "sh": "#", "Do": "$", "Eu": "€", "eu": "€", "sc": "§",
    "ps": "¶", "dg": "†", "ga": "`", "aa": "´", "pd": "∂", "is": "∫", "if": "∞", "ra": "⟩",
    "la": "⟨", "mc": "µ", "*W": "Ω", "*p": "π", "*m": "μ", "*a": "α", "*b": "β", "fm": "′",
    "es": "∅", "pl": "+", "mi": "−", "eq": "=", "pc": "·", "ss": "ß", ":a": "ä", ":o": "ö",
    ":u": "ü", ":A": "Ä", ":O": "Ö", ":U": "Ü", "'e": "é", "`e": "è", "^e": "ê", "'E": "É",
    "`a": "à", "^a": "â", ",c": "ç", "^o": "ô", "^i": "î", ":i": "ï", "`u": "ù", "^u": "û",
    "bv": "|", "lB": "[", "rB": "]", "lC": "{", "rC": "}", "sq": "□", "OK": "✓", "AE": "Æ",
    "ae": "æ", "ts": "\"", "r!": "¡", "r?": "¿", "12": "½", "14": "¼", "34": "¾",
}
_STRINGS = {"lq": "“", "rq": "”", "R": "®", "Tm": "™", "Aq": "'", "L\"": "“", "R\"": "”",
            "C`": "“", "C'": "”", "-": "—", "dg": "†", "sd": "″"}
_ESCAPE = re.compile(
    r"\\(?:"
    r"(?P<named>\(..|\[[^\]\s]*\])"
    r"|\*(?P<string>\(..|\[[^\]\s]*\]|.)"
    r"|f(?:\(..|\[[^\]]*\]|.)"  # font changes
    r"|s(?:[-+]?\d|\(..|\[[^\]]*\]|[-+]?'[^']*')"  # point size
    r"|N'(?P<number>\d+)'"
    r"|(?P<other>.)"
    r")",
    re.DOTALL,
)
_DROPPED = "\x00"  # Marks text that cannot be rendered (drawing, registers, motions).
_SIMPLE = {"-": "-", "e": "\\", "\\": "\\", "&": "", "|": "", "^": "", ":": "", "%": "",
           "c": "", ")": "", ",": "", "/": "", " ": " ", "~": " ", "0": " ", "'": "´",
           "`": "`", ".": ".", "t": " ", "+": "+"}


def _escape(match: re.Match) -> str:
    named, string, number, other = (match.group(g) for g in ("named", "string", "number",
                                                               "other"))
    if named is not None:
        name = named[1:] if named.startswith("(") else named[1:-1]
        if name in _GLYPHS:
            return _GLYPHS[name]
        if re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
            return chr(int(name[1:], 16))
        return _DROPPED
    if string is not None:
        name = string[1:] if string.startswith("(") else (
            string[1:-1] if string.startswith("[") else string)
        return _STRINGS.get(name, _DROPPED)
    if number is not None:
        return chr(int(number))
    if other is not None:
        return _SIMPLE.get(other, _DROPPED)
    return ""  # Font and size changes.


def roff_text(text: str) -> str | None:
    """Plain text of a line or paragraph of roff: escapes resolved, spacing collapsed.

    None when it holds what has no plain-text form (drawing commands, number
    registers, motions, unknown glyphs).
    """
    text = _ESCAPE.sub(_escape, text)
    if _DROPPED in text:
        return None
    return _SPACES.sub(" ", text).strip()


def roff_args(line: str) -> list[str]:
    """The arguments of a macro line after its name, with roff's double-quote rules."""
    args, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        if line[i] == '"':
            i += 1
            buf = []
            while i < n:
                if line[i] == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(line[i])
                i += 1
            args.append("".join(buf))
        else:
            j = i
            while j < n and line[j] not in " \t":
                j += 2 if line[j] == "\\" else 1
            args.append(line[i:j])
            i = j
    return args


# Inline font macros: their arguments are text (alternating fonts join without spaces).
_FONT_JOINED = {"BR", "RB", "BI", "IB", "IR", "RI"}
_FONT_SPACED = {"B", "I", "SM", "SB"}
# Requests that change nothing a reader of the text sees.
_IGNORED = {"ad", "na", "nh", "hy", "ne", "ft", "ps", "ll", "ta", "ss", "fam", "PD", "IX",
            "ds", "nr", "als", "so", "ev", "cs", "bp", "pc", "lf", "ti", "mk", "rt", "hw",
            "UN", "ce", "ul", "cu", "tr", "lg", "ns", "rs", "vs", "ls", "pl", "wh", "ch",
            "it", "em", "fl", "ab", "tm", "mso", "color", "do", "cc", "c2", "ec", "eo"}
# Code, tables, equations: kept in the signature, their text skipped.
_SKIPPED_BLOCKS = {"nf": "fi", "EX": "EE", "TS": "TE", "EQ": "EN", "Vb": "Ve"}
# mdoc pages (.Dd/.Sh) are not read.
_MDOC = {"Dd", "Sh", "Nm", "Os", "Dt"}
_EMPTY_BREAKS = {"PP", "P", "LP", "blank", "sp", "br"}
_COMMENT = re.compile(r'(?<!\\)((?:\\\\)*)\\["#].*$')


@dataclasses.dataclass
class Page:
    """A man page as a sequence of macro tokens and text paragraphs.

    `tokens` holds macro names (`"SH"`, `"PP"`, `"TP"`, ...), `"tag"` for the
    tag line of a `.TP`, and `"T"` for a paragraph of text; `texts[i]` is
    the plain text of the i-th `"T"` (None where it has no plain form).
    `sections` splits `tokens` at `.SH`.
    """

    tokens: list = dataclasses.field(default_factory=list)
    texts: list = dataclasses.field(default_factory=list)

    def sections(self) -> list[tuple[list, list]]:
        """`[(tokens, texts)]` per section (the part before the first `.SH` is one too)."""
        out = [([], [])]
        index = 0
        for token in self.tokens:
            if token == "SH":
                out.append(([], []))
            out[-1][0].append(token)
            if token == "T":
                out[-1][1].append(self.texts[index])
                index += 1
        for tokens, _ in out:  # Paragraph breaks with nothing after them change nothing.
            while tokens and tokens[-1] in _EMPTY_BREAKS:
                tokens.pop()
        return out


def parse_manpage(text: str, name: str = "<page>") -> Page | None:
    """A man page's macro tokens and text paragraphs; None for `.so` links and mdoc pages.

    Raises:
        FormatError: naming `name`, when the text does not look like roff at all.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    if not any(line.startswith((".TH", ".so", ".Dd", "'\\\"", ".\\\"")) for line in lines[:200]):
        raise FormatError(f"{name}: not a man page (no .TH, .so or comment line at the top)")
    page = Page()
    paragraph: list[str] = []
    skip_until = None  # The macro that ends a skipped block (code, table, macro definition).
    brace_depth = 0

    expect_tag = False  # After .TP: the next line of text is the tag.

    def flush():
        nonlocal expect_tag
        if paragraph:
            if expect_tag:
                page.tokens.append("tag")
                expect_tag = False
            else:
                page.tokens.append("T")
                page.texts.append(roff_text(" ".join(paragraph)))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + lines[i]
            i += 1
        if brace_depth:
            brace_depth += line.count("\\{") - line.count("\\}")
            continue
        stripped = line.lstrip()
        if stripped.startswith((".\\\"", "'\\\"", ".\\#", "'\\#")) or stripped in (".", "'"):
            continue  # Comments (po4a moves them; never part of the structure) and empty requests.
        if skip_until is not None:
            if skip_until == ".." and stripped.startswith("..") or re.match(
                    r"[.']\s*" + re.escape(skip_until) + r"\b", stripped):
                page.tokens.append(skip_until)
                skip_until = None
            continue
        line = _COMMENT.sub(r"\1", line)
        if line[:1] in (".", "'"):
            match = re.match(r"[.']\s*(\S+)\s*(.*)$", line)
            if match is None:
                continue
            macro, rest = match.group(1), match.group(2)
            if macro in _MDOC or (macro == "so" and not page.tokens):
                return None
            if macro in _FONT_JOINED:
                paragraph.append("".join(roff_args(rest)))
                if expect_tag:
                    flush()
                continue
            if macro in _FONT_SPACED:
                if not rest.strip() and i < len(lines):  # `.B` alone: the next line is bold.
                    continue
                paragraph.append(" ".join(roff_args(rest)))
                if expect_tag:
                    flush()
                continue
            if macro in ("UR", "MT"):
                paragraph.append("<" + " ".join(roff_args(rest)) + ">")
                continue
            if macro in ("UE", "ME"):
                if rest.strip():
                    paragraph[-1:] = [(paragraph[-1] if paragraph else "") + rest.strip()]
                continue
            if macro in _IGNORED:
                continue
            flush()
            if macro in ("de", "ig", "am"):  # A macro definition or ignored block, to "..".
                page.tokens.append(macro)
                skip_until = ".."
                continue
            if macro in ("if", "ie", "el"):
                page.tokens.append(macro)
                brace_depth = line.count("\\{") - line.count("\\}")
                continue
            page.tokens.append(macro)
            if macro in _SKIPPED_BLOCKS:
                skip_until = _SKIPPED_BLOCKS[macro]
            elif macro in ("TP", "TQ"):
                expect_tag = True
            continue
        if not line.strip():
            flush()
            page.tokens.append("blank")
            continue
        paragraph.append(line)
        if expect_tag:
            flush()
    flush()
    return page


def align_pages(english: Page, translated: Page, stats=None) -> list[tuple[str, str]]:
    """`(english, translated)` paragraph pairs of two pages whose sections agree.

    Sections are matched by position; only when both pages have the same number
    of sections (not counting the section of translators' credits that the
    translation appends), and of those only the sections with the same signature (macro
    and paragraph sequence). Paragraphs without a plain-text form are skipped.
    """
    ours, theirs = english.sections(), translated.sections()
    if len(theirs) == len(ours) + 1:
        theirs = theirs[:-1]  # The translators' credits (TRADUCTION, ÜBERSETZUNG) at the end.
    if len(ours) != len(theirs):
        return []
    stats = stats if stats is not None else collections.Counter()
    pairs = []
    for (tokens_a, texts_a), (tokens_b, texts_b) in zip(ours, theirs, strict=True):
        if tokens_a != tokens_b:
            stats["sections_differ"] += 1
            continue
        stats["sections_aligned"] += 1
        for a, b in zip(texts_a, texts_b, strict=True):
            if a and b:
                pairs.append((a, b))
    return pairs


def page_key(path: str) -> str | None:
    """`man2/dup.2` for `.../man/man2/dup.2.gz` (or `.../man/fr/man2/dup.2.gz`); else None."""
    match = re.search(r"/(man[0-9][^/]*)/([^/]+?)(?:\.gz)?$", path)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def manpage_pairs(english: dict, translated: dict, language: str) -> tuple[list, dict]:
    """Aligned man-page pairs for the pages found on both sides.

    Args:
        english, translated: `{page key: roff text}`.
        language: "fr" or "de" (for the length ratio).

    Returns:
        `(pairs, stats)`: `[Pair]` (paragraph or sentence level) and a dict of
        page and paragraph counts (pages in common, aligned, dropped ...).
    """
    stats = collections.Counter()
    pairs = []
    for key in sorted(set(english) & set(translated)):
        stats["pages_in_both"] += 1
        page_en = parse_manpage(english[key], f"English {key}")
        page_xx = parse_manpage(translated[key], f"{language} {key}")
        if page_en is None or page_xx is None:
            stats["pages_not_roff_text"] += 1  # .so links, mdoc
            continue
        aligned = align_pages(page_en, page_xx, stats)
        if not aligned:
            stats["pages_not_aligned"] += 1
            continue
        stats["pages_aligned"] += 1
        for source, target in aligned:
            stats["paragraphs"] += 1
            pairs.extend(_checked(source, target, language, "manpages", key, stats))
    return pairs, dict(stats)


def _checked(source, target, language, origin, source_id, stats) -> list[Pair]:
    """The `Pair`s (sentences or the unit) of an aligned unit, or none (counted by reason)."""
    reason = rejection(source, target, language)
    if reason:
        stats[f"dropped_{reason}"] += 1
        return []
    return [Pair(s, t, origin, source_id) for s, t in segment(source, target, language)]


def rejection(source: str, target: str, language: str) -> str | None:
    """Why a unit pair is not kept (`"untranslated"`, `"ratio"`, `"length"`), else None."""
    if untranslated(source, target):
        return "untranslated"
    if not ratio_ok(source, target, language):
        return "ratio"
    if not MIN_WORDS <= words(source) <= MAX_WORDS:
        return "length"
    if not any(ch.isalpha() for ch in target):
        return "length"
    return None


# ============================================================================ DDTP
@dataclasses.dataclass
class Description:
    """A package description in one language: the packages that carry it, its text."""

    packages: list
    short: str
    paragraphs: list  # [[unit, ...]] with units ("text" | "item", text)


def _units(lines: list[str]) -> list[tuple[str, str]]:
    """A description paragraph as units: running text, then one per list item."""
    units: list[list] = []
    for line in lines:
        body = line[1:] if line.startswith(" ") else line
        item = re.match(r"\s*(?:[*+\-•o]|\d{1,2}[.)])\s+(.*)$", body)
        if item:
            units.append(["item", item.group(1).strip()])
        elif units:
            units[-1][1] += " " + body.strip()
        else:
            units.append(["text", body.strip()])
    return [(kind, _SPACES.sub(" ", text).strip()) for kind, text in units if text.strip()]


def parse_translation_index(lines, language: str, name: str = "<index>") -> dict:
    """`{Description-md5: Description}` of a Debian `Translation-<language>` index.

    Args:
        lines: the index's lines (an open text file or a list of strings).
        language: the `Description-<language>` field to read.
        name: the file's name for error messages.

    Raises:
        FormatError: naming `name`, for a stanza without `Package` or
            `Description-md5`, a malformed digest, or a file with no stanzas.
    """
    field = f"Description-{language}:"
    out: dict[str, Description] = {}
    stanza: dict = {}
    body: list[str] | None = None
    line_no = 0

    def finish():
        if not stanza:
            return
        where = f"{name}, stanza ending at line {line_no}"
        if "Package" not in stanza or "md5" not in stanza or "short" not in stanza:
            raise FormatError(f"{where}: expected Package, Description-md5 and {field[:-1]} "
                              f"fields, found {sorted(stanza)}")
        if not re.fullmatch(r"[0-9a-f]{32}", stanza["md5"]):
            raise FormatError(f"{where}: Description-md5 {stanza['md5']!r} is not 32 hex digits")
        paragraphs, current = [], []
        for line in stanza["long"]:
            if line.strip() in (".", ""):  # " ." (or a line of no-break spaces).
                paragraphs.append(current)
                current = []
            else:
                current.append(line)
        paragraphs.append(current)
        parsed = [_units(p) for p in paragraphs]
        entry = out.get(stanza["md5"])
        if entry is None:
            out[stanza["md5"]] = Description([stanza["Package"]], stanza["short"].strip(), parsed)
        else:
            entry.packages.append(stanza["Package"])

    for line_no, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip(" \t\r"):
            finish()
            stanza, body = {}, None
            continue
        if line[0] in " \t":
            if body is None:
                raise FormatError(f"{name}:{line_no}: a continuation line outside a description")
            body.append(line)
            continue
        body = None
        key, sep, value = line.partition(":")
        if not sep:
            raise FormatError(f"{name}:{line_no}: expected 'Field: value', got {line[:60]!r}")
        if key == "Package":
            stanza["Package"] = value.strip()
        elif key == "Description-md5":
            stanza["md5"] = value.strip()
        elif line.startswith(field):
            stanza["short"] = value
            stanza["long"] = body = []
    finish()
    if not out:
        raise FormatError(f"{name}: no {field[:-1]} stanzas (an empty or truncated index?)")
    return out


def parse_sources(lines) -> dict[str, str]:
    """`{binary package: source package}` from a `Packages` index (`Source:` or the name)."""
    out, package = {}, None
    for raw in lines:
        if raw.startswith("Package:"):
            package = raw.split(":", 1)[1].strip()
            out.setdefault(package, package)
        elif raw.startswith("Source:") and package:
            out[package] = raw.split(":", 1)[1].split("(")[0].strip()
        elif not raw.strip():
            package = None
    return out


def boilerplate(english: dict, sources: dict, limit: int = BOILERPLATE_SOURCES) -> set:
    """Folded English units found in the descriptions of more than `limit` source packages."""
    seen = collections.defaultdict(set)
    for description in english.values():
        owners = {sources.get(p, p) for p in description.packages}
        for paragraph in description.paragraphs:
            for _, text in paragraph:
                seen[fold(text)].update(owners)
    return {text for text, owners in seen.items() if len(owners) > limit}


def ddtp_pairs(english: dict, translated: dict, language: str, sources: dict | None = None,
               limit: int = BOILERPLATE_SOURCES) -> tuple[list, dict]:
    """Aligned description pairs: `english`/`translated` from `parse_translation_index`.

    Returns `(pairs, stats)`; a pair's `source_id` is the source package of the
    description's first binary package (by name), so that the descriptions of one
    source package land in one split.
    """
    sources = sources or {}
    repeated = boilerplate(english, sources, limit)
    stats = collections.Counter()
    pairs = []
    for md5 in sorted(set(english) & set(translated)):
        en, xx = english[md5], translated[md5]
        stats["descriptions_in_both"] += 1
        owner = sources.get(min(en.packages), min(en.packages))
        units = [(en.short, xx.short)]
        if len(en.paragraphs) != len(xx.paragraphs):
            stats["descriptions_layout_differs"] += 1
        else:
            for para_en, para_xx in zip(en.paragraphs, xx.paragraphs, strict=True):
                if [k for k, _ in para_en] != [k for k, _ in para_xx]:
                    stats["paragraphs_layout_differs"] += 1
                    continue
                units.extend((a, b) for (_, a), (_, b) in zip(para_en, para_xx, strict=True))
        for source, target in units:
            stats["units"] += 1
            if fold(source) in repeated:
                stats["dropped_boilerplate"] += 1
                continue
            pairs.extend(_checked(source, target, language, "ddtp", owner, stats))
    return pairs, dict(stats)


# ======================================================================= sentences
_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "cf", "vs", "mr", "mrs", "dr", "prof", "no", "nr", "fig", "approx",
    "resp", "incl", "p.ex", "c.-à-d", "c.à.d", "env", "mme", "mlle", "m", "z.b", "d.h", "bzw",
    "usw", "ggf", "evtl", "ca", "vgl", "u.a", "s", "abs", "inkl", "bspw", "sog", "u.ä", "o.ä",
    "z.t", "jh", "bd", "vol", "ed", "al", "st", "jr", "sr", "inc", "ltd", "corp", "co",
    "min", "max", "sec", "ex", "ff", "u.s", "a.d", "b.c", "j.c", "av", "apr", "chap", "sect",
    "p", "pp", "ver", "v", "op", "bzgl", "z", "d", "u", "o", "u.s.w", "a.a.o", "ggü", "evt",
}
# A sentence ends at . ! ? (or …), possibly followed by closing quotes or brackets, then
# spaces, then an opening quote/bracket or nothing, then an upper-case letter.
_BOUNDARY = re.compile(r"([.!?…]+)([\"'’”»«›)\]]*)(\s+)(?=[\"'‘“«»„‹›(\[]?\s*[^\W\d_a-zà-ÿ])")


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of a paragraph, rule-based.

    Splits after `.`, `!`, `?` followed by a space and a capital letter, but
    not after an abbreviation (`e.g.`, `i.e.`, `etc.`, `z. B.`, `c.-à-d.`, ...), a
    single letter or initial (`J. Smith`, `z. B.`), dotted short words
    (`u.a.`, `J.C.`), a German ordinal (`am 3. Januar`), or an ellipsis.
    """
    pieces, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.start(3)
        punct = match.group(1)
        before = text[start:match.start(1)]
        last = before.split()[-1] if before.split() else ""
        word = last.lstrip("(\"'«„“‘[").casefold()
        stem = word.rstrip(".")
        if punct != "." and (punct.startswith(".") or "…" in punct):
            continue  # An ellipsis.
        if punct == "." and (stem in _ABBREVIATIONS or len(stem) <= 1
                             or re.fullmatch(r"([^\W\d]{1,3}\.)+[^\W\d]{1,3}", stem)
                             or language == "de" and re.fullmatch(r"\d{1,2}", stem)):
            continue  # An abbreviation, an initial or a German ordinal.
        pieces.append(text[start:end].strip())
        start = match.end(3)
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def segment(source: str, target: str, language: str) -> list[tuple[str, str]]:
    """Sentence pairs when both sides split into as many sentences (each pair's ratio
    plausible, none untranslated); else the pair itself."""
    a, b = split_sentences(source, "en"), split_sentences(target, language)
    if 1 < len(a) == len(b) and all(
            ratio_ok(x, y, language) and not untranslated(x, y) for x, y in zip(a, b, strict=True)):
        return [(x, y) for x, y in zip(a, b, strict=True) if words(x) >= MIN_WORDS]
    return [(source, target)]


# ========================================================================== corpus
def normalize(text: str) -> str:
    """NFC (composed accents, as the catalogues have them) and single spaces."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def deduplicate(pairs: list[Pair], exclude: set | None = None) -> tuple[list[Pair], dict]:
    """One pair per folded English source, and none whose source is in `exclude` (folded).

    Of several translations of one source the most frequent wins, then the first
    by (origin order, source id, target). Returns `(pairs sorted by origin, source id
    and source, stats)`.
    """
    exclude = exclude or set()
    by_source = collections.defaultdict(list)
    stats = collections.Counter()
    for pair in pairs:
        pair = Pair(normalize(pair.source), normalize(pair.target), pair.origin, pair.source_id)
        key = fold(pair.source)
        if key in exclude:
            stats["dropped_in_excluded_corpus"] += 1
            continue
        if fold(pair.target) == key:
            stats["dropped_untranslated"] += 1
            continue
        by_source[key].append(pair)
    kept = []
    for options in by_source.values():
        stats["dropped_duplicate"] += len(options) - 1
        votes = collections.Counter(p.target for p in options)
        kept.append(min(options, key=lambda p: (-votes[p.target], ORIGINS.index(p.origin),
                                                p.source_id, p.target)))
    kept.sort(key=lambda p: (ORIGINS.index(p.origin), p.source_id, p.source))
    return kept, dict(stats)


def length_counts(texts) -> dict[str, int]:
    """How many of the English `texts` fall in each `LENGTH_BUCKETS` bucket, in order."""
    buckets = collections.Counter(length_bucket(words(text)) for text in texts)
    return {name: buckets.get(name, 0) for name, _ in LENGTH_BUCKETS}


def counts(pairs: list[Pair]) -> dict:
    """`{origin: {"pairs": n, "by_length": {bucket: n}}}` plus `"all"` (English words)."""
    out = {}
    for origin in (*ORIGINS, "all"):
        chosen = [p for p in pairs if origin in ("all", p.origin)]
        out[origin] = {"pairs": len(chosen),
                       "by_length": length_counts(p.source for p in chosen)}
    return out

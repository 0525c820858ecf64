"""The shared registry fetch: verified, atomic, and failures that say what was run."""

from __future__ import annotations

import hashlib
import os

import pytest

from apps.common import acquire


def test_sha256_and_verified(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert acquire.sha256(str(path)) == digest
    assert acquire.verified(str(path), digest) and acquire.verified(str(path), None)
    assert not acquire.verified(str(path), "0" * 64)
    assert not acquire.verified(str(tmp_path / "missing"), None)


def test_failed_command_is_named_with_its_output():
    with pytest.raises(acquire.AcquireError,
                       match=r"Fetching x: `sh -c echo nope >&2; exit 3` failed \(exit 3\): nope"):
        acquire.run(["sh", "-c", "echo nope >&2; exit 3"], "Fetching x")


def test_fetch_moves_only_a_verified_file_into_place(tmp_path):
    def writes(content):
        def command(tmp, limit):
            (open(os.path.join(tmp, "pkg-1.0.tar.gz"), "wb")).write(content)
        return command

    good = hashlib.sha256(b"good").hexdigest()
    with pytest.raises(acquire.AcquireError, match="does not have sha256.*copy it by hand"):
        acquire._fetch_one(str(tmp_path), "pkg-*.tar.gz", "fetch pkg", writes(b"bad"), good,
                           "copy it by hand", 10)
    assert os.listdir(tmp_path) == []  # nothing that looks finished, no temporary left
    path = acquire._fetch_one(str(tmp_path), "pkg-*.tar.gz", "fetch pkg", writes(b"good"), good,
                              "", 10)
    assert path == str(tmp_path / "pkg-1.0.tar.gz") and os.listdir(tmp_path) == ["pkg-1.0.tar.gz"]


def test_pip_download_reuses_a_verified_copy(tmp_path):
    (tmp_path / "thing-1.0.tar.gz").write_bytes(b"x")
    digest = hashlib.sha256(b"x").hexdigest()
    # No network needed: the verified file is found before pip would run.
    assert acquire.pip_download("thing==1.0", str(tmp_path), filename="thing-1.0.tar.gz",
                                expected_sha256=digest) == str(tmp_path / "thing-1.0.tar.gz")


def test_apt_install_says_how_when_it_cannot(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(acquire.AcquireError, match="run `sudo apt-get install -y flite`"):
        acquire.apt_install(["flite"], why="Synthesizing speech")

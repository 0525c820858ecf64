"""Fetching the pinned Debian packages: cache, fallback to the current version, clear errors."""

import os
import shutil

import pytest

from apps.common import acquire as common_acquire
from apps.translation import acquire


def test_unavailable_pinned_version_falls_back_and_is_recorded(tmp_path, monkeypatch, packages):
    deb_dir, _ = packages
    calls = []

    def fake_download(name, version, directory, timeout):
        calls.append(version)
        if version is not None:  # The pinned version left the mirror.
            raise common_acquire.AcquireError(f"apt-get download {name}={version} failed")
        dst = os.path.join(directory, "fixture-b_2.0_all.deb")
        shutil.copyfile(os.path.join(deb_dir, "fixture-b_2.0_all.deb"), dst)
        return dst, acquire.deb_field(dst, "Version")

    monkeypatch.setattr(acquire, "_download", fake_download)
    got = acquire.fetch_packages([("fixture-b", "1.9")], str(tmp_path))
    assert calls == ["1.9", None]
    assert got["fixture-b"] == (str(tmp_path / "fixture-b_2.0_all.deb"), "2.0")
    # Cached now: no second download.
    acquire.fetch_packages([("fixture-b", "1.9")], str(tmp_path))
    assert calls == ["1.9", None]


def test_cached_packages_are_found_by_their_control_file(tmp_path, packages):
    deb_dir, _ = packages
    shutil.copyfile(os.path.join(deb_dir, "fixture-a_1.0_all.deb"),
                    tmp_path / "fixture-a_1.0_all.deb")
    (tmp_path / "fixture-a_0.9_all.deb").write_bytes(b"truncated")  # A damaged file: skipped.
    got = acquire.fetch_packages([("fixture-a", "1.0")], str(tmp_path))
    assert got["fixture-a"] == (str(tmp_path / "fixture-a_1.0_all.deb"), "1.0")


def test_missing_apt_lists_say_what_to_run(tmp_path, monkeypatch):
    def fail(name, version, directory, timeout):
        raise common_acquire.AcquireError(f"apt-get download {name} failed")

    monkeypatch.setattr(acquire, "_download", fail)
    monkeypatch.setattr(acquire, "_apt_lists_present", lambda: False)
    with pytest.raises(RuntimeError, match="apt-get update") as caught:
        acquire.fetch_packages([("no-such-package", "1")], str(tmp_path))
    assert isinstance(caught.value, common_acquire.AcquireError)
    assert "--config=train_tsv=PATH" in str(caught.value)


def test_unpack_extracts_the_catalogues(tmp_path, packages):
    deb_dir, _ = packages
    tree = acquire.unpack(os.path.join(deb_dir, "fixture-b_2.0_all.deb"), str(tmp_path / "b"))
    found = sorted(os.listdir(os.path.join(tree, "usr", "share", "locale", "fr", "LC_MESSAGES")))
    assert found == ["beta.mo", "gamma.mo"]

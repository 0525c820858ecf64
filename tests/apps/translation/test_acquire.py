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


def test_missing_packages_are_fetched_in_one_apt_get_call(tmp_path, monkeypatch, packages):
    deb_dir, _ = packages
    commands, singles = [], []
    real_run = common_acquire.run

    def fake_run(command, what, timeout=600, env=None, cwd=None):
        if command[0] != "apt-get":
            return real_run(command, what, timeout=timeout, env=env, cwd=cwd)
        commands.append(command)
        for spec in command[2:]:
            name = spec.split("=")[0]
            version = {"fixture-a": "1.0", "fixture-b": "2.0"}[name]
            shutil.copyfile(os.path.join(deb_dir, f"{name}_{version}_all.deb"),
                            os.path.join(cwd, f"{name}_{version}_all.deb"))

    monkeypatch.setattr(acquire.common_acquire, "run", fake_run)
    monkeypatch.setattr(acquire, "_download", lambda *a: singles.append(a))
    got = acquire.fetch_packages([("fixture-a", "1.0"), ("fixture-b", "2.0")], str(tmp_path))
    assert commands == [["apt-get", "download", "fixture-a=1.0", "fixture-b=2.0"]] and not singles
    assert got["fixture-b"] == (str(tmp_path / "fixture-b_2.0_all.deb"), "2.0")
    assert sorted(os.listdir(tmp_path)) == ["fixture-a_1.0_all.deb", "fixture-b_2.0_all.deb"]


def test_a_failed_batch_fetch_falls_back_to_one_by_one(tmp_path, monkeypatch, packages):
    deb_dir, _ = packages

    real_run = common_acquire.run

    def failing_run(command, what, timeout=600, env=None, cwd=None):
        if command[0] != "apt-get":
            return real_run(command, what, timeout=timeout, env=env, cwd=cwd)
        raise common_acquire.AcquireError("E: Version '1.0' for 'fixture-a' was not found")

    def fake_download(name, version, directory, timeout):
        dst = os.path.join(directory, f"{name}_{version}_all.deb")
        shutil.copyfile(os.path.join(deb_dir, f"{name}_{version}_all.deb"), dst)
        return dst, version

    monkeypatch.setattr(acquire.common_acquire, "run", failing_run)
    monkeypatch.setattr(acquire, "_download", fake_download)
    got = acquire.fetch_packages([("fixture-a", "1.0"), ("fixture-b", "2.0")], str(tmp_path))
    assert set(got) == {"fixture-a", "fixture-b"}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".fetch-")]

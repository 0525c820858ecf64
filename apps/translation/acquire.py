"""What the translation corpus is made from: a pinned list of Debian packages.

`gettext_translations` reads the gettext catalogues (`.mo` files) that these
Debian 12 (bookworm) packages ship. Each `.deb` is fetched once with
`apt-get download NAME=VERSION` (no root needed, nothing is installed) into a
download directory, and unpacked with `dpkg-deb -x` into a temporary one, both
through `apps.common.acquire`. If a pinned version has left the mirror, the
current one is taken, with a warning; the version used is what the package's
control file says, and the builder records it in the dataset's metadata.

Without apt-get and dpkg-deb (not Debian/Ubuntu), bring your own pairs with
`--config=train_tsv=PATH`.
"""

from __future__ import annotations

import glob
import os
import shutil

from absl import logging

from apps.common import acquire as common_acquire

# The packages (with the versions the published numbers were made from) whose
# catalogues make the corpus, in priority order (ties between translations go
# to the earlier package).
PACKAGES = (
    ("iso-codes", "4.15.0-1"),
    ("libgtk2.0-common", "2.24.33-2+deb12u1"),
    ("libgtk-3-common", "3.24.38-2~deb12u3"),
    ("libglib2.0-data", "2.74.6-2+deb12u9"),
    ("gsettings-desktop-schemas", "43.0-1"),
    ("git", "1:2.39.5-0+deb12u3"),
    ("coreutils", "9.1-1"),
    ("xkb-data", "2.35.1-1"),
    ("gnupg-l10n", "2.2.40-1.1+deb12u2"),
    ("util-linux-locales", "2.38.1-5+deb12u3"),
    ("libc-l10n", "2.36-9+deb12u14"),
    ("dpkg", "1.21.23"),
    ("apt", "2.6.1"),
    ("tar", "1.34+dfsg-1.2+deb12u1"),
    ("nano", "7.2-1+deb12u1"),
    ("bash", "5.2.15-2+b13"),
    ("diffutils", "1:3.8-4"),
    ("findutils", "4.9.0-4"),
    ("sed", "4.9-1+deb12u1"),
    ("grep", "3.8-5"),
    ("wget", "1.21.3-1+deb12u1"),
)

#: What to do instead when the packages cannot be fetched.
INSTEAD = ("bring your own pairs with --config=train_tsv=PATH (source<TAB>target lines), or "
           "use --dataset=ted_hrlr_translate/pt_to_en on a machine that is online.")


def fetch_packages(packages, directory: str, timeout: float = 600) -> dict[str, tuple[str, str]]:
    """`apt-get download`s each `(name, version)` into `directory` once.

    Returns `{name: (deb path, version used)}`. A package already in
    `directory` (the pinned version, else any) is not fetched again. An exact
    version that is no longer on the mirror is replaced by the current one,
    with a warning.
    """
    os.makedirs(directory, exist_ok=True)
    if shutil.which("dpkg-deb") is None:
        raise common_acquire.AcquireError(
            "Building gettext_translations needs `dpkg-deb` and `apt-get` (Debian/Ubuntu). "
            f"On other systems, {INSTEAD}")
    out = {}
    for name, version in packages:
        cached = _cached_deb(directory, name, version) or _cached_deb(directory, name, None)
        if cached:
            out[name] = cached
            continue
        try:
            out[name] = _download(name, version, directory, timeout)
            continue
        except common_acquire.AcquireError as err:
            logging.warning("%s=%s could not be fetched (%s); taking its current version.",
                            name, version, err)
        try:
            out[name] = _download(name, None, directory, timeout)
        except common_acquire.AcquireError as err:
            raise common_acquire.AcquireError(f"{err} {_what_to_do(name)}") from err
    return out


def deb_field(path: str, field: str) -> str:
    """A field of a `.deb`'s control file (`dpkg-deb -f PATH FIELD`)."""
    return common_acquire.run(["dpkg-deb", "-f", path, field],
                              f"Reading {os.path.basename(path)}").stdout.strip()


def _cached_deb(directory: str, name: str, version: str | None):
    for path in sorted(glob.glob(os.path.join(directory, f"{glob.escape(name)}_*.deb"))):
        try:
            if deb_field(path, "Package") != name:
                continue
            found = deb_field(path, "Version")
        except common_acquire.AcquireError:
            continue  # A damaged file: fetched again.
        if version is None or found == version:
            return path, found
    return None


def _download(name: str, version: str | None, directory: str, timeout: float):
    """`(path, version)` of `name` (`=version` when given) fetched with apt-get download."""
    spec = name if version is None else f"{name}={version}"
    print(f"Fetching {spec} once: apt-get download {spec}", flush=True)
    path = common_acquire.apt_download(name, directory, version=version, timeout=timeout)
    return path, deb_field(path, "Version")


def _apt_lists_present() -> bool:
    return bool(glob.glob("/var/lib/apt/lists/*_Packages*"))


def _what_to_do(name: str) -> str:
    if not _apt_lists_present():
        return (f"This machine has no apt package lists: run `sudo apt-get update` once (it "
                f"needs access to a Debian/Ubuntu mirror), then run this again; or {INSTEAD}")
    return (f"Check that a Debian or Ubuntu mirror is reachable and `apt-get download {name}` "
            f"works, or {INSTEAD}")


def unpack(deb: str, into: str) -> str:
    """The package's files unpacked under `into` (`dpkg-deb -x`; nothing installed)."""
    return common_acquire.dpkg_extract(deb, into)

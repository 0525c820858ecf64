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
import tempfile

from absl import logging

from apps.common import acquire as common_acquire

# The packages (with the versions the published numbers were made from) whose
# catalogues make the corpus, in priority order (ties between translations go
# to the earlier package). Version 1 of the corpus read these 21: system tools
# and toolkits (GTK, GLib), ISO codes and keyboard layouts.
PACKAGES_V1 = (
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

# Version 2 adds the programs a desktop user meets (GNOME, Xfce, LXDE and MATE
# applications, mail and chat clients, office, finance and media programs,
# games) and more system tools: every bookworm package tried that ships at
# least 20 clean French pairs, except those of `unseen_programs.PACKAGES`
# (kept for evaluation), programs of the same family as those (evince, nautilus
# and thunar plugins), and wesnoth-1.16-data (143 MB of game text).
PACKAGES_MORE = (
    ("e2fsprogs-l10n", "1.47.0-2"),
    ("libgpg-error-l10n", "1.46-1"),
    ("menu-l10n", "0.20211120"),
    ("debconf-i18n", "1.5.82"),
    ("gettext", "0.21-12"),
    ("binutils-common", "2.40-2"),
    ("sudo", "1.9.13p3-1+deb12u4"),
    ("man-db", "2.11.2-2"),
    ("texinfo", "6.8-6+b1"),
    ("mc-data", "3:4.8.29-2"),
    ("kbd", "2.5.1-1+b1"),
    ("sharutils", "1:4.15.2-9"),
    ("grub-common", "2.06-13+deb12u2"),
    ("libpam-runtime", "1.5.2-6+deb12u2"),
    ("login", "1:4.13+dfsg1-1+deb12u2"),
    ("xfce4-panel", "4.18.2-1"),
    ("xfce4-settings", "4.18.2-1"),
    ("xfce4-session", "4.18.1-1"),
    ("xfdesktop4-data", "4.18.1-1"),
    ("xfwm4", "4.18.0-1"),
    ("ristretto", "0.12.4-1"),
    ("xfce4-terminal", "1.0.4-1"),
    ("xfce4-power-manager-data", "4.18.1-1"),
    ("libxfce4ui-common", "4.18.2-2"),
    ("xfce4-appfinder", "4.18.0-1"),
    ("xfce4-notifyd", "0.7.3-1"),
    ("gnome-shell-common", "43.9-0+deb12u2"),
    ("mutter-common", "43.8-0+deb12u1"),
    ("gnome-terminal-data", "3.46.8-1"),
    ("eog", "43.2-1"),
    ("gnome-calculator", "1:43.0.1-2"),
    ("totem-common", "43.0-2"),
    ("rhythmbox-data", "3.4.6-2"),
    ("gnome-disk-utility", "43.0-1"),
    ("file-roller", "43.0-1"),
    ("gnome-system-monitor", "42.0-2"),
    ("baobab", "43.0-1"),
    ("gnome-software-common", "43.5-1~deb12u2"),
    ("evolution-data-server-common", "3.46.4-2"),
    ("evolution-common", "3.46.4-2+deb12u1"),
    ("pidgin-data", "2.14.12-1"),
    ("gparted-common", "1.3.1-1"),
    ("synaptic", "0.91.3"),
    ("pavucontrol", "5.0-2"),
    ("seahorse", "43.0-1"),
    ("gucharmap", "1:15.0.2-1"),
    ("simple-scan", "42.5-2"),
    ("cheese-common", "43.0-1"),
    ("gnome-maps", "43.5-2~deb12u1"),
    ("gnome-clocks", "43.0-1"),
    ("gnome-contacts", "43.1-1"),
    ("gnome-calendar", "43.1-2"),
    ("geany-common", "1.38-1"),
    ("meld", "3.22.0-2"),
    ("gitg", "41-2"),
    ("claws-mail-i18n", "4.1.1-2"),
    ("sylpheed-i18n", "3.8.0~beta1-1+deb12u1"),
    ("libosinfo-l10n", "1.10.0-2"),
    ("gutenprint-locales", "5.3.4.20220624T01008808d602-1"),
    ("libgtk-4-common", "4.8.3+ds-2+deb12u1"),
    ("libgweather-4-common", "4.2.0-2"),
    ("glib-networking-common", "2.74.0-4"),
    ("gvfs-common", "1.50.3-1+deb12u1"),
    ("udisks2", "2.9.4-4+deb12u2"),
    ("packagekit", "1.2.6-5+deb12u1"),
    ("libgstreamer1.0-0", "1.22.0-2+deb12u1"),
    ("zenity-common", "3.44.0-1"),
    ("yelp", "42.2-1+deb12u2"),
    ("gnome-font-viewer", "43.0-1"),
    ("gnome-characters", "43.1-1+deb12u1"),
    ("gnome-logs", "43.0-1"),
    ("gnome-screenshot", "41.0-2"),
    ("gnome-sound-recorder", "43~beta-1"),
    ("gnome-tweaks", "42~beta-4"),
    ("xarchiver", "1:0.5.4.20-2"),
    ("galculator", "2.1.4-1.2"),
    ("catfish", "4.16.4-2"),
    ("engrampa-common", "1.26.0-1+deb12u2"),
    ("atril-common", "1.26.0-2+deb12u4"),
    ("pluma-common", "1.26.0-1+deb12u1"),
    ("caja-common", "1.26.1-1+deb12u1"),
    ("mate-control-center-common", "1.26.0-2+deb12u1"),
    ("lxpanel-data", "0.10.1-2"),
    ("pcmanfm", "1.3.2-1"),
    ("gpicview", "0.2.5-3+b2"),
    ("lxterminal", "0.4.0-2"),
    ("policykit-1-gnome", "0.105-8"),
    ("system-config-printer-common", "1.5.18-1"),
    ("aptitude-common", "0.8.13-5"),
    ("aspell", "0.60.8-4+b1"),
    ("enscript", "1.6.5.90-3+b1"),
    ("wdiff", "1.2.2-5"),
    ("recode", "3.6-25"),
    ("cryptsetup-bin", "2:2.6.1-4~deb12u2"),
    ("gnome-session-common", "43.0-1+deb12u1"),
    ("gdm3", "43.0-3"),
    ("network-manager-gnome", "1.30.0-2"),
    ("blueman", "2.3.5-2+b1"),
    ("gnome-bluetooth-3-common", "42.5-3"),
    ("gnome-initial-setup", "43.2-6"),
    ("orca", "43.1-1"),
    ("tracker", "3.4.2-1"),
    ("shotwell-common", "0.30.17-1"),
    ("brasero-common", "3.12.3-2"),
    ("sound-juicer", "3.38.0-2.1"),
    ("gnome-music", "42.1-1"),
    ("gnome-photos", "43.0-2"),
    ("gnome-boxes", "43.2-1"),
    ("gnome-builder", "43.6-3"),
    ("epiphany-browser-data", "43.1-1"),
    ("lollypop", "1.4.37-1"),
    ("audacious", "4.2-1"),
    ("hexchat-common", "2.16.1-1"),
    ("polari", "43.0-1"),
    ("gnome-chess", "1:43.1-1"),
    ("gnome-mines", "1:40.1-1"),
    ("aisleriot", "1:3.22.23-1"),
    ("gnome-sudoku", "1:43.1-1"),
    ("quadrapassel", "1:40.2-1"),
    ("five-or-more", "1:3.32.3-1"),
    ("gnome-robots", "1:40.0-2"),
    ("gnome-2048", "3.38.2-3"),
    ("dconf-editor", "43.0-1"),
    ("ghex", "43.1-1"),
    ("gnome-dictionary", "40.0-3"),
    ("devhelp-common", "43.0-3"),
    ("anjuta-common", "2:3.34.0-8"),
    ("bluefish-data", "2.2.12-1.1"),
    ("xfce4-screenshooter", "1.10.3-1"),
    ("xfce4-taskmanager", "1.5.5-1"),
    ("xfburn", "0.6.2-1+b1"),
    ("parole", "4.16.0-3"),
    ("xfce4-whiskermenu-plugin", "2.7.2-1"),
    ("xfce4-pulseaudio-plugin", "0.4.5-1"),
    ("slick-greeter", "1.6.1-1"),
    ("onboard-common", "1.4.1-5"),
    ("gnumeric-common", "1.12.55-1"),
    ("grisbi-common", "2.0.5-1"),
    ("gnucash-common", "1:4.13-1"),
    ("homebank-data", "5.6.2-1"),
    ("pdfarranger", "1.9.2-1"),
    ("gpodder", "3.11.1-1"),
    ("liferea-data", "1.14.4-3"),
)
PACKAGES = PACKAGES_V1 + PACKAGES_MORE

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
    missing = [(name, version) for name, version in packages
               if not (_cached_deb(directory, name, version) or _cached_deb(directory, name, None))]
    if len(missing) > 1:
        _prefetch(missing, directory, timeout)
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


def _prefetch(packages, directory: str, timeout: float) -> None:
    """One `apt-get download` for all of `packages` (a second each saved, 160 of them).

    Best effort: when any pinned version is gone from the mirror apt-get fetches
    nothing, and `fetch_packages` then takes the packages one by one.
    """
    specs = [f"{name}={version}" if version else name for name, version in packages]
    print(f"Fetching {len(specs)} packages once: apt-get download ...", flush=True)
    tmp = tempfile.mkdtemp(prefix=".fetch-", dir=directory)
    try:
        common_acquire.run(["apt-get", "download", *specs], "Fetching Debian packages",
                           timeout=timeout, cwd=tmp)
        for deb in glob.glob(os.path.join(tmp, "*.deb")):
            os.replace(deb, os.path.join(directory, os.path.basename(deb)))
    except common_acquire.AcquireError as err:
        logging.warning("Fetching the packages together failed (%s); one by one instead.", err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


# ------------------------------------------------------------- long_translations
# The man pages (English, then the translations of the same upstream pages by
# manpages-l10n) that `long_translations` reads, with the versions its numbers
# were made from.
MANPAGES_ENGLISH = (("manpages", "6.03-2"), ("manpages-dev", "6.03-2"))
MANPAGES_TRANSLATED = {
    "fr": (("manpages-fr", "4.18.1-1"), ("manpages-fr-dev", "4.18.1-1")),
    "de": (("manpages-de", "4.18.1-1"), ("manpages-de-dev", "4.18.1-1")),
}

# Debian's indices of (translated) package descriptions, fetched with an apt
# configuration of the builder's own (its own lists directory; the system's
# apt configuration, sources and lists are neither read nor touched).
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# SHA-256 of the uncompressed indices the published numbers were made from (the
# bookworm Release file of 11 Jul 2026). Others (a later point release) are used
# with a warning; the builder records the digests it used.
INDEX_SHA256 = {
    "main/binary-amd64/Packages":
        "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f",
    "main/i18n/Translation-en": "62f59c3cdca9786e4f7adf9002f9f5729a684adcb4667e58e448dec9b5a46c7f",
    "main/i18n/Translation-fr": "1b5ce81d2dac68fb27997899d9e092b8281f984baa658c22139d8f2640aec6cc",
    "main/i18n/Translation-de": "adac331fc51f9a00c1b4120b4ac87423be2b1f1615d4f288c7cbc2d5258c0650",
}


def _apt_config(directory: str, languages) -> str:
    """Writes (atomically) the private apt configuration under `directory`; its path."""
    for sub in ("lists/partial", "cache/archives/partial", "etc/parts", "etc/sources.list.d"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    etc = os.path.join(directory, "etc")
    files = {
        "sources.list": (f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {DEBIAN_SUITE} "
                         "main\n"),
        "empty.conf": "",
        "apt.conf": "\n".join([
            f'Dir::Etc::main "{etc}/empty.conf";',
            f'Dir::Etc::parts "{etc}/parts";',
            f'Dir::Etc::SourceList "{etc}/sources.list";',
            f'Dir::Etc::SourceParts "{etc}/sources.list.d";',
            f'Dir::State::Lists "{directory}/lists";',
            f'Dir::Cache "{directory}/cache";',
            'Dir::Cache::pkgcache "";',
            'Dir::Cache::srcpkgcache "";',
            'Acquire::GzipIndexes "false";',
            'Acquire::Languages { ' + " ".join(f'"{code}";' for code in languages) + " };",
            *(['APT::Sandbox::User "root";'] if hasattr(os, "geteuid") and os.geteuid() == 0
              else []),
            "",
        ]),
    }
    for name, text in files.items():
        path = os.path.join(etc, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return os.path.join(etc, "apt.conf")


def _list_file(directory: str, index: str) -> str:
    """Where apt keeps `index` (`main/i18n/Translation-fr`) in the private lists directory."""
    host_path = DEBIAN_MIRROR.split("://", 1)[1].rstrip("/").replace("/", "_")
    return os.path.join(directory, "lists",
                        f"{host_path}_dists_{DEBIAN_SUITE}_{index.replace('/', '_')}")


def release_digests(in_release: str) -> tuple[dict, str]:
    """`({index path: sha256}, Date)` from a Release/InRelease file's SHA256 section."""
    digests, date, section = {}, "", None
    with open(in_release, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("Date:"):
                date = line.split(":", 1)[1].strip()
            if not line.startswith(" "):
                section = line.split(":", 1)[0]
                continue
            parts = line.split()
            if section == "SHA256" and len(parts) == 3:
                digests[parts[2]] = parts[0]
    if not digests:
        raise common_acquire.AcquireError(
            f"{in_release} has no SHA256 list (a damaged Release file); delete it and run again.")
    return digests, date


def fetch_indices(directory: str, languages=("en", "fr", "de"), timeout: float = 600) -> dict:
    """Debian's `Packages` and `Translation-<language>` indices, verified, in `directory`.

    Runs `APT_CONFIG=<directory>/etc/apt.conf apt-get update` once: an apt
    configuration of our own (its own lists and cache, no system parts or
    sources, `Acquire::Languages` set). Each index is checked against the SHA-256
    in the (signature-checked) InRelease file, also when it is found cached; a
    damaged one is deleted and fetched again once.

    Returns:
        `{"files": {index: path}, "sha256": {index: digest}, "date": Release date}`.
    """
    indices = ["main/binary-amd64/Packages",
               *(f"main/i18n/Translation-{code}" for code in languages)]
    in_release = _list_file(directory, "InRelease")
    for attempt in range(2):
        problems = _check_indices(directory, indices, in_release)
        if not problems:
            break
        if attempt:
            raise common_acquire.AcquireError(
                "Debian's indices are still damaged after fetching them again: "
                + "; ".join(problems) + f". Delete {directory} and run again.")
        for path in [p for p in (in_release, *(_list_file(directory, i) for i in indices))
                     if os.path.exists(p)]:
            if any(path in problem for problem in problems) or path == in_release:
                os.remove(path)
        _apt_update(directory, languages, timeout)
    digests, date = release_digests(in_release)
    for index in indices:
        pinned = INDEX_SHA256.get(index)
        if pinned and digests[index] != pinned:
            logging.warning("%s has changed since the published numbers (sha256 %s, pinned %s); "
                            "using it.", index, digests[index], pinned)
    return {"files": {i: _list_file(directory, i) for i in indices},
            "sha256": {i: digests[i] for i in indices}, "date": date}


def _check_indices(directory: str, indices, in_release: str) -> list[str]:
    """What is missing or damaged among the cached indices (empty when all are verified)."""
    if not os.path.isfile(in_release):
        return [f"{in_release} is missing"]
    try:
        digests, _ = release_digests(in_release)
    except common_acquire.AcquireError as err:
        return [str(err)]
    problems = []
    for index in indices:
        path = _list_file(directory, index)
        if index not in digests:
            problems.append(f"{in_release} lists no {index}")
        elif not os.path.isfile(path):
            problems.append(f"{path} is missing")
        elif common_acquire.sha256(path) != digests[index]:
            problems.append(f"{path} does not have the sha256 of {index} in {in_release}")
    return problems


def _apt_update(directory: str, languages, timeout: float) -> None:
    if shutil.which("apt-get") is None:
        raise common_acquire.AcquireError(
            "Building long_translations needs `apt-get` (Debian/Ubuntu) to fetch Debian's "
            f"package description indices. On other systems, {INSTEAD}")
    config = _apt_config(directory, languages)
    command = f"APT_CONFIG={config} apt-get update"
    print(f"Fetching Debian's description indices once: {command}", flush=True)
    try:
        common_acquire.run(["apt-get", "update"], "Fetching Debian's package indices",
                           timeout=timeout, env={**os.environ, "APT_CONFIG": config})
    except common_acquire.AcquireError as err:
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            hint = f"run `sudo env {command}` once as root, then run this again"
        else:
            hint = f"check that {DEBIAN_MIRROR} is reachable and `{command}` works"
        raise common_acquire.AcquireError(f"{err} To fix: {hint}; or {INSTEAD}") from err


def deb_digests(packages_index: str, names) -> dict[tuple[str, str], str]:
    """`{(package, version): sha256}` of the `.deb`s of `names` listed in a `Packages` index."""
    wanted, out, stanza = set(names), {}, {}
    with open(packages_index, encoding="utf-8", errors="replace") as f:
        for line in [*f, "\n"]:
            if line.strip():
                key, _, value = line.partition(":")
                if key in ("Package", "Version", "SHA256"):
                    stanza[key] = value.strip()
                continue
            if stanza.get("Package") in wanted and "SHA256" in stanza:
                out[(stanza["Package"], stanza.get("Version", ""))] = stanza["SHA256"]
            stanza = {}
    return out


def fetch_verified_packages(packages, directory: str, digests: dict,
                            timeout: float = 600) -> dict[str, tuple[str, str]]:
    """`fetch_packages`, then each `.deb` checked against `digests` (`deb_digests`).

    A cached `.deb` whose SHA-256 is not the index's (a damaged download) is
    deleted and fetched again once; still wrong, an `AcquireError` names it.
    Versions the index does not list (an old pin kept in the cache) are taken
    as they are.
    """
    for attempt in range(2):
        debs = fetch_packages(packages, directory, timeout)
        damaged = [path for name, (path, version) in debs.items()
                   if (name, version) in digests
                   and common_acquire.sha256(path) != digests[(name, version)]]
        if not damaged:
            return debs
        if attempt:
            raise common_acquire.AcquireError(
                f"{', '.join(damaged)}: not the SHA-256 that Debian's index lists, even after "
                f"fetching again. Delete them and check the mirror, or {INSTEAD}")
        for path in damaged:
            logging.warning("%s is damaged (SHA-256 differs from the index); fetching it again.",
                            path)
            os.remove(path)
    raise AssertionError("unreachable")

"""What the captioning app fetches: the Noto Color Emoji font, from Debian.

`emoji_scenes` draws real emoji with `NotoColorEmoji.ttf` (Apache-2.0) from the
Debian package `fonts-noto-color-emoji`. `ensure_font` finds it, in this order:

1. the `font_path` given (`--config=font_path=/path/NotoColorEmoji.ttf`);
2. `$NOTO_COLOR_EMOJI_FONT`;
3. the Debian path `/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf`, installing
   the package with `apps.common.acquire.apt_install` when the file is missing and
   this process runs as root (after `apt-get update` when needed); otherwise an
   `AcquireError` says what to install or where to point instead.

The font's SHA-256 (`sha256`) and the package version (`font_package_version`)
go into the dataset's metadata.
"""

from __future__ import annotations

import os

from apps.common import acquire as common_acquire

FONT_PACKAGE = "fonts-noto-color-emoji"
FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_ENV = "NOTO_COLOR_EMOJI_FONT"

sha256 = common_acquire.sha256


def ensure_font(font_path: str | None = None) -> tuple[str, str]:
    """The path of NotoColorEmoji.ttf and how it was found, installing it if it can.

    Raises:
        FileNotFoundError: `font_path` or `$NOTO_COLOR_EMOJI_FONT` is not a file.
        apps.common.acquire.AcquireError (a RuntimeError): the Debian font is
            missing and cannot be installed here; the message names the package
            and the alternatives.
    """
    given = ((font_path, "font_path argument"), (os.environ.get(FONT_ENV), f"${FONT_ENV}"))
    for path, how in given:
        if path:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{how}: {path!r} is not a file (NotoColorEmoji.ttf).")
            return path, how
    if os.path.isfile(FONT_PATH):
        return FONT_PATH, f"Debian package {FONT_PACKAGE}"
    why = f"The emoji_scenes dataset's Noto Color Emoji font ({FONT_PATH})"
    hint = (f"Or point ${FONT_ENV} (or --config=font_path=...) at a copy of "
            "NotoColorEmoji.ttf.")
    try:
        common_acquire.apt_install([FONT_PACKAGE], why=why, hint=hint)
    except common_acquire.AcquireError as err:
        if hint in str(err):
            raise
        raise common_acquire.AcquireError(
            f"{err} Install it by hand (`sudo apt-get install {FONT_PACKAGE}`). {hint}") from err
    if not os.path.isfile(FONT_PATH):
        raise common_acquire.AcquireError(
            f"apt-get installed {FONT_PACKAGE} but {FONT_PATH} is still missing. {hint}")
    return FONT_PATH, f"Debian package {FONT_PACKAGE} (installed with apt-get)"


def font_package_version() -> str:
    """The installed version of the Debian font package, or "unknown"."""
    try:
        proc = common_acquire.run(["dpkg-query", "-W", "-f", "${Version}", FONT_PACKAGE],
                                  f"Reading the version of {FONT_PACKAGE}", timeout=60)
    except common_acquire.AcquireError:
        return "unknown"
    return proc.stdout.strip() or "unknown"

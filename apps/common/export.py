"""Versioned, atomic SavedModel export for TF Serving.

TF Serving polls `<base>/` and loads the highest integer sub-directory, so a
version must appear only when complete: we write into a hidden temporary
directory beside it and `os.rename` it into place (atomic on one filesystem).
A crash or kill leaves at most a `.tmp-*` directory, which Serving ignores and
the next export removes.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable

import tensorflow as tf
from absl import logging

_VERSION = re.compile(r"^\d+$")
_TMP_PREFIX = ".tmp-"


def existing_versions(base: str) -> list[int]:
    """Integer version directories under `base` (complete exports), ascending."""
    if not os.path.isdir(base):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base)
        if _VERSION.match(name) and os.path.isdir(os.path.join(base, name))
    )


def next_version(base: str) -> int:
    versions = existing_versions(base)
    return (versions[-1] + 1) if versions else 1


def _remove_stale_temporaries(base: str, max_age_s: float = 3600.0) -> None:
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name.startswith(_TMP_PREFIX) and os.path.isdir(path):
            pid = name[len(_TMP_PREFIX) :].split("-")[0]
            alive = pid.isdigit() and _pid_alive(int(pid))
            if not alive or time.time() - os.path.getmtime(path) > max_age_s:
                logging.info("Removing an interrupted export: %s", path)
                shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_export(base: str, write: Callable[[str], None], version: int | None = None) -> str:
    """Calls `write(tmp_dir)` and renames `tmp_dir` to `<base>/<version>`.

    Args:
        base: the model base path TF Serving watches (`saved_models/<app>`).
        write: writes a complete SavedModel into the directory it is given.
        version: the version number; default one more than the highest present.

    Returns:
        The final version directory.
    """
    os.makedirs(base, exist_ok=True)
    _remove_stale_temporaries(base)
    version = next_version(base) if version is None else int(version)
    final = os.path.join(base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"Export version {final} exists already; pick another version.")
    tmp = os.path.join(base, f"{_TMP_PREFIX}{os.getpid()}-{version}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if not tf.io.gfile.exists(os.path.join(tmp, "saved_model.pb")):
            raise RuntimeError(f"The export writer left no saved_model.pb in {tmp}.")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logging.info("Exported SavedModel version %d to %s", version, final)
    return final


def save_module(module: tf.Module, signatures: dict, base: str, version: int | None = None) -> str:
    """Exports a `tf.Module` with named signatures (e.g. {"serving_default": fn}) atomically."""

    def write(path):
        tf.saved_model.save(module, path, signatures=signatures)

    return atomic_export(base, write, version)

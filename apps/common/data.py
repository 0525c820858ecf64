"""Dataset cache: where prepared tfds datasets live, and building them safely.

Every embedded dataset is a `tfds.core.GeneratorBasedBuilder` of the project's
own. `prepare` builds it once under the data dir, records a checksum of every
file it wrote, and on later runs verifies them: a corrupt or truncated cache is
rebuilt with a message instead of failing with a stack trace mid-training.
"""

from __future__ import annotations

import json
import os
import shutil

import tensorflow_datasets as tfds
from absl import logging

from apps.common.acquire import sha256

_CHECKSUMS = "keras_attention_checksums.json"


def data_dir(flag_value: str | None = None) -> str:
    """`--data_dir`, else `$KERAS_ATTENTION_DATA`, else `~/.cache/keras_attention/datasets`."""
    path = (
        flag_value
        or os.environ.get("KERAS_ATTENTION_DATA")
        or os.path.join(os.path.expanduser("~"), ".cache", "keras_attention", "datasets")
    )
    os.makedirs(path, exist_ok=True)
    return path


def _files(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name == _CHECKSUMS:
                continue
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = sha256(full)
    return out


def _verify(root: str) -> str | None:
    """None when every recorded file is present and intact, else what is wrong."""
    record = os.path.join(root, _CHECKSUMS)
    if not os.path.exists(record):
        return "it has no checksum record (an interrupted build?)"
    try:
        with open(record, encoding="utf-8") as f:
            expected = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        return f"its checksum record is unreadable ({err})"
    for rel, digest in expected.items():
        full = os.path.join(root, rel)
        if not os.path.exists(full):
            return f"{rel} is missing"
        if sha256(full) != digest:
            return f"{rel} does not match its checksum"
    return None


def prepare(builder_cls, data_dir: str, config: str | None = None, **builder_kwargs):
    """Builds (once) and returns a verified tfds builder of the project's own.

    Args:
        builder_cls: a `tfds.core.GeneratorBasedBuilder` subclass.
        data_dir: the cache root (see `data_dir`).
        config: the builder config name, or None for the default.
        **builder_kwargs: passed to the builder's constructor.
    """

    def make():
        kwargs = dict(builder_kwargs)
        if config is not None:
            kwargs["config"] = config
        return builder_cls(data_dir=data_dir, **kwargs)

    try:
        builder = make()
    except Exception as err:  # An unreadable dataset_info.json and the like.
        root = os.path.join(data_dir, builder_cls.name)
        logging.warning("Dataset cache under %s is unreadable (%s); rebuilding it.", root, err)
        shutil.rmtree(root, ignore_errors=True)
        builder = make()
    root = builder.data_dir
    if os.path.isdir(root) and os.path.exists(os.path.join(root, "dataset_info.json")):
        problem = _verify(root)
        if problem is not None:
            logging.warning("Dataset cache %s is corrupt: %s. Rebuilding it.", root, problem)
            print(f"Dataset cache {root} is corrupt ({problem}); rebuilding it.", flush=True)
            shutil.rmtree(root, ignore_errors=True)
            builder = make()
    builder.download_and_prepare()
    if not os.path.exists(os.path.join(root, _CHECKSUMS)):
        with open(os.path.join(root, _CHECKSUMS), "w", encoding="utf-8") as f:
            json.dump(_files(root), f, indent=1, sort_keys=True)
    return builder


def online_builder(name: str, data_dir: str):
    """A public tfds dataset by name (needs the network the first time)."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    except Exception as err:
        raise RuntimeError(
            f"Could not prepare tfds dataset {name!r} under {data_dir}: {err}. Public tfds "
            "datasets are downloaded on first use, which needs network access; use the "
            "app's embedded default dataset offline."
        ) from err
    return builder

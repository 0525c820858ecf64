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

import numpy as np
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


WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def write_warmup_requests(export_path: str, model_name: str, requests) -> str:
    """Writes TF Serving warmup records (PredictionLog) into a SavedModel directory.

    TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads a
    version, so the first real request does not pay for graph warm-up.

    Args:
        export_path: the SavedModel directory.
        model_name: the name the model is served under (the base path's name).
        requests: iterable of `(signature_name, {input_name: array-like})`.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(export_path, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def save_module(module: tf.Module, signatures: dict, base: str, version: int | None = None,
                warmup=None) -> str:
    """Exports a `tf.Module` with named signatures (e.g. {"serving_default": fn}) atomically.

    `warmup`, when given, is a list of `(signature_name, {input: value})` written as
    TF Serving warmup requests inside the version before it becomes visible.
    """

    def write(path):
        tf.saved_model.save(module, path, signatures=signatures)
        if warmup:
            write_warmup_requests(path, os.path.basename(os.path.normpath(base)), warmup)

    return atomic_export(base, write, version)


def warmup_png(height: int = 64, width: int = 64, seed: int = 0) -> bytes:
    """A small noise RGB PNG, for image apps' warmup requests."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def warmup_wav(samples: int = 16000, rate: int = 16000, seed: int = 0) -> bytes:
    """Quiet mono noise as 16-bit PCM WAV bytes, for audio apps' warmup requests."""
    rng = np.random.default_rng(seed)
    audio = (0.01 * rng.standard_normal((samples, 1))).astype(np.float32)
    return tf.audio.encode_wav(audio, rate).numpy()


def read_warmup_requests(export_path: str) -> list:
    """The `(signature_name, {input: np.ndarray})` pairs stored as warmup requests."""
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    for record in tf.data.TFRecordDataset(os.path.join(export_path, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        out.append((request.model_spec.signature_name, inputs))
    return out

"""The one serving path of every app: `ServingModule`, and versioned, atomic export.

Every app's SavedModel is a `ServingModule` subclass that declares its
signatures (`signatures()`) and its warmup requests (`warmup_requests()`);
`export(module, base)` does the rest, once for all apps:

- **Variables for every loader.** Keras 3 keeps its `tf.Variable`s behind
  `keras.Variable` wrappers that `tf.saved_model.save` reaches only through the
  TF2 object graph. TF2's `tf.saved_model.load` finds them; TF1-style loaders
  (TF Serving's C++ `LoadSavedModel`, `saved_model_cli run`,
  `tf.compat.v1.saved_model.loader.load`) restore variables through the
  SavedModel's saver and failed with "Could not find variable ..."
  (keras-team/keras#19274). `export` saves, in place of the module, an
  `export_root` holding the `tf.Variable` under every Keras variable reachable
  from it (and its lookup tables), so the saver restores them all, each stored
  once.
- **Every signature warmed up.** TF Serving replays
  `assets.extra/tf_serving_warmup_requests` when it loads a version; `export`
  writes them and refuses a module whose warmup leaves a signature out.
- **Bounded requests.** `ServingModule.check_batch` rejects a request of more
  than `max_batch_size` items (an `InvalidArgumentError` naming the input);
  `saved_models/batching_parameters.txt` batches at most that many.
- **Atomic and durable versions.** TF Serving polls `<base>/` and loads the
  highest integer sub-directory, so a version must appear only when complete:
  it is written into a hidden temporary directory beside it, every file and
  directory is fsync'ed, and it is renamed into place (atomic on one
  filesystem), then `<base>` is fsync'ed. A crash or kill leaves at most a
  `.tmp-*` directory, which Serving ignores and the next export removes; a
  power loss cannot leave a complete-looking version with empty files.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable

import keras
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


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(root: str) -> None:
    """fsyncs every file under `root`, then every directory, deepest first."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(directory)


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
        sync_tree(tmp)
        os.rename(tmp, final)
        _fsync_dir(base)
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


def _export_state(obj, seen: set, variables: list, resources: list) -> None:
    """Collects into `variables` every `tf.Variable` (the one under each Keras variable)
    and into `resources` every lookup table or asset reachable from `obj` through
    modules, Keras layers, lists, tuples and dicts, each once."""
    if isinstance(obj, keras.Variable):
        obj = getattr(obj, "value", obj)
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, tf.Variable):
        variables.append(obj)
        return
    if isinstance(obj, (tf.saved_model.experimental.TrackableResource, tf.saved_model.Asset)):
        resources.append(obj)
        return
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif isinstance(obj, (tf.Module, keras.Layer)):
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        _export_state(child, seen, variables, resources)


def export_root(module: tf.Module) -> tf.Module:
    """The object `save_module` saves in place of `module`: the `tf.Variable`s and lookup
    tables its Keras layers and attributes hold, and nothing else.

    The workaround for keras-team/keras#19274 (see the module docstring): TF1-style
    loaders, TF Serving's among them, restore only `tf.Variable`s the saver sees. The
    Keras objects themselves stay out: a `keras.Variable` saves its value under its own
    checkpoint key, so tracking both it and its `tf.Variable` stored every weight twice.
    Loaded back (`tf.saved_model.load`), the SavedModel answers through its
    signatures; its `weights` list the variables, and the module's public `tf.Variable`
    and `tf.function` attributes (not its class's methods) keep their names.
    """
    variables, resources = [], []
    _export_state(module, set(), variables, resources)
    root = tf.Module(name=type(module).__name__)
    # Lists set on a tf.Module are tracked by its checkpointing (ListWrappers).
    root.weights = variables
    root.resources = resources
    for name, value in vars(module).items():  # what clients read by name, e.g. class_names
        if not name.startswith("_") and isinstance(value, (tf.Variable, tf.types.experimental.
                                                           GenericFunction)):
            setattr(root, name, value)
    return root


def save_module(module: tf.Module, signatures: dict, base: str, version: int | None = None,
                warmup=None) -> str:
    """Exports a `tf.Module` with named signatures (e.g. {"serving_default": fn}) atomically.

    What is saved is `export_root(module)`: every weight once, restorable by every
    loader, TF Serving's included. `warmup`, when given, is a list of
    `(signature_name, {input: value})` written as TF Serving warmup requests inside the
    version before it becomes visible.
    """
    root = export_root(module)
    # Traced while `module` still answers for them (a signature may be a method of it).
    concrete = {name: fn.get_concrete_function() if hasattr(fn, "get_concrete_function")
                else fn for name, fn in signatures.items()}

    def write(path):
        tf.saved_model.save(root, path, signatures=concrete)
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


MAX_BATCH_SIZE = 256


class ServingModule(tf.Module):
    """The base of every app's SavedModel: signatures, warmup requests, request limits.

    A subclass holds its Keras models and tokenizers as attributes and defines:

    - `signatures()`: `{signature_name: tf.function with an input_signature, or a
      concrete function}`, `"serving_default"` among them;
    - `warmup_requests()`: `[(signature_name, {input_name: value})]`, at least one
      per signature (TF Serving replays them when it loads the version).

    Its signature functions call `check_batch(tensor, name)` on their batched
    input, and `check_finite(probabilities, name)` before turning scores into a
    label. `export(module, base)` saves it.
    """

    #: The most items one request may hold (`check_batch`); the batching
    #: parameters' `max_batch_size` must not exceed it.
    max_batch_size = MAX_BATCH_SIZE

    def signatures(self) -> dict:
        raise NotImplementedError

    def warmup_requests(self) -> list:
        raise NotImplementedError

    def check_batch(self, tensor: tf.Tensor, name: str, limit: int | None = None) -> tf.Tensor:
        """`tensor`, after checking its batch (first) dimension is at most `limit`
        (default `max_batch_size`; a signature that does more per item may allow fewer)."""
        limit = self.max_batch_size if limit is None else int(limit)
        batch = tf.shape(tensor)[0]
        check = tf.debugging.Assert(batch <= limit, [tf.strings.format(
            name + " holds {} items; this model answers at most {} per request: split the batch.",
            (batch, limit))])
        with tf.control_dependencies([check]):
            return tf.identity(tensor)

    @staticmethod
    def check_finite(scores: tf.Tensor, name: str) -> tf.Tensor:
        """`scores`, after checking they are finite: a NaN or Inf never becomes a label.

        The last guard after each app's input checks; `name` is the input that
        produced them.
        """
        bad = tf.where(tf.logical_not(tf.reduce_all(
            tf.math.is_finite(scores), axis=tf.range(1, tf.rank(scores)))))
        check = tf.debugging.Assert(tf.equal(tf.size(bad), 0), [tf.strings.format(
            name + "[{}] gave non-finite scores (NaN or Inf); the input is out of the range the "
            "model was built for.", (tf.reduce_max(tf.concat([[-1], bad[:1, 0]], 0)),))])
        with tf.control_dependencies([check]):
            return tf.identity(scores)


def export(module: ServingModule, base: str, version: int | None = None) -> str:
    """Saves `module` as `<base>/<version>/` with its signatures and warmup requests.

    Atomic (see `atomic_export`); every signature must have a warmup request.
    Returns the version directory.
    """
    signatures = module.signatures()
    if "serving_default" not in signatures:
        raise ValueError(f"{type(module).__name__}.signatures() has no 'serving_default'; "
                         f"it has {sorted(signatures)}.")
    warmup = list(module.warmup_requests())
    unwarmed = sorted(set(signatures) - {name for name, _ in warmup})
    if unwarmed:
        raise ValueError(f"{type(module).__name__}.warmup_requests() leaves out the signatures "
                         f"{unwarmed}; TF Serving replays one request per signature at load.")
    unknown = sorted({name for name, _ in warmup} - set(signatures))
    if unknown:
        raise ValueError(f"Warmup requests name unknown signatures {unknown}.")
    return save_module(module, signatures, base, version=version, warmup=warmup)

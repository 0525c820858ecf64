"""Training glue every app uses: seeds, run directories, callbacks, timed fit.

A run killed at any point (SIGKILL included) and started again with the same
command resumes after its last finished epoch and ends as if it had never been
interrupted:
- `CrashSafeBackupAndRestore` (Keras' BackupAndRestore, each file replaced
  atomically) keeps the weights, optimizer and epoch;
- `ResumableHistory` keeps every epoch's logs and the training seconds, so
  `timed_fit` returns the history and the time of the whole run;
- `ResumableEarlyStopping` keeps EarlyStopping's best value, wait count, best
  epoch and best weights, so patience and `restore_best_weights` span the runs.
Their state lives in the BackupAndRestore directory (`<model_dir>/backup`),
which BackupAndRestore deletes when `fit` completes: the next run starts clean.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import keras
from absl import logging

FINAL_WEIGHTS = "final.weights.h5"
BACKUP_DIR = "backup"  # BackupAndRestore's directory under the run directory
HISTORY_STATE = "history_state.json"  # in the BackupAndRestore directory


def set_seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def run_dir(flag_value: str | None, app: str) -> str:
    path = flag_value or os.path.join("runs", app)
    os.makedirs(path, exist_ok=True)
    return path


def resumes(model_dir: str | None) -> bool:
    """Whether a `timed_fit` in `model_dir` resumes an interrupted run (a backup is there).

    What the interrupted run derived from its data with a trainer that is not
    deterministic (a WordPiece vocabulary: `tokenizers` breaks ties in hash order,
    so two trainings on the same texts order the pieces differently) must then be
    read back from the run directory, not made again, or the restored weights
    would meet other ids.
    """
    if not model_dir:
        return False
    path = os.path.join(model_dir, BACKUP_DIR)
    return os.path.isdir(path) and any(n.endswith(".weights.h5") for n in os.listdir(path))


def callbacks(model_dir: str, backup: bool = True, tensorboard: bool = True) -> list:
    """BackupAndRestore (resume after a kill, per epoch) and TensorBoard under `model_dir`."""
    out = []
    if backup:
        # double_checkpoint: a kill while the latest checkpoint is being written
        # leaves the previous one, which the next run falls back to.
        out.append(CrashSafeBackupAndRestore(os.path.join(model_dir, BACKUP_DIR),
                                             double_checkpoint=True))
    if tensorboard:
        out.append(
            keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), update_freq="epoch")
        )
    return out


# --- Crash-safe files --------------------------------------------------------------------------


def _tmp_tag() -> str:
    """Unique per process, so two writers never share a temporary file."""
    return f"tmp-{socket.gethostname()}-{os.getpid()}"


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: str, path: str) -> None:
    """Moves `tmp`, written and fsynced, onto `path`: after a crash, `path` is the old or the
    new file, never a part of one."""
    os.replace(tmp, path)
    _fsync_path(os.path.dirname(path) or ".")  # the rename itself survives a power cut


def _write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{_tmp_tag()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    _publish(tmp, path)


def _read_json(path: str) -> dict:
    """The JSON object at `path`, or {} when there is none (or it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logging.warning("Ignoring unreadable training state %s: %s", path, err)
        return {}


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- Resumable callbacks -----------------------------------------------------------------------


class CrashSafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose files are each replaced atomically.

    Keras 3.15 writes `training_metadata.json` in place (open for writing, then
    write): a kill between the two leaves an empty file, and the next run then
    fails in `json.loads` with a ValueError, which its double-checkpoint fallback
    (it catches OSError only) does not cover, so the run could never resume.
    Here the weights and the metadata are written to temporary files, fsynced
    and renamed over the old ones (weights first), and the previous pair kept by
    `double_checkpoint` is copied the same way: after a kill at any instant each
    file is a whole old or a whole new one.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for src, dst in ((self._weights_path, self._prev_weights_path),
                             (self._training_metadata_path, self._prev_training_metadata_path)):
                if os.path.exists(src):
                    tmp = f"{dst}.{_tmp_tag()}"
                    shutil.copyfile(src, tmp)
                    _fsync_path(tmp)
                    _publish(tmp, dst)
        stem = self._weights_path[: -len(".weights.h5")]
        tmp = f"{stem}.{_tmp_tag()}.weights.h5"  # save_weights wants the suffix
        self.model.save_weights(tmp, overwrite=True)
        _fsync_path(tmp)
        _publish(tmp, self._weights_path)
        _write_json(self._training_metadata_path,
                    {"epoch": self._current_epoch, "batch": self._last_batch_seen})

#
# Both keep their state beside BackupAndRestore's checkpoint, keyed by epoch, and both must run
# before BackupAndRestore at each epoch end (timed_fit orders them): a kill between their write
# and the checkpoint then leaves state for an epoch that the next run trains again, which
# `resume` drops; the other order would lose that epoch. `resume(epoch)` is called once
# BackupAndRestore has restored, with the epoch `fit` continues at (0 for a fresh run, so state
# a finished or abandoned run left behind is never merged).
#
# Multi-worker: like BackupAndRestore, every worker writes its own state (each worker needs it
# to make the same stopping decision after a restart; the logged values are all-reduced, so the
# files agree). Give each worker its own model_dir, as BackupAndRestore's directory must not be
# shared.


class ResumableHistory(keras.callbacks.Callback):
    """Every epoch's logs and the cumulative training seconds, in `<state_dir>/history_state.json`.

    After a resume, `previous_epochs` / `previous_seconds` are what earlier runs trained, and
    `merge_into(history)` puts their logs in front of this run's in a Keras `History`.
    """

    def __init__(self, state_dir: str, start: float | None = None):
        super().__init__()
        self.path = os.path.join(state_dir, HISTORY_STATE)
        self._start = start
        self.records: dict[int, dict] = {}  # epoch -> {"logs": {...}, "seconds": cumulative}
        self.previous_epochs: list[int] = []
        self.previous_seconds = 0.0

    def on_train_begin(self, logs=None):
        if self._start is None:
            self._start = time.perf_counter()
        self.records, self.previous_epochs, self.previous_seconds = {}, [], 0.0

    def resume(self, epoch: int) -> bool:
        saved = _read_json(self.path).get("epochs", {})
        self.records = {int(e): r for e, r in saved.items() if int(e) < epoch}
        self.previous_epochs = sorted(self.records)
        self.previous_seconds = (
            float(self.records[self.previous_epochs[-1]]["seconds"]) if self.records else 0.0
        )
        if self.previous_epochs != list(range(epoch)):
            logging.warning("Resuming at epoch %d with the history of epochs %s only",
                            epoch, self.previous_epochs)
        return False

    def on_epoch_end(self, epoch, logs=None):
        self.records[epoch] = {
            "logs": {k: _to_float(v) for k, v in (logs or {}).items()},
            "seconds": self.previous_seconds + time.perf_counter() - self._start,
        }
        _write_json(self.path, {"epochs": {str(e): self.records[e] for e in sorted(self.records)}})

    def merge_into(self, history) -> None:
        """Prepends the earlier runs' epochs to `history.history` and `history.epoch`."""
        merged: dict[str, list] = {}
        for e in self.previous_epochs:
            for k, v in self.records[e]["logs"].items():
                merged.setdefault(k, []).append(v)
        for k, values in history.history.items():
            merged.setdefault(k, []).extend(values)
        history.history = merged
        history.epoch = self.previous_epochs + list(getattr(history, "epoch", []))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose state outlives a kill.

    Each epoch it writes its best value, wait count, best epoch and whether it stopped
    training to `<state_dir>/<name>.json`, and, when the best weights change (with
    `restore_best_weights`), the weights to `<state_dir>/<name>.best-<epoch>.weights.h5`.
    A resumed run continues from there: patience counts across the runs and the weights
    restored at the end are those of the best epoch of all of them. A run killed after this
    callback stopped training trains no further epoch when started again.

    `state_dir` defaults to the BackupAndRestore directory: `timed_fit` fills it in, orders the
    callbacks and calls `resume`. Outside `timed_fit` nothing calls `resume`, so it restores
    nothing and acts as EarlyStopping.
    """

    KEEP = 3  # snapshots kept: BackupAndRestore resumes at most one epoch behind the newest

    def __init__(self, state_dir: str | None = None, name: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.state_dir = state_dir
        self.name = name or f"early_stopping.{self.monitor}"
        self._snapshots: dict[int, dict] = {}  # epochs done -> state after them
        self._best_file = None

    def _path(self, filename: str) -> str:
        return os.path.join(self.state_dir, filename)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._snapshots, self._best_file = {}, None

    def resume(self, epoch: int) -> bool:
        """Restores the state after `epoch` epochs; True when training had stopped by then."""
        if not self.state_dir:
            return False
        saved = _read_json(self._path(f"{self.name}.json")).get("snapshots", {})
        self._snapshots = {int(k): v for k, v in saved.items() if int(k) <= epoch}
        state = self._snapshots.get(epoch)
        if epoch == 0 or state is None:
            if epoch:
                logging.warning("%s: no state for epoch %d; starting afresh", self.name, epoch)
            self._snapshots = {}
            return False
        self.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self._best_file = state["best_weights"]
        if self._best_file:
            # Read through the model (the file is Keras's format), then put its weights back.
            current = self.model.get_weights()
            self.model.load_weights(self._path(self._best_file),
                                    objects_to_skip=[self.model.optimizer])
            self.best_weights = self.model.get_weights()
            self.model.set_weights(current)
        return bool(state["stopped"])

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if not self.state_dir:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        if self.restore_best_weights and self.best_weights is not None \
                and self.best_epoch == epoch:
            # The model holds the weights just taken as the best ones.
            self._best_file = f"{self.name}.best-{epoch:05d}.weights.h5"
            tmp = self._path(f"{self.name}.{_tmp_tag()}.weights.h5")
            self.model.save_weights(tmp)
            _fsync_path(tmp)
            _publish(tmp, self._path(self._best_file))
        self._snapshots[epoch + 1] = {
            "best": _to_float(self.best), "wait": int(self.wait),
            "best_epoch": int(self.best_epoch), "stopped_epoch": int(self.stopped_epoch),
            "stopped": bool(self.model.stop_training), "best_weights": self._best_file,
        }
        for old in sorted(self._snapshots)[:-self.KEEP]:
            del self._snapshots[old]
        _write_json(self._path(f"{self.name}.json"),
                    {"snapshots": {str(k): v for k, v in sorted(self._snapshots.items())}})
        # Best weights no kept snapshot refers to are never needed again.
        needed = {s["best_weights"] for s in self._snapshots.values()}
        for filename in os.listdir(self.state_dir):
            if (filename.startswith(f"{self.name}.best-") and filename.endswith(".weights.h5")
                    and filename not in needed):
                try:
                    os.remove(self._path(filename))
                except FileNotFoundError:
                    pass


class _ResumeAfterBackup(keras.callbacks.Callback):
    """Placed right after BackupAndRestore: once it has restored, tells the resumable callbacks
    the epoch `fit` continues at; skips the remaining epochs when training had already stopped."""

    def __init__(self, resumables, initial_epoch: int = 0):
        super().__init__()
        self._resumables = resumables
        self._initial_epoch = initial_epoch

    def on_train_begin(self, logs=None):
        # BackupAndRestore resumes `fit` through this attribute (Keras 3.15's trainer).
        epoch = self.model._initial_epoch or self._initial_epoch
        stopped = [cb.resume(epoch) for cb in self._resumables]
        if any(stopped):
            self.model._initial_epoch = max(epoch, self.params["epochs"])


def _resumable(cbs: list, start: float, initial_epoch: int):
    """With a BackupAndRestore among `cbs`: the callbacks in the order resuming needs, and the
    ResumableHistory added; else `cbs` unchanged and None."""
    backup = next((cb for cb in cbs if isinstance(cb, keras.callbacks.BackupAndRestore)), None)
    if backup is None:
        return cbs, None
    stoppers = [cb for cb in cbs if isinstance(cb, ResumableEarlyStopping)]
    for cb in stoppers:
        if cb.state_dir is None:
            cb.state_dir = backup.backup_dir
    history = ResumableHistory(backup.backup_dir, start)
    resumables = [history, *stoppers]
    rest = [cb for cb in cbs if not isinstance(cb, ResumableEarlyStopping)]
    after = rest.index(backup) + 1
    ordered = [*resumables, *rest[:after], _ResumeAfterBackup(resumables, initial_epoch),
               *rest[after:]]
    return ordered, history


def timed_fit(model, train, validation=None, epochs=1, model_dir=None, extra_callbacks=(),
              verbose="auto", **kwargs):
    """`model.fit` with the standard callbacks; returns (history, seconds).

    With `model_dir`, training resumes from `<model_dir>/backup` after a kill
    (BackupAndRestore, per epoch), and the final weights are saved to
    `<model_dir>/final.weights.h5`. Whenever a BackupAndRestore is used (from
    `model_dir` or in `extra_callbacks`), a resumed run returns the history of
    every epoch and the seconds of all runs together, and each
    `ResumableEarlyStopping` in `extra_callbacks` keeps its state in the backup
    directory.
    """
    cbs = list(extra_callbacks)
    if model_dir:
        cbs = callbacks(model_dir) + cbs
    start = time.perf_counter()
    cbs, resumable_history = _resumable(cbs, start, kwargs.get("initial_epoch", 0))
    # Keras never clears the epoch BackupAndRestore (or _ResumeAfterBackup) resumed at: a later
    # fit of the same model would start there.
    model._initial_epoch = None
    try:
        history = model.fit(
            train, validation_data=validation, epochs=epochs, callbacks=cbs, verbose=verbose,
            **kwargs,
        )
    finally:
        model._initial_epoch = None
    seconds = time.perf_counter() - start
    if resumable_history is not None:
        seconds += resumable_history.previous_seconds
        resumable_history.merge_into(history)
    if model_dir:
        # The trained weights, on every worker (a multi-worker run can compare them).
        model.save_weights(os.path.join(model_dir, FINAL_WEIGHTS))
    return history, seconds

"""A killed `timed_fit` run, started again, ends as if it had never been interrupted.

A one-layer model on random data, `shuffle=False`, so two runs with the same seed train
identically and an interrupted run can be compared with an uninterrupted one number for
number. Kills are an exception raised at the end of an epoch (after BackupAndRestore's
checkpoint, or between the resumable callbacks' state and the checkpoint), and one real
SIGKILL of a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from apps.common import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
EPOCHS = 6
# The monitored value per epoch in the early-stopping tests: best at epoch 2, then 4 epochs
# without improvement (patience 4) stop training after epoch 6. A run that forgot epoch 2
# would see 2.5, 2.0, 1.5, ... improve and train all 10 epochs.
SCORES = [5.0, 4.0, 1.0, 3.0, 2.5, 2.0, 1.5, 1.2, 1.1, 1.05]
BEST, STOP = 2, 6


class Killed(Exception):
    pass


class Kill(keras.callbacks.Callback):
    """Ends the run at the end of epoch `epoch`: an exception, or a real SIGKILL."""

    def __init__(self, epoch, sigkill=False):
        super().__init__()
        self.epoch, self.sigkill = epoch, sigkill

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            if self.sigkill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Killed(epoch)


class Record(keras.callbacks.Callback):
    """The epochs this run trained and the weights after each."""

    def __init__(self):
        super().__init__()
        self.epochs, self.weights = [], {}

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.weights[epoch] = self.model.get_weights()


class ScheduledStopping(training.ResumableEarlyStopping):
    """Early stopping on `SCORES[epoch]` (a copy of the logs, as the history must not see it)."""

    def __init__(self, **kwargs):
        super().__init__(monitor="score", mode="min", patience=4, restore_best_weights=True,
                         **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, {**(logs or {}), "score": SCORES[epoch]})


def fit(model_dir=None, epochs=EPOCHS, extra=()):
    """`timed_fit` from a fresh model, as a restarted process would run it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1)) + 0.1 * rng.normal(size=(320, 1))).astype("float32")
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.02), "mse", metrics=["mae"])
    history, seconds = training.timed_fit(
        model, x[:256], (x[256:], y[256:]), epochs=epochs, model_dir=model_dir,
        extra_callbacks=list(extra), verbose=0, y=y[:256], batch_size=64, shuffle=False,
    )
    return model, history, seconds


def backup_callbacks(tmp_path, name):
    """A BackupAndRestore passed in (as keyword spotting does), so a callback can go before it."""
    return training.CrashSafeBackupAndRestore(str(tmp_path / name / "backup"),
                                              double_checkpoint=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    _, history, _ = fit(str(tmp_path_factory.mktemp("reference")))
    return history


@pytest.fixture(scope="module")
def stopping_reference(tmp_path_factory):
    """An uninterrupted early-stopped run, and the weights after every epoch."""
    record, stopper = Record(), ScheduledStopping()
    model, history, _ = fit(str(tmp_path_factory.mktemp("stop_reference")), epochs=len(SCORES),
                            extra=[stopper, record])
    assert history.epoch == list(range(STOP + 1)) and stopper.stopped_epoch == STOP
    for got, want in zip(model.get_weights(), record.weights[BEST], strict=True):
        np.testing.assert_array_equal(got, want)
    return history, record.weights


def assert_same_history(history, reference):
    assert history.epoch == reference.epoch
    assert list(history.history) == list(reference.history)
    for key, values in reference.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("kill_before_checkpoint", [False, True])
def test_resumed_run_returns_every_epoch_and_all_seconds(tmp_path, reference,
                                                         kill_before_checkpoint):
    kill = 2
    if kill_before_checkpoint:
        # The state of epoch 2 is written, its checkpoint is not: epoch 2 is trained again
        # and must appear once.
        first = [Kill(kill), backup_callbacks(tmp_path, "run")]
        again = [backup_callbacks(tmp_path, "run")]
        model_dir, resumes_at = None, kill
    else:
        first, again, model_dir, resumes_at = [Kill(kill)], [], str(tmp_path / "run"), kill + 1
    start = time.perf_counter()
    with pytest.raises(Killed):
        fit(model_dir, extra=first)
    first_seconds = time.perf_counter() - start
    state = json.loads((tmp_path / "run" / "backup" / training.HISTORY_STATE).read_text())
    assert sorted(map(int, state["epochs"])) == list(range(kill + 1))

    previous = state["epochs"][str(resumes_at - 1)]["seconds"]  # up to the checkpoint
    assert 0 < previous < first_seconds

    record = Record()
    start = time.perf_counter()
    _, history, seconds = fit(model_dir, extra=[*again, record])
    own = time.perf_counter() - start
    assert record.epochs == list(range(resumes_at, EPOCHS))
    assert_same_history(history, reference)
    assert previous < seconds <= previous + own  # this run's seconds added to the first's
    assert not (tmp_path / "run" / "backup").exists()


def run_killed_by_sigkill(model_dir, epoch):
    """This module's `fit` with early stopping in a subprocess that SIGKILLs itself after
    `epoch`'s checkpoint."""
    code = (
        "import sys; from tests.apps.common import test_training as t\n"
        "t.fit(sys.argv[1], epochs=len(t.SCORES),\n"
        "      extra=[t.ScheduledStopping(), t.Kill(int(sys.argv[2]), sigkill=True)])\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code, model_dir, str(epoch)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.mark.parametrize("kill, how", [(4, "sigkill"), (4, "before_checkpoint"),
                                       (STOP, "after_stopping")])
def test_early_stopping_spans_the_kill(tmp_path, stopping_reference, kill, how):
    """Patience counts across the runs and the best epoch (in the first run) is restored."""
    reference, weights = stopping_reference
    if how == "sigkill":
        run_killed_by_sigkill(str(tmp_path / "run"), kill)
        model_dir, again, resumes_at = str(tmp_path / "run"), [], kill + 1
    elif how == "before_checkpoint":
        with pytest.raises(Killed):
            fit(None, len(SCORES), [ScheduledStopping(), Kill(kill),
                                    backup_callbacks(tmp_path, "run")])
        model_dir, again, resumes_at = None, [backup_callbacks(tmp_path, "run")], kill
    else:  # killed after the stopping decision and its checkpoint, before fit returned
        with pytest.raises(Killed):
            fit(str(tmp_path / "run"), len(SCORES), [ScheduledStopping(), Kill(kill)])
        model_dir, again, resumes_at = str(tmp_path / "run"), [], kill + 1
    backup = tmp_path / "run" / "backup"
    best_files = sorted(p.name for p in backup.glob("*.best-*.weights.h5"))
    assert best_files == [f"early_stopping.score.best-{BEST:05d}.weights.h5"]

    record, stopper = Record(), ScheduledStopping()
    model, history, _ = fit(model_dir, len(SCORES), [*again, stopper, record])
    assert record.epochs == list(range(resumes_at, STOP + 1))  # none after stopping
    assert stopper.stopped_epoch == STOP and stopper.best_epoch == BEST
    assert_same_history(history, reference)
    for got, want in zip(model.get_weights(), weights[BEST], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not backup.exists()


def test_completed_run_leaves_nothing_to_merge(tmp_path):
    model_dir = str(tmp_path / "run")
    _, history, _ = fit(model_dir, epochs=3)
    backup = tmp_path / "run" / "backup"
    assert history.epoch == [0, 1, 2] and not backup.exists()
    # Even state left behind without BackupAndRestore's checkpoint (a kill while the
    # finished run deleted the backup) is not merged into a fresh run.
    backup.mkdir()
    (backup / training.HISTORY_STATE).write_text(json.dumps(
        {"epochs": {"0": {"logs": {"loss": 1.0}, "seconds": 1000.0}}}))
    start = time.perf_counter()
    _, history, seconds = fit(model_dir, epochs=3)
    assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3
    assert seconds <= time.perf_counter() - start
    assert not backup.exists()


def test_backup_metadata_survives_a_kill_while_it_is_written(tmp_path, monkeypatch):
    """Keras' own callback truncates training_metadata.json before writing it, so a kill
    in between left an empty file that no later run could read (json.loads ValueError);
    the crash-safe one writes a temporary file and renames it."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = training.CrashSafeBackupAndRestore(str(tmp_path / "backup"), double_checkpoint=True)
    backup.set_model(model)
    backup.on_epoch_end(0)
    metadata = tmp_path / "backup" / "training_metadata.json"
    assert json.loads(metadata.read_text())["epoch"] == 1

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(training.json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1)
    monkeypatch.undo()
    assert json.loads(metadata.read_text())["epoch"] == 1  # the whole old file, not a part
    assert sorted(p.name for p in metadata.parent.iterdir() if "tmp-" not in p.name) == [
        "latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
        "training_metadata.json.bkp"]
    resumed = training.CrashSafeBackupAndRestore(str(tmp_path / "backup"), double_checkpoint=True)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert model._initial_epoch == 1

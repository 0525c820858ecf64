"""Training glue every app uses: seeds, run directories, callbacks, timed fit."""

from __future__ import annotations

import os
import time

import keras

FINAL_WEIGHTS = "final.weights.h5"


def set_seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def run_dir(flag_value: str | None, app: str) -> str:
    path = flag_value or os.path.join("runs", app)
    os.makedirs(path, exist_ok=True)
    return path


def callbacks(model_dir: str, backup: bool = True, tensorboard: bool = True) -> list:
    """BackupAndRestore (resume after a kill, per epoch) and TensorBoard under `model_dir`."""
    out = []
    if backup:
        # double_checkpoint: a kill while the latest checkpoint is being written
        # leaves the previous one, which the next run falls back to.
        out.append(keras.callbacks.BackupAndRestore(os.path.join(model_dir, "backup"),
                                                    double_checkpoint=True))
    if tensorboard:
        out.append(
            keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), update_freq="epoch")
        )
    return out


def timed_fit(model, train, validation=None, epochs=1, model_dir=None, extra_callbacks=(),
              verbose="auto", **kwargs):
    """`model.fit` with the standard callbacks; returns (history, seconds).

    With `model_dir`, training resumes from `<model_dir>/backup` after a kill
    (BackupAndRestore, per epoch), and the final weights are saved to
    `<model_dir>/final.weights.h5`.
    """
    cbs = list(extra_callbacks)
    if model_dir:
        cbs = callbacks(model_dir) + cbs
    start = time.perf_counter()
    history = model.fit(
        train, validation_data=validation, epochs=epochs, callbacks=cbs, verbose=verbose, **kwargs
    )
    seconds = time.perf_counter() - start
    if model_dir:
        # The trained weights, on every worker (a multi-worker run can compare them).
        model.save_weights(os.path.join(model_dir, FINAL_WEIGHTS))
    return history, seconds


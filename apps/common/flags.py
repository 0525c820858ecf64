"""The flags every application's `train.py` accepts, and the only ones.

They are defined once, here, with neutral defaults (None = "the app's own
default"), so two applications can be imported into one process (tests).
`apps.common.config.from_flags` maps them onto the app's `TrainConfig`;
everything else is set with `--config=KEY=VALUE`.
"""

from __future__ import annotations

from absl import flags

DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset to train on (default: the app's embedded dataset)."
)
DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "Where prepared datasets are cached (default: $KERAS_ATTENTION_DATA or "
    "~/.cache/keras_attention/datasets).",
)
MODEL_DIR = flags.DEFINE_string(
    "model_dir",
    None,
    "Run directory for checkpoints, TensorBoard logs, plots and metrics (default: runs/<app>).",
)
EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "SavedModel base path (default: saved_models/<app>)."
)
EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs (default: the app's).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size (default: the app's).")
SEED = flags.DEFINE_integer("seed", 42, "Random seed for weights, shuffling and data synthesis.")
STRATEGY = flags.DEFINE_enum(
    "strategy",
    "default",
    ["default", "mirrored", "multi_worker", "tpu"],
    "Distribution strategy: default (one device), mirrored (all local GPUs), "
    "multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG), tpu.",
)
VARIANT = flags.DEFINE_string("variant", None, "Model variant (default: the app's).")
QUICK = flags.DEFINE_bool(
    "quick", False, "A run of seconds on a small slice of the data, to try the pipeline out."
)
CONFIG = flags.DEFINE_multi_string(
    "config", [],
    "KEY=VALUE: set any field of the app's TrainConfig, nested fields with dots "
    "(--config=model.units=128 --config=archive=/path). Repeatable; see apps/README.md.",
)


def resolve(holder: flags.FlagHolder, default):
    """The flag's value, or `default` when the user left it unset."""
    return default if holder.value is None else holder.value


def choice(holder: flags.FlagHolder, default: str, choices) -> str:
    """The flag's value (or default), checked against `choices` with a clear error."""
    value = resolve(holder, default)
    if value not in choices:
        raise flags.ValidationError(
            f"--{holder.name}={value!r} is not one of {sorted(choices)}; pick one of those."
        )
    return value


def positive(holder: flags.FlagHolder, default: int) -> int:
    value = resolve(holder, default)
    if value is None or value <= 0:
        raise flags.ValidationError(f"--{holder.name} must be a positive integer, got {value!r}.")
    return value

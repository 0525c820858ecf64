"""Distribution strategy from the `--strategy` flag (tf.distribute, nothing home-made)."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from absl import logging


def get_strategy(name: str = "default") -> tf.distribute.Strategy:
    """Returns the strategy named by `--strategy`.

    - `default`: the default (one device) strategy.
    - `mirrored`: `MirroredStrategy` over the local GPUs (CPU when there are none).
    - `multi_worker`: `MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`.
    - `tpu`: `TPUStrategy`, TPU address from `$TPU_NAME` (or the local TPU).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise ValueError(
                "--strategy=multi_worker needs TF_CONFIG describing the cluster, e.g. "
                '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {raw[:200]!r}") from err
        if "cluster" not in config or "task" not in config:
            raise ValueError(f"TF_CONFIG needs 'cluster' and 'task' keys; got {sorted(config)}.")
        logging.info("Multi-worker cluster %s, this task %s", config["cluster"], config["task"])
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _fix_keras_multi_worker_fit()
        return strategy
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", "")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"Unknown strategy {name!r}; expected default, mirrored, multi_worker or tpu."
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes exports, plots and metrics (worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def _fix_keras_multi_worker_fit() -> None:
    """Makes Keras 3.15's `fit` work under MultiWorkerMirroredStrategy with 2+ workers.

    Two places in `keras.src.backend.tensorflow.trainer` assume one worker
    (found by tests/apps/test_fault_tolerance.py, which trains on two):
    - `fit` first builds the model from one batch, averaged across replicas
      with one `strategy.reduce` over the whole `(x, y)` structure, which the
      collective reduce cannot take ("Attempt to convert a value (PerReplica...)").
      Only shapes and dtypes matter there: the local copy of each tensor is used.
    - `reduce_per_replica` averages every logged value with
      `strategy.reduce("MEAN", v, axis=0)`, which fails for the scalar loss and
      metrics ("Invalid reduction dimension 0 for input with 0 dimensions"):
      scalars are averaged across workers with `axis=None` instead.
    Both are patched once per process, and only when this strategy is made.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_keras_attention_patched", False):
        return
    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        def one(v):
            # One local replica: `strategy.run` returns plain tensors, not PerReplica.
            local = (strategy.experimental_local_results(v)[0]
                     if isinstance(v, tf.distribute.DistributedValues) else v)
            if (reduction in ("mean", "auto") and tf.is_tensor(local) and local.shape.rank == 0
                    and tf_trainer._collective_all_reduce_multi_worker(strategy)):
                return strategy.reduce("MEAN", v, axis=None)
            return original_reduce(v, strategy, reduction)

        return keras.tree.map_structure(one, values)

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is not None and iterator is not None and data_batch is None:
            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v,
                    next(it),
                )
                break
        return original_build(self, data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer._keras_attention_patched = True

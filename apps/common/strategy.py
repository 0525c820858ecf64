"""Distribution strategy from the `--strategy` flag (tf.distribute, nothing home-made)."""

from __future__ import annotations

import json
import os

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
        return tf.distribute.MultiWorkerMirroredStrategy()
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

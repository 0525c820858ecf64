"""Metrics JSON and the one results line a person reads at the end of a run."""

from __future__ import annotations

import json
import os
import platform
import time

import tensorflow as tf


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_metrics(model_dir: str, app: str, metrics: dict, filename: str = "metrics.json") -> str:
    """Writes `metrics` (plus app, time, machine) as JSON under `model_dir`; returns the path."""
    os.makedirs(model_dir, exist_ok=True)
    record = {
        "app": app,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
        },
        **_jsonable(metrics),
    }
    path = os.path.join(model_dir, filename)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def results_line(app: str, dataset: str, variant: str, metric: str, value: float, seconds: float):
    """One human-readable line: what was trained on what, how well, how long."""
    return (
        f"[{app}] dataset={dataset} variant={variant} {metric}={value:.4f} "
        f"train_time={seconds:.1f}s"
    )

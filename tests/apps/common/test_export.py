"""Atomic, versioned export: versions count up, and an interrupted export leaves no version."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from apps.common import export


class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": 2.0 * x}


def _save(base):
    module = _Doubler()
    return export.save_module(module, {"serving_default": module.serve}, base)


def test_versions_increase_and_load(tmp_path):
    base = str(tmp_path / "m")
    first = _save(base)
    second = _save(base)
    assert os.path.basename(first) == "1" and os.path.basename(second) == "2"
    assert export.existing_versions(base) == [1, 2]
    loaded = tf.saved_model.load(second)
    out = loaded.signatures["serving_default"](x=tf.constant([1.5]))
    assert out["y"].numpy().tolist() == [3.0]


def test_warmup_requests_are_written_and_replayable(tmp_path):
    module = _Doubler()
    path = export.save_module(
        module, {"serving_default": module.serve}, str(tmp_path / "doubler"),
        warmup=[("serving_default", {"x": [1.0, 2.0]})],
    )
    requests = export.read_warmup_requests(path)
    assert [name for name, _ in requests] == ["serving_default"]
    loaded = tf.saved_model.load(path)
    inputs = {k: tf.constant(v) for k, v in requests[0][1].items()}
    out = loaded.signatures["serving_default"](**inputs)
    assert out["y"].numpy().tolist() == [2.0, 4.0]


def test_failed_writer_leaves_nothing(tmp_path):
    base = str(tmp_path / "m")

    def broken(path):
        os.makedirs(path)
        with open(os.path.join(path, "partial"), "w") as f:
            f.write("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export.atomic_export(base, broken)
    assert os.listdir(base) == []


def test_writer_without_saved_model_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="saved_model.pb"):
        export.atomic_export(str(tmp_path / "m"), os.makedirs)


def test_killed_export_leaves_no_visible_version(tmp_path):
    """SIGKILL in the middle of writing: no integer directory appears, and the next export
    cleans the leftovers and takes version 1."""
    base = str(tmp_path / "m")
    flag = tmp_path / "writing"
    script = textwrap.dedent(
        f"""
        import os, time
        from apps.common import export
        def slow(path):
            os.makedirs(path)
            open(os.path.join(path, "saved_model.pb"), "w").close()
            open({str(flag)!r}, "w").close()
            time.sleep(60)
        export.atomic_export({base!r}, slow)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert flag.exists(), "the export never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert export.existing_versions(base) == []
    leftovers = os.listdir(base)
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers)
    final = _save(base)
    assert os.path.basename(final) == "1"
    assert os.listdir(base) == ["1"]

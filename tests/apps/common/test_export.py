"""Atomic, versioned export: versions count up, and an interrupted export leaves no version."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.common import export
from tests.apps.serving_checks import (
    c_loader_run,
    replay_warmup,
    saved_model_cli_run,
    tensor_names,
)

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow


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


class _Scaler(export.ServingModule):
    """A Keras layer behind a ServingModule: the shape of every app's export."""

    def __init__(self, warm_signatures=("serving_default", "doubled")):
        super().__init__()
        self.layer = keras.layers.Dense(2, kernel_initializer="ones", name="scale")
        self.layer.build((None, 3))
        self.warm_signatures = warm_signatures

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x):
        x = self.check_batch(x, "x")
        return {"y": self.check_finite(self.layer(x), "x")}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def doubled(self, x):
        return {"y": 2.0 * self.layer(self.check_batch(x, "x"))}

    def signatures(self):
        return {"serving_default": self.serve, "doubled": self.doubled}

    def warmup_requests(self):
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        return [(name, {"x": x}) for name in self.warm_signatures]


def test_serving_module_answers_every_loader_tf_serving_uses(tmp_path):
    path = export.export(_Scaler(), str(tmp_path / "scaler"))
    answered = replay_warmup(path)  # TF2, TF1 Session, saved_model_cli run, C LoadSavedModel
    assert answered == [["serving_default", ["y"]], ["doubled", ["y"]]]


def test_untracked_keras_variables_fail_in_the_tf1_loader(tmp_path):
    """The failure the base prevents (keras#19274), so the check above can fail."""
    module = _Scaler()
    path = str(tmp_path / "plain")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    signatures = ["serving_default"]
    inputs = [{"x": np.ones((1, 3), np.float32)}]
    with pytest.raises(AssertionError, match="Could not find variable"):
        saved_model_cli_run(path, signatures, inputs)
    tracked = export.export(_Scaler(), str(tmp_path / "tracked"))
    outputs = c_loader_run(tracked, tensor_names(tracked), signatures, inputs)
    assert outputs[0]["y"].tolist() == [[3.0, 3.0]]
    with pytest.raises(AssertionError, match="Could not find variable"):
        c_loader_run(path, tensor_names(path), signatures, inputs)


def test_export_refuses_a_signature_without_warmup(tmp_path):
    with pytest.raises(ValueError, match=r"leaves out the signatures \['doubled'\]"):
        export.export(_Scaler(warm_signatures=("serving_default",)), str(tmp_path / "m"))
    assert export.existing_versions(str(tmp_path / "m")) == []


def test_batch_limit_and_non_finite_scores_name_the_input():
    module = _Scaler()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="x holds 257 items; this model answers at most 256"):
        module.serve(tf.zeros([257, 3]))
    bad = np.zeros((3, 3), np.float32)
    bad[2, 1] = np.inf
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x\[2\] gave non-finite scores"):
        module.serve(tf.constant(bad))
    assert module.serve(tf.ones([256, 3]))["y"].shape == (256, 2)


def test_export_fsyncs_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = _save(str(tmp_path / "m"))
    tmp_names = [p for p in synced if ".tmp-" in p]
    assert any(p.endswith("saved_model.pb") for p in tmp_names)
    assert any(p.endswith("variables") for p in tmp_names)
    assert synced[-1] == str(tmp_path / "m")  # the rename itself, made durable
    assert os.path.exists(os.path.join(path, "saved_model.pb"))


def test_every_weight_is_stored_once(tmp_path):
    """A keras.Variable saves its value under its own key: tracked beside its tf.Variable
    (as exports did), every weight was stored twice."""
    path = export.export(_Scaler(), str(tmp_path / "scaler"))
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    stored = sorted(shape for key, shape in reader.get_variable_to_shape_map().items()
                    if key != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert stored == [[2], [3, 2]]  # the Dense layer's bias and kernel, once each
    loaded = tf.saved_model.load(path)
    assert sorted(v.shape.as_list() for v in loaded.weights) == [[2], [3, 2]]

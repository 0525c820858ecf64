"""The TF Serving configuration files parse with Serving's protos and name every app."""

import pathlib

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401  (registers the wrapper types)
)
from tensorflow_serving.config import model_server_config_pb2

from apps import APPS
from apps.serving_config import model_config_text

ROOT = pathlib.Path(__file__).resolve().parents[2] / "saved_models"


def _parse_models(text):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_models_config_serves_all_five_apps():
    config = _parse_models((ROOT / "models.config").read_text())
    entries = config.model_config_list.config
    assert [c.name for c in entries] == list(APPS)
    assert all(c.base_path == f"/models/{c.name}" for c in entries)
    assert all(c.model_platform == "tensorflow" for c in entries)


def test_generated_config_uses_absolute_paths(tmp_path):
    config = _parse_models(model_config_text(str(tmp_path)))
    assert [c.base_path for c in config.model_config_list.config] == [
        str(tmp_path / name) for name in APPS
    ]


def _batching_parameters_class():
    """TF Serving's BatchingParameters (session_bundle_config.proto), which the pip
    package does not ship: the fields a batching file may set, with Serving's types."""
    f = descriptor_pb2.FileDescriptorProto(
        name="batching_test.proto", package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"], syntax="proto3",
    )
    m = f.message_type.add(name="BatchingParameters")
    wrapped = {
        "max_batch_size": "Int64Value", "batch_timeout_micros": "Int64Value",
        "max_enqueued_batches": "Int64Value", "num_batch_threads": "Int64Value",
        "thread_pool_name": "StringValue", "enable_large_batch_splitting": "BoolValue",
        "max_execution_batch_size": "Int64Value",
    }
    number = 1
    for name, kind in wrapped.items():
        m.field.add(name=name, number=number, label=1, type=11,
                    type_name=f".google.protobuf.{kind}")
        number += 1
    m.field.add(name="allowed_batch_sizes", number=number, label=3, type=3)
    m.field.add(name="pad_variable_length_inputs", number=number + 1, label=1, type=8)
    pool = descriptor_pool.Default()
    try:
        pool.Add(f)
    except TypeError:
        pass  # added by an earlier test in this process
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def test_batching_parameters_parse():
    params = text_format.Parse(
        (ROOT / "batching_parameters.txt").read_text(), _batching_parameters_class()()
    )
    assert params.max_batch_size.value == 32 and params.num_batch_threads.value == 2


def test_server_batches_fit_every_signature_limit():
    """The server never merges requests into a batch a signature would refuse."""
    from apps.common.export import ServingModule

    params = text_format.Parse(
        (ROOT / "batching_parameters.txt").read_text(), _batching_parameters_class()()
    )
    assert 0 < params.max_batch_size.value <= ServingModule.max_batch_size

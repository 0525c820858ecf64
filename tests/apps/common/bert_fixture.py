"""A tiny random BERT checkpoint in Hugging Face's layout, made in the test (no network).

`make_checkpoint(directory)` writes `config.json`, `model.safetensors` (with a
safetensors writer of its own, NumPy only) and `tokenizer.json` (built with the
`tokenizers` library: BERT's uncased normalizer and pre-tokenizer, WordPiece),
so `apps.common.bert` is tested on the same files a published checkpoint has.
`numpy_bert` is an independent NumPy forward pass of `transformers`' `BertModel`
written from the paper's equations, against which the Keras layers are checked.
"""

from __future__ import annotations

import json
import math
import os
import string
import struct

import numpy as np

SPECIALS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "film", "was", "wonderful", "dull", "great", "bad", "plot", "##s", "##ing",
         "un", "##believ", "##able", "cafe", "中"]


def vocabulary() -> list[str]:
    letters = list(string.ascii_lowercase + string.digits)
    punctuation = list(string.punctuation)
    pieces = SPECIALS + WORDS + letters + ["##" + c for c in letters] + punctuation
    return list(dict.fromkeys(pieces))  # once each, first place kept


def write_safetensors(path: str, tensors: dict) -> None:
    """Writes float32/int64 NumPy arrays in the safetensors layout (header, then data)."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "hidden_act": "gelu",
          "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 32, "max_position_embeddings": 40, "type_vocab_size": 2,
          "layer_norm_eps": 1e-12, "position_embedding_type": "absolute"}


def tensors(config: dict, vocab_size: int, seed: int = 0) -> dict:
    """Random weights with `BertModel`'s names and shapes (torch `Linear`: `[out, in]`)."""
    rng = np.random.default_rng(seed)
    h, inner = config["hidden_size"], config["intermediate_size"]

    def normal(*shape, scale=0.3):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    out = {
        "embeddings.word_embeddings.weight": normal(vocab_size, h),
        "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": normal(2, h),
        "embeddings.LayerNorm.weight": 1 + normal(h, scale=0.1),
        "embeddings.LayerNorm.bias": normal(h, scale=0.1),
        "embeddings.position_ids": np.arange(config["max_position_embeddings"],
                                             dtype=np.int64)[None],
        "pooler.dense.weight": normal(h, h), "pooler.dense.bias": normal(h),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            out[p + f"attention.self.{part}.weight"] = normal(h, h)
            out[p + f"attention.self.{part}.bias"] = normal(h, scale=0.1)
        out[p + "attention.output.dense.weight"] = normal(h, h)
        out[p + "attention.output.dense.bias"] = normal(h, scale=0.1)
        out[p + "attention.output.LayerNorm.weight"] = 1 + normal(h, scale=0.1)
        out[p + "attention.output.LayerNorm.bias"] = normal(h, scale=0.1)
        out[p + "intermediate.dense.weight"] = normal(inner, h)
        out[p + "intermediate.dense.bias"] = normal(inner, scale=0.1)
        out[p + "output.dense.weight"] = normal(h, inner)
        out[p + "output.dense.bias"] = normal(h, scale=0.1)
        out[p + "output.LayerNorm.weight"] = 1 + normal(h, scale=0.1)
        out[p + "output.LayerNorm.bias"] = normal(h, scale=0.1)
    return out


def hf_tokenizer(pieces: list[str]):
    """BERT's uncased tokenizer over `pieces`, as the `tokenizers` library builds it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                                 ("[SEP]", vocab["[SEP]"])])
    return tok


def make_checkpoint(directory: str, seed: int = 0, config: dict | None = None) -> str:
    """Writes the tiny checkpoint into `directory`; returns it."""
    config = {**CONFIG, **(config or {})}
    pieces = vocabulary()
    config["vocab_size"] = len(pieces)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    write_safetensors(os.path.join(directory, "model.safetensors"),
                      tensors(config, len(pieces), seed))
    hf_tokenizer(pieces).save(os.path.join(directory, "tokenizer.json"))
    return directory


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.vectorize(math.erf)


def numpy_bert(t: dict, ids: np.ndarray, config: dict) -> np.ndarray:
    """`BertModel`'s last hidden states for `ids` `[batch, T]` (0 = padding), token type 0."""
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    batch, steps = ids.shape
    x = (t["embeddings.word_embeddings.weight"][ids]
         + t["embeddings.position_embeddings.weight"][:steps]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    bias = np.where(ids[:, None, None, :] != 0, 0.0, -1e9)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def linear(v, name, p=p):
            return v @ t[p + name + ".weight"].T + t[p + name + ".bias"]

        def split(v):
            return v.reshape(batch, steps, heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (split(linear(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + bias
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, steps, -1)
        x = _layer_norm(x + linear(context, "attention.output.dense"),
                        t[p + "attention.output.LayerNorm.weight"],
                        t[p + "attention.output.LayerNorm.bias"], eps)
        hidden = linear(x, "intermediate.dense")
        hidden = 0.5 * hidden * (1 + _erf(hidden / math.sqrt(2)))
        x = _layer_norm(x + linear(hidden, "output.dense"), t[p + "output.LayerNorm.weight"],
                        t[p + "output.LayerNorm.bias"], eps)
    return x

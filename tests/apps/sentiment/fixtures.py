"""What the sentiment tests share: a tiny model configuration and the kept-sentence rule."""

from __future__ import annotations

from apps.sentiment import model

TINY = dict(variant="bilstm_attention", vocab_size=200, max_length=16, embedding_dim=16,
            lstm_units=8, attention_units=8,
            num_heads=2, intermediate_dim=16, embedding_dropout=0.1, dropout=0.1,
            learning_rate=1e-2)


def tiny_model(**overrides) -> model.ModelConfig:
    return model.ModelConfig(**{**TINY, **overrides})


def kept(table):
    """The rows of a fixture table the builder keeps (|mean| >= 0.5)."""
    return [r for r in table if abs(r[1]) >= 0.5]

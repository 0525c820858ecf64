"""Sentence sentiment with attention pooling: train, explain (word weights), export."""

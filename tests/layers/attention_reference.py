"""NumPy references written from the papers' equations (Luong 2015, Bahdanau 2015).

Loops over batch/query/key so they read like the equations, not like the layers.
"""

from __future__ import annotations

import numpy as np


def softmax(scores, mask=None):
    """Softmax over the last axis of a 1-D score vector; masked entries get 0, all-masked -> 0."""
    scores = np.asarray(scores, np.float64)
    mask = np.ones_like(scores, bool) if mask is None else np.asarray(mask, bool)
    if not mask.any():
        return np.zeros_like(scores)
    e = np.where(mask, np.exp(scores - scores[mask].max()), 0.0)
    return e / e.sum()


def luong_score(score, h_t, h_s, w=None, v=None):
    """Luong et al. (2015) eq. 8 for one (target, source) pair."""
    if score == "dot":
        return float(h_t @ h_s)
    if score == "general":
        return float(h_t @ w @ h_s)
    return float(v @ np.tanh(np.concatenate([h_t, h_s]) @ w))


def bahdanau_score(q, k, w1, w2, v, g=None, b=None):
    """vᵀ tanh(W₁k + W₂q (+ b)), with v replaced by g·v/‖v‖ when g is given."""
    hidden = k @ w1 + q @ w2
    if b is not None:
        hidden = hidden + b
    if g is not None:
        v = g * v / np.linalg.norm(v)
    return float(v @ np.tanh(hidden))


def attention(score_fn, query, value, key=None, mask=None):
    """Context and weights for rank-3 numpy inputs; `mask` is `(batch, T_q, T_k)` or None."""
    key = value if key is None else key
    batch, t_q, _ = query.shape
    t_k = key.shape[1]
    weights = np.zeros((batch, t_q, t_k))
    for b in range(batch):
        for i in range(t_q):
            scores = [score_fn(query[b, i], key[b, s]) for s in range(t_k)]
            weights[b, i] = softmax(scores, None if mask is None else mask[b, i])
    return weights @ value, weights


def local_attention(score_fn, query, value, window, mode, positions=None, lengths=None,
                    wp=None, vp=None, value_mask=None):
    """Luong §3.2: local-m (p_t = t, eq. 7 in the window) / local-p (eqs. 9-10)."""
    batch, t_q, _ = query.shape
    t_k = value.shape[1]
    weights = np.zeros((batch, t_q, t_k))
    sigma = window / 2.0
    for b in range(batch):
        source_len = t_k if lengths is None else lengths[b]
        for i in range(t_q):
            h_t = query[b, i]
            if mode == "local_m":
                p_t = i if positions is None else positions[b, i]
            else:
                p_t = source_len / (1.0 + np.exp(-(vp @ np.tanh(h_t @ wp))))
            scores = np.array([score_fn(h_t, value[b, s]) for s in range(t_k)])
            mask = np.array([abs(s - p_t) <= window for s in range(t_k)])
            if value_mask is not None:
                mask &= np.asarray(value_mask[b], bool)
            align = softmax(scores, mask)
            if mode == "local_p":
                align = align * np.exp(-((np.arange(t_k) - p_t) ** 2) / (2 * sigma**2))
            weights[b, i] = align
    return weights @ value, weights

"""Similarity and distance between two vectors."""

from __future__ import annotations

import numpy as np

METRICS = ("cosine", "dot", "euclidean", "manhattan")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of the angle between `a` and `b`, in [-1, 1] (0 when either is zero).

    With u = a/|a| and v = b/|b|: 1 - |u - v|² / 2 (or |u + v|² / 2 - 1 for an obtuse angle),
    which is exactly 1 (-1) for vectors of the same (opposite) direction where
    dot / (|a| |b|) can round to 1.0000000000000002; then clamped to [-1, 1].

        >>> v = np.array([0.1, 0.2, 0.3]); cosine(v, v), cosine(v, -v)
        (1.0, -1.0)
    """
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not na or not nb:
        return 0.0
    u, v = np.asarray(a) / na, np.asarray(b) / nb
    d, s = float(np.dot(u - v, u - v)), float(np.dot(u + v, u + v))
    value = 1.0 - d / 2.0 if d <= s else s / 2.0 - 1.0
    return min(1.0, max(-1.0, value))


def dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def euclidean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def manhattan(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def compare(a: np.ndarray, b: np.ndarray, metrics: tuple[str, ...] = METRICS) -> dict[str, float]:
    """Every metric named in `metrics` between `a` and `b` (computed in float64).

    >>> compare(np.array([1.0, 0.0]), np.array([0.0, 1.0]))["cosine"]
    0.0
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    funcs = {"cosine": cosine, "dot": dot, "euclidean": euclidean, "manhattan": manhattan}
    return {name: funcs[name](a, b) for name in metrics}

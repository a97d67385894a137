"""Similarity and distance between two vectors."""

from __future__ import annotations

import numpy as np

METRICS = ("cosine", "dot", "euclidean", "manhattan")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom else 0.0


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

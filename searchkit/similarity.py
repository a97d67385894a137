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


# Metrics where a lower value means more alike.
DISTANCES = frozenset({"euclidean", "manhattan"})


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length (zero rows stay zero) and a mask of the zero rows."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    return x / np.where(norms == 0, 1.0, norms), zero


def paired(a: np.ndarray, b: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """`metric` between row i of `a` and row i of `b`, for every i, in float64: the
    vectorised `compare` (cosine by the same exact-at-±1 formula as `cosine`).

    >>> paired(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 1.0], [2.0, 2.0]]))
    array([0., 1.])
    """
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if metric == "cosine":
        (u, zu), (v, zv) = _unit_rows(a), _unit_rows(b)
        d, s = ((u - v) ** 2).sum(axis=1), ((u + v) ** 2).sum(axis=1)
        value = np.clip(np.where(d <= s, 1.0 - d / 2.0, s / 2.0 - 1.0), -1.0, 1.0)
        return np.where(zu | zv, 0.0, value)
    if metric == "dot":
        return (a * b).sum(axis=1)
    if metric == "euclidean":
        return np.linalg.norm(a - b, axis=1)
    if metric == "manhattan":
        return np.abs(a - b).sum(axis=1)
    raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")


def matrix(x: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """`metric` between every two rows of `x`, (n, n) in float64.

    >>> matrix(np.array([[1.0, 0.0], [0.0, 2.0]]), "dot")
    array([[1., 0.],
           [0., 4.]])
    """
    from scipy.spatial.distance import cdist

    x = np.atleast_2d(np.asarray(x, np.float64))
    if metric == "cosine":
        u, zero = _unit_rows(x)
        out = np.clip(u @ u.T, -1.0, 1.0)
        out[zero, :] = 0.0
        out[:, zero] = 0.0
        return out
    if metric == "dot":
        return x @ x.T
    if metric in DISTANCES:
        return cdist(x, x, "euclidean" if metric == "euclidean" else "cityblock")
    raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")

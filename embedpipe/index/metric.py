"""Similarity metrics: how vectors are prepared for FAISS and how its distances become scores."""

from __future__ import annotations

from typing import Literal, get_args

import faiss
import numpy as np

from ..errors import ConfigError

Metric = Literal["cosine", "l2", "ip"]
METRICS: tuple[str, ...] = get_args(Metric)


def check_metric(metric: str) -> Metric:
    """Return ``metric`` if it is known, else raise a :class:`ConfigError` listing the choices."""
    if metric not in METRICS:
        raise ConfigError(
            f"metric {metric!r} is not supported; use one of {list(METRICS)} (cosine: "
            "normalised inner product, higher is closer; l2: Euclidean distance, lower is closer; "
            "ip: raw inner product)."
        )
    return metric  # type: ignore[return-value]


def faiss_metric(metric: Metric) -> int:
    """The FAISS metric constant: cosine is inner product on L2-normalised vectors."""
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def higher_is_closer(metric: Metric) -> bool:
    return metric != "l2"


def prepare(x: np.ndarray, metric: Metric) -> np.ndarray:
    """Vectors as FAISS wants them: float32, C-contiguous, L2-normalised for cosine.

    A zero vector stays zero under cosine (its similarity to everything is 0).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, np.float32(1e-12))
    return x


def to_scores(distances: np.ndarray, metric: Metric) -> np.ndarray:
    """FAISS distances → user scores: L2 becomes the Euclidean distance (FAISS gives its square)."""
    if metric == "l2":
        return np.sqrt(np.maximum(distances, 0.0))
    return distances

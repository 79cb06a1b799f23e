"""FAISS similarity search over feature stores: build (exact, IVF, PQ, HNSW, auto), tune,
save/load, search by vector, text, image or id, evaluate recall, and serve over HTTP.

Examples
--------
>>> from embedpipe.index import build_index, SimilarityIndex
>>> index = build_index("cache/reviews.h5", "auto", target_recall=0.95)  # doctest: +SKIP
>>> index.save("cache/reviews.index")  # doctest: +SKIP
>>> SimilarityIndex.load("cache/reviews.index").search_texts("a moving film", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from .build import build_index
from .evaluate import EvalReport, EvalRow, evaluate_index
from .exact import ExactKnn, recall_at_k
from .meta import IndexMeta
from .metric import METRICS, Metric
from .plan import KINDS, IndexPlan, plan_index
from .server import create_app, serve
from .similarity import Neighbor, SimilarityIndex
from .tune import TuneResult, tune_search_param

__all__ = [
    "KINDS",
    "METRICS",
    "EvalReport",
    "EvalRow",
    "ExactKnn",
    "IndexMeta",
    "IndexPlan",
    "Metric",
    "Neighbor",
    "SimilarityIndex",
    "TuneResult",
    "build_index",
    "create_app",
    "evaluate_index",
    "load_index",
    "plan_index",
    "recall_at_k",
    "serve",
    "tune_search_param",
]


def load_index(path: str | Path, *, image_root: str | Path | None = None) -> SimilarityIndex:
    """Open a saved index folder (see :meth:`SimilarityIndex.load`)."""
    return SimilarityIndex.load(path, image_root=image_root)

"""FAISS similarity search over feature stores: build (exact, IVF, PQ, HNSW, int8, binary, a
prefix of the dimensions, auto), tune on held-out queries, update from grown stores, save/load,
search by vector, text, image or id (each hit with the content that identifies it), filter
(``where``), batch search, evaluate recall and retrieval quality, and serve over HTTP.

Names are imported lazily: ``import embedpipe.index.kinds`` (the CLI's help) loads no FAISS.

Examples
--------
>>> import numpy as np
>>> from embedpipe.index import build_index, SimilarityIndex
>>> from embedpipe.store import write_store
>>> X = np.random.default_rng(0).normal(size=(200, 16)).astype("float32")
>>> _ = write_store("vecs.h5", X, [f"v{i}" for i in range(200)])
>>> index = build_index("vecs.h5", "flat")
>>> _ = index.save("vecs.index")
>>> SimilarityIndex.load("vecs.index").search(X[3], k=1)[0][0].id
'v3'
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import BatchQueries, search_batch
    from .build import build_index
    from .evaluate import EvalReport, EvalRow, evaluate_index
    from .exact import ExactKnn, recall_at_k
    from .kinds import INDEX_KINDS, INDEX_TYPES, IndexPlan, IndexType, register_index_type
    from .meta import IndexMeta
    from .metric import METRICS, Metric
    from .plan import plan_index
    from .retrieval import RetrievalReport, evaluate_retrieval
    from .server import create_app, serve
    from .similarity import Neighbor, SimilarityIndex
    from .tune import TuneResult, tune_search_param
    from .update import UpdateResult, update_index

_WHERE = {
    "BatchQueries": "batch",
    "search_batch": "batch",
    "build_index": "build",
    "EvalReport": "evaluate",
    "EvalRow": "evaluate",
    "evaluate_index": "evaluate",
    "ExactKnn": "exact",
    "recall_at_k": "exact",
    "INDEX_KINDS": "kinds",
    "IndexPlan": "kinds",
    "IndexType": "kinds",
    "INDEX_TYPES": "kinds",
    "register_index_type": "kinds",
    "IndexMeta": "meta",
    "METRICS": "metric",
    "Metric": "metric",
    "plan_index": "plan",
    "create_app": "server",
    "serve": "server",
    "Neighbor": "similarity",
    "SimilarityIndex": "similarity",
    "TuneResult": "tune",
    "tune_search_param": "tune",
    "RetrievalReport": "retrieval",
    "evaluate_retrieval": "retrieval",
    "UpdateResult": "update",
    "update_index": "update",
}

__all__ = [
    "INDEX_KINDS",
    "METRICS",
    "BatchQueries",
    "EvalReport",
    "EvalRow",
    "ExactKnn",
    "IndexMeta",
    "IndexPlan",
    "IndexType",
    "Metric",
    "Neighbor",
    "RetrievalReport",
    "SimilarityIndex",
    "TuneResult",
    "UpdateResult",
    "build_index",
    "create_app",
    "evaluate_index",
    "evaluate_retrieval",
    "INDEX_TYPES",
    "load_index",
    "plan_index",
    "recall_at_k",
    "register_index_type",
    "search_batch",
    "serve",
    "tune_search_param",
    "update_index",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_index(path: str | Path, *, image_root: str | Path | None = None) -> SimilarityIndex:
    """Open a saved index folder (see :meth:`SimilarityIndex.load`)."""
    from .similarity import SimilarityIndex

    return SimilarityIndex.load(path, image_root=image_root)

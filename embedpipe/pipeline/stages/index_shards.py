"""An index over a sharded store whose vectors are added on the run's executor.

This is :func:`embedpipe.index.build_index` with its add step handed to
:func:`~embedpipe.encode.executors.add_shards_to_index`: the driver plans the index, trains it
on a seeded sample and collects the exact neighbours of the tuning queries (one pass over the
rows), the workers add one shard each to copies of the trained empty index, and the driver
merges the copies in shard order and tunes the search parameter. Same plan, sample, seed and
tuning as ``build_index``; the merged index equals a sequential add of the same vectors.
The one difference: workers L2-normalise with FAISS (``normalize_L2``) rather than NumPy, so
cosine vectors may differ from ``build_index``'s in the last bit.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ...encode.executors import Executor, add_shards_to_index
from ...errors import ConfigError
from ...index import SimilarityIndex, plan_index, tune_search_param
from ...index.build import _hnsw_build_effort, _no_polysemous, _sample, _versions
from ...index.exact import ExactKnn, drop_self
from ...index.meta import IndexMeta, SourceMeta
from ...index.metric import Metric, check_metric, faiss_metric, prepare
from ...index.params import check_search_params, get_search_params, search_param
from ...index.params import set_search_params as apply_search_params
from ...index.plan import parse_bytes
from ...index.stores import StoreSet

log = logging.getLogger("embedpipe.pipeline")


def build_index_on_shards(
    store: str | Path,
    kind: str = "auto",
    *,
    executor: Executor,
    metric: Metric = "cosine",
    target_recall: float | None = 0.95,
    k: int = 10,
    memory_budget: int | str | None = None,
    search_params: dict[str, int] | None = None,
    n_tune_queries: int = 1000,
    batch_size: int = 65536,
    image_root: str | Path | None = None,
    prefix_ids: bool = False,
    seed: int = 0,
) -> SimilarityIndex:
    """Build a similarity index over a sharded store, adding its shards on ``executor``.

    Parameters are those of :func:`embedpipe.index.build_index` (one store), plus the
    executor (left open: the run closes it).

    Returns
    -------
    SimilarityIndex

    Raises
    ------
    ConfigError
        A bad kind, metric, budget or parameter.
    """
    t0 = time.perf_counter()
    metric = check_metric(metric)
    if target_recall is not None and not 0.0 < target_recall <= 1.0:
        raise ConfigError(
            f"target_recall={target_recall}: it must lie in (0, 1], or be None to skip tuning."
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r}: recall@k needs a positive integer k.")
    budget = parse_bytes(memory_budget)
    with StoreSet(store, prefix_ids=prefix_ids, image_root=image_root) as ss:
        n, dim = len(ss), ss.dim
        plan = plan_index(n, dim, kind, memory_budget=budget, target_recall=target_recall)
        log.info("index plan for %d x %d: %s (%s)", n, dim, plan.factory, plan.reason)
        index = faiss.index_factory(dim, plan.factory, faiss_metric(metric))
        _no_polysemous(index)
        _hnsw_build_effort(index)
        if search_params:
            search_params = check_search_params(index, dict(search_params))
        tunable = (
            search_param(index) is not None and target_recall is not None and not search_params
        )
        n_q = min(n_tune_queries, n // 2) if tunable else 0
        kk = min(k, n - 1) if tunable else k
        train_rows, q_rows = _sample(n, plan.n_train if not index.is_trained else 0, n_q, seed)
        sample = ss.read_rows(np.concatenate([train_rows, q_rows]))
        xq = prepare(sample[len(train_rows) :], metric)
        if not index.is_trained:
            index.train(prepare(sample[: len(train_rows)], metric))
        del sample
        exact = None
        if tunable and n_q:
            exact = ExactKnn(xq, kk + 1, metric)
            for start, feats in ss.iter_batches(batch_size):
                exact.add(prepare(feats, metric), start)
        t_add = time.perf_counter()
        index = add_shards_to_index(
            index,
            store,
            executor=executor,
            normalize=metric == "cosine",
            batch_size=min(batch_size, 16384),
        )
        log.info(
            "added %d vectors on %s in %.1fs",
            index.ntotal,
            executor.name,
            time.perf_counter() - t_add,
        )
        try:  # lets search-by-id give back stored vectors
            faiss.extract_index_ivf(index).make_direct_map()
        except RuntimeError:
            pass
        tuning: dict[str, Any] | None = None
        if exact is not None:
            truth = drop_self(exact.result()[1], q_rows)
            assert target_recall is not None
            tuning = tune_search_param(
                index, xq, truth, k=kk, target_recall=float(target_recall), self_rows=q_rows
            ).to_dict()
        elif search_params:
            apply_search_params(index, dict(search_params))
        meta = IndexMeta(
            fingerprint=ss.fingerprint,
            backbone=ss.backbone,
            modality=ss.modality,
            dim=dim,
            n=n,
            metric=metric,
            kind=plan.kind,
            factory=plan.factory,
            plan_reason=plan.reason,
            memory_budget=budget,
            search_params=get_search_params(index),
            tuning=tuning,
            classes=ss.classes,
            sources=[SourceMeta(**s.to_dict()) for s in ss.infos()],
            build_seconds=round(time.perf_counter() - t0, 3),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            versions=_versions(),
        )
        return SimilarityIndex(index, meta, ss.ids, ss.labels, ss.source)

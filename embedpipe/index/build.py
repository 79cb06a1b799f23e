"""Building a similarity index from feature stores, out-of-core, and tuning it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from ..errors import Arg, ConfigError
from ..store import FeatureStore
from ..store.shards import is_sharded
from .exact import ExactKnn, drop_self
from .kinds import HNSW_EF_CONSTRUCTION, INDEX_TYPES, type_of
from .meta import IndexMeta, SourceMeta
from .metric import Metric, check_metric, faiss_metric, prepare
from .params import check_search_params, get_search_params, search_param, set_search_params
from .plan import parse_bytes, plan_index
from .similarity import SimilarityIndex
from .stores import StoreSet
from .tune import rerank_search, tune_search_param

__all__ = ["HNSW_EF_CONSTRUCTION", "build_index"]

if TYPE_CHECKING:
    from ..executors import Executor

log = logging.getLogger(__name__)


StoreArg = str | Path | FeatureStore


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"faiss": faiss.__version__, "numpy": np.__version__}
    try:
        out["embedpipe"] = md.version("embedpipe")
    except md.PackageNotFoundError:
        pass
    return out


def _reserve_flat(index: faiss.Index, n: int) -> None:
    """Size a flat store (Flat, HNSW's storage) for ``n`` vectors up front.

    Filling it batch by batch would otherwise grow its buffer by doubling, each step copying
    everything so far: a transient peak near twice the index size. Resizing to ``n`` and back
    to 0 keeps the allocation (a vector never shrinks its capacity).
    """
    idx: Any = faiss.downcast_index(index)
    if hasattr(idx, "storage") and idx.storage is not None:
        idx = faiss.downcast_index(idx.storage)
    if type(idx).__name__ not in ("IndexFlat", "IndexFlatL2", "IndexFlatIP"):
        return
    codes = idx.codes
    try:
        codes.resize(n * idx.code_size)
        codes.resize(0)
    except (AttributeError, TypeError, RuntimeError):  # another FAISS layout: just grow
        pass


def _takes_ids(index: faiss.Index) -> bool:
    """True for indexes that store given ids (IVF), not positions."""
    try:
        faiss.extract_index_ivf(index)
        return True
    except RuntimeError:
        return False


def _sample(n: int, n_train: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted random rows: a training sample and held-out tuning queries."""
    rng = np.random.default_rng(seed)
    n_queries = min(n_queries, n)
    perm = rng.permutation(n)
    queries = np.sort(perm[:n_queries])
    rest = perm[n_queries:]
    return np.sort(rest[:n_train]), queries


def _add_on_executor(
    index: faiss.Index,
    ss: StoreSet,
    paths: list[Path],
    exact: ExactKnn | None,
    metric: Metric,
    batch_size: int,
    executor: Executor,
) -> faiss.Index:
    """Fill a trained empty index from sharded stores on ``executor``, one shard per task.

    The exact neighbours of the tuning queries take their own pass over the rows on the
    driver; ids are row numbers in the stores' concatenation, as in the sequential add.
    """
    from .parallel_add import add_shards_to_index

    if exact is not None:
        for start, feats in ss.iter_batches(batch_size):
            exact.add(prepare(feats, metric), start)
    t_add = time.perf_counter()
    index = add_shards_to_index(
        index,
        paths,
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
    return index


def build_index(
    stores: StoreArg | Sequence[StoreArg],
    kind: str = "auto",
    *,
    metric: Metric = "cosine",
    target_recall: float | None = 0.95,
    k: int = 10,
    memory_budget: int | str | None = None,
    search_params: dict[str, int] | None = None,
    n_tune_queries: int = 1000,
    tune_queries: str | Path | FeatureStore | None = None,
    rerank: int | None = None,
    batch_size: int = 65536,
    image_root: str | Path | None = None,
    prefix_ids: bool = False,
    seed: int = 0,
    progress: bool = False,
    executor: Executor | None = None,
    allow_incomplete: bool = False,
    dim: int | None = None,
) -> SimilarityIndex:
    """Build a FAISS similarity index from one or more feature stores of one backbone.

    Vectors are never loaded whole: the index is trained on a random sample and filled in
    batches read from the stores. Indexes with a search parameter (IVF ``nprobe``, HNSW
    ``efSearch``) are then tuned to the smallest value whose recall@``k`` reaches
    ``target_recall`` (the lower end of its 95% interval) on held-out queries: by default
    ``n_tune_queries`` random rows that are kept out of the index while it is tuned (the
    ground truth is exact search over the other rows, computed during the same pass) and added
    last; or rows of ``tune_queries``, a store of the same backbone (real queries, another
    split). A target that is not reached is recorded as such (``tuning["reached"]``).

    Parameters
    ----------
    stores
        ``.h5`` feature stores (paths or open stores); all must share one backbone fingerprint.
    kind
        ``"auto"`` (choose from N, dimension and ``memory_budget``), ``"flat"`` (exact),
        ``"ivf"``, ``"ivfsq"``, ``"ivfpq"``, ``"hnsw"``, or any FAISS factory string.
    metric
        ``"cosine"`` (default), ``"l2"`` or ``"ip"``.
    target_recall, k
        The recall@k tuning aims for; ``target_recall=None`` skips tuning.
    memory_budget
        What the index may take in memory (bytes or ``"4GB"``); default half the RAM.
    search_params
        Fixed search parameters (``{"nprobe": 16}``) instead of tuning.
    n_tune_queries
        Held-out queries used for tuning.
    tune_queries
        Tuning queries instead of held-out rows: a feature store of the same backbone, or a
        file of raw queries (a text file, one per line, or a table with a ``query`` / ``text``
        column) that the stores' backbone encodes. The target is then met on them.
    rerank
        Candidates per query re-scored exactly from the stores' float features (0: off;
        default: the index type's, 0 for all but ``binary``). Lifts the recall cap of
        compressed indexes (IVF-PQ, SQ8, binary); the stores must stay where they are.
    batch_size
        Rows read per batch while adding.
    image_root
        Folder the ids are image paths in (for thumbnails); default: the image folder an
        image-folder store was encoded from.
    prefix_ids
        Prefix ids with their store's name, for stores whose ids overlap.
    seed
        Seed of the training and query samples (the build is reproducible).
    progress
        Show a progress bar while adding.
    dim
        Index only the first ``dim`` dimensions of each vector (Matryoshka-trained models keep
        most of their quality in a prefix; for any model the held-out recall says what it
        costs). Queries keep their full dimension; ``rerank`` re-scores candidates with the
        full vectors from the stores.
    executor
        When given and a store is sharded, the driver still plans, trains and collects the
        tuning queries' exact neighbours, but the vectors are added on this executor, one
        shard per task (:func:`~embedpipe.index.parallel_add.add_shards_to_index`; left open).
        Same ids order, tuning and metadata as the sequential add; the one difference is that
        the workers L2-normalise cosine vectors with FAISS rather than NumPy, so stored vectors
        may differ in the last bit.

    Returns
    -------
    SimilarityIndex
        Save it with :meth:`SimilarityIndex.save`.

    Raises
    ------
    FingerprintMismatchError
        The stores were encoded by different backbones.
    ConfigError
        A bad kind, metric, budget or parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_blobs
    >>> from embedpipe.store import StoreWriter
    >>> X = make_blobs(3000, n_features=16, centers=20, random_state=0)[0].astype("float32")
    >>> w = StoreWriter.create("blobs.h5", dim=16, fingerprint="fp", backbone={"name": "demo"})
    >>> w.append(X, [f"b{i}" for i in range(3000)], [bytes(16)] * 3000, np.full(3000, -1))
    >>> w.finalize()
    >>> index = build_index("blobs.h5", "ivf", target_recall=0.9, n_tune_queries=200)
    >>> t = index.meta.tuning
    >>> t["param"], t["reached"], t["recall_low"] >= 0.9, t["n_queries"]
    ('nprobe', True, True, 200)
    >>> _ = index.save("blobs.index")
    """
    t0 = time.perf_counter()
    metric = check_metric(metric)
    if target_recall is not None and not 0.0 < target_recall <= 1.0:
        raise ConfigError(
            Arg("target_recall", target_recall),
            ": it must lie in (0, 1], or be None to skip tuning.",
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r}: recall@k needs a positive integer k.")
    if batch_size < 1:
        raise ConfigError(Arg("batch_size", batch_size), ": it must be positive.")
    if rerank is not None and (
        isinstance(rerank, bool) or not isinstance(rerank, int) or rerank < 0
    ):
        raise ConfigError(Arg("rerank", rerank), ": give a number of candidates ≥ 0 (0: off).")
    budget = parse_bytes(memory_budget)
    with StoreSet(
        stores, prefix_ids=prefix_ids, image_root=image_root, allow_incomplete=allow_incomplete
    ) as ss:
        n, full_dim = len(ss), ss.dim
        if dim is not None and (
            isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= full_dim
        ):
            raise ConfigError(
                Arg("dim", dim),
                f": give a prefix length from 1 to the stores' dimension {full_dim}.",
            )
        trunc = dim if dim is not None and dim < full_dim else 0
        dim = trunc or full_dim
        plan = plan_index(n, dim, kind, memory_budget=budget, target_recall=target_recall)
        log.info("index plan for %d x %d: %s (%s)", n, dim, plan.factory, plan.reason)
        kind_type = type_of(plan.kind)
        fm = faiss_metric(metric)
        index = faiss.index_factory(
            dim, plan.factory, kind_type.faiss_metric(fm) if kind_type else fm
        )
        # a raw factory string gets every kind's build settings (each touches only its part)
        for t in [kind_type] if kind_type else [t for _, t in INDEX_TYPES.items()]:
            t.prepare(index)
        if trunc:
            index = _prefix(index, full_dim, trunc, metric)
        dim = full_dim
        n_rerank = rerank if rerank is not None else (kind_type.default_rerank if kind_type else 0)
        if search_params:
            search_params = check_search_params(index, dict(search_params))  # before training
        tunable = (
            search_param(index) is not None and target_recall is not None and not search_params
        )
        # indexes without a knob but with lossy codes (int8, binary, a prefix): their
        # held-out recall is measured the same way, and reported
        checked = (
            not tunable
            and target_recall is not None
            and executor is None
            and (bool(trunc) or (kind_type is not None and kind_type.compressed))
        )
        paths = [fs.path for fs in ss.stores]
        parallel = executor is not None and any(is_sharded(p) for p in paths)
        external = (tunable or checked) and tune_queries is not None
        # Held-out rows: kept out of the index while it is tuned, added last (not possible
        # with the parallel add, which fills the index shard by shard: there each query's
        # own row is left out of its results instead).
        n_q = min(n_tune_queries, n // 2) if (tunable or checked) and not external else 0
        loo = parallel and n_q > 0  # leave-one-out instead of held out
        kk = (min(k, n - 1) if loo else min(k, n - n_q)) if (tunable or checked) else k
        # an index that needs training but whose kind did not say how much gets 50,000 rows
        n_fit = (plan.n_train or min(n - n_q, 50_000)) if not index.is_trained else 0
        train_rows, q_rows = _sample(n, n_fit, n_q, seed)
        xq = np.empty((0, dim), np.float32)
        if not index.is_trained:
            sample = ss.read_rows(np.concatenate([train_rows, q_rows]))
            xt = prepare(sample[: len(train_rows)], metric)
            xq = prepare(sample[len(train_rows) :], metric)
            del sample
            t_train = time.perf_counter()
            index.train(xt)
            log.info("trained on %d rows in %.1fs", len(xt), time.perf_counter() - t_train)
            del xt
        elif n_q:
            xq = prepare(ss.read_rows(q_rows), metric)
        queries_desc = f"{len(q_rows)} random rows held out of the index and its ground truth"
        if external:
            assert tune_queries is not None
            xq, queries_desc = _external_queries(tune_queries, ss, n_tune_queries, seed, metric)
        exact = (
            ExactKnn(xq, kk + (1 if loo else 0), metric)
            if (tunable or checked) and len(xq)
            else None
        )

        order: np.ndarray | None = None
        if parallel:
            assert executor is not None
            index = _add_on_executor(index, ss, paths, exact, metric, batch_size, executor)
            queries_desc = f"{len(q_rows)} random rows of the index, each left out of its results"
        else:
            _reserve_flat(index, n)
            held = np.zeros(n, bool)
            held[q_rows] = True
            bar = tqdm(
                total=n, unit="vec", desc="index add", disable=not progress, dynamic_ncols=True
            )
            # An IVF index takes each vector's row as its id, so the held-out rows keep their
            # numbers; other kinds number vectors as added (``order`` maps them back).
            with_ids = n_q > 0 and _takes_ids(index)
            added = 0
            with bar:
                for start, feats in ss.iter_batches(batch_size):
                    keep = ~held[start : start + len(feats)]
                    x = prepare(feats[keep] if n_q else feats, metric)
                    rows = np.flatnonzero(keep) + start
                    if with_ids:
                        index.add_with_ids(x, rows)
                    else:
                        index.add(x)
                    if exact is not None:
                        exact.add(x, added, rows=rows if with_ids else None)
                    added += len(x)
                    bar.update(len(feats))
            if n_q and not with_ids:
                order = np.concatenate([np.flatnonzero(~held), q_rows]).astype(np.int64)

        tuning = None
        recall_check = None
        if exact is not None and checked:
            from .tune import measure

            search = rerank_search(index, n_rerank, metric, ss, order) if n_rerank else None
            m_, lo_, qps_, hi_ = measure(index, xq, exact.result()[1], None, kk, search)
            recall_check = {
                "k": kk,
                "recall": round(m_, 5),
                "recall_low": round(lo_, 5),
                "recall_high": round(hi_, 5),
                "n_queries": len(xq),
                "queries": queries_desc,
                "rerank": n_rerank,
            }
        elif exact is not None:
            truth = exact.result()[1]
            self_rows = q_rows if loo else None
            if self_rows is not None:
                truth = drop_self(truth, self_rows)
            assert target_recall is not None  # tunable implies a target
            search = None
            if n_rerank:
                search = rerank_search(index, n_rerank, metric, ss, order)
            res = tune_search_param(
                index,
                xq,
                truth,
                k=kk,
                target_recall=float(target_recall),
                self_rows=self_rows,
                search=search,
                queries_desc=queries_desc,
                rerank=n_rerank,
            )
            tuning = res.to_dict()
            log.info(
                "tuned %s=%d: recall@%d %.4f (95%% interval %.4f-%.4f) on %d held-out queries",
                res.param,
                res.value,
                kk,
                res.recall,
                res.recall_low,
                res.recall_high,
                len(xq),
            )
        elif search_params:
            set_search_params(index, dict(search_params))
        if n_q and not parallel:  # the held-out rows join the index once it is tuned
            if order is None:
                index.add_with_ids(xq, q_rows.astype(np.int64))
            else:
                index.add(xq)
        try:  # lets search-by-id give back stored vectors
            faiss.extract_index_ivf(index).make_direct_map()
        except RuntimeError:
            pass

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
            rerank=n_rerank,
            has_content=ss.has_contents(),
            tuning=tuning,
            classes=ss.classes,
            sources=[SourceMeta(**s.to_dict()) for s in ss.infos()],
            build_seconds=round(time.perf_counter() - t0, 3),
            build_n=n,
            prefix_ids=prefix_ids,
            truncate_dim=trunc,
            recall=recall_check,
            columns=ss.column_names,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            versions=_versions(),
        )
        cols = {c: ss.column(c) for c in ss.column_names}
        return SimilarityIndex(
            index,
            meta,
            ss.ids,
            ss.labels,
            ss.source,
            order=order,
            hashes=ss.hashes,
            columns=cols.__getitem__,
            column_names=list(cols),
        )


def _prefix(index: faiss.Index, full_dim: int, keep: int, metric: Metric) -> faiss.Index:
    """``index`` (of dimension ``keep``) behind a transform that keeps the first ``keep`` of
    ``full_dim`` dimensions (re-normalised for cosine), saved with the index."""
    remap = faiss.RemapDimensionsTransform(full_dim, keep, False)  # type: ignore[arg-type]
    if metric == "cosine":
        norm = faiss.NormalizationTransform(keep, 2.0)
        out = faiss.IndexPreTransform(norm, index)
        out.prepend_transform(remap)
        out.referenced_objects = [remap, norm, index]  # type: ignore[attr-defined]
    else:
        out = faiss.IndexPreTransform(remap, index)
        out.referenced_objects = [remap, index]  # type: ignore[attr-defined]
    return out


def _external_queries(
    queries: str | Path | FeatureStore,
    ss: StoreSet,
    n_queries: int,
    seed: int,
    metric: Metric,
) -> tuple[np.ndarray, str]:
    """Up to ``n_queries`` random queries, prepared: rows of a query store of the index's
    backbone, or raw queries of a file (a text file, one per line, or a table with a
    ``query`` / ``text`` column) encoded by the stores' backbone."""
    if not isinstance(queries, FeatureStore) and Path(queries).suffix.lower() not in (".h5", ""):
        from .batch import read_queries
        from .queries import encode_queries, load_query_encoder

        q = read_queries(queries)
        rng = np.random.default_rng(seed)
        if q.texts is not None:
            pick = np.sort(rng.choice(len(q), size=min(n_queries, len(q)), replace=False))
            enc = load_query_encoder(ss.backbone, ss.fingerprint)
            x = encode_queries(enc, [q.texts[i] for i in pick.tolist()])
            return prepare(x, metric), f"{len(pick)} queries of {str(queries)!r}"
    fs = queries if isinstance(queries, FeatureStore) else FeatureStore(queries)
    try:
        fs.check_fingerprint(ss.fingerprint, "tuning queries")
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(fs), size=min(n_queries, len(fs)), replace=False))
        x = prepare(fs.read(rows), metric)
        return x, f"{len(rows)} rows of {str(fs.path)!r}"
    finally:
        if fs is not queries:
            fs.close()

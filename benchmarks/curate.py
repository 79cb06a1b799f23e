"""embedpipe curate against cleanlab's Datalab, on real data with planted faults, and on a
synthetic store at scale.

Real data (features computed once, cached under benchmarks/out/curate/):
- MNIST digits (the builtin source) with ImageNet MobileNetV2 features (1280-d);
- Rotten Tomatoes snippets with all-MiniLM-L6-v2 (384-d).
Planted in each train split: 5% of the labels flipped to another class; 2% near-duplicates
(images: shrunk by 3 px, JPEG quality 30, grown back; texts: upper-cased, doubled spaces,
punctuation dropped or added); 1% of the test items copied into train (leaks). Both tools see
the same features (train + test stores). cleanlab's Datalab gets cross-validated
LogisticRegression probabilities (its documented workflow) and the features; embedpipe runs
``curate([train, test])`` with its defaults. Each tool runs in a fresh process: wall time
includes reading the features; peak memory is that process's max RSS.

Items that the datasets duplicate themselves (the same text in train and test, or twice in
train) count as true leaks / duplicates: they are real faults, not false positives.

Synthetic: a store of N x 384 float32 Gaussian-mixture vectors (no labels), curated
(graph, duplicates, leaks, outliers) at the ``--sizes`` given (default 100k).

Run: python benchmarks/curate.py [--quick] [--sizes 100000,1000000] [--results DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import emit  # noqa: E402

CACHE = HERE / "out" / "curate"
RESULTS: dict[str, Any] = {}


# ---- planted data --------------------------------------------------------------------------
def _jpeg_variant(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = img.shape
    small = Image.fromarray(img).resize((w - 3, h - 3), Image.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=30)
    back = Image.open(io.BytesIO(buf.getvalue())).convert("L").resize((w, h), Image.BILINEAR)
    return np.asarray(back, dtype=np.uint8)


def _text_variant(text: str, rng: np.random.Generator) -> str:
    t = " ".join(text.split())
    kind = int(rng.integers(3))
    if kind == 0:
        t = t.upper()
    elif kind == 1:
        t = t.replace(" ", "  ").lower()
    else:
        t = t.rstrip(".!?,") + ("!" if not t.endswith("!") else ".")
    return t


def _plant(
    items: list[Any],
    labels: np.ndarray,
    test_items: list[Any],
    n_classes: int,
    variant: Any,
    seed: int,
) -> dict[str, Any]:
    """Train items with flips, near-duplicates and leaked test copies; ids name each kind."""
    rng = np.random.default_rng(seed)
    n = len(items)
    ids = [f"tr{i}" for i in range(n)]
    y = labels.copy()
    flipped = rng.choice(n, size=int(0.05 * n), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    orig = rng.choice(np.setdiff1d(np.arange(n), flipped), size=int(0.02 * n), replace=False)
    near = [variant(items[i], rng) for i in orig]
    leak_src = rng.choice(len(test_items), size=max(1, int(0.01 * len(test_items))), replace=False)
    return {
        "items": list(items) + near + [test_items[j] for j in leak_src],
        "labels": np.concatenate([y, labels[orig], np.full(len(leak_src), -2)]),
        "ids": ids + [f"nd{i}" for i in orig] + [f"lk{j}" for j in leak_src],
        "flipped": {f"tr{i}" for i in flipped},
        "near_pairs": [(f"tr{i}", f"nd{i}") for i in orig],
        "leaks": [(f"lk{j}", f"te{j}") for j in leak_src],
        "leak_src": leak_src,
    }


def _write_stores(name: str, quick: bool) -> dict[str, Any]:
    """Encode (once) the planted train split and the test split of one dataset."""
    from embedpipe.data import ArraySource, open_source
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    n_tr, n_te = (1000, 300) if quick else ((2000, 500) if name == "mnist" else (4000, 1000))
    folder = CACHE / f"{name}-{n_tr}-{n_te}"
    folder.mkdir(parents=True, exist_ok=True)
    truth_path = folder / "truth.json"
    train_h5, test_h5 = folder / "train.h5", folder / "test.h5"
    if truth_path.exists() and all(
        p.exists() and FeatureStore(p).complete for p in (train_h5, test_h5)
    ):
        return {**json.loads(truth_path.read_text()), "train": train_h5, "test": test_h5}
    tr = open_source(f"builtin:{name}?split=train&limit={n_tr}&seed=0")
    te = open_source(f"builtin:{name}?split=test&limit={n_te}&seed=0")
    classes = list(tr.classes)
    ytr, yte = np.asarray(tr.labels), np.asarray(te.labels)
    if name == "mnist":
        from embedpipe.backbones import find_bundled_weights, import_weights, load_backbone

        import_weights(find_bundled_weights())
        backbone: Any = load_backbone("torchvision:mobilenet_v2", weights="IMAGENET1K_V1")
        tr_items = [np.asarray(tr.load(i).convert("L")) for i in range(len(tr))]
        te_items = [np.asarray(te.load(i).convert("L")) for i in range(len(te))]

        def variant(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return _jpeg_variant(x)

        def as_data(items: list[Any]) -> Any:
            return np.stack(items)
    else:
        backbone = "minilm"
        tr_items = [tr.load(i) for i in range(len(tr))]
        te_items = [te.load(i) for i in range(len(te))]
        variant = _text_variant

        def as_data(items: list[Any]) -> Any:
            return list(items)

    p = _plant(tr_items, ytr, te_items, len(classes), variant, seed=1)
    lab = p["labels"]
    lab[lab == -2] = yte[p["leak_src"]]
    t0 = time.perf_counter()
    for items, labels, ids, path in (
        (p["items"], lab, p["ids"], train_h5),
        (te_items, yte, [f"te{j}" for j in range(len(te_items))], test_h5),
    ):
        src = ArraySource(as_data(items), labels=labels, classes=classes, ids=ids, name=path.stem)
        encode(src, backbone, path, progress=False, overwrite=True, num_workers=0)
    print(
        f"(encoded {name}: {len(p['items'])} + {len(te_items)} items in "
        f"{time.perf_counter() - t0:.0f}s)",
        flush=True,
    )
    key = (lambda x: x.tobytes()) if name == "mnist" else (lambda x: " ".join(x.split()))
    # the datasets' own duplicates: same content in train and test, or twice in train
    seen: dict[Any, list[str]] = {}
    for i, x in zip(p["ids"], p["items"], strict=True):
        seen.setdefault(key(x), []).append(i)
    natural_leaks, natural_dups = set(), set()
    for j, x in enumerate(te_items):
        hits = [i for i in seen.get(key(x), []) if not i.startswith("lk")]
        if hits:
            natural_leaks |= {f"te{j}", *hits}
    for group in seen.values():
        if len(group) > 1:
            natural_dups |= set(group)
    truth = {
        "flipped": sorted(p["flipped"]),
        "near_pairs": p["near_pairs"],
        "leaks": p["leaks"],
        "natural_leaks": sorted(natural_leaks),
        "natural_dups": sorted(natural_dups),
        "n_train": len(p["items"]),
        "n_test": len(te_items),
        "dim": int(FeatureStore(train_h5).dim),
    }
    truth_path.write_text(json.dumps(truth))
    return {**truth, "train": train_h5, "test": test_h5}


# ---- the two tools, each in a fresh process ------------------------------------------------
def _run_embedpipe(train: str, test: str) -> dict[str, Any]:
    from embedpipe.curate import curate

    r = curate([train, test])
    t = r.table
    out = {
        issue: sorted(
            f"{s}:{i}"
            for s, i in zip(t[t.issue == issue].split, t[t.issue == issue].id, strict=True)
        )
        for issue in ("label_issue", "near_duplicate", "exact_duplicate", "leak", "outlier")
    }
    out["threshold"] = r.summary["near_dup_threshold"]
    # how near the planted near-duplicate pairs are, next to each item's nearest neighbour
    truth = json.loads((Path(train).parent / "truth.json").read_text())
    ref = {r.corpus.ref(i): i for i in range(len(r.corpus))}
    pair_cos = []
    for a, b in truth["near_pairs"]:
        x = r.corpus.read_rows(np.array([ref[f"train:{a}"], ref[f"train:{b}"]]))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        pair_cos.append(float(x[0] @ x[1]))
    out["pair_cos_median"] = float(np.median(pair_cos))
    out["nn_cos_median"] = float(np.median(r.graph.sims[:, 0]))
    out["graph"] = r.summary["graph"]
    return out


def _run_cleanlab(train: str, test: str) -> dict[str, Any]:
    from cleanlab import Datalab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from embedpipe.store import FeatureStore

    Xs, ys, refs = [], [], []
    for split, path in (("train", train), ("test", test)):
        with FeatureStore(path) as fs:
            Xs.append(fs.features)
            ys.append(fs.labels)
            refs += [f"{split}:{i}" for i in fs.ids]
    X, y = np.concatenate(Xs), np.concatenate(ys)
    probs = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        X,
        y,
        cv=5,
        method="predict_proba",
    )
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    lab.find_issues(
        features=X, pred_probs=probs, issue_types={"label": {}, "near_duplicate": {}, "outlier": {}}
    )
    labels = lab.get_issues("label")
    near = lab.get_issues("near_duplicate")
    outl = lab.get_issues("outlier")
    is_train = np.array([r.startswith("train:") for r in refs])
    leak, dup = set(), set()
    for i in np.flatnonzero(near["is_near_duplicate_issue"].to_numpy()):
        for j in near["near_duplicate_sets"].iloc[i]:
            (leak if is_train[i] != is_train[j] else dup).update({refs[i], refs[int(j)]})
    return {
        "label_issue": sorted(refs[i] for i in np.flatnonzero(labels["is_label_issue"])),
        "near_duplicate": sorted(dup),
        "exact_duplicate": [],
        "leak": sorted(leak),
        "outlier": sorted(refs[i] for i in np.flatnonzero(outl["is_outlier_issue"])),
    }


def _child(fn_name: str, args: tuple, q: Any) -> None:
    import torch

    # a spawned child starts its own pools with spawn too, which cleanlab's workers do not
    # survive (they read globals set before the pool forks)
    mp.set_start_method("fork", force=True)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    out = globals()[fn_name](*args)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q.put(out)


def _in_child(fn_name: str, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, args, q))
    p.start()
    out = q.get()
    p.join()
    return out


# ---- scoring -------------------------------------------------------------------------------
def _prf(found: set[str], truth: set[str], ignore: set[str] = frozenset()) -> tuple:  # type: ignore[assignment]
    found = found - ignore
    tp = len(found & truth)
    p = tp / len(found) if found else float("nan")
    r = tp / len(truth) if truth else float("nan")
    f1 = 2 * p * r / (p + r) if found and tp else 0.0
    return p, r, f1


def bench_real(quick: bool) -> None:
    rows, goals, notes = [], [], []
    for name, title in (
        ("mnist", "MNIST + MobileNetV2"),
        ("rotten_tomatoes", "Rotten Tomatoes + MiniLM"),
    ):
        d = _write_stores(name, quick)
        flipped = {f"train:{i}" for i in d["flipped"]}
        near_truth = {f"train:{i}" for pair in d["near_pairs"] for i in pair}
        leak_truth = {f"train:{a}" for a, _ in d["leaks"]} | {f"test:{b}" for _, b in d["leaks"]}
        nat_leaks = {f"{'test' if i.startswith('te') else 'train'}:{i}" for i in d["natural_leaks"]}
        nat_dups = {f"train:{i}" for i in d["natural_dups"]}
        res = {
            tool: _in_child(fn, str(d["train"]), str(d["test"]))
            for tool, fn in (("embedpipe", "_run_embedpipe"), ("cleanlab Datalab", "_run_cleanlab"))
        }
        scores: dict[str, dict[str, tuple]] = {}
        for tool, r in res.items():
            lab_found = {x for x in r["label_issue"] if x.startswith("train:")}
            # near-duplicates: planted pairs; an item the dataset itself repeats is a true dup
            dup_found = set(r["near_duplicate"]) | set(r["exact_duplicate"])
            sc = {
                "label": _prf(lab_found, flipped),
                "near_dup": _prf(dup_found, near_truth | nat_dups, ignore=set()),
                "leak": _prf(set(r["leak"]), leak_truth | nat_leaks),
            }
            scores[tool] = sc
            rows.append(
                {
                    "data": f"{title} ({d['n_train']:,}+{d['n_test']:,}, {d['dim']}-d)",
                    "tool": tool,
                    "label P / R / F1": "{:.2f} / {:.2f} / {:.2f}".format(*sc["label"]),
                    "near-dup P / R": "{:.2f} / {:.2f}".format(*sc["near_dup"][:2]),
                    "leak P / R": "{:.2f} / {:.2f}".format(*sc["leak"][:2]),
                    "outliers flagged": len(r["outlier"]),
                    "wall s": round(r["seconds"], 1),
                    "peak RSS MB": round(r["peak_rss_mb"]),
                }
            )
            print(rows[-1], flush=True)
        ours, theirs = scores["embedpipe"], scores["cleanlab Datalab"]
        goals.append(
            {
                "data": title,
                "goal": "label-issue F1 >= cleanlab's",
                "value": f"{ours['label'][2]:.3f} vs {theirs['label'][2]:.3f}",
                "met": "met" if ours["label"][2] >= theirs["label"][2] else "not met",
            }
        )
        for what in ("near_dup", "leak"):
            p, r, _ = ours[what]
            goals.append(
                {
                    "data": title,
                    "goal": f"{what.replace('_', '-')} recall >= 0.95 at precision >= 0.9",
                    "value": f"P {p:.3f}, R {r:.3f}",
                    "met": "met" if (r >= 0.95 and p >= 0.9) else "not met",
                }
            )
        e = res["embedpipe"]
        notes.append(
            f"{title}: planted near-duplicate pairs have median cosine {e['pair_cos_median']:.3f}; "
            f"an item's nearest neighbour has median cosine {e['nn_cos_median']:.3f}; "
            f"auto threshold {e['threshold']:.4f}"
        )
        RESULTS[name] = {
            "truth": {k: len(v) for k, v in d.items() if isinstance(v, list)},
            "thr": res["embedpipe"].get("threshold"),
        }
    emit(
        "curate",
        "embedpipe curate vs cleanlab Datalab on planted faults (same features)",
        list(rows[0]),
        rows,
        notes=[
            "planted in train: 5% labels flipped, 2% near-duplicates (images: -3 px + JPEG q30; "
            "texts: case / spacing / punctuation), 1% of test copied into train",
            "label P/R over train items; near-dup and leak P/R over items; items the dataset "
            "itself repeats count as true duplicates / leaks",
            "cleanlab: cross-validated LogisticRegression probabilities + features into "
            "Datalab.find_issues (label, near_duplicate, outlier); leaks = its near-duplicate "
            "sets spanning train and test",
            "each tool in a fresh process; wall time includes reading the stores",
            "embedpipe: curate defaults (logreg out-of-fold probabilities blended with 0.3 of "
            "the kNN graph's neighbour-label vote, cleanlab.filter.find_label_issues)",
            *notes,
        ],
        out_dir=RESULTS.get("dir"),
    )
    emit("curate-goals", "curate goals", list(goals[0]), goals, out_dir=RESULTS.get("dir"))


# ---- scale -----------------------------------------------------------------------------------
def _synthetic(n: int, dim: int = 384) -> Path:
    from embedpipe.store import FeatureStore, StoreWriter

    path = CACHE / f"synthetic-{n}x{dim}.h5"
    if path.exists() and FeatureStore(path).complete:
        return path
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    w = StoreWriter.create(
        path, dim=dim, fingerprint="synthetic", backbone={"name": "synthetic"}, overwrite=True
    )
    block = 50_000
    for s in range(0, n, block):
        m = min(block, n - s)
        x = centres[rng.integers(0, 1000, m)] + rng.normal(size=(m, dim)).astype(np.float32) * 0.6
        hashes = [int(i).to_bytes(16, "little") for i in range(s + 1, s + m + 1)]
        w.append(x, [str(i) for i in range(s, s + m)], hashes)
    w.finalize()
    return path


def _run_scale(path: str, method: str) -> dict[str, Any]:
    from embedpipe.curate import curate

    r = curate([path], labels=False, block_rows=32768, method=method)
    return {
        "graph": r.summary["graph"],
        "counts": r.summary["counts"],
        "steps": r.summary["seconds"],
    }


def bench_scale(sizes: list[int], method: str) -> None:
    rows = []
    for n in sizes:
        path = _synthetic(n)
        r = _in_child("_run_scale", str(path), method)
        feat_mb = n * 384 * 4 / 2**20
        rows.append(
            {
                "rows": f"{n:,}",
                "graph": r["graph"],
                "wall s": round(r["seconds"], 1),
                "peak RSS MB": round(r["peak_rss_mb"]),
                "features MB": round(feat_mb),
                "RSS - features MB": round(r["peak_rss_mb"] - feat_mb),
                "steps s": ", ".join(f"{k} {v:.0f}" for k, v in r["steps"].items()),
            }
        )
        print(rows[-1], flush=True)
    emit(
        "curate-scale",
        "curate on a synthetic 384-d store (no labels)",
        list(rows[0]),
        rows,
        notes=["graph, duplicates, leaks and outliers; label issues off (no labels)"],
        out_dir=RESULTS.get("dir"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller real sets")
    ap.add_argument(
        "--sizes",
        default="100000",
        help="synthetic store sizes, comma-separated (e.g. 100000,1000000)",
    )
    ap.add_argument("--method", default="auto", help="graph method at scale: auto, exact, ivf")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--results", type=Path, default=None)
    a = ap.parse_args()
    RESULTS["dir"] = a.results
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not a.skip_real:
        bench_real(a.quick)
    if not a.skip_scale:
        bench_scale([int(x) for x in a.sizes.split(",")], a.method)


if __name__ == "__main__":
    main()

"""Which preprocessing should heads use by default? Accuracy and macro-F1 of heads trained with
``none``, ``l2`` and ``standardize`` on bundled data: Rotten Tomatoes snippets with MiniLM
(L2-normalised features) and scikit-learn's digits with MobileNetV2 (not normalised).

    python benchmarks/preprocess_default.py [--rt-train 2400 --rt-test 600 --digits-train 500
                                             --digits-test 250]

Stores are encoded into cache/bench/preprocess/ (a re-run reuses them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import emit  # noqa: E402

from embedpipe import encode, open_source  # noqa: E402
from embedpipe.heads.registry import HeadSpec  # noqa: E402
from embedpipe.store import FeatureStore  # noqa: E402

HEADS = ("logreg", "linear_svm")
PREPROCESS = ("none", "l2", "standardize")


def _store(source: str, backbone: str, out: Path) -> tuple[np.ndarray, np.ndarray]:
    encode(open_source(source), backbone, out, progress=False)
    with FeatureStore(out) as fs:
        x, y = fs.read_all()[:2] if hasattr(fs, "read_all") else (None, None)
    if x is None:
        import h5py

        with h5py.File(out, "r") as h:
            n = int(h.attrs["n_committed"])
            x, y = h["features"][:n], h["labels"][:n]
    return np.asarray(x, np.float32), np.asarray(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rt-train", type=int, default=2400)
    ap.add_argument("--rt-test", type=int, default=600)
    ap.add_argument("--digits-train", type=int, default=500)
    ap.add_argument("--digits-test", type=int, default=250)
    args = ap.parse_args()
    root = Path("cache/bench/preprocess")
    data = {
        "rotten_tomatoes / minilm": (
            "minilm",
            f"builtin:rotten_tomatoes?split=train&limit={args.rt_train}",
            f"builtin:rotten_tomatoes?split=test&limit={args.rt_test}",
        ),
        "digits / mobilenet_v2-imagenet": (
            "mobilenet_v2-imagenet",
            f"builtin:digits?split=train&limit={args.digits_train}",
            f"builtin:digits?split=test&limit={args.digits_test}",
        ),
    }
    from sklearn.metrics import accuracy_score, f1_score

    rows = []
    for name, (backbone, train, test) in data.items():
        stem = name.split(" /")[0]
        xtr, ytr = _store(train, backbone, root / f"{stem}-train.h5")
        xte, yte = _store(test, backbone, root / f"{stem}-test.h5")
        norms = np.linalg.norm(xtr, axis=1)
        for head in HEADS:
            for pre in PREPROCESS:
                t = time.perf_counter()
                model = HeadSpec(head, {}, pre, random_state=0).build().fit(xtr, ytr)
                pred = model.predict(xte)
                rows.append(
                    {
                        "data": name,
                        "rows": f"{len(ytr)}/{len(yte)}",
                        "unit norm": bool(np.allclose(norms, 1, atol=1e-3)),
                        "head": head,
                        "preprocess": pre,
                        "accuracy": round(float(accuracy_score(yte, pred)), 4),
                        "macro F1": round(float(f1_score(yte, pred, average="macro")), 4),
                        "fit s": round(time.perf_counter() - t, 2),
                    }
                )
    emit(
        "preprocess_default",
        "Heads' preprocessing on bundled data: none vs l2 vs standardize",
        ["data", "rows", "unit norm", "head", "preprocess", "accuracy", "macro F1", "fit s"],
        rows,
        notes=["train/test: the builtin stratified splits (seed 0); heads at default params"],
    )


if __name__ == "__main__":
    main()

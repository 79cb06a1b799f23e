"""Training heads from stores, saving them with provenance, refusing other backbones' features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from embedpipe.errors import ConfigError, FingerprintMismatchError
from embedpipe.heads import TorchHeadClassifier, evaluate_head, load_head, train_head

from .conftest import make_store

# registry head -> the same estimator fitted by hand on the in-memory features (for knn:
# scikit-learn's own brute-force kNN, which the FAISS classifier replaces)
HAND_FITTED = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "knn": lambda: make_pipeline(
        StandardScaler(), KNeighborsClassifier(5, metric="cosine", algorithm="brute")
    ),
    "torch_linear": lambda: make_pipeline(StandardScaler(), TorchHeadClassifier()),
    "torch_mlp": lambda: make_pipeline(
        StandardScaler(), TorchHeadClassifier(hidden_sizes=(256,), dropout=0.1)
    ),
    "sgd": lambda: make_pipeline(
        StandardScaler(), SGDClassifier(loss="log_loss", max_iter=50, tol=1e-4, random_state=0)
    ),
}


@pytest.mark.parametrize("data", ["rotten", "mnist"])
@pytest.mark.parametrize("head", sorted(HAND_FITTED))
def test_heads_within_one_point_of_sklearn_fitted_by_hand(
    request, data: str, head: str, tmp_path: Path
) -> None:
    real = request.getfixturevalue(data)
    trained = train_head(real.train, head, out=tmp_path / "h.joblib")
    ours = evaluate_head(load_head(tmp_path / "h.joblib"), real.test).best.mean("accuracy")
    pipe = HAND_FITTED[head]()
    if np.allclose(np.linalg.norm(real.Xtr, axis=1), 1, atol=1e-3):
        pipe = pipe[1:]  # the default preprocess="auto" leaves L2-normalised rows as they are
    by_hand = pipe.fit(real.Xtr, real.ytr).score(real.Xte, real.yte)
    assert abs(ours - by_hand) <= 0.01, (head, data, ours, by_hand)
    assert trained.fingerprint == real.encoder.fingerprint


def test_saved_head_carries_provenance_and_refuses_other_backbones(
    mnist, rotten, tmp_path: Path
) -> None:
    head = train_head(mnist.train, "logreg", params={"C": 0.5}, out=tmp_path / "h.joblib")
    loaded = load_head(tmp_path / "h.joblib", expected_fingerprint=mnist.encoder.fingerprint)
    assert loaded.classes == [str(i) for i in range(10)]
    assert loaded.backbone["name"] == "mobilenet_v2" and loaded.n_features == 1280
    assert loaded.spec == {
        "name": "logreg",
        "params": {"C": 0.5},
        "preprocess": ["auto"],
        "random_state": 0,
    }
    assert loaded.trained_on["n_rows"] == 600 and loaded.trained_on["path"] == str(mnist.train)
    np.testing.assert_array_equal(loaded.predict(mnist.Xte), head.predict(mnist.Xte))
    preds = loaded.predict_store(mnist.test)
    assert preds.ids[:2] == [str(i) for i in mnist.test_source.ids[:2]]
    assert preds.proba is not None and preds.proba.shape == (300, 10)

    with pytest.raises(
        FingerprintMismatchError, match=r"trained on features of backbone 'mobilenet_v2'"
    ):
        loaded.predict_store(rotten.test)
    with pytest.raises(FingerprintMismatchError):
        evaluate_head(loaded, rotten.test)
    with pytest.raises(FingerprintMismatchError):
        load_head(tmp_path / "h.joblib", expected_fingerprint=rotten.encoder.fingerprint)


def test_unlabelled_rows_are_ignored_and_unlabelled_stores_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = np.r_[np.arange(40) % 2, np.full(20, -1)]
    head = train_head(make_store(tmp_path / "s.h5", X, y, classes=["no", "yes"]), "logreg")
    assert head.trained_on["n_rows"] == 40 and head.classes == ["no", "yes"]
    with pytest.raises(ConfigError, match="no labelled rows"):
        train_head(make_store(tmp_path / "u.h5", X, np.full(60, -1), classes=["a"]), "logreg")


def test_bad_head_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_head(tmp_path / "missing.joblib")
    import joblib

    joblib.dump({"something": 1}, tmp_path / "other.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    for name in ("other.joblib", "junk.joblib"):  # not skops: a pickle, refused untrusted
        with pytest.raises(ConfigError, match=r"not in the safe \(skops\) format.*--trust"):
            load_head(tmp_path / name)
    with pytest.raises(ConfigError, match="not an embedpipe head file"):
        load_head(tmp_path / "other.joblib", trusted=True)
    with pytest.raises(ConfigError, match="cannot read head file"):
        load_head(tmp_path / "junk.joblib", trusted=True)


def test_predictions_write_csv_jsonl_parquet(mnist, tmp_path: Path) -> None:
    import pandas as pd

    preds = train_head(mnist.train, "knn").predict_store(mnist.test)
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = preds.write(tmp_path / f"p{suffix}")
        frame = {
            ".csv": pd.read_csv,
            ".parquet": pd.read_parquet,
            ".jsonl": lambda p: pd.read_json(p, lines=True),
        }[suffix](path)
        assert list(frame.columns) == ["id", "class_index", "class", "score"] and len(frame) == 300
    with pytest.raises(ConfigError, match="csv, .jsonl or .parquet"):
        preds.write(tmp_path / "p.txt")

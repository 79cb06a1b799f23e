"""Metrics, held-out evaluation and cross-validation of several heads; the JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score, top_k_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from embedpipe.errors import ConfigError
from embedpipe.heads import (
    EvaluationReport,
    classification_metrics,
    cross_validate_heads,
    evaluate_head,
    train_head,
)
from embedpipe.heads.evaluation import SCHEMA


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 200)
    scores = rng.random((200, 8)) + np.eye(8)[y] * 0.6
    pred = scores.argmax(1)
    m = classification_metrics(y, pred, scores, labels=np.arange(8), top_k=3)
    assert m["accuracy"] == pytest.approx((pred == y).mean())
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["top_k_accuracy"] == pytest.approx(top_k_accuracy_score(y, scores, k=3))
    assert classification_metrics(y % 2, pred % 2, None)["top_k_accuracy"] is None  # no scores
    assert (
        classification_metrics(y % 2, pred % 2, scores[:, 0], top_k=5)["top_k_accuracy"] is None
    )  # k >= classes


def test_cross_validation_of_several_heads_on_a_store(mnist, tmp_path: Path) -> None:
    heads = [
        "logreg",
        {"name": "knn", "params": {"n_neighbors": 10}},
        {"name": "sgd", "preprocess": "l2"},
    ]
    report = cross_validate_heads(heads, mnist.train, cv=3, random_state=0)
    names = [r.name for r in report.results]
    assert sorted(names) == sorted(["logreg+auto", "knn[n_neighbors=10]+auto", "sgd+l2"])
    accs = [r.mean("accuracy") for r in report.results]
    assert accs == sorted(accs, reverse=True) and report.best.name == names[0]

    # the same folds and estimator by hand give the same logistic regression scores
    by_hand = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)),
        mnist.Xtr,
        mnist.ytr,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    np.testing.assert_allclose(report.result("logreg+auto").scores["accuracy"]["folds"], by_hand)

    r = report.result("logreg+auto")
    cm = np.array(r.confusion_matrix)
    assert cm.shape == (10, 10) and cm.sum() == 600  # out-of-fold predictions of every row
    assert [c["support"] for c in r.per_class] == np.bincount(mnist.ytr, minlength=10).tolist()
    assert r.scores["top_k_accuracy"]["mean"] >= r.scores["accuracy"]["mean"]
    assert len(r.fit_seconds["folds"]) == 3

    table = report.table()
    assert table.splitlines()[0].split()[:4] == ["head", "accuracy", "bal.", "acc"]
    assert "top-5" in table and all(n in table for n in names)

    path = tmp_path / "cv.json"
    report.to_json(path)
    d = json.loads(path.read_text())
    assert d["schema"] == SCHEMA and d["kind"] == "cross_validation"
    assert d["protocol"] == {
        "cv": 3,
        "shuffle": True,
        "stratified": True,
        "random_state": 0,
        "top_k": 5,
    }
    assert d["data"]["fingerprint"] == mnist.encoder.fingerprint and d["data"]["n_rows"] == 600
    assert d["data"]["classes"] == [str(i) for i in range(10)]
    assert d["metrics"] == ["accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy"]
    assert set(d["results"][0]) == {
        "name",
        "head",
        "scores",
        "fit_seconds",
        "predict_seconds",
        "per_class",
        "confusion_matrix",
    }
    again = EvaluationReport.from_json(path)
    assert again.to_dict() == d


def test_holdout_evaluation_of_a_binary_text_head(rotten) -> None:
    head = train_head(rotten.train, "logreg")
    report = evaluate_head(head, rotten.test)
    r = report.best
    assert report.kind == "holdout" and len(r.scores["accuracy"]["folds"]) == 1
    assert r.scores["accuracy"]["mean"] == pytest.approx(
        head.estimator.score(rotten.Xte, rotten.yte)
    )
    assert r.scores["top_k_accuracy"] is None  # 2 classes: top-5 is meaningless
    assert [c["class"] for c in r.per_class] == head.classes == ["fresh", "rotten"]
    assert report.protocol["train"]["path"] == str(rotten.train)
    assert "-" in report.table()  # the missing top-k shows as a dash


def test_cross_validation_errors() -> None:
    X, y = np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 3
    with pytest.raises(ConfigError, match="cv=1"):
        cross_validate_heads(["logreg"], (X, y), cv=1)
    with pytest.raises(ConfigError, match="both named"):
        cross_validate_heads(["logreg", "logreg"], (X, y), cv=3)
    with pytest.raises(ConfigError, match="unknown head 'nope'"):
        cross_validate_heads(["nope"], (X, y), cv=3)
    with pytest.raises(ConfigError, match="not an embedpipe evaluation report"):
        EvaluationReport.from_dict({"schema": "other"})

"""Figures a reviewer trusts: a majority-class baseline, bootstrap 95% intervals, misclassified
examples with their inputs, the fine-tuning curve; no fit time an evaluation did not spend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.heads import EvaluationReport, cross_validate_heads, evaluate_head, train_head
from embedpipe.heads.evaluation import evaluate_predictions

from .conftest import make_store


def test_holdout_report_has_baseline_intervals_and_misclassified_texts(rotten) -> None:
    head = train_head(rotten.train, "logreg")
    report = evaluate_head(head, rotten.test)
    r, base = report.best, report.baseline
    # the baseline predicts the training majority for every test item
    majority = int(np.bincount(rotten.ytr).argmax())
    assert base is not None and base.head["class"] == head.classes[majority]
    assert base.mean("accuracy") == pytest.approx((rotten.yte == majority).mean())
    assert r.mean("accuracy") > base.mean("accuracy") + 0.05
    # percentile bootstrap over the 250 test items brackets the score, a few points wide
    for m in ("accuracy", "macro_f1"):
        lo, hi = r.intervals[m]
        assert lo < r.mean(m) < hi and 0.02 < hi - lo < 0.2
    # the gallery: each misclassified item with its text, true and predicted class
    wrong = int((head.predict(rotten.Xte) != rotten.yte).sum())
    assert len(r.errors) == min(wrong, 24) and wrong > 0
    texts = {str(i): rotten.test_source.load(k) for k, i in enumerate(rotten.test_source.ids)}
    e = r.errors[0]
    assert e["true"] != e["predicted"] and e["input"] in (texts[e["id"]], e["id"])
    scores = [x["score"] for x in r.errors]
    assert scores == sorted(scores, reverse=True)  # most confident mistakes first
    # the fit time was not spent here
    assert r.fit_seconds is None and r.predict_seconds is not None
    table = report.table().splitlines()
    assert table[2].split()[-2] == "-"  # fit s
    assert table[-1].startswith("majority class (baseline)")
    assert f"[{lo:.3f}, {hi:.3f}]" in report.table()
    again = EvaluationReport.from_dict(json.loads(report.to_json()))
    assert again.to_dict() == report.to_dict() and again.baseline.name == "majority class"


def test_cross_validation_baseline_is_each_folds_training_majority() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60, int), np.ones(30, int), np.full(10, 2)]
    X = rng.normal(size=(100, 5)) + y[:, None]
    report = cross_validate_heads(["logreg"], (X, y), cv=5)
    assert report.baseline.scores["accuracy"]["mean"] == pytest.approx(0.6)
    assert report.best.mean("accuracy") > 0.7
    assert "majority class (baseline)" in report.table()


def test_evaluate_predictions_keeps_the_training_curve() -> None:
    curve = [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}]
    r = evaluate_predictions(
        "ft",
        {"name": "finetune"},
        [0, 1, 1],
        [0, 1, 0],
        labels=[0, 1],
        names=["a", "b"],
        training_curve=curve,
        fit_seconds=1.5,
        ids=["x", "y", "z"],
    )
    assert r.to_dict()["training_curve"] == curve and r.fit_seconds["mean"] == 1.5
    assert r.errors == [{"id": "z", "input": None, "true": "b", "predicted": "a", "score": None}]


def test_evaluate_model_shows_no_fit_time_but_train_eval_does(tmp_path: Path) -> None:
    from embedpipe.cli import heads_cmd

    app = typer.Typer()
    heads_cmd.register(app)
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    store = make_store(tmp_path / "s.h5", rng.normal(size=(80, 4)) + y[:, None], y)
    head = tmp_path / "h.skops"
    trained = CliRunner().invoke(
        app, ["train", "-s", str(store), "-o", str(head), "--eval", str(store)]
    )
    assert trained.exit_code == 0, trained.output
    row = next(x for x in trained.output.splitlines() if x.startswith("logreg+auto"))
    assert row.split()[-2] != "-"  # train --eval spent the fit time it shows
    out = CliRunner().invoke(app, ["evaluate", "-s", str(store), "--model", str(head)])
    assert out.exit_code == 0, out.output
    row = next(x for x in out.output.splitlines() if x.startswith("logreg+auto"))
    assert row.split()[-2] == "-"  # fit s: this command fitted nothing

"""``embedpipe train / evaluate / predict`` on an app built with heads_cmd.register."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli import heads_cmd
from embedpipe.errors import ConfigError, FingerprintMismatchError


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    heads_cmd.register(app)
    return app


def _ok(app: typer.Typer, args: list[str]) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_train_evaluate_predict_on_stores(app, mnist, rotten, tmp_path: Path) -> None:
    head = tmp_path / "head.joblib"
    out = _ok(
        app,
        [
            "train",
            "--store",
            mnist.train,
            "--head",
            "logreg",
            "-p",
            "C=0.5",
            "--out",
            head,
            "--eval",
            mnist.test,
        ],
    )
    assert "logreg on 600 rows x 1280 (10 classes)" in out and "logreg[C=0.5]+auto" in out

    out = _ok(
        app,
        ["evaluate", "--store", mnist.test, "--model", head, "--json", tmp_path / "holdout.json"],
    )
    report = json.loads((tmp_path / "holdout.json").read_text())
    assert (
        report["kind"] == "holdout"
        and f"{report['results'][0]['scores']['accuracy']['mean']:.4f}" in out
    )

    out = _ok(
        app,
        [
            "evaluate",
            "--store",
            mnist.train,
            "--head",
            "logreg",
            "--head",
            "{name: knn, params: {n_neighbors: 3}}",
            "--cv",
            "3",
            "--json",
            tmp_path / "cv.json",
        ],
    )
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert cv["kind"] == "cross_validation" and {r["name"] for r in cv["results"]} == {
        "logreg+auto",
        "knn[n_neighbors=3]+auto",
    }
    assert "knn[n_neighbors=3]+auto" in out

    _ok(app, ["predict", "--model", head, "--store", mnist.test, "--out", tmp_path / "p.csv"])
    preds = pd.read_csv(tmp_path / "p.csv", dtype={"id": str, "class": str})
    assert len(preds) == 300 and preds["id"].tolist() == [str(i) for i in mnist.test_source.ids]

    result = CliRunner().invoke(app, ["predict", "--model", str(head), "--store", str(rotten.test)])
    assert isinstance(result.exception, FingerprintMismatchError)


def test_predict_raw_inputs_through_backbone_and_head(app, mnist, tmp_path: Path) -> None:
    head = tmp_path / "head.joblib"
    _ok(app, ["train", "--store", mnist.train, "--head", "knn", "--out", head])
    _ok(
        app,
        ["predict", "--model", head, "--store", mnist.test, "--out", tmp_path / "from_store.csv"],
    )
    _ok(
        app,
        [
            "predict",
            "--model",
            head,
            "--data",
            "builtin:mnist?split=test&limit=300",
            "--out",
            tmp_path / "raw.csv",
        ],
    )
    a = pd.read_csv(tmp_path / "from_store.csv", dtype={"id": str}).set_index("id")
    b = pd.read_csv(tmp_path / "raw.csv", dtype={"id": str}).set_index("id")
    assert sorted(a.index) == sorted(b.index)
    assert (
        a.loc[b.index, "class"] == b["class"]
    ).mean() > 0.97  # same backbone re-run on the raw images
    out = _ok(app, ["predict", "--model", head, "--data", "builtin:mnist?split=test&limit=3"])
    assert len(out.strip().splitlines()) == 3


def test_out_of_core_training_and_usage_errors(app, mnist, tmp_path: Path) -> None:
    out = _ok(
        app,
        [
            "train",
            "--store",
            mnist.train,
            "--head",
            "sgd",
            "--out-of-core",
            "--batch-size",
            "128",
            "--epochs",
            "2",
            "--out",
            tmp_path / "h.joblib",
        ],
    )
    assert "sgd on 600 rows" in out
    result = CliRunner().invoke(app, ["evaluate", "--store", str(mnist.test)])
    assert isinstance(result.exception, ConfigError) and "--model" in str(result.exception)
    result = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "h.joblib")])
    assert isinstance(result.exception, ConfigError)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--store",
            str(mnist.train),
            "--head",
            "nope",
            "--out",
            str(tmp_path / "x.joblib"),
        ],
    )
    assert isinstance(result.exception, ConfigError) and "logreg" in str(result.exception)
    assert "torch_mlp" in _ok(app, ["heads"])

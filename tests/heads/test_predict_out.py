"""``predict --out``: input text or path, true class, predicted class and score; a head used on
the wrong modality says what it expects."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli import heads_cmd
from embedpipe.errors import ConfigError
from embedpipe.heads import predict_items, train_head


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    heads_cmd.register(app)
    return app


def test_predict_out_shows_input_true_class_prediction_and_score(
    app, rotten, tmp_path: Path
) -> None:
    head = tmp_path / "h.skops"
    train_head(rotten.train, "logreg", out=head)
    data = "builtin:rotten_tomatoes?split=test&limit=6"
    r = CliRunner().invoke(
        app, ["predict", "-m", str(head), "-d", data, "-o", str(tmp_path / "p.csv")]
    )
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert list(p.columns) == ["id", "input", "true_class", "class_index", "class", "score"]
    from embedpipe.data import open_source

    src = open_source(data)
    assert p["input"].tolist() == [src.load(i) for i in range(6)]
    assert p["true_class"].tolist() == [src.classes[v] for v in src.labels[:6]]
    assert set(p["class"]) <= {"fresh", "rotten"} and p["score"].astype(float).between(0.5, 1).all()

    # from a store: the store's rows, with the true class it records
    r = CliRunner().invoke(
        app, ["predict", "-m", str(head), "-s", str(rotten.test), "-o", str(tmp_path / "s.csv")]
    )
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp_path / "s.csv", dtype=str)
    assert {"input", "true_class", "class", "score"} <= set(s.columns) and len(s) == 250
    assert (s["true_class"] == [src.classes[v] for v in rotten.yte]).all()
    texts = [rotten.test_source.load(i) for i in range(250)]
    assert s["input"].isin(texts + list(map(str, rotten.test_source.ids))).all()


def test_a_head_on_the_wrong_modality_says_what_it_expects(app, mnist, tmp_path: Path) -> None:
    head = tmp_path / "digits.skops"
    train_head(mnist.train, "logreg", out=head)
    r = CliRunner().invoke(
        app, ["predict", "-m", str(head), "-d", "builtin:rotten_tomatoes?split=test&limit=3"]
    )
    assert isinstance(r.exception, ConfigError)
    msg = str(r.exception)
    assert msg.startswith("this head expects images (its backbone is 'mobilenet_v2')"), msg
    assert "texts" in msg and "--on-error" not in msg and "TypeError" not in msg
    with pytest.raises(
        ConfigError, match=r"this head expects images .*the items given holds texts"
    ):
        predict_items(head, ["a fine film", "a dull film"])

"""``preprocess="auto"`` (the default, issue 27): none for L2-normalised features, standardize
otherwise; the choice is saved with the head and shown by ``train``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.heads import HeadSpec, load_head, train_head
from embedpipe.heads.autoscale import AutoScaler, chosen_preprocessing


def test_auto_is_the_default_and_chooses_from_the_row_norms() -> None:
    assert HeadSpec("logreg").preprocess == "auto"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)) * 5 + 3
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert AutoScaler().fit(unit).chosen_ == "none"
    np.testing.assert_array_equal(AutoScaler().fit(unit).transform(unit), unit)
    scaled = AutoScaler().fit(X)
    assert scaled.chosen_ == "standardize"
    assert abs(scaled.transform(X).mean()) < 1e-6
    batched = AutoScaler().partial_fit(unit[:100]).partial_fit(X[100:])
    assert batched.chosen_ == "standardize"  # one batch of unnormalised rows decides


def test_auto_on_bundled_minilm_features_beats_standardize(minilm, tmp_path: Path) -> None:
    """On real L2-normalised MiniLM features (Rotten Tomatoes), auto = none, and it scores at
    least as well as the former default (standardize) on held-out snippets."""
    from embedpipe import encode, open_source

    stores = {}
    for split, n in (("train", 600), ("test", 300)):
        out = tmp_path / f"{split}.h5"
        src = open_source(f"builtin:rotten_tomatoes?split={split}&limit={n}")
        encode(src, minilm, out, progress=False)
        stores[split] = out
    auto = train_head(stores["train"], HeadSpec("logreg"))
    std = train_head(stores["train"], HeadSpec("logreg", preprocess="standardize"))
    assert chosen_preprocessing(auto.estimator) == "none"
    from embedpipe.heads import evaluate_head

    a = evaluate_head(auto, stores["test"]).best.mean("accuracy")
    s = evaluate_head(std, stores["test"]).best.mean("accuracy")
    assert a >= s, (a, s)


def test_train_saves_and_shows_the_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    vec = tmp_path / "vec.txt"
    vec.write_text("\n".join(f"{w} " + " ".join(map(str, rng.normal(size=4))) for w in "abcd"))
    csv = tmp_path / "t.csv"
    csv.write_text(
        "text,label\n" + "".join(f"{'abcd'[i % 4]} b,{'xy'[i % 2]}\n" for i in range(16))
    )
    store, head = tmp_path / "s.h5", tmp_path / "h.skops"
    argv = ["encode", "--data", str(csv), "--text-column", "text", "--label-column", "label"]
    main_ok([*argv, "--backbone", f"word-vectors:{vec}", "--out", str(store), "-q"])
    main_ok(["train", "--store", str(store), "--head", "logreg", "--out", str(head)])
    out = capsys.readouterr().out
    assert "preprocess auto: standardize (features not L2-normalised)" in out, out
    assert chosen_preprocessing(load_head(head).estimator) == "standardize"


def main_ok(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as e:
        assert not e.code, argv


def test_evaluating_on_the_training_store_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from embedpipe.heads import evaluate_head
    from embedpipe.heads._examples import digits_store

    digits_store(tmp_path / "train.h5", n=300)
    head = train_head(tmp_path / "train.h5", "nearest_centroid")
    with caplog.at_level("WARNING", logger="embedpipe"):
        evaluate_head(head, tmp_path / "train.h5")
    assert "holds the rows the head was trained on" in caplog.text

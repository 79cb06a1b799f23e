"""The leaderboard: best head per feature extractor, bootstrap intervals, the Pareto front."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from embedpipe.errors import ConfigError
from embedpipe.heads.leaderboard import (
    Candidate,
    bootstrap_intervals,
    format_table,
    leaderboard,
    pareto_front,
)


def test_best_head_per_group_with_hand_computed_figures() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    a_good = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 0])  # 8/10
    a_bad = np.array([0, 1, 1, 1, 0, 1, 2, 0, 2, 0])  # 5/10
    b_only = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])  # 9/10
    rows = leaderboard(
        [
            Candidate("A", "knn", y, a_bad, dim=16, items_per_s=2000.0, fit_seconds=0.1),
            Candidate("A", "logreg", y, a_good, dim=16, items_per_s=2000.0, fit_seconds=0.5),
            Candidate("B", "logreg", y, b_only, dim=1280, items_per_s=50.0, store_bytes=10),
            Candidate("C", "logreg", y, a_bad, dim=64, items_per_s=10.0),
        ],
        n_boot=500,
    )
    assert [(r.group, r.head) for r in rows] == [("B", "logreg"), ("A", "logreg"), ("C", "logreg")]
    assert [r.accuracy for r in rows] == [0.9, 0.8, 0.5]
    assert rows[1].macro_f1 == pytest.approx(f1_score(y, a_good, average="macro"))
    assert rows[1].heads_tried == 2 and rows[1].fit_seconds == 0.5 and rows[1].dim == 16
    # B is best, A is cheapest: both on the front; C is slower and worse than both
    assert [r.pareto for r in rows] == [True, True, False]
    for r in rows:
        assert r.accuracy_ci[0] <= r.accuracy <= r.accuracy_ci[1]
    table = format_table(rows)
    assert "| B * | logreg | 0.900 [" in table and "| C | logreg | 0.500" in table


def test_bootstrap_intervals_match_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300))
    ci = bootstrap_intervals(y, p, n_boot=400, seed=3)
    # the same resamples, scored one by one with scikit-learn
    idx = np.random.default_rng(3).integers(0, 300, size=(400, 300))
    acc = [(y[i] == p[i]).mean() for i in idx]
    f1 = [f1_score(y[i], p[i], average="macro") for i in idx]
    assert ci["accuracy"] == pytest.approx(tuple(np.quantile(acc, [0.025, 0.975])), abs=1e-6)
    assert ci["macro_f1"] == pytest.approx(tuple(np.quantile(f1, [0.025, 0.975])), abs=1e-6)


def test_pareto_front_and_errors() -> None:
    assert pareto_front([1.0, 1.0, None], [0.5, 0.7, 0.99]) == [False, True, False]
    with pytest.raises(ConfigError, match="metric 'auc'"):
        leaderboard([Candidate("a", "h", np.zeros(2), np.zeros(2))], metric="auc")


def test_evaluate_several_stores_prints_the_leaderboard(tmp_path) -> None:
    """`embedpipe evaluate --store A --store B --head ...`: one row per store, its best head."""
    import typer
    from typer.testing import CliRunner

    from embedpipe.cli import heads_cmd
    from embedpipe.pipeline import Pipeline

    p = Pipeline("two-layers")
    p.dataset("d", "builtin:digits", limit=150)
    p.stage(
        "enc",
        "encode",
        dataset="d",
        backbone="torchvision:mobilenet_v2",
        weights="none",
        options={"resize_size": 32, "crop_size": 32},
        num_workers=0,
        matrix={"layer": ["features.4", "features.7"]},
    )
    r = p.run(cache=tmp_path / "cache", runs_dir=tmp_path / "runs", progress=False)
    stores = [str(r[n].output_path) for n in ("enc[layer=features.4]", "enc[layer=features.7]")]
    app = typer.Typer()
    heads_cmd.register(app)
    args = ["evaluate", "--store", stores[0], "--store", stores[1], "--head", "logreg"]
    args += ["--head", "nearest_centroid", "--cv", "3", "--json", str(tmp_path / "board.json")]
    out = CliRunner().invoke(app, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.startswith("| features | best head | accuracy [95% CI]")
    rows = json.loads((tmp_path / "board.json").read_text())
    assert sorted(row["dim"] for row in rows) == [32, 64]
    assert all(row["heads_tried"] == 2 and row["n_test"] == 150 for row in rows)

"""The report's pieces: deterministic projection, neighbours, query choice, escaping, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from embedpipe.report import (
    confusion_png,
    cosine_neighbours,
    pca_2d,
    pick_queries,
    projection_png,
    render_page,
    sample_rows,
    scores_png,
    thumbnail_png,
)


def test_pca_2d_is_deterministic_and_sign_fixed() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)) * np.linspace(5, 0.1, 16)
    a, ev = pca_2d(x)
    b, _ = pca_2d(x.copy())
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 2) and ev[0] >= ev[1] > 0 and ev.sum() <= 1
    flipped, _ = pca_2d(-x)  # the data mirrored: same picture up to the fixed signs
    np.testing.assert_allclose(np.abs(flipped), np.abs(a), atol=1e-5)
    # the first axis carries the dominant direction (feature 0, scaled by 5)
    assert abs(np.corrcoef(a[:, 0], x[:, 0])[0, 1]) > 0.9


def test_neighbours_exclude_self_and_break_ties_by_row() -> None:
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    scores, rows = cosine_neighbours(g[:2], g, k=2, exclude=np.array([0, 1]))
    assert rows.tolist() == [[1, 3], [0, 3]]
    np.testing.assert_allclose(scores[:, 0], [1.0, 1.0])
    _, rows = cosine_neighbours(np.array([[1.0, 0.0]]), g, k=2)
    assert rows.tolist() == [[0, 1]]  # a tie: the lower row first


def test_pick_queries_cycles_through_classes() -> None:
    labels = np.array([0] * 50 + [1] * 5 + [2] * 5)
    picks = pick_queries(labels, 6, seed=3)
    assert sorted(labels[picks].tolist()) == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(picks, pick_queries(labels, 6, seed=3))
    assert len(sample_rows(100, 30, labels, 0)) == 30 and len(sample_rows(10, 30, labels, 0)) == 10


def test_plots_are_real_pngs(tmp_path: Path) -> None:
    paths = [
        confusion_png([[5, 1], [2, 7]], ["a", "b"], tmp_path / "cm.png", title="t"),
        projection_png(
            np.random.default_rng(0).standard_normal((30, 2)),
            np.arange(30) % 3,
            ["x", "y", "z"],
            tmp_path / "p.png",
            np.array([0.5, 0.2]),
        ),
        scores_png(["h1", "h2"], [0.9, 0.8], "accuracy", tmp_path / "s.png"),
        thumbnail_png(Image.new("RGB", (8, 8), (200, 10, 10)), tmp_path / "t.png"),
    ]
    for p in paths:
        with Image.open(p) as img:
            assert img.format == "PNG" and img.size[0] > 50
    with Image.open(paths[-1]) as img:
        assert img.size == (72, 72) and img.getpixel((30, 30)) == (200, 10, 10)


def test_user_text_is_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    data = {
        "title": evil,
        "pipeline": evil,
        "stage": "r",
        "evaluate": evil,
        "metrics": ["accuracy"],
        "ranking_metric": "accuracy",
        "best": evil,
        "classes": [evil],
        "n_test": 1,
        "backbone": evil,
        "heads": [
            {
                "name": evil,
                "label": evil,
                "scores": {"accuracy": 1.0},
                "fit_seconds": 0.1,
                "predict_seconds": 0.1,
            }
        ],
        "confusion": {"head": evil, "matrix": [[1]], "png": "c.png"},
        "per_class": [{"class": evil, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}],
        "scores_png": "s.png",
        "projection": None,
        "neighbours": {
            "modality": "text",
            "gallery": evil,
            "examples": [
                {
                    "query": {"id": evil, "label": evil, "text": evil},
                    "neighbours": [
                        {"id": evil, "label": evil, "score": 0.5, "same_label": True, "text": evil}
                    ],
                },
            ],
        },
    }
    manifest = {
        "pipeline": evil,
        "run_id": evil,
        "started": evil,
        "git": None,
        "seed": 0,
        "seconds": 1.0,
        "key_seconds": 0.1,
        "versions": {evil: evil},
        "stages": [{"name": evil, "kind": "train", "status": "hit", "seconds": 0.0, "key": evil}],
    }
    html = render_page(data, manifest, "files")
    assert "<script>" not in html and "&lt;script&gt;" in html

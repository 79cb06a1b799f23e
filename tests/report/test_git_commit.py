"""The report's header names the repository's HEAD commit (what was run), not the last commit
that touched the pipeline file (issue 27)."""

from __future__ import annotations

from embedpipe.report.html import render_page


def test_report_header_shows_head_not_the_pipeline_files_last_commit() -> None:
    data = {"title": "t", "heads": [], "backbone": None, "evaluate": "ev", "n_test": 0,
            "ranking_metric": "accuracy", "metrics": [], "best": None, "scores_png": "s.png",
            "confusion": {"head": "h", "png": "c.png"}, "per_class": [], "projection": None,
            "neighbours": None, "leaderboard": None}  # fmt: skip
    git = {"head": "a" * 40, "file_commit": "b" * 40, "tracked": True, "modified": False}
    m = {"pipeline": "p", "run_id": "r", "started": "now", "git": git, "stages": [],
         "seconds": 1.0, "key_seconds": 0.1, "seed": 0, "versions": {}}  # fmt: skip
    page = render_page(data, m, "files")
    assert "a" * 12 in page and "b" * 12 not in page

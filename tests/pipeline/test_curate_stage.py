"""The ``curate`` stage: cached like any stage, re-run when a store it reads changes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from .conftest import edit_yaml, run, write_csv

STAGE = {
    "kind": "curate",
    "inputs": {"features": ["enc_train", "enc_test"]},
    "params": {"k": 5, "engine": "builtin", "projection": "pca", "folds": 3},
}


@pytest.fixture
def curate_project(text_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMBEDPIPE_MAP_CACHE", str(text_project / "maps"))
    edit_yaml(text_project / "pipeline.yaml", lambda d: d["stages"].update(cur=dict(STAGE)))
    return text_project


def test_curate_stage_cached_and_rerun_on_store_change(
    curate_project: Path, snippets: list
) -> None:
    first = run(curate_project)
    assert "cur" in first.executed
    entry = first["cur"].path
    table = pd.read_parquet(entry / "issues.parquet")
    summary = json.loads((entry / "summary.json").read_text())
    assert summary["rows"] == 400 and summary["splits"] == ["enc_train", "enc_test"]
    assert set(table.columns) >= {"id", "content", "issue", "score", "related", "suggested_label"}
    assert (entry / "curate.html").exists() and "<canvas" in (entry / "map.html").read_text()
    assert first["cur"].outputs["counts"] == summary["counts"]

    second = run(curate_project)
    assert "cur" in second.hits and second.executed == []

    # a test snippet copied into train: train's store changes, curate re-runs and finds the leak
    rows = snippets[:300] + [(f"copy-{snippets[300][0]}", *snippets[300][1:])]
    write_csv(curate_project / "train.csv", rows)
    third = run(curate_project)
    assert "cur" in third.executed and "enc_test" in third.hits
    leaks = pd.read_parquet(third["cur"].path / "issues.parquet")
    leaks = leaks[leaks.issue == "leak"]
    assert f"copy-{snippets[300][0]}" in set(leaks.id)
    assert snippets[300][0] in set(leaks.id)


def test_report_shows_the_curate_section_and_map(curate_project: Path) -> None:
    def add(d: dict) -> None:
        d["stages"].update(
            logreg={
                "kind": "train",
                "inputs": {"train": "enc_train"},
                "params": {"head": "logreg"},
            },
            ev={"kind": "evaluate", "inputs": {"heads": ["logreg"], "test": "enc_test"}},
            rep={"kind": "report", "inputs": {"evaluate": "ev", "curate": "cur"}},
        )

    edit_yaml(curate_project / "pipeline.yaml", add)
    run(curate_project)
    page = next((curate_project / "runs").rglob("rep.html"))
    html = page.read_text()
    assert "Dataset curation" in html and "rep_files/map.html" in html and "<iframe" in html
    assert "<canvas" in (page.parent / "rep_files" / "map.html").read_text()
    assert (page.parent / "rep_files" / "curate.html").exists()

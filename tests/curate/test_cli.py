"""``embedpipe curate`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ._data import planted


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBEDPIPE_MAP_CACHE": str(cwd / "maps")}
    return subprocess.run(
        [sys.executable, "-m", "embedpipe", "curate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_curate_json_lists_planted_items(tmp_path: Path) -> None:
    p = planted(tmp_path)
    out = _run(
        str(p.train),
        str(p.test),
        "--json",
        "--engine",
        "builtin",
        "--knn-weight",
        "0",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    found = {(i["split"], i["id"], i["issue"]) for i in doc["issues"]}
    for item in p.flipped:
        assert ("train", item, "label_issue") in found
    assert {("train", x, "near_duplicate") for x in p.near_dup} <= found
    assert {("train", x, "exact_duplicate") for x in p.exact_dup} <= found
    assert {("train", "train-30", "leak"), ("test", "test-5", "leak")} <= found
    assert ("train", p.outlier, "outlier") in found
    assert all(isinstance(i["score"], float) for i in doc["issues"])
    assert doc["summary"]["counts"]["leak"] == 2
    assert "auto" in doc["summary"]["near_dup_threshold_how"]


def test_curate_writes_table_page_and_map(tmp_path: Path) -> None:
    p = planted(tmp_path)
    out = _run(
        str(p.train),
        str(p.test),
        "--out",
        "cur",
        "--no-labels",
        "--near-dup-threshold",
        "0.999",
        "--projection",
        "pca",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "near-duplicate threshold 0.9990 (set: 0.999)" in out.stdout
    table = pd.read_parquet(tmp_path / "cur" / "issues.parquet")
    assert set(table.issue) == {"leak", "exact_duplicate", "near_duplicate", "outlier"}
    csv = pd.read_csv(tmp_path / "cur" / "issues.csv")
    assert len(csv) == len(table)
    page = (tmp_path / "cur" / "curate.html").read_text()
    assert "TRAIN ITEM 9 ABOUT A ANT" in page and 'href="map.html"' in page
    assert "<canvas" in (tmp_path / "cur" / "map.html").read_text()


def test_curate_bad_input_exit_2(tmp_path: Path) -> None:
    p = planted(tmp_path)
    out = _run(str(p.train), "--near-dup-threshold", "2", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        "error: --near-dup-threshold 2 is not a cosine in (0, 1]; pass e.g. "
        "--near-dup-threshold 0.95.\n"
    )
    out = _run(str(tmp_path / "missing.h5"), cwd=tmp_path)
    assert out.returncode == 2 and "does not exist" in out.stderr

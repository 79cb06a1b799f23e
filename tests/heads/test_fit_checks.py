"""Heads that cannot learn from what they are given say so in one line (issue 22, item 8):
labelled rows of one class, and more neighbours than training rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.errors import ConfigError
from embedpipe.heads import cross_validate_heads, train_head
from embedpipe.store import StoreWriter


def _store(path: Path, labels: list[int]) -> Path:
    rng = np.random.default_rng(0)
    n = len(labels)
    w = StoreWriter.create(
        path, dim=8, fingerprint="fp", backbone={"name": "t"}, classes=["a", "b"]
    )
    w.append(rng.normal(size=(n, 8)), [f"i{i}" for i in range(n)], [bytes(16)] * n, labels=labels)
    w.finalize()
    return path


def _cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("head", ["logreg", "knn", "random_forest", "nearest_centroid"])
def test_one_class_is_refused_by_every_head(tmp_path: Path, head: str, capsys) -> None:
    store = _store(tmp_path / "one.h5", [0] * 40 + [-1] * 5)
    with pytest.raises(ConfigError, match=r"every labelled row is of one class \('a', 40 rows\)"):
        train_head(store, head)
    code, err = _cli(["train", "--store", str(store), "--head", head, "--out",
                      str(tmp_path / "h.skops"), "-q"], capsys)  # fmt: skip
    assert code == 2 and err.count("error:") == 1 and "one class" in err, err
    code, err = _cli(["evaluate", "--store", str(store), "--head", head, "--cv", "5", "-q"], capsys)
    assert code == 2 and err.count("error:") == 1 and "one class" in err, err


def test_more_neighbours_than_rows_is_refused(tmp_path: Path, capsys) -> None:
    store = _store(tmp_path / "s.h5", [i % 2 for i in range(60)])
    with pytest.raises(ConfigError, match=r"n_neighbors=500 is more than the 60 rows"):
        train_head(store, {"name": "knn", "params": {"n_neighbors": 500}})
    with pytest.raises(ConfigError, match=r"n_neighbors=500 is more than the 48 rows .*5-fold"):
        cross_validate_heads([{"name": "knn", "params": {"n_neighbors": 500}}], store, cv=5)
    code, err = _cli(["evaluate", "--store", str(store), "--head",
                      "{name: knn, params: {n_neighbors: 500}}", "-q"], capsys)  # fmt: skip
    assert code == 2 and err.count("error:") == 1 and "lower n_neighbors to 48" in err, err
    report = cross_validate_heads([{"name": "knn", "params": {"n_neighbors": 48}}], store, cv=5)
    assert report.results

"""Filtered search (``where``): the expression language, and results equal to an exact search
over the matching rows, computed here independently, whichever plan the index picks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from embedpipe.errors import ConfigError
from embedpipe.index import build_index
from embedpipe.index.filtered import plan_of
from embedpipe.index.where import WhereError, parse_where
from embedpipe.store import StoreWriter

from .conftest import brute_force_rows

N = 6000
CLASSES = ["fresh", "rotten", "mixed"]


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, dict]:
    """6,000 clustered 32-d vectors with labels and two kept columns (year, city)."""
    X, _ = make_blobs(N, n_features=32, centers=30, cluster_std=2.0, random_state=3)
    X = X.astype(np.float32)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, N)
    years = rng.integers(1990, 2025, N).astype(str)
    cities = rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], N)
    ids = [f"r{i:05d}" for i in range(N)]
    path = tmp_path_factory.mktemp("kept") / "kept.h5"
    w = StoreWriter.create(
        path,
        dim=32,
        fingerprint="fp-kept",
        backbone={"kind": "synthetic", "name": "kept", "modality": "text"},
        classes=CLASSES,
        columns=["year", "city"],
        overwrite=True,
    )
    for s in range(0, N, 2048):
        e = min(N, s + 2048)
        w.append(
            X[s:e],
            ids[s:e],
            [hashlib.blake2b(i.encode(), digest_size=16).digest() for i in ids[s:e]],
            labels[s:e],
            columns={"year": years[s:e].tolist(), "city": cities[s:e].tolist()},
        )
    w.finalize()
    cols = {
        "label": np.array(CLASSES, dtype=object)[labels],
        "year": years.astype(int),
        "city": cities,
        "id": np.array(ids),
    }
    return path, X, cols


FILTERS = [
    # (filter, numpy mask of it)
    ("label == 'rotten'", lambda c: c["label"] == "rotten"),  # ~33%: selector plan
    (
        "label != 'mixed' and city in ('Oslo', 'Lima')",
        lambda c: (c["label"] != "mixed") & np.isin(c["city"], ["Oslo", "Lima"]),
    ),  # ~33%
    ("year >= 2020 and not city = 'Pune'", lambda c: (c["year"] >= 2020) & (c["city"] != "Pune")),
    ("year == 1999 and label = 'fresh'", lambda c: (c["year"] == 1999) & (c["label"] == "fresh")),
    (
        "(city == 'Kyiv' or year < 1992) and label in ('fresh', 'mixed')",
        lambda c: (
            ((c["city"] == "Kyiv") | (c["year"] < 1992)) & np.isin(c["label"], ["fresh", "mixed"])
        ),
    ),
    (
        "id in ('r00001', 'r00500', 'r05999')",
        lambda c: np.isin(c["id"], ["r00001", "r00500", "r05999"]),
    ),
]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_where_equals_exact_filtered_search(kept, kind, monkeypatch):
    import embedpipe.index.filtered as filtered

    monkeypatch.setattr(filtered, "EXACT_ROWS", 500)  # this small set takes both plans
    path, X, cols = kept
    index = build_index(
        path, kind, target_recall=0.95, n_tune_queries=300, rerank=50 if kind == "ivfpq" else None
    )
    Q = X[:40] + np.random.default_rng(1).normal(0, 0.5, (40, 32)).astype(np.float32)
    plans = set()
    for text, fn in FILTERS:
        mask = fn(cols)
        assert index.where_mask(text).tolist() == mask.tolist(), text
        plans.add(plan_of(int(mask.sum()), N))
        rows = np.flatnonzero(mask)
        k = min(10, rows.size)
        truth = rows[brute_force_rows(X[rows], Q, k)]
        hits = index.search(Q, 10, where=text)
        got = [[h.row for h in q] for q in hits]
        assert all(mask[r] for q in got for r in q), text  # only matching rows
        assert all(len(q) == k for q in got)
        recall = np.mean(
            [len(set(g) & set(t.tolist())) / k for g, t in zip(got, truth, strict=True)]
        )
        if kind == "flat" or plan_of(int(mask.sum()), N) == "exact":
            assert recall == 1.0, (text, recall)
        else:
            assert recall >= 0.95, (text, recall)
        assert all(h.label == cols["label"][h.row] for q in hits for h in q)
    assert plans == {"exact", "selector"}


def test_where_on_ids_and_kept_columns_survives_save_and_load(kept, tmp_path):
    path, X, cols = kept
    index = build_index(path, "flat")
    assert index.column_names == ["id", "label", "city", "year"]
    index.save(tmp_path / "k.index")
    from embedpipe.index import SimilarityIndex

    back = SimilarityIndex.load(tmp_path / "k.index")
    hits = back.search_ids(["r00010"], 5, where="city == 'Lima' and year > 2000")[0]
    assert hits and all(cols["city"][h.row] == "Lima" and cols["year"][h.row] > 2000 for h in hits)


@pytest.mark.parametrize(
    "bad, says",
    [
        ("__import__('os').system('true')", "unexpected"),
        ("label == ", "expected a value"),
        ("label = 'a' and", "expected a column name"),
        (
            "lable == 'fresh'",
            "no column 'lable' in this index (did you mean 'label'?); its columns are id, label, city, year",
        ),
        ("year >= 2020 ; drop", "unexpected ';'"),
        ("label in 'a'", "expected '(' after in"),
        ("(label == 'a'", "expected ')'"),
        ("city.__class__ == 1", "no column 'city.__class__'"),
        ("", "empty"),
    ],
)
def test_malformed_or_unsafe_where_is_a_one_line_error(kept, bad, says):
    index = build_index(kept[0], "flat")
    with pytest.raises(ConfigError) as e:
        index.search(kept[1][:1], 3, where=bad)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_where_parses_without_eval():
    f = parse_where("not (a == 1 or b in ('x', \"y\")) and `odd name` != 'z'")
    assert f.columns() == ["a", "b", "odd name"]
    cols = {
        "a": np.array(["1", "2", "x"], object),
        "b": np.array(["x", "q", "q"], object),
        "odd name": np.array(["z", "y", "y"], object),
    }
    assert f.mask(cols.__getitem__, list(cols), 3).tolist() == [False, True, True]
    with pytest.raises(WhereError):
        parse_where("a == 1 " + "and (" * 40 + "a == 1" + ")" * 40)


def test_where_cli_flag_and_one_line_error(kept, tmp_path, capsys):
    import json

    from embedpipe.cli import main

    def cli(*args: str) -> int:
        try:
            main(list(args))
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    out = tmp_path / "k.index"
    assert cli("index", str(kept[0]), "--out", str(out), "--kind", "flat", "-q") == 0
    capsys.readouterr()
    where = "city == 'Oslo'"
    assert (
        cli("search", str(out), "--query-id", "r00003", "-k", "4", "--where", where, "--json") == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 4 and all(kept[2]["city"][int(h["id"][1:])] == "Oslo" for h in hits)
    assert cli("search", str(out), "--query-id", "r00003", "--where", "town == 'Oslo'") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no column 'town'" in err and "city" in err

"""Batch search: one row per hit, streamed to Parquet / CSV / JSON Lines, equal to searching the
queries one by one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli.index_cmd import register
from embedpipe.errors import ConfigError, FingerprintMismatchError
from embedpipe.index.batch import HIT_COLUMNS, read_queries, search_batch

from .conftest import write_store

QUERIES = [
    "astronauts on the moon",
    "a recipe for tomato soup",
    "the goalkeeper saved it",
    "bake bread at home",
    "a distant galaxy",
]


def _one_by_one(index, k):
    rows = []
    for qi, q in enumerate(QUERIES):
        for h in index.search_texts([q], k)[0]:
            rows.append([str(qi + 1), h.rank, h.id, round(h.score, 5), h.label, h.content])
    return rows


def _read(path):
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"query_id": str}, keep_default_na=False)
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_batch_search_equals_one_by_one(content_index, tmp_path, suffix):
    qfile = tmp_path / "queries.txt"
    qfile.write_text("\n".join(QUERIES) + "\n")
    out = tmp_path / f"hits{suffix}"
    index = content_index
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(
        app,
        [
            "search",
            str(index.path or _saved(index, tmp_path)),
            "--queries",
            str(qfile),
            "--out",
            str(out),
            "-k",
            "4",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    df = _read(out)
    assert list(df.columns) == list(HIT_COLUMNS) and len(df) == len(QUERIES) * 4
    got = [
        [str(a), int(b), str(c), round(float(d), 5), e or None, f or None]
        for a, b, c, d, e, f in df.itertuples(index=False)
    ]
    assert got == _one_by_one(index, 4)


def _saved(index, tmp_path):
    return index.save(tmp_path / "saved.index")


def test_python_batch_of_a_store_and_of_a_table(content_index, content_store, tmp_path):
    hits = search_batch(content_index, content_store, k=2, batch_size=5)
    assert len(hits) == 24 * 2 and hits["query_id"].iloc[0] == "s00"
    # each stored sentence finds itself first
    firsts = hits[hits["rank"] == 1]
    assert (firsts["query_id"] == firsts["id"]).all()
    table = tmp_path / "q.csv"
    pd.DataFrame({"id": ["a", "b"], "question": QUERIES[:2]}).to_csv(table, index=False)
    via_table = content_index.search_batch(table, column="question", k=3)
    assert via_table["query_id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert via_table["id"].tolist()[:3] == [
        h.id for h in content_index.search_texts(QUERIES[0], 3)[0]
    ]
    vectors = content_index.vectors(["s03", "s10"])
    by_vec = search_batch(content_index, vectors, k=1)
    assert by_vec["id"].tolist() == ["s03", "s10"]


def test_bad_batch_inputs_are_clear(content_index, tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        search_batch(content_index, tmp_path / "nope.txt")
    (tmp_path / "q.txt").write_text("hello\n")
    with pytest.raises(ConfigError, match=".parquet"):
        search_batch(content_index, tmp_path / "q.txt", tmp_path / "hits.xlsx")
    other = write_store(tmp_path / "o.h5", np.zeros((3, 384), np.float32), fingerprint="fp-x")
    with pytest.raises(FingerprintMismatchError):
        search_batch(content_index, other)
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["search", str(tmp_path), "--queries", str(tmp_path / "q.txt")])
    assert isinstance(r.exception, ConfigError) and "--out" in str(r.exception)


def test_query_tables_are_read_as_text_verbatim(tmp_path):
    # pandas' own CSV reader would turn these queries into NaN ("nan"): the data layer's
    # table reader keeps every cell as written, as it does for a text table source.
    words = ["NA", "null", "None", "n/a"]
    pd.DataFrame({"id": ["1", "2", "3", "4"], "query": words}).to_csv(
        tmp_path / "q.csv", index=False
    )
    q = read_queries(tmp_path / "q.csv")
    assert q.texts == words and q.ids == ["1", "2", "3", "4"]
    (tmp_path / "q.tsv").write_text("query\nNA\n", encoding="utf-8")
    assert read_queries(tmp_path / "q.tsv").texts == ["NA"]
    pd.DataFrame({"text": ["a red car"]}).to_feather(tmp_path / "q.arrow")
    assert read_queries(tmp_path / "q.arrow").texts == ["a red car"]

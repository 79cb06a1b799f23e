"""Each hit carries its item's content (the text, or an image's path / URL / key): Python,
saved folders, the CLI table and JSON, and the server's answer."""

from __future__ import annotations

import json

import h5py
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli.index_cmd import register
from embedpipe.index import SimilarityIndex, build_index

from .conftest import TOPICS

TEXTS = [t for topic in TOPICS.values() for t in topic]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


def test_hits_carry_their_text_and_a_saved_index_keeps_it(content_index, tmp_path):
    hits = content_index.search_texts(["a rocket launch"], k=3)[0]
    assert content_index.has_content
    for h in hits:
        assert h.content == TEXTS[int(h.id[1:])] and h.to_dict()["content"] == h.content
    assert hits[0].label == "space"
    path = content_index.save(tmp_path / "s.index")
    with h5py.File(path / "rows.h5") as f:
        assert f["content"].asstr()[5] == TEXTS[5]
    loaded = SimilarityIndex.load(path)
    loaded.set_encoder(content_index.encoder())
    assert [h.content for h in loaded.search_texts(["a rocket launch"], k=3)[0]] == [
        h.content for h in hits
    ]
    # Moving the source store away does not lose the contents: they are in the index folder.
    assert loaded.contents_of([0, 23]) == [TEXTS[0], TEXTS[23]]


def test_cli_table_and_json_show_the_content(app, content_store, tmp_path):
    out = tmp_path / "c.index"
    assert (
        CliRunner().invoke(app, ["index", str(content_store), "-o", str(out), "-q"]).exit_code == 0
    )
    r = CliRunner().invoke(app, ["search", str(out), "--query", "knead the dough", "-k", "2"])
    assert r.exit_code == 0, r.output
    head, _, first, *_ = r.stdout.splitlines()
    assert head.split()[-1] == "content" and "Knead the bread dough" in first
    r = CliRunner().invoke(app, ["search", str(out), "--query-id", "s16", "-k", "2", "--json"])
    hits = json.loads(r.stdout)
    assert all(h["content"] == TEXTS[int(h["id"][1:])] for h in hits)


def test_server_answers_and_page_carry_the_content(content_index):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from embedpipe.index.server import create_app

    client = TestClient(create_app(content_index), raise_server_exceptions=False)
    body = client.post("/search", json={"query": "the referee and the goal", "k": 3}).json()
    assert [x["content"] for x in body["results"]] == [
        TEXTS[int(x["id"][1:])] for x in body["results"]
    ]
    assert all(x["label"] == "football" for x in body["results"][:2])
    assert client.get("/health").json()["content"] is True
    assert "result-content" in client.get("/static/app.js").text


def test_a_store_without_content_gives_none(tmp_path):
    import numpy as np

    from .conftest import write_store

    p = write_store(tmp_path / "a.h5", np.eye(5, 8, dtype=np.float32))
    index = build_index(p, "flat")
    assert not index.has_content and index.search(np.eye(1, 8), k=1)[0][0].content is None

"""The server refuses what it cannot serve with a 4xx, keeps its internals to itself, and its
pages work offline."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from embedpipe.index import app as app_mod  # noqa: E402
from embedpipe.index.server import create_app  # noqa: E402

from ._http import running_server  # noqa: E402


@pytest.fixture(scope="module")
def client(content_index):
    return TestClient(create_app(content_index), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"query": "\\ud800"}', "not valid Unicode"),
        (b'{"query": "caf\\udce9"}', "not valid Unicode"),
        (b'{"id": "\\udfff"}', "not valid Unicode"),
    ],
)
def test_invalid_unicode_is_a_400(client, body, detail):
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and detail in r.json()["detail"]
    assert client.get("/health").status_code == 200


def test_long_queries_and_large_bodies_are_refused(client, monkeypatch):
    r = client.post("/search", json={"query": "word " * 1000})
    assert r.status_code == 400 and "limit of 2000" in r.json()["detail"]
    r = client.get("/search", params={"q": "x" * 2001})
    assert r.status_code == 400 and "limit of 2000" in r.json()["detail"]
    big = b'{"query": "' + b"a" * (app_mod.MAX_BODY_BYTES + 10) + b'"}'
    r = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"query": "'
        for _ in range(20):
            yield b"a" * 100_000
        yield b'"}'

    r = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/search", json={"query": "a" * 2000, "k": 1}).status_code == 200


def test_internal_errors_send_no_exception_text(content_index, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("secret path /home/alice/data.h5")

    client = TestClient(create_app(content_index), raise_server_exceptions=False)
    monkeypatch.setattr(content_index, "find", boom)
    r = client.post("/search", json={"id": "s01"})
    assert r.status_code == 500
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert "server log" in r.json()["detail"]
    assert "secret path" in caplog.text  # the log has it


def test_docs_and_page_need_no_network(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/search" in docs.text and "/openapi.json" in docs.text
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["paths"]["/search"]
    for page in ("/", "/docs", "/static/app.js", "/static/style.css"):
        text = client.get(page).text
        external = re.findall(r"(?:src|href)=['\"](https?:)?//", text) + re.findall(
            r"https?://", text
        )
        assert not external, (page, external)


def test_real_uvicorn_refuses_a_lone_surrogate(content_index):
    import httpx

    with running_server(create_app(content_index)) as url:
        r = httpx.post(
            f"{url}/search",
            content=b'{"query": "\\ud800"}',
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert r.status_code == 400
        r = httpx.post(f"{url}/search", json={"query": "tomato sauce", "k": 1}, timeout=30)
        assert r.json()["results"][0]["content"].startswith("Simmer the tomato sauce")

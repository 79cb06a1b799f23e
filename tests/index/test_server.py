"""The query server over HTTP: FastAPI TestClient, then a real uvicorn on a random port."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip(
    "fastapi", reason="the server extra is not installed (pip install embedpipe[serve])"
)
from fastapi.testclient import TestClient  # noqa: E402

from embedpipe.errors import ConfigError  # noqa: E402
from embedpipe.index import app as app_mod  # noqa: E402
from embedpipe.index import build_index  # noqa: E402
from embedpipe.index.server import create_app  # noqa: E402

from ._http import running_server  # noqa: E402
from .conftest import write_store  # noqa: E402


@pytest.fixture(scope="module")
def text_client(text_index):
    return TestClient(create_app(text_index, title="sentences"), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def image_client(image_index):
    return TestClient(create_app(image_index), raise_server_exceptions=False)


def test_health_describes_the_index(text_client, text_index):
    r = text_client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert (
        h["status"] == "ok"
        and h["n"] == 24
        and h["modality"] == "text"
        and h["name"] == "sentences"
    )
    assert (
        h["fingerprint"] == text_index.fingerprint
        and h["metric"] == "cosine"
        and h["images"] is False
    )


def test_text_search_post_and_get(text_client):
    r = text_client.post("/search", json={"query": "the telescope saw a galaxy", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["query"] == {"type": "text", "value": "the telescope saw a galaxy"} and body["k"] == 3
    )
    assert [x["rank"] for x in body["results"]] == [1, 2, 3]
    assert (
        all(x["label"] == "space" for x in body["results"][:2])
        and body["results"][0]["thumbnail"] is None
    )
    g = text_client.get("/search", params={"q": "the telescope saw a galaxy", "k": 3}).json()
    assert [x["id"] for x in g["results"]] == [x["id"] for x in body["results"]]


def test_id_and_vector_search(text_client, text_index):
    r = text_client.post("/search", json={"id": "football-1", "k": 4}).json()
    assert "football-1" not in [x["id"] for x in r["results"]] and len(r["results"]) == 4
    v = text_index.vectors(["cooking-3"])[0].tolist()
    r = text_client.post(
        "/search", json={"vector": v, "k": 1, "fingerprint": text_index.fingerprint}
    ).json()
    assert r["results"][0]["id"] == "cooking-3" and r["query"] == {"type": "vector", "dim": 384}


BAD_TEXT_REQUESTS = [
    ("post", "/search", {"json": {}}, 422, "exactly one of 'query'"),
    ("post", "/search", {"json": {"query": "a", "id": "b"}}, 422, "exactly one"),
    ("post", "/search", {"json": {"query": "a", "colour": "red"}}, 422, "colour"),
    ("post", "/search", {"json": {"query": "a", "k": "ten"}}, 422, "k"),
    (
        "post",
        "/search",
        {"content": b"not json", "headers": {"content-type": "application/json"}},
        422,
        "invalid request",
    ),
    ("post", "/search", {"json": {"query": "   "}}, 400, "empty text query"),
    ("post", "/search", {"json": {"query": "a", "k": 0}}, 400, "k=0"),
    ("post", "/search", {"json": {"query": "a", "k": 10**6}}, 400, "1 to 1000"),
    ("post", "/search", {"json": {"id": "no-such-id"}}, 404, "'no-such-id' is not in this index"),
    ("post", "/search", {"json": {"vector": [0.1, 0.2]}}, 400, "dimension 384"),
    (
        "post",
        "/search",
        {"json": {"vector": [0.0] * 384, "fingerprint": "fp-other"}},
        409,
        "fingerprint mismatch",
    ),
    ("get", "/search", {}, 400, "exactly one of q="),
    ("get", "/search", {"params": {"q": "a", "id": "b"}}, 400, "exactly one of q="),
    (
        "post",
        "/search/image",
        {"files": {"file": ("x.png", b"\x89PNG garbage", "image/png")}},
        400,
        "not a readable image",
    ),
    ("post", "/search/image", {"data": {"k": "3"}}, 422, "file"),
    ("get", "/thumbnail", {"params": {"id": "space-0"}}, 404, "no image"),
    ("get", "/nowhere", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "detail"), BAD_TEXT_REQUESTS)
def test_bad_requests_get_4xx_with_a_clear_message(
    text_client, method, url, kwargs, status, detail
):
    r = getattr(text_client, method)(url, **kwargs)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert text_client.get("/health").status_code == 200  # still serving


def test_image_search_by_upload_with_thumbnails(image_client, image_folder):
    data = (image_folder / "digit1" / "2.png").read_bytes()
    r = image_client.post(
        "/search/image", files={"file": ("two.png", data, "image/png")}, data={"k": "5"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["results"][0]
    assert (
        top["id"] == "digit1/2.png"
        and top["label"] == "digit1"
        and body["query"]["type"] == "image"
    )
    assert top["thumbnail"] == "/thumbnail?id=digit1%2F2.png"
    t = image_client.get(top["thumbnail"])
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(t.content))
    assert im.format == "JPEG" and max(im.size) == 160


def test_image_index_refuses_text_and_bad_uploads(image_client, monkeypatch):
    r = image_client.post("/search", json={"query": "a seven"})
    assert r.status_code == 400 and "backbone encodes images" in r.json()["detail"]
    r = image_client.get("/thumbnail", params={"id": "digit0/0.png", "size": 5000})
    assert r.status_code == 400 and "16 to 512" in r.json()["detail"]
    monkeypatch.setattr(app_mod, "MAX_UPLOAD_BYTES", 100)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, "PNG")
    r = image_client.post(
        "/search/image", files={"file": ("big.png", buf.getvalue() * 3, "image/png")}
    )
    assert r.status_code == 413


def test_thumbnails_cannot_escape_the_image_root(tmp_path):
    """Only indexed ids inside the image root are served; ../, absolute and symlinked escapes 404."""
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (20, 20), "red").save(root / "ok.png")
    Image.new("RGB", (20, 20), "blue").save(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", root / "link.png")
    ids = ["ok.png", "../secret.png", str(tmp_path / "secret.png"), "link.png"]
    store = write_store(
        tmp_path / "s.h5",
        np.eye(4, 8, dtype=np.float32),
        ids=ids,
        backbone={"kind": "synthetic", "name": "x", "modality": "image"},
    )
    client = TestClient(
        create_app(build_index(store, "flat", image_root=root)), raise_server_exceptions=False
    )
    assert client.get("/thumbnail", params={"id": "ok.png"}).status_code == 200
    for bad in ids[1:] + ["../../etc/passwd", "/etc/passwd", "ok.png/../../secret.png"]:
        r = client.get("/thumbnail", params={"id": bad})
        assert r.status_code == 404, bad
    assert client.get("/health").json()["images"] is True


def test_unloadable_backbone_only_disables_raw_queries(tmp_path):
    store = write_store(
        tmp_path / "s.h5", np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    )
    client = TestClient(create_app(build_index(store, "flat")), raise_server_exceptions=False)
    r = client.post("/search", json={"query": "hello"})
    assert r.status_code == 503 and "cannot encode raw queries" in r.json()["detail"]
    assert client.post("/search", json={"id": "v000001", "k": 2}).status_code == 200


def test_missing_fastapi_names_the_extra(monkeypatch, text_index):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ConfigError, match=r"pip install embedpipe\[serve\]"):
        create_app(text_index)


def test_real_uvicorn_serves_the_api_and_page(text_index):
    import httpx

    with running_server(create_app(text_index)) as url:
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        r = httpx.post(
            f"{url}/search", json={"query": "a goal in the last minute", "k": 2}, timeout=30
        )
        assert r.status_code == 200 and r.json()["results"][0]["label"] == "football"
        bad = httpx.post(
            f"{url}/search",
            content=b"\xff\xfe",
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert bad.status_code == 422
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and '<form id="search-form"' in page.text
        assert httpx.get(f"{url}/static/app.js", timeout=10).status_code == 200
        assert httpx.get(f"{url}/static/%2e%2e/server.py", timeout=10).status_code == 404


def test_serve_runs_in_its_own_process(tmp_path):
    """`serve()` (what `embedpipe serve` calls) starts uvicorn on the requested port."""
    import socket

    import httpx

    store = write_store(
        tmp_path / "s.h5", np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    )
    build_index(store, "flat").save(tmp_path / "i")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from embedpipe.index.server import serve; serve({str(tmp_path / 'i')!r}, port={port}, preload=False, log_level='warning')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.communicate()[1].decode()[-2000:]) from None
                time.sleep(0.2)
        assert r.json()["n"] == 30
        assert (
            httpx.post(
                f"http://127.0.0.1:{port}/search", json={"id": "v000003", "k": 1}, timeout=10
            ).status_code
            == 200
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_bad_uploads_get_http_advice_not_cli_flags(image_client):
    """Issue 22, item 9: the reply to a bad upload suggested `--on-error skip`; and a 1 x
    100,000 strip (which PIL would resize into ~15 GB) is refused before it is decoded."""
    strip = io.BytesIO()
    Image.new("L", (100_000, 1)).save(strip, "PNG")
    for name, data, why in (
        ("x.png", b"\x89PNG garbage", "not a readable image"),
        ("strip.png", strip.getvalue(), "100,000 x 1 pixels"),
    ):
        r = image_client.post("/search/image", files={"file": (name, data, "image/png")})
        detail = r.json()["detail"]
        assert r.status_code == 400 and why in detail, detail
        assert detail.startswith(f"upload {name!r}: ") and "send an image file" in detail
        assert "CLI" not in detail and "--" not in detail and "on_error" not in detail


def test_where_in_json_get_and_errors(text_client):
    r = text_client.post(
        "/search",
        json={"query": "a goal in the last minute", "k": 4, "where": "label != 'football'"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["where"] == "label != 'football'" and body["matching"] == 16
    assert len(body["results"]) == 4 and all(h["label"] != "football" for h in body["results"])
    r = text_client.get(
        "/search", params={"id": "space-1", "k": 3, "where": "id in ('cooking-1', 'space-2')"}
    )
    assert r.status_code == 200, r.text
    assert sorted(h["id"] for h in r.json()["results"]) == ["cooking-1", "space-2"]
    for bad in ("label === 'x'", "__import__('os')", "year > 3"):
        r = text_client.post("/search", json={"id": "space-1", "where": bad})
        assert r.status_code == 400 and "\n" not in r.json()["detail"], r.text
    assert "no column 'year'" in r.json()["detail"]
    assert text_client.get("/health").json()["columns"] == ["id", "label"]

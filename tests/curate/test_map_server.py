"""The embedding map beside search on the query server."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from embedpipe.index import build_index  # noqa: E402
from embedpipe.index.server import create_app  # noqa: E402
from embedpipe.report.map_server import MapPage, add_map_routes  # noqa: E402

from ._data import planted  # noqa: E402


def test_server_serves_the_map_beside_search(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMBEDPIPE_MAP_CACHE", str(tmp_path / "maps"))
    p = planted(tmp_path)
    index = build_index(p.train, "flat")
    page = MapPage([p.train, p.test], projection="pca", title="digits map")
    client = TestClient(create_app(index, routes=partial(add_map_routes, page=page)))
    assert client.get("/map/ready").json()["built"] is False
    html = client.get("/map").text
    assert "<canvas" in html and "digits map" in html and '<a href="/">search</a>' in html
    assert "train:train-50" in html and "TRAIN ITEM 9 ABOUT A ANT" in html
    assert client.get("/map/ready").json()["built"] is True
    # search still works, and its page links to the map
    assert client.post("/search", json={"id": "train-9", "k": 1}).json()["results"][0]["id"] == (
        "train-10"
    )
    assert 'id="map-link" href="/map"' in client.get("/").text


def test_server_without_map_has_no_map_route(tmp_path: Path) -> None:
    p = planted(tmp_path)
    client = TestClient(create_app(build_index(p.train, "flat")))
    assert client.get("/map/ready").status_code == 404

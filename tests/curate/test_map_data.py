"""The map's data: projection cached by the stores' identity, issues and neighbours per point."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedpipe.curate import curate
from embedpipe.report.embedding_map import map_data, render_map

from ._data import clean_split, planted


def test_projection_cached_by_store_identity(tmp_path: Path) -> None:
    p = planted(tmp_path)
    cache = tmp_path / "maps"
    result = curate([p.train, p.test], labels=False)
    first = map_data(result, method="pca", cache_dir=cache)
    again = map_data(result, method="pca", cache_dir=cache)
    assert not first["cached"] and again["cached"]
    assert first["x"] == again["x"] and len(list(cache.glob("*.npz"))) == 1
    # each point carries its issues and its graph neighbours (id, point, cosine)
    i = first["id"].index("train:train-30")
    assert first["issues"][i] == ["leak"]
    assert first["nb"][i][0][0] == "test:test-5" and first["nb"][i][0][2] > 0.999
    # another store (different rows): a new projection, not the cached one
    clean_split(60, 3, "test").write(tmp_path / "other" / "test.h5")
    other = curate([p.train, tmp_path / "other" / "test.h5"], labels=False)
    assert not map_data(other, method="pca", cache_dir=cache)["cached"]
    assert len(list(cache.glob("*.npz"))) == 2


def test_sampled_map_and_safe_page(tmp_path: Path) -> None:
    p = planted(tmp_path)
    result = curate([p.train, p.test], labels=False)
    data = map_data(result, method="pca", cache_dir=tmp_path / "maps", max_points=50)
    assert len(data["x"]) == 50 and data["n_items"] == 300
    assert all(0.0 <= v <= 1.0 for v in data["x"] + data["y"])
    # neighbours outside the sample point nowhere (-1) but keep their id
    assert any(nb[1] == -1 for nbs in data["nb"] for nb in nbs)
    data["text"][0] = "</script><script>alert(1)</script>"
    page = render_map(data, title="<b>t</b>")
    assert "</script><script>alert(1)" not in page and "&lt;b&gt;t&lt;/b&gt;" in page
    assert np.isfinite(data["x"]).all()

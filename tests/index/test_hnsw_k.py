"""HNSW finds at most efSearch candidates: a search for more hits than that returned fewer
than asked, silently (issue 22, item 9). efSearch is raised to k for such a search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedpipe.index import build_index
from embedpipe.store import StoreWriter


def test_hnsw_returns_k_hits_beyond_its_ef_search(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.random((n, 4), dtype=np.float32)
    w = StoreWriter.create(tmp_path / "s.h5", dim=4, fingerprint="fp", backbone={"name": "t"})
    w.append(x, [f"i{i}" for i in range(n)], [bytes(16)] * n)
    w.finalize()
    index = build_index(tmp_path / "s.h5", "hnsw", metric="l2", search_params={"efSearch": 16})
    assert index.search_params == {"efSearch": 16}
    hits = index.search(x[:3], 1000)
    assert [len(h) for h in hits] == [1000, 1000, 1000]
    assert index.search_params == {"efSearch": 16}  # the index keeps its own setting
    _, rows = index.search_arrays(x[:3], 1000)
    assert (rows >= 0).all()

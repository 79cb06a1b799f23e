"""write_store: vectors made elsewhere become a complete store that indexes and heads read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, write_store


def test_vectors_become_a_complete_searchable_store(tmp_path: Path) -> None:
    from embedpipe.index import build_index

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float64)  # any float dtype; stored as float32
    labels = np.arange(50) % 3
    path = write_store(
        tmp_path / "v.h5", x, [f"id{i}" for i in range(50)], labels=labels, classes=["a", "b", "c"]
    )
    with FeatureStore(path) as fs:
        assert fs.complete and len(fs) == 50 and fs.fingerprint == "external"
        np.testing.assert_array_equal(fs.features, x.astype(np.float32))
        assert fs.classes == ["a", "b", "c"] and fs.labels.tolist() == labels.tolist()
        hashes = fs.content_hashes
    assert len({bytes(h) for h in hashes}) == 50  # one content hash per distinct row
    hit = build_index(path, "flat").find(vectors=x[7].astype(np.float32), k=1)[0][0]
    assert hit.id == "id7"


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path: Path) -> None:
    x = np.ones((4, 3), np.float32)
    with pytest.raises(StoreError, match=r"2-D numeric array \[n, dim\], got shape \(4,\)"):
        write_store(tmp_path / "a.h5", np.ones(4))
    with pytest.raises(StoreError, match="3 ids for 4 rows"):
        write_store(tmp_path / "a.h5", x, ["a", "b", "c"])
    with pytest.raises(StoreError, match="2 labels for 4 rows"):
        write_store(tmp_path / "a.h5", x, labels=[0, 1])
    path = write_store(tmp_path / "a.h5", x)
    with pytest.raises(StoreError):
        write_store(path, x * 2)
    with FeatureStore(path) as fs:
        assert fs.features.tolist() == x.tolist() and fs.ids.tolist() == ["0", "1", "2", "3"]
    write_store(path, x * 2, overwrite=True)
    with FeatureStore(path) as fs:
        assert fs.features.tolist() == (x * 2).tolist()

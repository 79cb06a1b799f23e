"""Schema 2 across shards: global positions, content through the master, checksums per shard."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreWriter
from embedpipe.store.shards import merge_shards, shards_dir


def _shard(path: Path, start: int, n: int, skipped: int = 0) -> np.ndarray:
    """A shard of source items ``start .. start + n + skipped``, written in reverse order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(start).normal(size=(n, 4)).astype(np.float32)
    w = StoreWriter.create(path, dim=4, fingerprint="fp", backbone={}, precision="fp32")
    local = np.arange(n)[::-1]
    w.append(
        x[local],
        [f"id{start + k}" for k in local],
        [bytes(16)] * n,
        positions=local,
        contents=[f"text {start + k}" for k in local],
    )
    if skipped:
        w.add_errors([f"bad{start + n + k}" for k in range(skipped)], ["unreadable"] * skipped)
    w.finalize(n_source_items=n + skipped)
    return x


def test_master_positions_content_and_shard_checksums(tmp_path: Path) -> None:
    sdir = shards_dir(tmp_path / "m.h5")
    a = _shard(sdir / "a.h5", 0, 5, skipped=2)  # source items 0..6, items 5 and 6 skipped
    b = _shard(sdir / "b.h5", 7, 3)
    master = merge_shards(tmp_path / "m.h5", [sdir / "a.h5", sdir / "b.h5"])
    with FeatureStore(master) as fs:
        np.testing.assert_array_equal(fs.features, np.concatenate([a, b]))
        assert fs.positions.tolist() == [0, 1, 2, 3, 4, 7, 8, 9]
        assert fs.contents.tolist()[-1] == "text 9" and fs.precision == "fp32"
        assert fs.complete
        fs.verify()
    with h5py.File(sdir / "b.h5", "r") as f:  # damage a shard's features on disk
        info = f["features"].id.get_chunk_info(0)
    with open(sdir / "b.h5", "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(np.full(4, 0.5, np.float32).tobytes())
    with FeatureStore(master) as fs, pytest.raises(StoreError, match="b.h5.*damaged"):
        fs.verify()

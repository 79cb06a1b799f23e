"""Sharded stores: the virtual-dataset master, relative paths, and the checks on opening."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.errors import FingerprintMismatchError, StoreError
from embedpipe.store import FeatureStore, StoreWriter
from embedpipe.store.shards import (
    is_sharded,
    merge_shards,
    read_shard_table,
    shard_paths,
    shards_dir,
)

DIM = 6


def _shard(
    path: Path,
    start: int,
    n: int,
    *,
    fp: str = "fp-a",
    dtype: str = "float32",
    classes=("cat", "dog"),
    errors=(),
) -> np.ndarray:
    path.unlink(missing_ok=True)
    rng = np.random.default_rng(start)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    w = StoreWriter.create(
        path,
        dim=DIM,
        fingerprint=fp,
        backbone={"kind": "t", "name": "m"},
        classes=list(classes),
        dtype=dtype,
    )
    hashes = np.array([[(start + i) % 256] * 16 for i in range(n)], np.uint8).reshape(n, 16)
    w.append(x, [f"id{start + i}" for i in range(n)], hashes, [(start + i) % 2 for i in range(n)])
    if errors:
        w.add_errors([e[0] for e in errors], [e[1] for e in errors])
    w.finalize(dataset_digest=f"part-{start}")
    return x


@pytest.fixture
def sharded(tmp_path: Path) -> tuple[Path, np.ndarray, list[Path]]:
    sdir = shards_dir(tmp_path / "feats.h5")
    sizes = [(0, 5), (5, 0), (5, 7), (12, 3)]
    parts, paths = [], []
    for k, (start, n) in enumerate(sizes):
        p = sdir / f"k{k}.h5"
        parts.append(_shard(p, start, n, errors=[("bad1", "not an image")] if k == 2 else ()))
        paths.append(p)
    master = merge_shards(tmp_path / "feats.h5", paths, dataset_digest="whole", extra={"note": "x"})
    return master, np.concatenate(parts), paths


def test_master_reads_like_one_store(sharded):
    master, x, paths = sharded
    assert is_sharded(master) and not is_sharded(paths[0])
    with FeatureStore(master) as fs:
        assert len(fs) == 15 and fs.dim == DIM and fs.complete
        np.testing.assert_array_equal(fs.features, x)
        assert fs.ids.tolist() == [f"id{i}" for i in range(15)]
        assert fs.labels.tolist() == [i % 2 for i in range(15)]
        assert bytes(fs.content_hashes[13]) == bytes([13]) * 16
        assert fs.classes == ["cat", "dog"] and fs.fingerprint == "fp-a"
        assert fs.dataset_digest == "whole" and fs.errors == [("bad1", "not an image")]
        assert fs.provenance["extra"]["n_shards"] == 4 and fs.provenance["extra"]["note"] == "x"
        np.testing.assert_array_equal(fs.read([14, 0, 6, 6]), x[[14, 0, 6, 6]])
        got = np.concatenate([b.features for b in fs.iter_batches(batch_size=4)])
        np.testing.assert_array_equal(got, x)
        assert fs.index_of(["id7"]).tolist() == [7]
        fs.verify()
    with h5py.File(master) as f:
        assert f["features"].is_virtual
        files = {m.file_name for m in f["features"].virtual_sources()}
    assert files == {"feats.shards/k0.h5", "feats.shards/k2.h5", "feats.shards/k3.h5"}  # relative
    assert [e.rows for e in read_shard_table(master)] == [5, 0, 7, 3]
    assert [p.resolve() for p in shard_paths(master)] == [p.resolve() for p in paths]


def test_master_and_folder_can_move_and_cwd_does_not_matter(sharded, tmp_path, monkeypatch):
    master, x, _ = sharded
    dest = tmp_path / "moved" / "deeper"
    dest.mkdir(parents=True)
    shutil.move(str(master), dest / master.name)
    shutil.move(str(shards_dir(master)), dest / shards_dir(master).name)
    monkeypatch.chdir("/")
    with FeatureStore(dest / master.name) as fs:
        np.testing.assert_array_equal(fs.features, x)


def test_missing_shard_is_an_error_not_nan(sharded):
    master, _, paths = sharded
    os.remove(paths[2])
    with pytest.raises(
        StoreError,
        match=r"1 of 4 shard files are missing \(7 rows\): feats.shards/k2.h5.*Run the same encode again",
    ):
        FeatureStore(master)
    # Without the check, HDF5 would return fill values: this is what the check prevents.
    with h5py.File(master) as f:
        assert np.isnan(f["features"][5:12]).all()


def test_changed_or_foreign_shards_are_errors(sharded, tmp_path):
    master, _, paths = sharded
    _shard(paths[3], 12, 4)  # rewritten with one more row
    with pytest.raises(
        StoreError, match=r"k3.h5' holds 4 committed rows \(complete\) but the master maps 3"
    ):
        FeatureStore(master)
    _shard(paths[3], 12, 3, fp="fp-b")
    with pytest.raises(FingerprintMismatchError, match="another backbone"):
        FeatureStore(master)
    paths[3].write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="cannot be read"):
        FeatureStore(master)


def test_merge_refuses_incomplete_mixed_or_missing_shards(tmp_path):
    a = tmp_path / "a.h5"
    _shard(a, 0, 4)
    b = tmp_path / "b.h5"
    _shard(b, 4, 4, fp="fp-b")
    with pytest.raises(FingerprintMismatchError):
        merge_shards(tmp_path / "m.h5", [a, b])
    c = tmp_path / "c.h5"
    _shard(c, 4, 4, dtype="float16")
    with pytest.raises(StoreError, match="dtype 'float16'"):
        merge_shards(tmp_path / "m.h5", [a, c])
    d = tmp_path / "d.h5"
    _shard(d, 4, 4, classes=("cat",))
    with pytest.raises(StoreError, match="classes"):
        merge_shards(tmp_path / "m.h5", [a, d])
    e = tmp_path / "e.h5"
    StoreWriter.create(e, dim=DIM, fingerprint="fp-a", backbone={}).close()
    with pytest.raises(StoreError, match="incomplete"):
        merge_shards(tmp_path / "m.h5", [a, e])
    with pytest.raises(StoreError, match="does not exist"):
        merge_shards(tmp_path / "m.h5", [a, tmp_path / "nope.h5"])
    assert not (tmp_path / "m.h5").exists()


def test_float16_shards_merge(tmp_path):
    p = tmp_path / "x.shards" / "s.h5"
    x = _shard(p, 0, 10, dtype="float16")
    master = merge_shards(tmp_path / "x.h5", [p])
    with FeatureStore(master) as fs:
        assert fs.dtype == np.float16
        np.testing.assert_allclose(fs.features, x.astype(np.float16).astype(np.float32))

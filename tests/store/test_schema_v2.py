"""Schema 2: rows in source order, content and kept columns, plain attributes, v1 migration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreWriter, reorder
from embedpipe.store import format as fmt


def _permuted(path: Path, n: int = 3000, dim: int = 5, finalize: bool = True, seed: int = 0):
    """A store whose rows were appended in a random order (as a length-sorted text encode)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    w = StoreWriter.create(
        path,
        dim=dim,
        fingerprint="fp",
        backbone={"name": "m"},
        classes=["a", "b", "c"],
        precision="fp32",
        columns=["title"],
    )
    for s in range(0, n, 64):
        p = order[s : s + 64]
        w.append(
            x[p],
            [f"id{k}" for k in p],
            [bytes([k % 256]) * 16 for k in p],
            p % 3,
            positions=p,
            contents=[f"text number {k}" for k in p],
            columns={"title": [f"t{k}" for k in p]},
        )
    if finalize:
        w.finalize(dataset_digest="d")
    else:
        w.close()
    return x


@pytest.mark.parametrize("finalize", [True, False])
def test_public_readers_return_source_order(tmp_path: Path, finalize: bool) -> None:
    p = tmp_path / "s.h5"
    x = _permuted(p, finalize=finalize)
    n = len(x)
    with FeatureStore(p) as fs:
        assert fs.complete is finalize
        np.testing.assert_array_equal(fs.features, x)
        assert fs.ids.tolist() == [f"id{k}" for k in range(n)]
        assert fs.labels.tolist() == [k % 3 for k in range(n)]
        assert fs.positions.tolist() == list(range(n))
        assert fs.contents[17] == "text number 17" and fs.column("title")[5] == "t5"
        assert bytes(fs.content_hashes[300]) == bytes([300 % 256]) * 16
        np.testing.assert_array_equal(fs.read(slice(100, 200)), x[100:200])
        np.testing.assert_array_equal(fs.read([2999, 4, 4, 0]), x[[2999, 4, 4, 0]])
        batches = list(fs.iter_batches(batch_size=700))
        np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), x)
        assert np.concatenate([b.ids for b in batches]).tolist() == fs.ids.tolist()
        assert np.concatenate([b.positions for b in batches]).tolist() == list(range(n))
        assert fs.index_of(["id7"]).tolist() == [7]
        with pytest.raises(KeyError, match="did you mean 'title'"):
            fs.column("titel")
    if finalize:  # a finished store is stored sorted: plain sequential reads
        with h5py.File(p, "r") as f:
            assert (np.diff(f[fmt.POSITIONS][:]) > 0).all()
            assert f.attrs["row_order"] == "source"


def test_sort_with_many_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reorder, "WINDOW_BYTES", 1)  # windows of 4096 rows, blocks of 4096
    monkeypatch.setattr(reorder, "BLOCK_BYTES", 1)
    p = tmp_path / "s.h5"
    x = _permuted(p, n=20000, dim=3, finalize=False, seed=3)
    assert reorder.sort_rows(p) and not reorder.sort_rows(p)
    with FeatureStore(p) as fs:
        np.testing.assert_array_equal(fs.read(slice(0, 20000)), x)
        assert fs.contents[19999] == "text number 19999"


def test_grown_store_stays_in_source_order(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    w = StoreWriter.create(p, dim=1, fingerprint="fp", backbone={})
    w.append(np.array([[0.0], [2.0]]), ["a", "c"], [bytes(16)] * 2, positions=[0, 1])
    w.finalize(dataset_digest="v1", source_ids=["a", "c"])
    # The dataset grew: "b" was inserted between them, so "c" moved to position 2.
    w = StoreWriter.open_append(p, fingerprint="fp")
    w.append(np.array([[1.0]]), ["b"], [bytes(16)], positions=[1])
    w.finalize(dataset_digest="v2", source_ids=["a", "b", "c"])
    with FeatureStore(p) as fs:
        assert fs.ids.tolist() == ["a", "b", "c"] and fs.positions.tolist() == [0, 1, 2]
        assert fs.features.ravel().tolist() == [0.0, 1.0, 2.0]
        fs.verify()


def test_attributes_are_plain_and_h5dump_reads_them(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    _permuted(p, n=100)
    with h5py.File(p, "r") as f:
        assert f.attrs["complete"].dtype.kind == "i"  # not an HDF5 enum (numpy bool)
        for v in f.attrs.values():
            assert not isinstance(v, np.bool_)
    h5dump = shutil.which("h5dump")
    if h5dump is None:
        pytest.skip("h5dump not installed (apt-get install hdf5-tools)")
    head = subprocess.run([h5dump, "-H", str(p)], capture_output=True, text=True)
    assert head.returncode == 0 and "error" not in head.stderr, head.stderr
    out = subprocess.run([h5dump, "-p", "-A", str(p)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    complete = out.stdout.split('ATTRIBUTE "complete"')[1].split("}")[0]
    assert "H5T_STD_I8LE" in complete and "(0): 1" in out.stdout.split('ATTRIBUTE "complete"')[1]
    assert 'ATTRIBUTE "precision"' in out.stdout and 'ATTRIBUTE "n_committed"' in out.stdout
    labels = out.stdout.split('DATASET "labels"')[1].split("DATASET")[0]
    assert "CHECKSUM FLETCHER32" in labels and 'DATASET "features"' in out.stdout


def _v1_store(path: Path) -> np.ndarray:
    """A store laid out exactly as schema 1 wrote it (boolean ``complete``, no positions)."""
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("features", data=x, maxshape=(None, 3), chunks=(16, 3))
        f.create_dataset(
            "ids",
            data=np.array(["d", "b", "a", "c"], dtype=object),
            dtype=fmt.STR_DTYPE,
            maxshape=(None,),
            chunks=(16,),
        )
        f.create_dataset("content_hash", data=np.zeros((4, 16), np.uint8), maxshape=(None, 16))
        lab = f.create_dataset("labels", data=np.array([0, 1, -1, 0]), maxshape=(None,))
        lab.attrs["classes"] = '["x", "y"]'
        f.create_dataset("errors/ids", shape=(0,), maxshape=(None,), dtype=fmt.STR_DTYPE)
        f.create_dataset("errors/reasons", shape=(0,), maxshape=(None,), dtype=fmt.STR_DTYPE)
        a = f.attrs
        a["schema_version"] = 1
        a["backbone"] = '{"name": "m"}'
        a["fingerprint"] = "fp"
        a["dataset_digest"] = "d"
        a["n_committed"] = np.int64(4)
        a["complete"] = True
        a["versions"] = "{}"
        a["created"] = "2026-01-01T00:00:00+00:00"
        a["extra"] = '{"precision": "bf16"}'
    return x


def test_v1_store_opens_read_only_and_refuses_appends(tmp_path: Path) -> None:
    p = tmp_path / "old.h5"
    x = _v1_store(p)
    with FeatureStore(p) as fs:
        assert fs.schema_version == 1 and fs.complete and fs.precision == "bf16"
        np.testing.assert_array_equal(fs.features, x)  # encode order, as v1 kept it
        assert fs.ids.tolist() == ["d", "b", "a", "c"] and fs.contents.tolist() == fs.ids.tolist()
        assert fs.positions.tolist() == [0, 1, 2, 3]
        assert fs.to_pandas()["id"].tolist() == ["d", "b", "a", "c"]
        fs.verify()
    with pytest.raises(StoreError, match=r"schema version 1.*reuse_from"):
        StoreWriter.open_append(p, fingerprint="fp")
    assert not Path(str(p) + ".lock.owner").exists()  # the refusal released the lock


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    _permuted(p, n=10)
    with h5py.File(p, "r+") as f:
        f.attrs["schema_version"] = np.int64(fmt.SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="upgrade embedpipe"):
        FeatureStore(p)

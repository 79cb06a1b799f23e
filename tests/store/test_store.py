"""The HDF5 feature store: layout, provenance, readers, crash safety, bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.errors import FeatureValueError, FingerprintMismatchError, StoreError
from embedpipe.store import FeatureStore, StoreWriter


def _make(
    path: Path, n: int = 10, dim: int = 8, dtype: str = "float32", fp: str = "fp-a"
) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    w = StoreWriter.create(
        path,
        dim=dim,
        fingerprint=fp,
        backbone={"kind": "t", "name": "m"},
        classes=["cat", "dog"],
        dtype=dtype,
    )
    w.append(
        x[: n // 2],
        [f"id{i}" for i in range(n // 2)],
        np.arange(n // 2 * 16, dtype=np.uint8).reshape(-1, 16) % 251,
        np.arange(n // 2) % 2,
    )
    w.append(
        x[n // 2 :],
        [f"id{i}" for i in range(n // 2, n)],
        [bytes([i % 256]) * 16 for i in range(n // 2, n)],
        [-1] * (n - n // 2),
    )
    w.finalize(dataset_digest="digest-1")
    return x


def test_round_trip_and_provenance(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    x = _make(p)
    with FeatureStore(p) as fs:
        assert len(fs) == 10 and fs.dim == 8 and fs.complete
        np.testing.assert_array_equal(fs.features, x)
        assert fs.ids.tolist() == [f"id{i}" for i in range(10)]
        assert fs.labels.tolist() == [0, 1, 0, 1, 0, -1, -1, -1, -1, -1]
        assert fs.classes == ["cat", "dog"]
        assert bytes(fs.content_hashes[7]) == bytes([7]) * 16
        prov = fs.provenance
        assert prov["fingerprint"] == "fp-a" and prov["dataset_digest"] == "digest-1"
        assert prov["backbone"] == {"kind": "t", "name": "m"}
        assert prov["schema_version"] == 2 and "h5py" in prov["versions"] and prov["created"]
        fs.verify()


def test_readers_slices_gathers_batches(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    x = _make(p, n=1000, dim=4)
    with FeatureStore(p) as fs:
        np.testing.assert_array_equal(fs.read(slice(10, 20)), x[10:20])
        np.testing.assert_array_equal(fs.read(slice(0, 100, 7)), x[0:100:7])
        idx = np.array([999, 3, 3, 500, 4, 0])
        np.testing.assert_array_equal(fs.read(idx), x[idx])
        assert fs.read([]).shape == (0, 4)
        with pytest.raises(IndexError):
            fs.read([1000])
        got = np.concatenate([b.features for b in fs.iter_batches(batch_size=128)])
        np.testing.assert_array_equal(got, x)
        sub = np.array([5, 1, 900])
        batches = list(fs.iter_batches(batch_size=2, rows=sub))
        np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), x[sub])
        assert np.concatenate([b.ids for b in batches]).tolist() == ["id5", "id1", "id900"]
        assert fs.index_of(["id7", "id2"]).tolist() == [7, 2]
        with pytest.raises(KeyError, match="nope"):
            fs.index_of(["nope"])


def test_float16_store(tmp_path: Path) -> None:
    p = tmp_path / "h.h5"
    x = _make(p, dtype="float16")
    with FeatureStore(p) as fs:
        assert fs.dtype == np.float16
        np.testing.assert_allclose(fs.features, x, atol=2e-3)
        assert fs.features.dtype == np.float32


def test_nan_inf_and_duplicates_refused(tmp_path: Path) -> None:
    w = StoreWriter.create(tmp_path / "s.h5", dim=2, fingerprint="f", backbone={})
    bad = np.array([[1.0, np.nan], [0.0, 1.0], [np.inf, 0]], np.float32)
    with pytest.raises(FeatureValueError, match=r"\['a', 'c'\]"):
        w.append(bad, ["a", "b", "c"], [b"x" * 16] * 3)
    w.append(np.ones((1, 2)), ["a"], [b"x" * 16])
    with pytest.raises(StoreError, match="'a'"):
        w.append(np.ones((1, 2)), ["a"], [b"x" * 16])
    with pytest.raises(StoreError, match="shape"):
        w.append(np.ones((1, 3)), ["z"], [b"x" * 16])
    w.close()
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert len(fs) == 1 and not fs.complete
        with pytest.raises(StoreError, match="incomplete"):
            fs.verify()


def test_existing_store_and_fingerprint_mismatch(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    _make(p, fp="fp-a")
    with pytest.raises(StoreError, match="already exists"):
        StoreWriter.create(p, dim=8, fingerprint="fp-a", backbone={})
    with pytest.raises(FingerprintMismatchError, match="fp-a") as e:
        StoreWriter.open_append(p, fingerprint="fp-b")
    assert "fp-b" in str(e.value) and "'m'" in str(e.value)
    with FeatureStore(p) as fs:
        with pytest.raises(FingerprintMismatchError):
            fs.check_fingerprint("fp-b")
    w = StoreWriter.open_append(p, fingerprint="fp-a")  # growing a finished store
    w.append(np.zeros((1, 8)), ["new"], [b"n" * 16])
    w.finalize()
    with FeatureStore(p) as fs:
        assert len(fs) == 11 and fs.ids[-1] == "new" and fs.complete


def test_errors_recorded(tmp_path: Path) -> None:
    w = StoreWriter.create(tmp_path / "s.h5", dim=2, fingerprint="f", backbone={})
    w.add_errors(["img/bad.jpg"], ["cannot decode image"])
    w.finalize()
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.errors == [("img/bad.jpg", "cannot decode image")]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        FeatureStore(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(StoreError, match="truncated or not an embedpipe store"):
        FeatureStore(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(StoreError, match="not an embedpipe feature store"):
        FeatureStore(other)
    good = tmp_path / "good.h5"
    _make(good, n=2000, dim=64)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(StoreError):
        with FeatureStore(cut) as fs:
            fs.verify()


WRITER = textwrap.dedent(
    """
    import sys, time, numpy as np
    from pathlib import Path
    from embedpipe.store import StoreWriter
    p = Path(sys.argv[1])
    w = (StoreWriter.open_append(p, fingerprint="f") if p.exists()
         else StoreWriter.create(p, dim=32, fingerprint="f", backbone={}))
    n = w.n_committed
    print("start", n, flush=True)
    while n < 30000:
        time.sleep(0.004)
        k = 100
        x = np.arange(n, n + k, dtype=np.float32)[:, None] * np.ones((1, 32), np.float32)
        w.append(x, [f"i{i}" for i in range(n, n + k)], np.zeros((k, 16), np.uint8))
        n += k
    w.finalize()
    """
)


def test_sigkill_during_appends_keeps_every_committed_row(tmp_path: Path) -> None:
    p = tmp_path / "k.h5"
    script = tmp_path / "w.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for delay in (0.5, 0.3):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(p)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().startswith("start")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with FeatureStore(p) as fs:  # readable after SIGKILL, committed rows intact
            n = len(fs)
            assert not fs.complete
            np.testing.assert_array_equal(fs.features[:, 0], np.arange(n, dtype=np.float32))
    subprocess.run([sys.executable, str(script), str(p)], env=env, check=True, capture_output=True)
    with FeatureStore(p) as fs:
        assert fs.complete and len(fs) == 30000
        np.testing.assert_array_equal(fs.features[:, 0], np.arange(30000, dtype=np.float32))
        assert fs.ids.tolist() == [f"i{i}" for i in range(30000)]
        fs.verify()


def test_many_small_appends_round_trip_across_checksum_blocks(tmp_path: Path) -> None:
    # dim 16384 in float16: 32-row chunks and checksum blocks, so 7-row appends cross them.
    # Rows in source order: finalize keeps the file (and the checksums the appends wrote).
    p, dim, n = tmp_path / "s.h5", 16384, 100
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    texts = [f"critique n°{i}: très « bien » 日本 {'é' * (i % 7)}" for i in range(n)]
    w = StoreWriter.create(
        p, dim=dim, fingerprint="f", backbone={}, dtype="float16", columns=["url"]
    )
    for s in range(0, n, 7):
        rows = range(s, min(n, s + 7))
        w.append(
            x[s : s + 7],
            [f"r{i}" for i in rows],
            [bytes([i]) * 16 for i in rows],
            [i % 3 for i in rows],
            contents=[texts[i] for i in rows],
            columns={"url": [f"https://x/{i}" for i in rows]},
        )
        assert w.n_committed == min(n, s + 7)
    w.finalize(dataset_digest="d")
    with FeatureStore(p) as fs:
        fs.verify()  # every block's checksum, the partial last one included
        np.testing.assert_allclose(fs.features, x, atol=1e-2)
        assert fs.ids.tolist() == [f"r{i}" for i in range(n)]
        assert fs.contents.tolist() == texts
        assert fs.column("url")[99] == "https://x/99"
        assert fs.labels.tolist() == [i % 3 for i in range(n)]
        assert bytes(fs.content_hashes[42]) == bytes([42]) * 16

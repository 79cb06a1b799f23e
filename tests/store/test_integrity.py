"""Issue 13's store problems: one writer per store, unique skip records, checksums that catch
damaged bytes, precision recorded and enforced, unique temporary names."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreLock, StoreWriter, check_compatible, lock_holder

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import sys, numpy as np
    from embedpipe.store import StoreWriter
    w = StoreWriter.create(sys.argv[1], dim=4, fingerprint="f", backbone={}, precision="fp32")
    w.append(np.ones((10, 4)), [f"a{i}" for i in range(10)], np.zeros((10, 16), np.uint8))
    print("ready", flush=True)
    sys.stdin.readline()              # hold the store open until told to go on
    w.append(np.ones((5, 4)), [f"b{i}" for i in range(5)], np.zeros((5, 16), np.uint8))
    w.finalize()
    print("done", flush=True)
    """
)


def _holder(tmp_path: Path, store: Path) -> subprocess.Popen[str]:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _rows(path: Path, ids: list[str], precision: str = "fp32") -> StoreWriter:
    w = StoreWriter.create(path, dim=2, fingerprint="f", backbone={}, precision=precision)
    w.append(np.ones((len(ids), 2)), ids, [bytes(16)] * len(ids))
    return w


def test_second_writer_never_recovers_a_live_writers_file(tmp_path: Path) -> None:
    """Issue 13.1: a second writer used to "recover" the live file and silently replace rows."""
    store = tmp_path / "s.h5"
    proc = _holder(tmp_path, store)
    try:
        holder = lock_holder(store)
        assert holder is not None and holder["pid"] == proc.pid
        assert holder["host"] == socket.gethostname()
        with pytest.raises(StoreError, match=rf"being written by pid {proc.pid} on .*since"):
            StoreWriter.open_append(store, fingerprint="f", wait=False)
        with pytest.raises(StoreError, match=rf"pid {proc.pid}"):
            StoreWriter.create(store, dim=4, fingerprint="f", backbone={}, wait=False)
        with FeatureStore(store) as fs:  # readers are not blocked
            assert len(fs) == 10
        # A waiting writer gets the store only once the first one has finished.
        got: list[int] = []
        t = threading.Thread(
            target=lambda: got.append(
                StoreWriter.open_append(store, fingerprint="f", wait=True).n_committed
            )
        )
        t.start()
        time.sleep(0.5)
        assert t.is_alive() and not got
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        t.join(timeout=30)
        assert got == [15]  # it saw every row of the first writer
    finally:
        proc.kill()
        proc.wait()
    with FeatureStore(store) as fs:
        assert len(fs) == 15 and fs.ids.tolist()[-5:] == [f"b{i}" for i in range(5)]


def test_lock_is_released_by_finalize_close_and_death(tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    w = _rows(store, ["a"])
    with pytest.raises(StoreError):
        StoreLock(store, wait=False).acquire()
    w.close()
    StoreLock(store, wait=False).acquire().release()
    proc = _holder(tmp_path, tmp_path / "k.h5")
    proc.kill()
    proc.wait()
    # The dead writer's file is recovered (its lock died with it); its rows are kept.
    w = StoreWriter.open_append(tmp_path / "k.h5", fingerprint="f", wait=False)
    assert w.n_committed == 10
    w.finalize()


def test_skip_records_are_keyed_by_id(tmp_path: Path) -> None:
    """Issue 13.2: re-running a skip encode recorded each bad item again."""
    store = tmp_path / "s.h5"
    w = _rows(store, ["a"])
    w.add_errors(["bad1", "bad2"], ["not an image", "empty text"])
    w.add_errors(["bad1"], ["not an image"])
    w.finalize()
    w = StoreWriter.open_append(store, fingerprint="f")
    w.add_errors(["bad1", "bad2"], ["not an image", "empty text"])  # the re-run
    w.finalize()
    with FeatureStore(store) as fs:
        assert fs.errors == [("bad1", "not an image"), ("bad2", "empty text")]
        fs.verify()
    # An item that failed before and reads fine now loses its skip record.
    w = StoreWriter.open_append(store, fingerprint="f")
    w.append(np.ones((1, 2)), ["bad2"], [bytes(16)])
    w.finalize()
    with FeatureStore(store) as fs:
        assert fs.errors == [("bad1", "not an image")] and len(fs) == 2
    # verify catches duplicates an older embedpipe wrote.
    with h5py.File(store, "r+") as f:
        for name in ("errors/ids", "errors/reasons"):
            f[name].resize(2, axis=0)
            f[name][1] = f[name][0]
    with FeatureStore(store) as fs, pytest.raises(StoreError, match="skipped more than once"):
        fs.verify()


def _corrupt(store: Path, row: int, n_bytes: int = 4096) -> None:
    """Overwrite ``n_bytes`` inside the features chunk that holds ``row``, on disk, with finite
    floats (so no NaN check can notice: only a checksum can)."""
    with h5py.File(store, "r") as f:
        ds = f["features"]
        chunk = row // ds.chunks[0]
        info = ds.id.get_chunk_info_by_coord((chunk * ds.chunks[0], 0))
        offset, size = info.byte_offset, info.size
    assert size > n_bytes
    with open(store, "r+b") as fh:
        fh.seek(offset + (size - n_bytes) // 8 * 4)
        fh.write(np.random.default_rng(1).normal(size=n_bytes // 4).astype(np.float32).tobytes())


def test_verify_catches_4kb_overwritten_inside_features(tmp_path: Path) -> None:
    """Issue 13.4: verify said ok while rows were wrong."""
    store = tmp_path / "s.h5"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 384)).astype(np.float32)
    w = StoreWriter.create(store, dim=384, fingerprint="f", backbone={})
    w.append(x, [f"i{k}" for k in range(2000)], [bytes(16)] * 2000)
    w.finalize()
    with FeatureStore(store) as fs:
        fs.verify()
    _corrupt(store, row=1000)
    with FeatureStore(store) as fs:
        with pytest.raises(StoreError, match=r"'features' is damaged in rows \d+\.\.\d+"):
            fs.verify()


def test_precision_is_recorded_and_a_mixed_resume_refused(tmp_path: Path) -> None:
    """Issue 13.5: a resume could mix bf16 and fp32 rows in one store."""
    store = tmp_path / "s.h5"
    _rows(store, ["a"], precision="fp32").close()
    with pytest.raises(StoreError, match=r"precision 'fp32', this encode runs at precision 'bf16'"):
        StoreWriter.open_append(store, fingerprint="f", precision="bf16")
    w = StoreWriter.open_append(store, fingerprint="f", precision="fp32")
    assert w.precision == "fp32"
    w.close()
    w = StoreWriter.open_append(
        store, fingerprint="f", precision="bf16", allow_mixed_precision=True
    )
    w.finalize()
    with FeatureStore(store) as fs:
        assert fs.precision == "bf16+fp32" and fs.feature_dtype == "float32"
    _rows(tmp_path / "b.h5", ["a"], precision="bf16").finalize()
    _rows(tmp_path / "c.h5", ["a"], precision="fp32").finalize()
    with pytest.raises(StoreError, match="different precision"):
        check_compatible([tmp_path / "b.h5", tmp_path / "c.h5"])
    assert check_compatible([tmp_path / "b.h5", tmp_path / "c.h5"], allow_mixed_precision=True)


def test_temporary_files_have_unique_names(tmp_path: Path) -> None:
    """Issue 13.6 (store part): a fixed ``<out>.creating`` blocked or clobbered a write."""
    store = tmp_path / "s.h5"
    (tmp_path / "s.h5.creating").mkdir()  # a fixed name taken by something else
    _rows(store, ["a"]).finalize()
    assert (tmp_path / "s.h5.creating").is_dir()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["s.h5", "s.h5.creating", "s.h5.lock"]

"""A writer killed while it had the store open outside SWMR mode (the encode's finish) leaves
HDF5's "open for write" flag set: the store must still open, resume, and keep every row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.cli import main as cli_main
from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreWriter
from embedpipe.store.flags import SWMR_WRITE_ACCESS, write_flags
from embedpipe.store.lock import StoreLock

ROOT = Path(__file__).resolve().parents[2]


def _finished(path: Path, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 16)).astype(np.float32)
    w = StoreWriter.create(path, dim=16, fingerprint="fp", backbone={"name": "t"})
    order = rng.permutation(n)  # appended out of order: the finish sorts them
    w.append(
        X[order],
        [f"i{k:05d}" for k in order],
        [bytes(16)] * n,
        positions=order.tolist(),
        contents=[f"text {k}" for k in order],
    )
    w.finalize()
    return X


def _die_holding(path: Path, *, swmr: bool = False) -> None:
    """Open ``path`` for writing as h5py does, then SIGKILL that process."""
    code = (
        "import h5py, os, signal; "
        f"f = h5py.File({str(path)!r}, 'r+', libver=('v110', 'latest')); "
        + ("f.swmr_mode = True; " if swmr else "")
        + "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL


def test_reader_and_resume_recover_a_store_killed_outside_swmr(tmp_path: Path, caplog) -> None:
    path = tmp_path / "s.h5"
    X = _finished(path)
    _die_holding(path)
    assert write_flags(path) > 0
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")  # what every opener met before the fix
    with FeatureStore(path) as fs:  # all 3,000 rows, bit-equal, in source order
        assert fs.complete and len(fs) == 3000
        np.testing.assert_array_equal(fs.features, X)
        fs.verify()
    assert write_flags(path) == 0
    assert "cleared the 'open for write' flag" in caplog.text

    _die_holding(path)
    w = StoreWriter.open_append(path, fingerprint="fp")  # the next encode's resume
    assert w.n_committed == 3000
    w.finalize()
    with FeatureStore(path) as fs:
        np.testing.assert_array_equal(fs.features, X)
        fs.verify()


def test_flagged_and_damaged_store_is_refused_not_used(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    _finished(path)
    with h5py.File(path, "r") as f:
        info = f["features"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:  # one flipped byte inside the first chunk of features
        fh.seek(info.byte_offset + 100)
        b = fh.read(1)
        fh.seek(info.byte_offset + 100)
        fh.write(bytes([b[0] ^ 0xFF]))
    _die_holding(path)
    with pytest.raises(StoreError, match="damaged in rows"):
        FeatureStore(path)


def test_live_writer_is_never_recovered(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    _finished(path, 100)
    _die_holding(path)
    lock = StoreLock(path).acquire()  # another process's writer, as far as the reader knows
    try:
        code = f"from embedpipe.store import FeatureStore; FeatureStore({str(path)!r})"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and "cannot open feature store" in proc.stderr
        assert write_flags(path) > 0  # left alone while its lock is held
    finally:
        lock.release()


def test_a_dead_swmr_writer_still_takes_the_copy_path(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    X = _finished(path, 500)
    _die_holding(path, swmr=True)
    assert write_flags(path) & SWMR_WRITE_ACCESS
    with FeatureStore(path) as fs:  # SWMR read, as before
        np.testing.assert_array_equal(fs.features, X)
    StoreWriter.open_append(path, fingerprint="fp").finalize()
    with FeatureStore(path) as fs:
        np.testing.assert_array_equal(fs.features, X)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["sort", "rename", "renamed", "reopen", "complete"])
def test_kill_at_each_step_of_the_finish(step: str, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import faults
    finally:
        sys.path.pop(0)
    csv, vec = faults._data(tmp_path, 300)
    out = tmp_path / "s.h5"
    cmd = faults._encode_cmd(csv, vec, out)
    killed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "_finish_kill.py"), step, *cmd[3:]],
        env=faults.ENV,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with FeatureStore(out) as fs:
        assert len(fs) == 300  # every row was committed before the finish began
    with pytest.raises(SystemExit) as done:  # the same command resumes, in this process
        cli_main(cmd[3:])
    assert done.value.code in (0, None)
    with FeatureStore(out) as fs:
        assert fs.complete and sorted(fs.ids.tolist()) == [f"item{k:05d}" for k in range(300)]
        assert list(fs.ids) == sorted(fs.ids)  # source order restored
        fs.verify()

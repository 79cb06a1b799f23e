"""A full device (issue 22, item 3): one line naming the rows kept, exit 2, and a store that
resumes; no traceback, no crash of the interpreter, no short write taken for a whole one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedpipe import encode, open_source
from embedpipe.errors import DiskFullError
from embedpipe.store import FeatureStore, StoreWriter, reorder, space
from embedpipe.store import writer as writer_mod

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _data(tmp: Path, n: int = 3000, dim: int = 384) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    vocab = 300
    vec = tmp / "vec.txt"
    vec.write_text(
        f"{vocab} {dim}\n"
        + "".join(
            f"w{i} " + " ".join(f"{v:.3f}" for v in rng.normal(size=dim)) + "\n"
            for i in range(vocab)
        )
    )
    csv = tmp / "items.csv"
    rows = ["id,text,label"]
    for k in range(n):
        words = " ".join(f"w{w}" for w in rng.integers(0, vocab, rng.integers(3, 12)))
        rows.append(f"item{k:05d},{words},{'ab'[k % 2]}")
    csv.write_text("\n".join(rows) + "\n")
    return csv, vec


def _encode(csv: Path, vec: Path, out: Path, *pre: str) -> subprocess.CompletedProcess[str]:
    args = [*pre, "encode", "--data", str(csv), "--text-column", "text", "--id-column", "id"]
    args += ["--label-column", "label", "--backbone", f"word-vectors:{vec}", "--out", str(out)]
    return subprocess.run(
        [sys.executable, *args, "-q"], env=ENV, capture_output=True, text=True, timeout=120
    )


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture()
def small_fs(tmp_path: Path):
    """A 3 MiB tmpfs (needs root; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_encode_onto_a_full_tmpfs_is_one_line_and_resumes(small_fs: Path, tmp_path: Path) -> None:
    csv, vec = _data(tmp_path)
    out = small_fs / "s.h5"
    r = _encode(csv, vec, out, "-m", "embedpipe")
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert line.startswith(f"error: no space left on device while writing {str(out)!r}; ")
    assert "rows are kept; free space and run the same command to resume." in line
    kept = int(line.split("; ")[1].split()[0].replace(",", ""))
    with FeatureStore(out) as fs:
        assert len(fs) == kept > 0 and not fs.complete
    # Free space (grow the filesystem) and run the same command: it resumes and completes.
    subprocess.run(["mount", "-o", "remount,size=40m", str(small_fs)], check=True)
    r = _encode(csv, vec, out, "-m", "embedpipe")
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref.h5"  # an encode never interrupted, in this process
    src = open_source(str(csv), text_column="text", id_column="id", label_column="label")
    encode(src, f"word-vectors:{vec}", ref, progress=False)
    with FeatureStore(out) as a, FeatureStore(ref) as b:
        a.verify()
        assert a.ids.tolist() == b.ids.tolist()
        assert np.array_equal(a.features, b.features)


def _rows(k: int, start: int, dim: int = 8) -> dict:
    ids = [f"r{i:04d}" for i in range(start, start + k)]
    return {
        "features": np.arange(start * dim, (start + k) * dim, dtype=np.float32).reshape(k, dim),
        "ids": ids,
        "content_hashes": [bytes(16)] * k,
        "positions": list(range(start, start + k)),
    }


def test_writer_stops_between_commits_when_the_device_fills(tmp_path, monkeypatch) -> None:
    out = tmp_path / "s.h5"
    w = StoreWriter.create(out, dim=8, fingerprint="fp", backbone={"name": "t"})
    w.append(**_rows(100, 0))
    monkeypatch.setattr(writer_mod, "has_room", lambda folder, need: False)
    with pytest.raises(DiskFullError, match=r"100 rows are kept; free space and run the same"):
        w.append(**_rows(50, 100))
    w.close()
    monkeypatch.undo()
    w = StoreWriter.open_append(out, fingerprint="fp")
    assert w.n_committed == 100
    w.append(**_rows(50, 100))
    w.finalize()
    with FeatureStore(out) as fs:
        fs.verify()
        assert np.array_equal(fs.features, np.arange(150 * 8, dtype=np.float32).reshape(150, 8))


def test_short_pwrite_is_continued_or_reported(tmp_path, monkeypatch) -> None:
    out = tmp_path / "s.h5"
    w = StoreWriter.create(out, dim=8, fingerprint="fp", backbone={"name": "t"})
    rows = _rows(300, 0)
    order = np.random.default_rng(1).permutation(300)
    w.append(
        rows["features"][order],
        [rows["ids"][i] for i in order],
        [bytes(16)] * 300,
        positions=order.tolist(),
    )
    w.close()
    real = os.pwrite

    def short(fd: int, data, offset: int) -> int:  # the kernel may write less than asked
        view = memoryview(data)
        return real(fd, view[: max(1, view.nbytes // 3)], offset)

    monkeypatch.setattr(os, "pwrite", short)
    assert reorder.sort_rows(out)
    with FeatureStore(out) as fs:
        assert np.array_equal(fs.features, rows["features"])
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)  # a full device
    with pytest.raises(OSError) as e:
        space.pwrite_all(3, b"abc", 0)
    assert space.is_no_space(e.value)


BACKSTOP = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))
import embedpipe.store.writer as w, embedpipe.store.reorder as r
w.has_room = r.has_room = lambda folder, need: True   # the check before each append missed it
from embedpipe.cli import main
main(sys.argv[1:])
"""


def test_a_write_that_fails_midway_is_one_line_not_a_crash(tmp_path: Path) -> None:
    """The device filled between the check and the write: HDF5's failed write leaves a file
    that h5py cannot close, and collecting it crashed the interpreter (exit 139)."""
    csv, vec = _data(tmp_path)
    script = tmp_path / "backstop.py"
    script.write_text(BACKSTOP)
    r = _encode(csv, vec, tmp_path / "s.h5", str(script))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "no space left on device while writing" in _one_line(r.stderr)

"""The background writer: batches waiting in its queue go into one append; order, error
records and refused batches behave as batch-by-batch appends would."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from embedpipe.encoding.rows import Rows
from embedpipe.encoding.writer_thread import BackgroundWriter
from embedpipe.errors import FeatureValueError
from embedpipe.store import FeatureStore, StoreWriter


def _writer(path: Path) -> StoreWriter:
    return StoreWriter.create(
        path, dim=3, fingerprint="f", backbone={}, dataset_digest="d", classes=["a", "b"],
        dtype="float32", precision="fp32", columns=["url"],
    )  # fmt: skip


def _batch(b: int, k: int = 4) -> Rows:
    ids = [f"r{b}-{i}" for i in range(k)]
    feats = np.full((k, 3), float(b), np.float32) + np.arange(k, dtype=np.float32)[:, None]
    return Rows(
        feats,
        ids,
        [bytes([b]) * 16] * k,
        np.full(k, b % 2),
        positions=np.arange(b * k, b * k + k),
        contents=[f"text {i}" for i in ids],
        columns={"url": [f"http://x/{i}" for i in ids]},
    )


def test_waiting_batches_join_one_append_and_keep_their_order(tmp_path: Path) -> None:
    w = _writer(tmp_path / "s.h5")
    gate = threading.Event()
    orig = w.append
    calls: list[int] = []

    def slow_append(features, ids, *a, **k):  # the disk is slow: batches queue up
        gate.wait(10)
        calls.append(len(ids))
        orig(features, ids, *a, **k)

    w.append = slow_append  # type: ignore[method-assign]
    bg = BackgroundWriter(w, max_pending=16)
    for b in range(6):
        bg.put_rows(_batch(b))
    gate.set()
    bg.close()
    assert sum(calls) == 24 and len(calls) <= 2  # the 1st batch alone, then the 5 waiting
    w.finalize(dataset_digest="d")
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.ids.tolist() == [f"r{b}-{i}" for b in range(6) for i in range(4)]
        assert fs.features[5].tolist() == [2.0, 2.0, 2.0]  # batch 1, row 1
        assert fs.column("url")[23] == "http://x/r5-3"
        assert fs.contents[0] == "text r0-0"


def test_a_refused_batch_keeps_the_good_ones_before_it(tmp_path: Path) -> None:
    w = _writer(tmp_path / "s.h5")
    gate = threading.Event()
    orig = w.append

    def slow_append(*a, **k):
        gate.wait(10)
        orig(*a, **k)

    w.append = slow_append  # type: ignore[method-assign]
    bg = BackgroundWriter(w, max_pending=16)
    for b in range(4):
        rows = _batch(b)
        if b == 2:
            rows.features[1, 0] = np.nan
        bg.put_rows(rows)
    gate.set()
    with pytest.raises(FeatureValueError, match="r2-1"):
        bg.close()
    assert w.n_committed == 8  # batches 0 and 1; the one with NaN and the one after it: not
    w.close()


def test_error_records_come_after_the_rows_before_them(tmp_path: Path) -> None:
    w = _writer(tmp_path / "s.h5")
    bg = BackgroundWriter(w)
    bg.put_rows(_batch(0))
    bg.put_errors(["bad"], ["empty text"])
    bg.put_rows(_batch(1))
    bg.close()
    assert w.n_committed == 8
    w.finalize(dataset_digest="d")
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.errors == [("bad", "empty text")] and len(fs) == 8


def test_inline_mode_commits_each_batch_before_put_returns(tmp_path: Path) -> None:
    w = _writer(tmp_path / "s.h5")
    bg = BackgroundWriter(w, in_thread=False)
    assert bg._thread is None
    seen: list[int] = []
    for b in range(3):
        bg.put_rows(_batch(b))
        seen.append(w.n_committed)
    bg.put_errors(["bad"], ["empty text"])
    bad = _batch(3)
    bad.features[0, 0] = np.inf
    with pytest.raises(FeatureValueError, match="r3-0"):  # raised by the put itself
        bg.put_rows(bad)
    with pytest.raises(FeatureValueError):  # and again on close, like the threaded writer
        bg.close()
    assert seen == [4, 8, 12] and w.n_committed == 12
    w.finalize(dataset_digest="d")
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.errors == [("bad", "empty text")]
        assert fs.ids.tolist() == [f"r{b}-{i}" for b in range(3) for i in range(4)]


def test_an_encode_on_the_cpu_writes_inline(tmp_path: Path, writer_threads: list[bool]) -> None:
    from embedpipe.data import ArraySource
    from embedpipe.encoding import encode

    vectors = tmp_path / "vec.txt"
    vectors.write_text("3 2\ngood 1 0\nbad 0 1\nplot 1 1\n")
    res = encode(
        ArraySource(["good plot", "bad", "bad plot"] * 4),
        f"word-vectors:{vectors}",
        tmp_path / "s.h5",
        batch_size=5,
        progress=False,
    )
    assert res.n_encoded == 12 and writer_threads == [False]
    assert not any(t.name == "embedpipe-writer" for t in threading.enumerate())
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert len(fs) == 12


@pytest.mark.parametrize("in_thread", [False, True])
def test_commit_interval_groups_commits_and_close_commits_the_rest(
    tmp_path: Path, in_thread: bool
) -> None:
    w = _writer(tmp_path / "s.h5")
    appends: list[int] = []
    real = w.append

    def counting(features, *a, **k):  # noqa: ANN001, ANN002, ANN003
        appends.append(len(features))
        return real(features, *a, **k)

    w.append = counting  # type: ignore[method-assign]
    bg = BackgroundWriter(w, in_thread=in_thread, commit_interval=3600.0)
    for b in range(5):
        bg.put_rows(_batch(b))
    if not in_thread:
        assert w.n_committed == 0  # held: the interval has not passed
    bg.put_errors(["bad"], ["empty text"])  # skip records come after the rows before them
    bg.close()
    assert w.n_committed == 20 and appends == [20]  # one append, one commit
    w.finalize(dataset_digest="d")
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.ids.tolist() == [f"r{b}-{i}" for b in range(5) for i in range(4)]
        assert fs.errors == [("bad", "empty text")]


def test_commit_interval_commits_once_the_interval_is_up(tmp_path: Path) -> None:
    import time

    w = _writer(tmp_path / "s.h5")
    bg = BackgroundWriter(w, in_thread=True, commit_interval=0.2)
    bg.put_rows(_batch(0))
    deadline = time.monotonic() + 10
    while w.n_committed == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # the thread commits an idle hold when the interval is up
    assert w.n_committed == 4
    bg.close()
    w.close()

"""Heap trimming (issue 17): freed arena memory goes back to the OS."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from embedpipe.encoding.heap import HeapTrimmer, release_free_memory

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)"
)


@linux_only
def test_trim_returns_held_free_memory_to_the_os() -> None:
    # The encode's pattern in small: buffers of a few MB freed while a later one stays live,
    # so glibc (mmap threshold raised by the first free) keeps the freed ones resident.
    code = textwrap.dedent(
        """
        import numpy as np, psutil
        from embedpipe.encoding.heap import release_free_memory
        rss = lambda: psutil.Process().memory_info().rss >> 20
        warm = np.ones(4 << 20, np.uint8); del warm  # raises glibc's mmap threshold to 4 MB
        bufs = [np.ones(4 << 20, np.uint8) for _ in range(100)]
        keep = np.ones(4 << 20, np.uint8)  # above the freed ones: the heap top cannot shrink
        del bufs
        before = rss()
        assert release_free_memory()
        print(before, rss(), keep.size)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, _ = map(int, out.stdout.split())
    assert before - after > 200, (before, after)


@linux_only
def test_release_free_memory_runs_on_glibc() -> None:
    assert release_free_memory() is True


def test_trimmer_respects_its_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(
        "embedpipe.encoding.heap.release_free_memory", lambda: calls.append(1) or True
    )
    clock = [100.0]
    monkeypatch.setattr("embedpipe.encoding.heap.time.monotonic", lambda: clock[0])
    t = HeapTrimmer(every_s=5.0)
    assert not t.tick()
    clock[0] += 4.9
    assert not t.tick()
    clock[0] += 0.2
    assert t.tick() and t.n_trims == 1
    assert not t.tick()
    assert HeapTrimmer(every_s=0).tick() is False
    assert len(calls) == 1


def test_trimming_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("embedpipe.encoding.heap.TRIM_EVERY_S", None)
    monkeypatch.setattr("embedpipe.encoding.heap.time.monotonic", lambda: 1e9)
    assert HeapTrimmer().tick() is False


def test_the_encode_loop_trims_the_heap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedpipe.data import ArraySource
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    vectors = tmp_path / "vec.txt"
    words = ["good", "movie", "bad", "plot", "great", "acting", "dull"]
    vectors.write_text(
        f"{len(words)} 3\n" + "".join(f"{w} {k} 1 0.5\n" for k, w in enumerate(words))
    )
    calls: list[int] = []
    monkeypatch.setattr("embedpipe.encoding.heap.TRIM_EVERY_S", 1e-9)
    monkeypatch.setattr(
        "embedpipe.encoding.heap.release_free_memory", lambda: calls.append(1) or True
    )
    texts = ["good movie", "bad plot", "great acting", "dull"] * 5
    res = encode(
        ArraySource(texts),
        f"word-vectors:{vectors}",
        tmp_path / "s.h5",
        batch_size=4,
        progress=False,
    )
    assert res.n_encoded == 20
    assert len(calls) >= 4  # a trim after (nearly) every one of the 5 batches
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert len(fs) == 20

"""Stopping an encode (issue 22, item 9): SIGINT and SIGTERM print what was kept and how to
resume, a killed writer's lock is taken over with a note, and --no-wait's error names --wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreLock

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
N = 15_000


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("sig")
    rng = np.random.default_rng(0)
    vec = tmp / "v.txt"
    vec.write_text("".join(f"w{i} " + " ".join(f"{v:.3f}" for v in rng.normal(size=16)) + "\n"
                           for i in range(200)))  # fmt: skip
    csv = tmp / "t.csv"
    csv.write_text("text\n" + "".join(
        " ".join(f"w{w}" for w in rng.integers(0, 200, 6)) + f" w{k % 200}\n" for k in range(N)
    ))  # fmt: skip
    return csv, vec


def _start(csv: Path, vec: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "embedpipe", "encode", "--data", str(csv), "--text-column",
           "text", "--backbone", f"word-vectors:{vec}", "--batch-size", "8", "--out", str(out),
           "-q", *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True)


def _rows(out: Path) -> int:
    try:
        with FeatureStore(out) as fs:
            return len(fs)
    except (StoreError, OSError):
        return 0


def _wait_for_rows(proc: subprocess.Popen[str], out: Path) -> None:
    deadline = time.monotonic() + 120
    while _rows(out) < 200:
        assert proc.poll() is None and time.monotonic() < deadline, "the encode ended too soon"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_encode_says_what_it_kept(data, tmp_path: Path, sig: int) -> None:
    csv, vec = data
    out = tmp_path / "s.h5"
    proc = _start(csv, vec, out)
    _wait_for_rows(proc, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, err
    kept = _rows(out)
    assert 0 < kept < N
    # The encode's own line names the rows kept; a signal that lands outside its loop (a
    # window seen once in a full-suite run) leaves only the general line, which still says
    # that committed rows are kept and how to resume.
    specific = f"interrupted: {out} keeps {kept:,} of {N:,} items; run the same encode again"
    assert specific in err or "interrupted: " not in err, err
    assert f"interrupted ({name}): every committed row" in err and "run the same command" in err
    assert "Traceback" not in err and "Aborted" not in err


@pytest.mark.slow
def test_a_killed_writers_lock_is_taken_over_with_a_note(data, tmp_path: Path) -> None:
    csv, vec = data
    out = tmp_path / "s.h5"
    proc = _start(csv, vec, out)
    _wait_for_rows(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The takeover is what is checked: the rest of the encode runs in big batches (the last
    # --batch-size given wins), not in the small ones that keep the killed run long enough.
    proc = _start(csv, vec, out, "--log-level", "info", "--batch-size", "1024")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "took over the writer lock" in err and "stale lock is taken over" in err


def test_no_wait_names_the_wait_flag(tmp_path: Path) -> None:
    held = StoreLock(tmp_path / "s.h5").acquire()
    try:
        with pytest.raises(StoreError) as e:
            StoreLock(tmp_path / "s.h5", wait=False).acquire()
    finally:
        held.release()
    text = e.value.worded({"wait": "--wait"})
    assert "is being written by pid" in text and text.endswith("or pass --wait to wait for it.")
    assert "wait=False" not in text and "--no-wait" not in text

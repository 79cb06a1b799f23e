"""Issue 17: an encode's peak memory stays flat as rows grow (200k rows, word vectors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Largest accepted growth of peak RSS between row 50,000 and row 200,000 of the encode.
#: Measured: +7 MB (888 -> 895 MB). A leak of 220 bytes per row would break it.
GROWTH_BOUND_MB = 32
#: Largest accepted extra peak of the finish (rows sorted into source order in windows of
#: bounded size, whatever N). Measured: +59 MB at 200k rows.
FINISH_BOUND_MB = 96

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import numpy as np
    from embedpipe.data import ArraySource
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore, writer

    work, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    vocab, dim = 2000, 32
    with open(os.path.join(work, "vec.txt"), "w") as fh:
        fh.write(f"{vocab} {dim}\\n")
        for i, row in enumerate(rng.normal(size=(vocab, dim))):
            fh.write(f"w{i} " + " ".join(f"{v:.3f}" for v in row) + "\\n")
    lens = rng.integers(4, 12, n)
    words = np.split(rng.integers(0, vocab, int(lens.sum())), np.cumsum(lens)[:-1])
    texts = [" ".join(f"w{w}" for w in ws) for ws in words]

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    state = {"rows": 0, "peak": 0.0, "marks": {}}
    stop = threading.Event()
    def sample():
        while not stop.is_set():
            state["peak"] = max(state["peak"], rss())
            stop.wait(0.02)
    orig = writer.StoreWriter.append
    def append(w, features, ids, *a, **kw):
        orig(w, features, ids, *a, **kw)
        state["rows"] += len(ids)
        state["peak"] = max(state["peak"], rss())
        for mark in (50_000, n):
            if state["rows"] >= mark and mark not in state["marks"]:
                state["marks"][mark] = state["peak"]
    writer.StoreWriter.append = append
    threading.Thread(target=sample, daemon=True).start()
    out = os.path.join(work, "s.h5")
    encode(ArraySource(texts), f"word-vectors:{work}/vec.txt", out, batch_size=1024,
           progress=False)
    stop.set()
    peak = max(state["peak"], rss())
    with FeatureStore(out) as fs:
        assert len(fs) == n and fs.contents[7] == texts[7]
    print("RESULT " + json.dumps(
        {"at_50k": state["marks"][50_000], "at_end": state["marks"][n], "final": peak}
    ))
    """
)


@pytest.mark.slow
def test_peak_rss_flat_from_50k_to_200k_rows(tmp_path: Path) -> None:
    script = tmp_path / "scale.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "200000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    res = json.loads(line[0][len("RESULT ") :])
    growth = res["at_end"] - res["at_50k"]
    assert growth < GROWTH_BOUND_MB, f"peak RSS grew {growth:.0f} MB from 50k to 200k rows: {res}"
    finish = res["final"] - res["at_end"]
    assert finish < FINISH_BOUND_MB, f"the finish added {finish:.0f} MB: {res}"

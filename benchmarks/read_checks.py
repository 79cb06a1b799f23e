"""What checking reads costs (issue 22, item 4): every block of feature rows a reader reads is
compared with its stored CRC-32 and every row read must be finite.

A store of ``--rows`` x ``--dim`` float32 rows (warm in the page cache: the worst case for the
relative cost, where the read itself is fastest) is read the ways the library reads it, each
time through a freshly opened :class:`FeatureStore` (checks run once per open store, so a fresh
open pays them in full), with the checks on and off (a subclass without them), alternating,
best of ``--repeat``, in CPU time of the reading process (wall time on a shared machine under
load measures the other processes):

- ``features``: the whole store in one array (train, export);
- ``iter_batches``: 8,192-row batches (index build, out-of-core training);
- ``gather``: 2,000 random rows (held-out evaluation, re-ranking).

    python benchmarks/read_checks.py [--rows 200000] [--dim 384] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from embedpipe.store import FeatureStore, StoreWriter  # noqa: E402


class Unchecked(FeatureStore):
    """The same reader without the CRC and finiteness checks (what reads cost before)."""

    @property
    def _checks(self):  # type: ignore[override]
        return None

    def _check_finite(self, x, rows) -> None:  # type: ignore[override]
        return None


def _make(path: Path, rows: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    w = StoreWriter.create(path, dim=dim, fingerprint="fp", backbone={"name": "bench"})
    step = 8192
    for s in range(0, rows, step):
        k = min(rows, s + step) - s
        w.append(
            rng.standard_normal((k, dim), dtype=np.float32),
            [f"r{i}" for i in range(s, s + k)],
            [bytes(16)] * k,
        )
    w.finalize()


def _time(cls: type[FeatureStore], path: Path, how: str, rows: np.ndarray) -> float:
    # CPU time of this process (user + system, page-cache copies included): on a shared
    # machine under load, wall time mostly measures the other processes.
    t = time.process_time()
    with cls(path) as fs:
        if how == "features":
            x = fs.features
        elif how == "iter_batches":
            x = None
            for b in fs.iter_batches(8192):
                x = b.features
        else:
            x = fs.read(rows)
    assert x is not None
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        _make(path, args.rows, args.dim)
        size = path.stat().st_size
        rng = np.random.default_rng(1)
        gather = np.sort(rng.choice(args.rows, 2000, replace=False))
        out = []
        for how in ("features", "iter_batches", "gather"):
            _time(FeatureStore, path, how, gather)  # warm the page cache
            on, off = [], []
            for _ in range(args.repeat):
                off.append(_time(Unchecked, path, how, gather))
                on.append(_time(FeatureStore, path, how, gather))
            t_on, t_off = min(on), min(off)
            out.append(
                {
                    "read": how,
                    "unchecked CPU ms": round(t_off * 1e3, 1),
                    "checked CPU ms": round(t_on * 1e3, 1),
                    "cost": f"{100 * (t_on / t_off - 1):+.0f}%",
                    "checked GB/s (CPU)": round(size / t_on / 1e9, 2) if how != "gather" else "",
                }
            )
    load = os.getloadavg()[0]
    notes = [
        f"{args.rows:,} x {args.dim} float32 rows ({size / 1e6:.0f} MB), warm page cache; best "
        f"of {args.repeat}, checked and unchecked reads alternating; load average {load:.1f}",
        "checked = each block's CRC-32 (ISA-L) and a finiteness pass (one BLAS dot product), "
        "once per block per open store; gather reads the whole ~1 MiB block of each row it "
        "has not checked yet (2,000 random rows touch nearly every block)",
        "times are CPU seconds of the reading process (user + system), not wall time",
    ]
    from _report import emit

    emit(
        "read_checks",
        "Cost of checking reads (CRC-32 per block, finite rows)",
        ["read", "unchecked CPU ms", "checked CPU ms", "cost", "checked GB/s (CPU)"],
        out,
        notes,
    )


if __name__ == "__main__":
    main()

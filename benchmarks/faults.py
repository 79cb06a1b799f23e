"""Fault injection (issue 13): kill -9, two writers, damaged bytes — and the counts.

Every trial runs the real CLI in a subprocess on small generated data (texts embedded with
static word vectors, so a trial takes seconds):

1. ``kill -9`` of ``embedpipe encode`` at a random instant, ``--trials`` times on one store
   (each kill followed by a check that the store opens and its committed rows are unique),
   then one run to completion.
2. ``kill -9`` of ``embedpipe run`` (a pipeline with an encode and a train stage), ``--run-trials``
   times, then a run to completion.
3. Two writers on one store: started together and 1 s apart (both must finish, the second
   waiting on the lock), and with ``--no-wait`` (the second must fail at once, naming the
   holder).
4. ``kill -9`` at each step of an encode's finish (the row sort, just before and after its
   rename, the reopen outside SWMR mode, ``complete=1`` before the close;
   ``benchmarks/_finish_kill.py``): the store must open right after the kill (**unopenable**
   counts those that do not, or whose resume fails) and the same encode must then complete it.
5. Damaged bytes: 4 KB of finite floats written inside the features of a finished store at a
   random place, ``--corrupt-trials`` times; ``embedpipe verify`` must fail every time.

A store is then compared with a clean reference encode: **lost** = items of the dataset missing
from the store, **duplicated** = ids stored twice (or skip records repeated), **wrong** = rows
whose features differ from the reference; **accepted corruptions** = damaged stores that verify
passed. All must be 0.

    python benchmarks/faults.py [--n 4000] [--trials 20] [--run-trials 5] [--corrupt-trials 10]
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    "HF_HUB_OFFLINE": "1",
}
CLI = [sys.executable, "-m", "embedpipe"]


def _data(work: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    vocab = 2000
    lines = [f"{vocab} 32"] + [
        f"w{i} " + " ".join(f"{v:.4f}" for v in rng.normal(size=32)) for i in range(vocab)
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


def _check(store: Path, ids: list[str], ref: dict[str, np.ndarray] | None) -> dict[str, int]:
    """Lost / duplicated / wrong rows of a store against the dataset's ids and a reference."""
    from embedpipe.store import FeatureStore

    with FeatureStore(store) as fs:
        got = fs.ids.tolist()
        feats = fs.features
        errs = [e for e, _ in fs.errors]
    dup = len(got) - len(set(got)) + len(errs) - len(set(errs))
    lost = len(set(ids) - set(got)) if ref is not None else 0
    wrong = 0
    if ref is not None:
        for k, row in zip(got, feats, strict=True):
            if k in ref and not np.allclose(ref[k], row, atol=1e-5):
                wrong += 1
    return {"lost": lost, "duplicated": dup, "wrong": wrong}


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


def encode_kills(work: Path, csv: Path, vec: Path, ids: list[str], ref, trials: int) -> dict:
    out = work / "killed.h5"
    t = time.perf_counter()
    subprocess.run(_encode_cmd(csv, vec, work / "timing.h5"), env=ENV, check=True)
    full = time.perf_counter() - t
    hits = _kill_trials(_encode_cmd(csv, vec, out), out, trials, (0.5 * full, 0.97 * full))
    subprocess.run(_encode_cmd(csv, vec, out), env=ENV, check=True, capture_output=True)
    v = subprocess.run([*CLI, "verify", str(out)], env=ENV, capture_output=True, text=True)
    return {
        "trial": "kill -9 embedpipe encode",
        "trials": trials,
        "killed mid-run": hits,
        **_check(out, ids, ref),
        "verify ok": v.returncode == 0,
    }


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


def run_kills(work: Path, csv: Path, vec: Path, ids: list[str], ref, trials: int) -> dict:
    spec = work / "faults.yaml"
    spec.write_text(PIPELINE.format(csv=csv, vec=vec))
    cache = work / "pcache"
    cmd = [*CLI, "run", str(spec), "--cache", str(cache), "-q"]
    t = time.perf_counter()
    subprocess.run(
        [*CLI, "run", str(spec), "--cache", str(work / "ptiming"), "-q"],
        env=ENV,
        check=True,
        capture_output=True,
    )
    full = time.perf_counter() - t
    rng = random.Random(1)
    hits = 0
    for _ in range(trials):
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4 * full, 0.9 * full))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            hits += 1
        proc.wait()
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    stores = sorted(p for p in cache.rglob("*.h5") if "shards" not in p.parts)
    counts = {"lost": 0, "duplicated": 0, "wrong": 0}
    for s in stores:
        try:
            c = _check(s, ids, ref)
        except Exception:  # noqa: BLE001 - a head's own .h5 or a partial: not a feature store
            continue
        counts = {k: counts[k] + c[k] for k in counts}
    return {
        "trial": "kill -9 embedpipe run",
        "trials": trials,
        "killed mid-run": hits,
        **counts,
        "verify ok": done.returncode == 0 and bool(stores),
    }


def two_writers(work: Path, csv: Path, vec: Path, ids: list[str], ref) -> list[dict]:
    rows = []
    for label, gap in (("two writers started together", 0.0), ("second writer 1 s later", 1.0)):
        out = work / f"two-{gap}.h5"
        a = subprocess.Popen(_encode_cmd(csv, vec, out), env=ENV, stderr=subprocess.PIPE, text=True)
        time.sleep(gap)
        b = subprocess.Popen(_encode_cmd(csv, vec, out), env=ENV, stderr=subprocess.PIPE, text=True)
        ra, rb = a.wait(), b.wait()
        rows.append(
            {
                "trial": label,
                "trials": 1,
                "killed mid-run": 0,
                **_check(out, ids, ref),
                "verify ok": ra == 0 and rb == 0,
            }
        )
    out = work / "nowait.h5"
    # A first writer long enough to outlast the second one's start-up (about 3 s of imports).
    big = work / "big"
    big.mkdir(exist_ok=True)
    big_csv, _ = _data(big, 20 * len(ids))
    a = subprocess.Popen(_encode_cmd(big_csv, vec, out), env=ENV, stderr=subprocess.PIPE, text=True)
    from embedpipe.store import lock_holder

    deadline = time.monotonic() + 60
    while lock_holder(out) is None and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first writer holds the lock
    b = subprocess.run(
        _encode_cmd(big_csv, vec, out, "--no-wait"), env=ENV, capture_output=True, text=True
    )
    a.wait()
    big_ids = [f"item{k:05d}" for k in range(20 * len(ids))]
    named = b.returncode != 0 and "being written by pid" in b.stderr
    rows.append(
        {
            "trial": "second writer with --no-wait",
            "trials": 1,
            "killed mid-run": 0,
            **_check(out, big_ids, None),
            "verify ok": named,
        }
    )
    return rows


FINISH_STEPS = ("sort", "rename", "renamed", "reopen", "complete")


def finish_kills(work: Path, csv: Path, vec: Path, ids: list[str], ref) -> list[dict]:
    """kill -9 at each step of an encode's finish (``_finish_kill.py``), then the same encode
    again: the store must open right after the kill and resume with every row."""
    from embedpipe.store import FeatureStore

    rows = []
    for step in FINISH_STEPS:
        out = work / f"finish-{step}.h5"
        cmd = _encode_cmd(csv, vec, out)
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
        v = subprocess.run([*CLI, "verify", str(out)], env=ENV, capture_output=True, text=True)
        rows.append(
            {
                "trial": f"kill -9 in the finish: {step}",
                "trials": 1,
                "killed mid-run": int(killed),
                "unopenable": unopenable + int(resumed.returncode != 0),
                **_check(out, ids, ref),
                "verify ok": v.returncode == 0,
            }
        )
    return rows


def corruptions(work: Path, store: Path, trials: int) -> dict:
    import h5py

    rng = np.random.default_rng(2)
    accepted = 0
    for k in range(trials):
        bad = work / f"bad-{k}.h5"
        shutil.copy(store, bad)
        with h5py.File(bad, "r") as f:
            ds = f["features"]
            n = int(f.attrs["n_committed"])
            rows = ds.chunks[0]
            chunk = int(rng.integers(-(-n // rows)))
            info = ds.id.get_chunk_info_by_coord((chunk * rows, 0))
            # Only the bytes of committed rows (a chunk's tail past them holds no data).
            used = (min(n, (chunk + 1) * rows) - chunk * rows) * ds.shape[1] * ds.dtype.itemsize
        size = min(4096, used)
        at = info.byte_offset + int(rng.integers(0, max(1, (used - size) // 4))) * 4
        with open(bad, "r+b") as fh:
            fh.seek(at)
            fh.write(rng.normal(size=size // 4).astype(np.float32).tobytes())
        v = subprocess.run([*CLI, "verify", str(bad)], env=ENV, capture_output=True, text=True)
        accepted += v.returncode == 0
    return {"trial": "4 KB overwritten inside features", "trials": trials, "accepted": accepted}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=4000, help="items of the generated dataset")
    ap.add_argument("--trials", type=int, default=20, help="kill -9 trials of encode")
    ap.add_argument("--run-trials", type=int, default=5, help="kill -9 trials of run")
    ap.add_argument("--corrupt-trials", type=int, default=10)
    args = ap.parse_args()
    from embedpipe.store import FeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv, vec = _data(work, args.n)
        ids = [f"item{k:05d}" for k in range(args.n)]
        subprocess.run(_encode_cmd(csv, vec, work / "ref.h5"), env=ENV, check=True)
        with FeatureStore(work / "ref.h5") as fs:
            ref = dict(zip(fs.ids.tolist(), fs.features, strict=True))
        rows = [encode_kills(work, csv, vec, ids, ref, args.trials)]
        rows.append(run_kills(work, csv, vec, ids, ref, args.run_trials))
        rows += two_writers(work, csv, vec, ids, ref)
        rows += finish_kills(work, csv, vec, ids, ref)
        corrupt = corruptions(work, work / "ref.h5", args.corrupt_trials)
    load = os.getloadavg()[0]
    columns = [
        "trial",
        "trials",
        "killed mid-run",
        "unopenable",
        "lost",
        "duplicated",
        "wrong",
        "verify ok",
    ]
    for r in rows:
        r.setdefault("unopenable", 0)
    failures = ("unopenable", "lost", "duplicated", "wrong")
    totals = {k: sum(int(r[k]) for r in rows) for k in failures}
    notes = [
        f"{args.n} generated texts, word vectors (2,000 x 32), batch 16; load average {load:.1f}",
        f"corruption: {corrupt['trials']} stores with 4 KB of finite floats written inside "
        f"their features, {corrupt['accepted']} accepted by verify",
        f"totals: {totals['unopenable']} unopenable, {totals['lost']} lost, "
        f"{totals['duplicated']} duplicated, {totals['wrong']} wrong, {corrupt['accepted']} "
        "silently accepted corruptions",
    ]
    sys.path.insert(0, str(HERE))
    try:
        from _report import emit

        emit(
            "faults", "Fault injection (issue 13)", columns, rows, notes, extra={"corrupt": corrupt}
        )
    except ImportError:
        for r in rows:
            print(r)
        print("\n".join(notes))
    ok = not any(totals.values()) and corrupt["accepted"] == 0 and all(r["verify ok"] for r in rows)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

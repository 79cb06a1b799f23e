"""Pipeline cache benchmark: first run vs fully cached re-run, and a grown dataset's re-encode.

    HF_HUB_OFFLINE=1 python benchmarks/pipeline.py [--pipeline pipelines/quickstart.yaml]

1. Runs the pipeline with an empty cache, then again (everything cached), each as a fresh
   ``embedpipe run`` process: the re-run's wall time over the first run's (target <= 5%;
   what is left is interpreter start-up, imports and the datasets' content digests).
2. Grows the first encode stage's dataset by 10% (its ``limit``; builtin stratified samples
   of a larger limit hold the smaller one's items) and re-runs that stage on the same cache:
   only the new items are encoded, the rest are copied from the earlier store. Compared with
   encoding the grown dataset from scratch (target <= 15%), both as the engine's encode time
   (``encode_seconds``) and as the whole stage (adding the model load, a fixed cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# The `embedpipe` console script, with the pipeline commands registered even where the main
# CLI does not wire them yet: the same imports as `embedpipe run`.
BOOT = (
    "import sys\n"
    "from embedpipe.cli import app, main\n"
    "from embedpipe.cli import pipeline_cmd\n"
    "if not any(c.name == 'run' for c in app.registered_commands): pipeline_cmd.register(app)\n"
    "main(sys.argv[1:])\n"
)


def cli(*args: str, env: dict[str, str]) -> float:
    """Run ``embedpipe ARGS`` in a new process; its wall time in seconds."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", BOOT, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"embedpipe {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return seconds


def last_manifest(runs: Path) -> dict:
    return json.loads(
        max(runs.glob("*/*/manifest.json"), key=lambda p: p.stat().st_mtime).read_text()
    )


def stage(manifest: dict, name: str) -> dict:
    return next(s for s in manifest["stages"] if s["name"] == name)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--pipeline",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "pipelines" / "quickstart.yaml",
    )
    ap.add_argument("--grow", type=float, default=0.10, help="fraction of new items (default 0.10)")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep caches and runs here (default: a temp folder)",
    )
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="embedpipe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    spec = yaml.safe_load(args.pipeline.read_text())
    base = work / args.pipeline.name
    shutil.copy(args.pipeline, base)
    cache, runs = work / "cache", work / "runs"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(runs, ignore_errors=True)
    common = ["--cache", str(cache), "--runs-dir", str(runs), "-q"]

    print(f"pipeline {args.pipeline} (work folder {work})", flush=True)
    first = cli("run", str(base), *common, env=env)
    m_first = last_manifest(runs)
    cached = cli("run", str(base), *common, env=env)
    m_cached = last_manifest(runs)
    assert m_cached["misses"] == 0, "the re-run was not fully cached"

    # the first encode stage and its dataset, grown
    enc = next(n for n, s in spec["stages"].items() if s["kind"] == "encode")
    ds_name = spec["stages"][enc]["dataset"]
    ds = spec["datasets"][ds_name]
    if not isinstance(ds, dict) or "limit" not in ds:
        sys.exit(f"dataset {ds_name!r} has no limit to grow")
    ds["limit"] = int(round(ds["limit"] * (1 + args.grow)))
    grown = work / f"grown-{args.pipeline.name}"
    grown.write_text(yaml.safe_dump(spec, sort_keys=False))
    t_incr = cli("run", str(grown), *common, "--only", enc, env=env)
    incr = stage(last_manifest(runs), enc)
    cache2 = work / "cache-scratch"
    shutil.rmtree(cache2, ignore_errors=True)
    t_full = cli(
        "run",
        str(grown),
        "--cache",
        str(cache2),
        "--runs-dir",
        str(runs),
        "-q",
        "--only",
        enc,
        env=env,
    )
    full = stage(last_manifest(runs), enc)

    o_i, o_f = incr["outputs"], full["outputs"]
    rows = [
        ("first run (empty cache), process wall", f"{first:.2f} s", "", ""),
        ("  of which stages", f"{sum(s['seconds'] for s in m_first['stages']):.2f} s", "", ""),
        ("fully cached re-run, process wall", f"{cached:.2f} s", f"{cached / first:.1%}", "<= 5%"),
        ("  of which keys + dataset digests", f"{m_cached['key_seconds']:.2f} s", "", ""),
        (
            f"{enc}: +{args.grow:.0%} items, encode_seconds",
            f"{o_i['encode_seconds']:.2f} s",
            f"{o_i['encode_seconds'] / o_f['encode_seconds']:.1%}",
            "<= 15%",
        ),
        (f"{enc}: from scratch, encode_seconds", f"{o_f['encode_seconds']:.2f} s", "100%", ""),
        (
            f"{enc}: +{args.grow:.0%} items, whole stage",
            f"{incr['seconds']:.2f} s",
            f"{incr['seconds'] / full['seconds']:.1%}",
            "(model load included)",
        ),
        (f"{enc}: from scratch, whole stage", f"{full['seconds']:.2f} s", "100%", ""),
        (
            "  incremental: encoded / reused / items",
            f"{o_i['n_encoded']} / {o_i['n_reused']} / {o_i['n_items']}",
            "",
            "",
        ),
        ("  incremental / scratch process wall", f"{t_incr:.2f} s / {t_full:.2f} s", "", ""),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{w}}  {'value':>18}  {'ratio':>7}  target")
    print("-" * (w + 40))
    for name, value, ratio, target in rows:
        print(f"{name:<{w}}  {value:>18}  {ratio:>7}  {target}")
    print(
        f"\nCPU threads: torch default; os.cpu_count() = {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}"
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

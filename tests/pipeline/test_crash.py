"""Crash safety: a run SIGKILLed mid-stage, and two runs on one cache at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from embedpipe.pipeline import Cache, Entry, load_pipeline
from embedpipe.store import FeatureStore

from .conftest import run, write_yaml

IMAGES = {
    "name": "digits-crash",
    "datasets": {"digits": {"source": "builtin:digits", "limit": 320}},
    "stages": {
        "features": {
            "kind": "encode",
            "dataset": "digits",
            # random-init MobileNetV2 at 32 px: real convolutions, slow enough to be killed
            "params": {
                "backbone": "torchvision:mobilenet_v2",
                "weights": "none",
                "options": {"resize_size": 48, "crop_size": 48},
                "batch_size": 8,
                "num_workers": 0,
            },
        },
        "idx": {"kind": "index", "inputs": {"features": "features"}, "params": {"type": "flat"}},
    },
}


def _runner(proj: Path, cli: bool = False) -> list[str]:
    """A fresh process running the project's pipeline (through the CLI: events on stdout)."""
    args = [
        str(proj / "pipeline.yaml"),
        "--cache",
        str(proj / "cache"),
        "--runs-dir",
        str(proj / "runs"),
        "-q",
    ]
    if cli:
        code = (
            "import sys, typer\nfrom embedpipe.cli import pipeline_cmd\n"
            "app = typer.Typer()\npipeline_cmd.register(app)\napp(['run', *sys.argv[1:]])\n"
        )
        return [sys.executable, "-u", "-c", code, *args]
    code = (
        "import sys; from embedpipe.pipeline import run_pipeline\n"
        f"run_pipeline({str(proj / 'pipeline.yaml')!r}, cache={str(proj / 'cache')!r}, "
        f"runs_dir={str(proj / 'runs')!r}, progress=False)\n"
    )
    return [sys.executable, "-c", code]


def _committed(store: Path) -> int:
    try:
        with FeatureStore(store) as fs:
            return len(fs)
    except Exception:  # noqa: BLE001 - the file is being created; try again
        return 0


def test_sigkill_mid_encode_then_rerun_completes(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    write_yaml(proj / "pipeline.yaml", IMAGES)
    p = load_pipeline(proj / "pipeline.yaml")
    key = p.key("features").key
    cache = Cache(proj / "cache")
    partial = cache.tmp_dir("encode", key) / "features.h5"

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _runner(proj), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 120
    while _committed(partial) < 16:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the encode never started"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _committed(partial)
    assert 0 < done_before < 320
    assert not cache.is_complete("encode", key)  # a killed stage never looks complete
    assert list(cache.entries()) == []

    result = run(proj)
    out = result["features"].outputs
    assert result.executed == ["features", "idx"]
    assert out["n_resumed"] >= done_before and out["n_resumed"] + out["n_encoded"] == 320
    assert out["n_encoded"] > 0
    store = result["features"].path / "features.h5"
    with FeatureStore(store) as fs:
        fs.verify()
        assert sorted(fs.ids.tolist()) == sorted(p.datasets["digits"].source.ids)
        # rows written before the kill and after the resume match a fresh encode of those items
        from embedpipe.backbones import load_backbone
        from embedpipe.encoding import encode_items

        src = p.datasets["digits"].source
        enc = load_backbone("torchvision:mobilenet_v2", weights=None, resize_size=48, crop_size=48)
        picks = [0, 1, 2, 318, 319]
        rows = fs.index_of([src.ids[i] for i in picks])
        fresh = encode_items(enc, [src.load(i) for i in picks])
        np.testing.assert_allclose(fs.read(rows), fresh, rtol=1e-4, atol=1e-5)
    assert not cache.tmp_dir("encode", key).exists()
    assert run(proj).hits == ["features", "idx"]


def test_a_second_run_waits_for_the_entry_being_built_then_uses_it(text_project: Path) -> None:
    """Two runs on one cache: while one builds an entry (holding its lock), the other waits,
    then finds the entry complete and reuses it instead of building it again."""
    from embedpipe.pipeline.runner import _build

    run(text_project, only=["enc_train", "enc_test"])
    p = load_pipeline(text_project / "pipeline.yaml")
    cache = Cache(text_project / "cache")
    sk = p.key("idx")
    lock = cache.entry_lock("index", sk.key)
    with lock:  # "run A" starts building idx
        b = subprocess.Popen(
            _runner(text_project, cli=True),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert b.stdout is not None
        line = ""
        while "wait" not in line:  # "run B" reaches idx and waits for A
            line = b.stdout.readline()
            assert line or b.poll() is None, b.stderr.read() if b.stderr else ""
        assert "another run is building idx" in line
        time.sleep(0.3)
        assert b.poll() is None  # still waiting
        entries = {
            n: Entry(
                n, k.kind, k.key, cache.entry_dir(k.kind, k.key), cache.meta(k.kind, k.key), None
            )
            for n, k in p.keys(["enc_train"]).items()
        }
        _build(cache, p, sk, entries, False, {"run_id": "test", "versions": {}})  # A finishes idx
    out, err = b.communicate(timeout=120)
    assert b.returncode == 0, err
    m = json.loads(
        max(
            (text_project / "runs" / "texts").glob("*/manifest.json"),
            key=lambda f: f.stat().st_mtime,
        ).read_text()
    )
    idx = next(s for s in m["stages"] if s["name"] == "idx")
    assert idx["status"] == "hit" and idx["waited_for_lock"] > 0.3
    assert [s["status"] for s in m["stages"]] == ["hit", "hit", "hit"]

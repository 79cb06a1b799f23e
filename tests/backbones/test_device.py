"""Device selection, precision resolution and autocast."""

from __future__ import annotations

import pytest
import torch

from embedpipe.backbones import load_backbone, resolve_precision, select_device
from embedpipe.backbones.device import (
    CPU_BF16_FASTER,
    autocast,
    cpu_has_native_bf16,
    move_batch,
)
from embedpipe.errors import ConfigError


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        select_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda():
    for dev in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="CUDA is not available.*device='cpu'"):
            select_device(dev)


def test_resolve_precision_on_cpu():
    native = cpu_has_native_bf16()
    for family, faster in CPU_BF16_FASTER.items():
        expected = "bf16" if faster and native else "fp32"
        assert resolve_precision("auto", "cpu", family) == expected  # type: ignore[arg-type]
    assert resolve_precision("auto", "cpu", None) == "fp32"
    assert resolve_precision("fp32", "cpu", "cnn") == "fp32"
    assert resolve_precision("bf16", "cpu", "embedding") == "bf16"
    with pytest.raises(ConfigError, match="fp16.*needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="unknown precision 'int8'"):
        resolve_precision("int8", "cpu")


def test_this_machine_has_native_bf16():
    """The project's CPU has AVX-512 BF16 (the measurements in device.py were taken on it)."""
    flags = open("/proc/cpuinfo").read()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_autocast_and_move_batch():
    a = torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert (a @ a).dtype == torch.float32
    batch = {"x": torch.zeros(2, 3, 4, 4), "ids": [torch.ones(2)]}
    moved = move_batch(batch, torch.device("cpu"), channels_last=True)
    assert moved["x"].is_contiguous(memory_format=torch.channels_last)
    assert isinstance(moved["ids"], list)


def test_precision_is_not_in_the_fingerprint_and_bf16_stays_close():
    fp32 = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    bf16 = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, precision="bf16")
    assert bf16.precision == "bf16" and fp32.precision == "fp32"
    assert bf16.fingerprint == fp32.fingerprint
    x = torch.randn(2, 3, 32, 32)
    a, b = fp32.encode(x), bf16.encode(x)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98
    auto = fp32.to("cpu", "auto")
    assert auto.precision == resolve_precision("auto", "cpu", "cnn")

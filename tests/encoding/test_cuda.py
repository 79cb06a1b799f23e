"""The CUDA path, verified on a GPU: AMP features close to fp32, channels_last, pinned memory
with prefetched non-blocking copies, out-of-memory halving, ``cuda:N`` selection, GPU JPEG
decoding, and one worker per visible GPU (local executor, and ``num_gpus=1`` Ray actors).

Every test is marked ``cuda`` and skipped with a reason where no GPU is present; run them with
``pytest -m cuda tests/encoding/test_cuda.py`` (``benchmarks/gpu_check.py`` does).

Tolerances (minimum cosine to the fp32 features of the same model on the same GPU):
:data:`MIN_COSINE`. They are the bounds this suite enforces; the figures measured on a GPU
belong in the README's CUDA table (not yet measured: no GPU was available when this was
written).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedpipe.backbones import load_backbone
from embedpipe.data import open_source
from embedpipe.encoding import encode
from embedpipe.errors import ConfigError
from embedpipe.store import FeatureStore

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)"),
]

#: Minimum cosine of AMP features to fp32 features, per precision.
MIN_COSINE = {"fp16": 0.999, "bf16": 0.99}

OPTS = {"batch_size": 16, "progress": False, "num_workers": 2}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def _features(path: Path) -> np.ndarray:
    with FeatureStore(path) as fs:
        return fs.features[np.argsort(fs.ids.astype(str))].astype(np.float32)


@pytest.fixture(scope="module")
def digits():
    return open_source("builtin:digits?limit=64")


@pytest.fixture(scope="module")
def resnet():
    return load_backbone("resnet18", weights=None, crop_size=64, resize_size=64, device="cuda")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_amp_features_are_close_to_fp32(tmp_path: Path, digits, resnet, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    ref = encode(digits, resnet, tmp_path / "fp32.h5", precision="fp32", **OPTS)
    amp = encode(digits, resnet, tmp_path / f"{precision}.h5", precision=precision, **OPTS)
    assert ref.device.startswith("cuda") and (amp.device, amp.precision) == (ref.device, precision)
    cos = _cosine(_features(tmp_path / "fp32.h5"), _features(tmp_path / f"{precision}.h5"))
    print(f"{precision}: min cosine to fp32 {cos.min():.6f}")  # the measured figure
    assert cos.min() >= MIN_COSINE[precision]


def test_amp_text_features_are_close_to_fp32(tmp_path: Path) -> None:
    try:
        minilm = load_backbone("minilm", device="cuda", precision="fp32")
    except ConfigError as e:
        pytest.skip(f"MiniLM is not available offline here: {e}")
    src = open_source({"builtin": "rotten_tomatoes", "limit": 64})
    encode(src, minilm, tmp_path / "fp32.h5", precision="fp32", **OPTS)
    encode(src, minilm, tmp_path / "fp16.h5", precision="fp16", **OPTS)
    cos = _cosine(_features(tmp_path / "fp32.h5"), _features(tmp_path / "fp16.h5"))
    assert cos.min() >= MIN_COSINE["fp16"]


def test_channels_last_on_cuda(resnet) -> None:
    resnet.to("cuda", precision="fp32")
    conv = next(m for m in resnet.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_cuda and conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64)
    out = resnet.encode(x)
    assert out.device.type == "cpu" and out.dtype == torch.float32 and out.shape == (4, 512)


def test_pinned_memory_and_prefetched_non_blocking_copies(digits, resnet) -> None:
    from embedpipe.encoding.engine import _batches
    from embedpipe.encoding.loader import iter_batches
    from embedpipe.encoding.options import EncodeOptions

    host = next(
        iter_batches(digits, resnet, range(16), batch_size=8, num_workers=0, pin_memory=True)
    )
    assert host.batch.is_pinned()
    opts = EncodeOptions(batch_size=8, num_workers=0)
    batches = list(_batches(digits, resnet, list(range(24)), opts, torch.device("cuda")))
    assert [len(b.positions) for b in batches] == [8, 8, 8]
    assert all(b.batch.is_cuda for b in batches)  # copied ahead, on the side stream
    ref = next(
        iter_batches(digits, resnet, range(8, 16), batch_size=8, num_workers=0, pin_memory=False)
    )
    torch.testing.assert_close(batches[1].batch.cpu(), ref.batch)  # the same pixels arrive


def test_cuda_oom_halves_the_batch_and_loses_nothing(
    tmp_path: Path, digits, resnet, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.encode.test_forward import OomAbove

    resnet.to("cuda", precision="fp32")
    ref = encode(digits, resnet, tmp_path / "ref.h5", precision="fp32", **OPTS)
    with caplog.at_level(logging.WARNING, logger="embedpipe.encoding"):
        res = encode(digits, OomAbove(resnet, 5), tmp_path / "oom.h5", precision="fp32", **OPTS)
    assert res.n_encoded == ref.n_encoded == 64
    assert any("halved to 8" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(
        _features(tmp_path / "oom.h5"), _features(tmp_path / "ref.h5"), atol=1e-3
    )


def test_device_selection_by_index(tmp_path: Path, digits) -> None:
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=rf"cuda:{n}' does not exist: this machine has {n}"):
        load_backbone("resnet18", weights=None, device=f"cuda:{n}")
    last = f"cuda:{n - 1}"
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    res = encode(digits, enc, tmp_path / "x.h5", device=last, precision="fp32", **OPTS)
    assert res.device == last
    assert next(enc.model.parameters()).device == torch.device(last)


def test_gpu_jpeg_decoding_matches_pil(tmp_path: Path, resnet) -> None:
    rng = np.random.default_rng(0)
    for k in range(12):
        d = tmp_path / "imgs" / ("a" if k % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        small.resize((96, 80), Image.BILINEAR).save(d / f"{k}.jpg", quality=95)
    src = open_source(str(tmp_path / "imgs"))
    encode(src, resnet, tmp_path / "pil.h5", precision="fp32", **OPTS)
    encode(src, resnet, tmp_path / "gpu.h5", precision="fp32", decode_device="cuda", **OPTS)
    assert _cosine(_features(tmp_path / "pil.h5"), _features(tmp_path / "gpu.h5")).min() >= 0.99


def test_one_local_worker_per_visible_gpu(tmp_path: Path, digits) -> None:
    from embedpipe.executors import get_executor

    n = torch.cuda.device_count()
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    with get_executor("local", gpus_per_worker=1) as ex:
        assert ex.parallelism == n
        res = encode(
            digits, enc, tmp_path / "s.h5", executor=ex, n_shards=2 * n, precision="fp32", **OPTS
        )
    assert res.n_encoded == 64 and all(o.device.startswith("cuda") for o in res.shards)
    assert len({o.worker for o in res.shards}) == n  # one process per GPU took the shards


@pytest.mark.slow
def test_ray_actors_with_one_gpu_each(tmp_path: Path, digits) -> None:
    pytest.importorskip("ray")
    from embedpipe.executors import get_executor

    n = torch.cuda.device_count()
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    with get_executor("ray", gpus_per_worker=1, num_workers=n) as ex:
        assert ex.parallelism == n
        res = encode(
            digits, enc, tmp_path / "r.h5", executor=ex, n_shards=2 * n, precision="fp32", **OPTS
        )
    assert res.n_encoded == 64 and all(o.device.startswith("cuda") for o in res.shards)


def test_the_writer_runs_in_a_thread_beside_the_gpu(
    tmp_path: Path, digits, resnet, writer_threads: list[bool]
) -> None:
    res = encode(digits, resnet, tmp_path / "s.h5", **OPTS)
    assert res.n_encoded == len(digits) and writer_threads == [True]


def test_features_come_back_through_pinned_memory_while_the_next_batch_runs(resnet) -> None:
    from embedpipe.encoding.engine import keeps_one_in_flight
    from embedpipe.encoding.forward import HostCopy

    assert keeps_one_in_flight(torch.device("cuda"), resnet)
    x = torch.randn(64, 512, device="cuda")
    copy = HostCopy(x * 2)
    assert copy._host.is_pinned()
    np.testing.assert_array_equal(copy.numpy(), (x * 2).cpu().numpy())

"""Runtimes beside torch: each equals torch per kind, fidelity is enforced, ``auto`` picks by
measurement and falls back, the converted model is cached. Tiny models built in the test."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from embedpipe.backbones import load_backbone
from embedpipe.backbones.runtimes import (
    RUNTIMES,
    Runtime,
    register_runtime,
    runtime_info,
    runtime_label,
    with_runtime,
)
from embedpipe.backbones.runtimes.base import InputSpec
from embedpipe.backbones.runtimes.encoder import min_cosine
from embedpipe.encoding.engine import encode_items
from embedpipe.errors import ConfigError, NotFoundError

#: OpenVINO / ONNX Runtime run in their own pytest process (make test): loaded beside the rest
#: of the suite they ended it with a segmentation fault (see the Makefile).
pytestmark = pytest.mark.runtimes

INSTALLED = [n for n in ("openvino", "onnxruntime") if RUNTIMES.get(n).available()]
needs_runtimes = pytest.mark.skipif(
    not INSTALLED, reason="neither openvino nor onnxruntime is installed (extras openvino, onnx)"
)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Converted models go to this test's own cache root."""
    monkeypatch.setenv("EMBEDPIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _images(n: int = 6) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]
    rgba = rng.integers(0, 255, (40, 40, 4), dtype=np.uint8)
    out.append(Image.fromarray(rgba, "RGBA").convert("RGB"))
    return out


TEXTS = ["a cat sat on the mat", "ok", "x", "dogs bark loudly at night near the old bridge"] * 2


# Each runtime equals torch fp32 per kind, within a stated tolerance: min cosine >= 0.9999
# (fp32 on both sides; the difference is operator order) on real inputs of each modality.
TOL = 0.9999


def _check_equal(enc_torch: Any, items: list[Any], runtime: str) -> None:
    ref = encode_items(enc_torch, items, batch_size=4)
    enc = with_runtime(enc_torch, runtime, "fp32")
    try:
        got = encode_items(enc, items, batch_size=4)
        assert enc.runtime == runtime and enc.precision == "fp32"
        assert min_cosine(got, ref) >= TOL, (runtime, min_cosine(got, ref))
        assert enc.fidelity is not None and enc.fidelity >= TOL
    finally:
        enc_torch.to("cpu", "fp32")


@needs_runtimes
@pytest.mark.parametrize("runtime", INSTALLED)
def test_torchvision_cnn_equals_torch(runtime: str) -> None:
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=36, seed=0)
    _check_equal(enc, _images(), runtime)


@needs_runtimes
@pytest.mark.parametrize("runtime", INSTALLED)
def test_hf_text_equals_torch_across_lengths(runtime: str, tiny_bert_dir: Path) -> None:
    enc = load_backbone(f"hf-text:{tiny_bert_dir}", pooling="mean", normalize=True)
    _check_equal(enc, TEXTS, runtime)


@needs_runtimes
@pytest.mark.parametrize("runtime", INSTALLED)
def test_sentence_transformers_folder_equals_torch(
    runtime: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """Pooling, Dense (with a residual) and Normalize run inside the exported graph."""
    pytest.importorskip("sentence_transformers")
    from tests.backbones.test_sentence_transformers import _save

    folder = _save(tmp_path / "st", tiny_bert_dir, pooling="mean", dense=True, normalize=True)
    enc = load_backbone(f"sentence-transformers:{folder}")
    _check_equal(enc, TEXTS, runtime)


@needs_runtimes
@pytest.mark.parametrize("runtime", INSTALLED)
def test_hf_vision_equals_torch(runtime: str, tiny_vit_dir: Path) -> None:
    enc = load_backbone(f"hf-vision:{tiny_vit_dir}")
    _check_equal(enc, _images(), runtime)


@pytest.mark.slow
@needs_runtimes
@pytest.mark.parametrize("runtime", INSTALLED)
def test_clip_towers_equal_torch(runtime: str, tiny_clip_dir: Path) -> None:
    image = load_backbone(f"clip:{tiny_clip_dir}")
    _check_equal(image, _images(), runtime)
    text = load_backbone(f"clip:{tiny_clip_dir}?tower=text")
    _check_equal(text, TEXTS, runtime)


@pytest.mark.slow
@needs_runtimes
def test_timm_equals_torch() -> None:
    pytest.importorskip("timm")
    enc = load_backbone("timm:convnext_atto", weights=None, input_size=(3, 32, 32))
    _check_equal(enc, _images(), INSTALLED[0])
    vit = load_backbone(
        "timm:vit_tiny_patch16_224",
        weights=None,
        model_args={"img_size": 32},
        input_size=(3, 32, 32),
    )
    _check_equal(vit, _images(), INSTALLED[0])


def test_word_vectors_stay_on_torch(vectors_dir: Path) -> None:
    enc = load_backbone(f"word-vectors:{vectors_dir / 'glove.txt'}")
    assert with_runtime(enc, "auto") is enc
    with pytest.raises(ConfigError, match="no torch module to convert; use runtime='torch'"):
        with_runtime(enc, "openvino")


def test_unknown_runtime_is_a_one_line_error() -> None:
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    with pytest.raises(NotFoundError, match="unknown runtime 'openvno'; did you mean 'openvino'"):
        with_runtime(enc, "openvno")


# ---- fidelity -------------------------------------------------------------------------------
class _Fake(Runtime):
    """A runtime that runs the module in torch, perturbed by ``noise`` and ``delay`` seconds
    slower or faster: enough to test the decisions without any library."""

    module = "json"
    noise = 0.0
    delay = 0.0
    fail = False
    conversions = 0

    def convert(self, module: Any, example: Any, spec: InputSpec, path: Path) -> None:
        type(self).conversions += 1
        torch.save(module, path)

    def load(self, path: Path, precision: str) -> Any:
        if self.fail:
            raise RuntimeError("this fake runtime cannot load models")
        module = torch.load(path, weights_only=False)
        seen: dict[bytes, np.ndarray] = {}

        def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
            # A batch seen before is answered at once (so "fast" is faster than torch).
            key = b"".join(v.tobytes() for v in inputs.values())
            time.sleep(self.delay)
            if key not in seen:
                with torch.inference_mode():
                    out = module(*[torch.from_numpy(v) for v in inputs.values()]).numpy()
                g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
                seen[key] = out + self.noise * np.abs(out).mean() * g
            return seen[key].copy()

        return run


@pytest.fixture
def only_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real runtimes count as absent: only the fakes race against torch."""
    for name in ("openvino", "onnxruntime"):
        monkeypatch.setattr(type(RUNTIMES.get(name)), "available", lambda self: False)


@pytest.fixture
def fakes() -> Any:
    made = []

    def make(name: str, **attrs: Any) -> type[_Fake]:
        cls = register_runtime(name)(type(name.replace("-", "_"), (_Fake,), dict(attrs)))
        made.append(name)
        return cls

    yield make
    for name in made:
        RUNTIMES.unregister(name)


def _resnet() -> Any:
    return load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, seed=0)


def test_runtime_below_threshold_is_refused_with_one_line(fakes: Any) -> None:
    fakes("fake-noisy", noise=0.5)
    enc = with_runtime(_resnet(), "fake-noisy", "fp32")
    with pytest.raises(ConfigError) as e:
        encode_items(enc, _images(4), batch_size=4)
    msg = str(e.value)
    assert "\n" not in msg
    assert "runtime='fake-noisy' gives features of 'resnet18' at min cosine 0." in msg
    assert "below 0.999" in msg and "runtime='torch'" in msg and "runtime_min_cosine=" in msg


def test_threshold_is_an_option(fakes: Any) -> None:
    fakes("fake-noisy", noise=0.2)
    enc = with_runtime(_resnet(), "fake-noisy", "fp32", min_cosine=0.5)
    encode_items(enc, _images(4), batch_size=4)
    assert enc.runtime == "fake-noisy" and 0.5 <= enc.fidelity < 0.9999


def test_auto_picks_the_faster_of_two_fakes_and_skips_a_failing_one(
    fakes: Any, only_fakes: None
) -> None:
    fakes("fake-slow", delay=0.6)
    fakes("fake-fast", delay=0.0)
    fakes("fake-broken", fail=True)
    fakes("fake-unfaithful", noise=0.5)
    slow_torch = _resnet()  # torch 0.3 s slower per call: between the two fakes
    own = slow_torch.encode
    slow_torch.encode = lambda batch: (time.sleep(0.3), own(batch))[1]
    enc = with_runtime(slow_torch, "auto", "fp32")
    encode_items(enc, _images(8), batch_size=8)
    tried = {t.runtime: t for t in enc.trials}
    assert enc.runtime == "fake-fast", enc.measured
    assert tried["fake-broken"].error.startswith("RuntimeError: this fake runtime")
    assert tried["fake-unfaithful"].min_cos < 0.999
    assert tried["fake-slow"].seconds > tried["fake-fast"].seconds
    assert "auto" in enc.reason and "fake-fast fp32" in enc.reason


def test_auto_falls_back_to_torch_and_says_so(fakes: Any, only_fakes: None) -> None:
    fakes("fake-unfaithful", noise=0.5)
    fakes("fake-broken", fail=True)
    torch_enc = _resnet()
    ref = encode_items(torch_enc, _images(4), batch_size=4)
    enc = with_runtime(torch_enc, "auto", "fp32")
    got = encode_items(enc, _images(4), batch_size=4)
    assert enc.runtime == "torch" and runtime_label(enc) == "fp32"
    assert enc.reason.startswith("torch fp32 (auto")
    assert "fake-broken fp32: failed" in enc.measured
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_the_converted_model_is_cached_and_reused(fakes: Any, _cache: Path) -> None:
    fake = fakes("fake-cached")
    first = with_runtime(_resnet(), "fake-cached", "fp32")
    a = encode_items(first, _images(4), batch_size=4)
    assert fake.conversions == 1 and len(first.converted) == 1
    entry = Path(first.converted[0])
    assert entry.parent.parent == _cache / "runtimes" and (entry / "meta.json").is_file()
    second = with_runtime(_resnet(), "fake-cached", "fp32")  # a new load: no conversion
    b = encode_items(second, _images(4), batch_size=4)
    assert fake.conversions == 1 and second.converted == []
    np.testing.assert_array_equal(a, b)


@needs_runtimes
def test_real_runtime_cache_second_load_does_not_convert() -> None:
    runtime = INSTALLED[0]
    first = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, runtime=runtime)
    encode_items(first, _images(2), batch_size=2)
    second = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, runtime=runtime)
    encode_items(second, _images(2), batch_size=2)
    assert len(first.converted) == 1 and second.converted == []
    info = runtime_info(second)
    assert info["runtime"] == runtime and info["runtime_version"] == RUNTIMES.get(runtime).version()
    assert info["min_cosine_to_torch_fp32"] >= 0.999


@needs_runtimes
def test_explicit_runtime_refuses_a_gpu_device() -> None:
    if torch.cuda.is_available():
        pytest.skip("this checks the message on a machine without CUDA")
    enc = _resnet()
    with pytest.raises(ConfigError, match="needs|not available|CUDA"):
        with_runtime(enc, INSTALLED[0]).to("cuda")


def test_onnxruntime_refuses_bf16_by_name() -> None:
    if not RUNTIMES.get("onnxruntime").available():
        pytest.skip("onnxruntime is not installed")
    enc = with_runtime(_resnet(), "onnxruntime", "bf16")
    with pytest.raises(ConfigError, match="computes in fp32 only, not precision='bf16'"):
        encode_items(enc, _images(2), batch_size=2)

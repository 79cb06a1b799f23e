"""Hugging Face vision encoders, on a tiny randomly initialised ViT saved to a folder."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ViTImageProcessor, ViTModel

from embedpipe.backbones import load_backbone
from embedpipe.errors import ConfigError


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (20, 70), dtype=np.uint8)),  # greyscale
    ]


def test_tiny_vit_matches_transformers(tiny_vit_dir):
    enc = load_backbone(f"hf-vision:{tiny_vit_dir}")
    assert enc.spec.kind == "hf_vision" and enc.spec.pooling == "cls" and enc.dim == 32
    digest = hashlib.sha256((tiny_vit_dir / "model.safetensors").read_bytes()).hexdigest()
    assert enc.spec.weights_id == f"sha256:{digest}"
    assert enc.spec.preprocessing["size"] == {"height": 32, "width": 32}
    assert enc.spec.preprocessing["image_mean"] == [0.5, 0.5, 0.5]

    pre = pickle.loads(pickle.dumps(enc.preprocess))
    images = _images()
    batch = enc.collate([pre(im) for im in images])
    assert batch.shape == (2, 3, 32, 32)
    ours = enc.encode(batch)

    model = ViTModel.from_pretrained(tiny_vit_dir).eval()
    processor = ViTImageProcessor.from_pretrained(tiny_vit_dir)
    pixels = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    with torch.no_grad():
        out = model(**pixels)
    torch.testing.assert_close(ours, out.last_hidden_state[:, 0], rtol=1e-4, atol=1e-5)

    mean = load_backbone(f"hf-vision:{tiny_vit_dir}", pooling="mean")
    torch.testing.assert_close(
        mean.encode(batch), out.last_hidden_state.mean(dim=1), rtol=1e-4, atol=1e-5
    )
    pooler = load_backbone(f"hf-vision:{tiny_vit_dir}", pooling="pooler")
    torch.testing.assert_close(pooler.encode(batch), out.pooler_output, rtol=1e-4, atol=1e-5)
    assert len({enc.fingerprint, mean.fingerprint, pooler.fingerprint}) == 3


def test_hidden_state_layer(tiny_vit_dir):
    enc = load_backbone(f"hf-vision:{tiny_vit_dir}", layer=1, pooling="mean")
    assert enc.spec.layer == "1" and enc.dim == 32
    with pytest.raises(ConfigError, match="layer 5 out of range.*3 hidden states"):
        load_backbone(f"hf-vision:{tiny_vit_dir}", layer=5)
    with pytest.raises(ConfigError, match="index into hidden_states"):
        load_backbone(f"hf-vision:{tiny_vit_dir}", layer="encoder.layer.1")
    with pytest.raises(ConfigError, match=r"pooling 'pooler'.*\['cls', 'mean'\]"):
        load_backbone(f"hf-vision:{tiny_vit_dir}", layer=1, pooling="pooler")


def test_trust_remote_code_is_off_by_default(tiny_vit_dir, monkeypatch):
    import embedpipe.backbones.hf_vision as hf_vision

    seen = []
    real = hf_vision.from_pretrained

    def spy(auto_cls, source, what, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        return real(auto_cls, source, what, **kwargs)

    monkeypatch.setattr(hf_vision, "from_pretrained", spy)
    load_backbone(f"hf-vision:{tiny_vit_dir}")
    assert seen == [False, False]


def test_missing_folder_and_offline_hub_id(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_backbone(f"hf-vision:{tmp_path}/nothing/here")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        load_backbone("hf-vision:google/vit-base-patch16-224-in21k")

"""The registry: every registered kind and preset loads, encodes and reloads from its spec."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from embedpipe.backbones import (
    BackboneSpec,
    Encoder,
    TextEncoder,
    list_backbones,
    load_backbone,
    preset,
    register_backbone,
)
from embedpipe.backbones.kind import PRESETS
from embedpipe.backbones.registry import BUILTIN_NAMES
from embedpipe.errors import ConfigError, FingerprintMismatchError

# How to build a small instance of each registered name (weights don't matter except presets).
FACTORIES = {
    "torchvision:<model>": lambda fx: load_backbone(
        "torchvision:resnet18", weights=None, crop_size=32, resize_size=32
    ),
    "hf-text:<hub id or folder>": lambda fx: load_backbone(f"hf-text:{fx['tiny_bert_dir']}"),
    "hf-vision:<hub id or folder>": lambda fx: load_backbone(f"hf-vision:{fx['tiny_vit_dir']}"),
    "word-vectors:<path>": lambda fx: load_backbone(
        f"word-vectors:{fx['vectors_dir'] / 'glove.txt'}"
    ),
    "sentence-transformers:<hub id or folder>": lambda fx: load_backbone(
        f"sentence-transformers:{fx['minilm_path']}"
    ),
    "timm:<model>": lambda fx: load_backbone(
        "timm:convnext_atto", weights=None, input_size=(3, 32, 32)
    ),
    "clip:<hub id or folder>": lambda fx: load_backbone(f"clip:{fx['tiny_clip_dir']}"),
    "minilm": lambda fx: fx["minilm"],
    "mobilenet_v2-imagenet": lambda fx: load_backbone(
        "mobilenet_v2-imagenet", crop_size=64, resize_size=64
    ),
}
FIXTURES = {
    "hf-text:<hub id or folder>": ["tiny_bert_dir"],
    "hf-vision:<hub id or folder>": ["tiny_vit_dir"],
    "word-vectors:<path>": ["vectors_dir"],
    "sentence-transformers:<hub id or folder>": ["minilm_path"],
    "clip:<hub id or folder>": ["tiny_clip_dir"],
    "minilm": ["minilm"],
    "mobilenet_v2-imagenet": ["torch_home"],
}
BUILTIN = list(FACTORIES)


def _items(modality: str) -> list:
    if modality == "text":
        return ["The cat sat on the mat.", "a dog"]
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (60, 30, 3), dtype=np.uint8)).convert("L"),
    ]


def test_every_registered_name_has_a_test():
    assert set(BUILTIN) == BUILTIN_NAMES
    assert BUILTIN_NAMES <= set(list_backbones())


@pytest.mark.parametrize("entry", BUILTIN)
def test_registered_backbone_encodes_and_reloads(entry, request):
    fx = {name: request.getfixturevalue(name) for name in FIXTURES.get(entry, [])}
    enc = FACTORIES[entry](fx)
    assert isinstance(enc, Encoder)
    assert enc.modality == enc.spec.modality
    if enc.modality == "text":
        assert isinstance(enc, TextEncoder)
        assert all(n > 0 for n in enc.lengths(_items("text")))
    assert not enc.model.training
    assert not any(p.requires_grad for p in enc.model.parameters())

    items = _items(enc.modality)
    # preprocess/collate go to DataLoader workers: they must survive pickling.
    pre = pickle.loads(pickle.dumps(enc.preprocess))
    collate = pickle.loads(pickle.dumps(enc.collate))
    out = enc.encode(collate([pre(x) for x in items]))
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.shape == (2, enc.dim)
    assert torch.isfinite(out).all()
    assert not out.requires_grad and not out.is_inference()
    assert not torch.allclose(out[0], out[1])

    # The spec, as stored in a feature store (JSON), reloads the same encoder.
    stored = json.loads(enc.spec.to_json())
    again = load_backbone(stored)
    assert again.fingerprint == enc.fingerprint
    assert again.spec == BackboneSpec.from_dict(stored)
    out2 = again.encode(again.collate([again.preprocess(x) for x in items]))
    torch.testing.assert_close(out2, out, rtol=1e-5, atol=1e-6)


def test_unknown_name_lists_what_exists():
    with pytest.raises(ConfigError) as e:
        load_backbone("resnet_9000")
    msg = str(e.value)
    assert "resnet_9000" in msg
    for name in ("minilm", "torchvision:<model>", "hf-text:<hub id or folder>", "resnet18"):
        assert name in msg


def test_unknown_torchvision_model_lists_torchvision_models():
    with pytest.raises(ConfigError, match="resnet18.*vit_b_16|vit_b_16.*resnet18"):
        load_backbone("torchvision:resnet_9000")


def test_bare_torchvision_name_and_kind_aliases(vectors_dir):
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    assert enc.spec.kind == "torchvision" and enc.spec.name == "resnet18"
    wv = load_backbone(f"word_vectors:{vectors_dir / 'glove.txt'}")
    assert wv.spec.kind == "word_vectors"


def test_unknown_options_and_bad_spec_are_config_errors(tiny_bert_dir):
    with pytest.raises(ConfigError, match="max_lenght.*accepted.*max_length"):
        load_backbone(f"hf-text:{tiny_bert_dir}", max_lenght=12)
    with pytest.raises(ConfigError, match="unknown torchvision backbone option"):
        load_backbone("resnet18", weights=None, crop=32)
    with pytest.raises(ConfigError, match="unknown keys"):
        load_backbone({"kind": "torchvision", "name": "resnet18", "colour": "red"})
    with pytest.raises(ConfigError, match="unknown backbone kind 'onnx'"):
        load_backbone({"kind": "onnx", "name": "x.onnx"})
    with pytest.raises(ConfigError, match="names no model"):
        load_backbone("hf-text:")
    with pytest.raises(ConfigError, match="not int"):
        load_backbone(3)  # type: ignore[arg-type]


def test_spec_reload_detects_different_weights(tmp_path):
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, seed=1)
    d = enc.spec.to_dict()
    d["weights_id"] = "random-init:seed=1:sha256=0000"
    with pytest.raises(FingerprintMismatchError, match="resnet18"):
        load_backbone(d)


def test_register_preset_and_device_precision_arguments():
    name = "test-tiny-resnet"
    register_backbone(
        name,
        preset("torchvision:resnet18", weights=None, crop_size=32, resize_size=32),
        description="random resnet18 at 32px",
        overwrite=True,
    )
    try:
        assert name in list_backbones()
        with pytest.raises(ConfigError, match="already registered"):
            register_backbone(name, preset("resnet18"))
        enc = load_backbone(name, layer="layer2", precision="bf16")
        assert enc.spec.layer == "layer2" and enc.dim == 128
        assert enc.precision == "bf16" and enc.device.type == "cpu"
        x = enc.collate([enc.preprocess(img) for img in _items("image")])
        assert enc.encode(x).dtype == torch.float32
    finally:
        PRESETS.unregister(name)
    with pytest.raises(ConfigError, match="contain no ':'"):
        register_backbone("a:b", preset("resnet18"))

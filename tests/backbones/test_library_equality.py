"""Every image kind equals its own library's call at fp32, transparent images included: images
go through real files and the data layer (which keeps the alpha channel), then the kind's own
conversion (torchvision / timm: ``convert("RGB")``; transformers' processors: over white)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedpipe.backbones import BackboneSpec, load_backbone
from embedpipe.data import ImageFolderSource
from embedpipe.encoding.engine import encode_items


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Opaque photos-like noise, a half-transparent RGBA, a palette PNG with a transparent
    colour, and a grey image, as files."""
    root = tmp_path_factory.mktemp("transparent")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(root / "a.png")
    rgba = Image.fromarray(rng.integers(0, 255, (48, 48, 4), dtype=np.uint8), "RGBA")
    rgba.save(root / "b_rgba.png")
    pal = Image.fromarray(rng.integers(0, 4, (40, 44), dtype=np.uint8), "P")
    pal.putpalette([250, 10, 10, 10, 250, 10, 10, 10, 250, 240, 240, 0] + [0] * 756)
    pal.info["transparency"] = 2
    pal.save(root / "c_pal.png", transparency=2)
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8), "L").save(root / "d.png")
    return root


def _files(root: Path) -> list[Image.Image]:
    """The library's own reading: PIL opens each file."""
    out = []
    for p in sorted(root.glob("*.png")):
        with Image.open(p) as im:
            im.load()
            out.append(im.copy())
    return out


def _ours(enc, root: Path) -> torch.Tensor:
    src = ImageFolderSource(root)
    modes = {src.load(i).mode for i in range(len(src))}
    assert "RGBA" in modes  # the data layer hands transparency over to the backbone
    return torch.from_numpy(encode_items(enc, [src.load(i) for i in range(len(src))]))


def test_torchvision_equals_the_truncated_model_with_convert_rgb(folder: Path) -> None:
    import torchvision

    enc = load_backbone("resnet18", weights=None, seed=3, crop_size=32, resize_size=36)
    torch.manual_seed(3)
    model = torchvision.models.resnet18().eval()
    model.load_state_dict(
        {k.removeprefix("body."): v for k, v in enc.model.state_dict().items()}, strict=False
    )
    model.fc = torch.nn.Identity()  # the penultimate layer, as documented
    # what a weights enum's transforms() returns, at this size
    from torchvision.transforms._presets import ImageClassification

    t = ImageClassification(crop_size=32, resize_size=36)
    x = torch.stack([t(im.convert("RGB")) for im in _files(folder)])
    with torch.no_grad():
        ref = model(x)
    torch.testing.assert_close(_ours(enc, folder), ref, rtol=0, atol=2e-5)


def test_timm_equals_forward_head_with_its_own_transform(folder: Path) -> None:
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    for name, margs in (("resnet18", {}), ("vit_tiny_patch16_224", {"img_size": 32})):
        enc = load_backbone(
            f"timm:{name}", weights=None, seed=0, model_args=margs, input_size=(3, 32, 32)
        )
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, **margs).eval()
        model.load_state_dict(enc.model.model.state_dict())
        t = create_transform(**resolve_data_config({"input_size": (3, 32, 32)}, model=model))
        x = torch.stack([t(im.convert("RGB")) for im in _files(folder)])
        with torch.no_grad():
            ref = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(_ours(enc, folder), ref, rtol=0, atol=2e-5)


def test_clip_equals_get_image_features_with_its_processor(
    folder: Path, tiny_clip_dir: Path
) -> None:
    from transformers import AutoModel, AutoProcessor

    enc = load_backbone(f"clip:{tiny_clip_dir}")
    model = AutoModel.from_pretrained(tiny_clip_dir).eval()
    proc = AutoProcessor.from_pretrained(tiny_clip_dir)
    x = proc(images=_files(folder), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.get_image_features(pixel_values=x)
    ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    torch.testing.assert_close(_ours(enc, folder), ref.float(), rtol=0, atol=2e-5)


def test_a_spec_from_before_the_choice_reloads_compositing_over_white() -> None:
    """Stores made before ``alpha`` existed composited transparency over white: their spec
    (without the key) rebuilds that encoder, with the fingerprint they recorded."""
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    assert enc.spec.preprocessing["alpha"] == "convert"
    old = enc.spec.to_dict()
    del old["preprocessing"]["alpha"]
    again = load_backbone(old)
    assert again.preprocess.alpha == "white"
    assert again.fingerprint == BackboneSpec.from_dict(old).fingerprint() != enc.fingerprint
    white = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, alpha="white")
    assert white.fingerprint == again.fingerprint

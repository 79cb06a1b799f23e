"""The two-step image preprocess (uint8 pixels per image, normalised per batch) computes exactly
what the one-step preprocess and the libraries' own transforms compute."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from embedpipe.backbones.pixels import normalize_pixels, split_preprocess
from embedpipe.backbones.timm_backbone import TimmPreprocess
from embedpipe.backbones.torchvision_backbone import ImagePreprocess


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    shapes = [(240, 320), (320, 240), (257, 255), (500, 120), (64, 64)]
    out = [Image.fromarray(rng.integers(0, 256, (*s, 3), dtype=np.uint8)) for s in shapes]
    out.append(Image.fromarray(rng.integers(0, 256, (90, 70), dtype=np.uint8)))  # greyscale
    rgba = rng.integers(0, 256, (80, 100, 4), dtype=np.uint8)
    out.append(Image.fromarray(rgba, "RGBA"))  # transparency: each library's own rule
    return out


def test_torchvision_split_equals_one_step_and_torchvision() -> None:
    from torchvision.models import ResNet18_Weights

    reference = ResNet18_Weights.IMAGENET1K_V1.transforms()
    pp = ImagePreprocess(256, 224)
    split = split_preprocess(pp)
    assert split is pp
    images = _images()
    batch = pp.normalize(torch.stack([pp.pixels(im) for im in images]))
    assert batch.dtype == torch.float32 and pp.pixels(images[0]).dtype == torch.uint8
    for k, im in enumerate(images):
        one = pp(im)
        assert torch.equal(one, batch[k]), k
        assert torch.equal(one, reference(im.convert("RGB"))), k


def test_timm_split_equals_one_step_and_timm() -> None:
    from timm.data import create_transform

    config = {
        "input_size": (3, 224, 224),
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 0.875,
        "crop_mode": "center",
    }
    reference = create_transform(**config, is_training=False)
    pp = TimmPreprocess(config)
    assert split_preprocess(pp) is pp
    images = _images()
    batch = pp.normalize(torch.stack([pp.pixels(im) for im in images]))
    for k, im in enumerate(images):
        assert torch.equal(pp(im), batch[k]), k
        assert torch.equal(pp(im), reference(im.convert("RGB"))), k


def test_a_transform_of_another_shape_does_not_split() -> None:
    pp = TimmPreprocess({"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    from torchvision import transforms as T

    pp._transform = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor()])  # no Normalize
    assert split_preprocess(pp) is None
    assert pp(Image.new("RGB", (40, 40))).shape == (3, 32, 32)
    assert split_preprocess(lambda img: img) is None


def test_normalize_leaves_a_float_input_alone() -> None:
    x = torch.rand(3, 4, 4)
    before = x.clone()
    out = normalize_pixels(x, (0.5,) * 3, (0.25,) * 3)
    assert torch.equal(x, before) and torch.allclose(out, (before - 0.5) / 0.25)
